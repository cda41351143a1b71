// SPDX-License-Identifier: MIT
// The run page's timeline model (ui/timeline.js buildTimeline), in node:
// bars per attempt, retry waits, timers, signals and other events as
// markers, runs still going, and histories it has never seen.
// usage: node --test tests/ui/timeline.test.mjs   (tests/e2e/ui_browser.sh runs it)
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildTimeline } from "../../ui/timeline.js";

const T0 = Date.parse("2026-11-26T14:20:19.128Z");
const at = (ms) => new Date(T0 + ms).toISOString();
const row = (m, kind, name) => m.rows.find((r) => r.kind === kind && r.name === name);

// A step failing twice before it succeeds, a sleep, a last step (the shape
// of the daemon's real history for such a run).
const flaky = [
  { seq: 1, type: "workflow_started", time: at(0), input: {} },
  { seq: 2, type: "step_started", name: "fetch", attempt: 1, time: at(1) },
  { seq: 3, type: "step_failed", name: "fetch", attempt: 1, time: at(2), error: "boom 1", retry_at: at(201) },
  { seq: 4, type: "step_started", name: "fetch", attempt: 2, time: at(201) },
  { seq: 5, type: "step_failed", name: "fetch", attempt: 2, time: at(202), error: "boom 2", retry_at: at(602) },
  { seq: 6, type: "step_started", name: "fetch", attempt: 3, time: at(603) },
  { seq: 7, type: "step_completed", name: "fetch", attempt: 3, time: at(610), result: {} },
  { seq: 8, type: "timer_started", name: "", time: at(610), due_at: at(1110) },
  { seq: 9, type: "timer_fired", name: "", time: at(1111) },
  { seq: 10, type: "step_started", name: "report", attempt: 1, time: at(1111) },
  { seq: 11, type: "step_completed", name: "report", attempt: 1, time: at(1112), result: {} },
  { seq: 12, type: "workflow_completed", time: at(1120), output: {} },
];
const done = { status: "completed", created_at: at(0), updated_at: at(1120) };

test("a completed run: its span, rows in order, one bar per attempt", () => {
  const m = buildTimeline(flaky, done, T0 + 99999);
  assert.equal(m.start, T0);
  assert.equal(m.end, T0 + 1120);
  assert.deepEqual(m.rows.map((r) => `${r.kind}:${r.label}`), ["run:run", "step:fetch", "timer:sleep", "step:report"]);
  const fetch = row(m, "step", "fetch").items;
  assert.deepEqual(fetch.map((i) => i.kind), ["attempt-failed", "retry-wait", "attempt-failed", "retry-wait", "attempt-ok"]);
  assert.deepEqual(fetch.map((i) => [i.from - T0, i.to - T0]), [[1, 2], [2, 201], [201, 202], [202, 603], [603, 610]]);
  assert.equal(fetch[0].label, "#1 failed 1 ms");
  assert.match(fetch[0].title, /attempt 1 failed after 1 ms: boom 1/);
  assert.equal(fetch[3].label, "retry wait 401 ms");
  assert.equal(fetch[4].label, "#3 7 ms");
  assert.ok(fetch.every((i) => !i.open));
});

test("a timer is a bar from start to fire; the run bar ends with the run", () => {
  const m = buildTimeline(flaky, done, T0 + 99999);
  const [timer] = row(m, "timer", "").items;
  assert.deepEqual([timer.from - T0, timer.to - T0, timer.open], [610, 1111, false]);
  assert.equal(timer.title, "timer fired after 501 ms");
  const [run] = row(m, "run", "").items;
  assert.deepEqual([run.to - T0, run.outcome, run.label], [1120, "completed", "1.12 s"]);
});

test("a running run: pending attempt and timer end at now, marked open", () => {
  const now = T0 + 5000;
  const events = [
    flaky[0],
    { seq: 2, type: "step_started", name: "a", attempt: 1, time: at(10) },
    { seq: 3, type: "timer_started", name: "nap", time: at(20), due_at: at(60020) },
  ];
  const m = buildTimeline(events, { status: "running", created_at: at(0) }, now);
  assert.equal(m.end, now);
  const [attempt] = row(m, "step", "a").items;
  assert.deepEqual([attempt.kind, attempt.to, attempt.open], ["attempt", now, true]);
  assert.match(attempt.label, /so far$/);
  const timerRow = row(m, "timer", "nap");
  assert.equal(timerRow.label, "timer nap");
  const [timer] = timerRow.items;
  assert.deepEqual([timer.to, timer.open], [now, true]);
  assert.equal(timer.label, "4.98 s so far, due in 55.0 s");
  assert.ok(row(m, "run", "").items[0].open);
});

test("a waiting retry is drawn up to its retry time", () => {
  const events = [
    flaky[0],
    { seq: 2, type: "step_started", name: "a", attempt: 1, time: at(10) },
    { seq: 3, type: "step_failed", name: "a", attempt: 1, time: at(20), error: "x", retry_at: at(9000) },
  ];
  const m = buildTimeline(events, { status: "running", created_at: at(0) }, T0 + 100);
  const wait = row(m, "step", "a").items[1];
  assert.deepEqual([wait.kind, wait.to - T0], ["retry-wait", 9000]);
});

test("a final failure has no retry wait, and the run bar takes the failure", () => {
  const events = [
    flaky[0],
    { seq: 2, type: "step_started", name: "a", attempt: 1, time: at(10) },
    { seq: 3, type: "step_failed", name: "a", attempt: 1, time: at(20), error: "declined", final: true },
    { seq: 4, type: "workflow_failed", time: at(25), error: "step failed" },
  ];
  const m = buildTimeline(events, { status: "failed", created_at: at(0), updated_at: at(25) }, T0 + 1e6);
  assert.deepEqual(row(m, "step", "a").items.map((i) => i.kind), ["attempt-failed"]);
  assert.equal(row(m, "run", "").items[0].outcome, "failed");
});

test("signals, side effects and unknown events are markers", () => {
  const events = [
    flaky[0],
    { seq: 2, type: "signal_received", name: "approve", time: at(50), payload: { by: "alice" } },
    { seq: 3, type: "side_effect_recorded", name: "uuid", time: at(60), value: "x" },
    { seq: 4, type: "child_workflow_started", time: at(70), child: "c-1" },
    { seq: 5, type: "workflow_cancelled", time: at(80), reason: "no longer needed" },
  ];
  const m = buildTimeline(events, { status: "cancelled", created_at: at(0), updated_at: at(80) }, T0 + 1e6);
  const [sig] = row(m, "signals", "").items;
  assert.deepEqual([sig.kind, sig.label, sig.at - T0], ["marker", "approve", 50]);
  assert.equal(sig.title, "approve at +50 ms");
  assert.deepEqual(row(m, "events", "").items.map((i) => i.label), ["side effect uuid", "child_workflow_started"]);
  assert.equal(row(m, "run", "").items[0].outcome, "cancelled");
});

test("a wait for a signal with a timeout: its timer ends when the signal comes", () => {
  const events = [
    flaky[0],
    { seq: 2, type: "timer_started", name: "signal:approved", time: at(10), due_at: at(60010) },
    { seq: 3, type: "signal_received", name: "approved", time: at(300), payload: { by: "alice" } },
    { seq: 4, type: "timer_cancelled", name: "signal:approved", time: at(301) },
    { seq: 5, type: "workflow_completed", time: at(310), output: {} },
  ];
  const m = buildTimeline(events, { status: "completed", created_at: at(0), updated_at: at(310) }, T0 + 1e6);
  const r = row(m, "timer", "signal:approved");
  assert.equal(r.label, "wait for approved");
  const [bar] = r.items;
  assert.deepEqual([bar.to - T0, bar.open, bar.ended, bar.label], [301, false, "cancelled", "291 ms (cancelled)"]);
  assert.equal(bar.title, "timer cancelled after 291 ms");
  assert.equal(row(m, "signals", "").items[0].at - T0, 300);
});

test("a cancellation request is a marker naming who asked", () => {
  const events = [
    flaky[0],
    { seq: 2, type: "timer_started", name: "", time: at(10), due_at: at(3600010) },
    { seq: 3, type: "cancel_requested", time: at(500), reason: "no longer needed", by: "alice" },
    { seq: 4, type: "timer_cancelled", name: "", time: at(502) },
    { seq: 5, type: "workflow_cancelled", time: at(505), reason: "no longer needed", by: "alice" },
  ];
  const m = buildTimeline(events, { status: "cancelled", created_at: at(0), updated_at: at(505) }, T0 + 1e6);
  assert.deepEqual(row(m, "events", "").items.map((i) => [i.mark, i.label]), [["cancel", "cancel requested by alice"]]);
  assert.deepEqual(row(m, "timer", "").items.map((i) => [i.to - T0, i.ended]), [[502, "cancelled"]]);
  assert.equal(row(m, "run", "").items[0].outcome, "cancelled");
});

// A step that used up its attempts under on_exhausted = "pause", resumed by
// alice, paused again (the shape of the daemon's history for such a run).
const paused = [
  { seq: 1, type: "workflow_started", time: at(0), input: {} },
  { seq: 2, type: "step_started", name: "push", attempt: 1, time: at(1) },
  { seq: 3, type: "step_failed", name: "push", attempt: 1, time: at(2), error: "down", retry_at: at(52) },
  { seq: 4, type: "step_started", name: "push", attempt: 2, time: at(52) },
  { seq: 5, type: "step_failed", name: "push", attempt: 2, time: at(53), error: "down", paused: true },
  { seq: 6, type: "resumed", time: at(900), by: "alice" },
  { seq: 7, type: "step_started", name: "push", attempt: 3, time: at(901) },
  { seq: 8, type: "step_failed", name: "push", attempt: 3, time: at(902), error: "down", retry_at: at(952) },
  { seq: 9, type: "step_started", name: "push", attempt: 4, time: at(952) },
  { seq: 10, type: "step_failed", name: "push", attempt: 4, time: at(953), error: "down", paused: true },
];

test("a pause has no retry wait, says so, and a resume is a marker naming who", () => {
  const m = buildTimeline(paused, { status: "running", created_at: at(0) }, T0 + 1000);
  const push = row(m, "step", "push").items;
  assert.deepEqual(push.map((i) => i.kind),
    ["attempt-failed", "retry-wait", "attempt-failed", "attempt-failed", "retry-wait", "attempt-failed"]);
  assert.equal(push[2].title, "attempt 2 failed after 1 ms: down (the run paused)");
  assert.equal(push[0].title, "attempt 1 failed after 1 ms: down");
  assert.deepEqual(row(m, "events", "").items.map((i) => [i.mark, i.label, i.at - T0]), [["resume", "resumed by alice", 900]]);
  assert.equal(row(m, "events", "").items[0].title, "resumed by alice at +900 ms");
  const noBy = buildTimeline([paused[0], { seq: 2, type: "resumed", time: at(5) }], { status: "running", created_at: at(0) }, T0 + 10);
  assert.equal(row(noBy, "events", "").items[0].label, "resumed");
});

test("histories it cannot use whole do not throw", () => {
  const junk = [null, 7, "x", {}, { type: "step_started", time: "not a time", name: "a" },
    { type: "step_completed", name: "b", attempt: 1, time: at(5) }, // no step_started before it
    { type: "timer_fired", name: "t", time: at(6) }, // no timer_started
    { type: "step_started", name: { not: "a string" }, attempt: 1, time: at(7) }];
  const m = buildTimeline(junk, { status: "running", created_at: at(0) }, T0 + 10);
  assert.deepEqual(row(m, "step", "b").items.map((i) => i.kind), ["attempt-ok"]);
  assert.equal(row(m, "timer", "t").items[0].kind, "marker");
  assert.ok(row(m, "step", ""));
  assert.deepEqual(buildTimeline(undefined, undefined, 42), { start: 42, end: 42, rows: [] });
  const empty = buildTimeline([], { status: "running", created_at: at(0) }, T0 + 10);
  assert.deepEqual(empty.rows.map((r) => r.kind), ["run"]);
});
