// SPDX-License-Identifier: MIT
// The run page's pure parts (ui/run.js), in node: when a run is paused
// (pauseOf: the Resume action and the "paused" flag of the list and the
// run page) and what its wait says (waitingText).
// usage: node --test tests/ui/run.test.mjs   (tests/e2e/ui_browser.sh runs it)
import { test } from "node:test";
import assert from "node:assert/strict";
import { pauseOf, waitingText } from "../../ui/run.js";

const T0 = Date.parse("2026-11-26T14:20:19.128Z");
const at = (ms) => new Date(T0 + ms).toISOString();

// GET /v1/workflows/ID of a paused run, as the daemon answers it.
const pausedRun = { id: "s-1", type: "sync", status: "running", waiting: { kind: "paused", name: "push" } };
const failed = (seq, attempt, more) =>
  ({ seq, type: "step_failed", name: "push", attempt, time: at(seq), error: "down", ...more });
const history = [
  { seq: 1, type: "workflow_started", time: at(0), input: {} },
  { seq: 2, type: "step_started", name: "push", attempt: 1, time: at(1) },
  failed(3, 1, { retry_at: at(53) }),
  { seq: 4, type: "step_started", name: "push", attempt: 2, time: at(53) },
  failed(5, 2, { paused: true }),
];

test("a paused run: its step and the failure that paused it", () => {
  assert.deepEqual(pauseOf(pausedRun, history), { step: "push", seq: 5, resumed: false });
  // The list has no events: the run object alone says it is paused.
  assert.deepEqual(pauseOf(pausedRun), { step: "push", seq: null, resumed: false });
});

test("runs that are not paused: none", () => {
  assert.equal(pauseOf({ status: "running" }, history), null);
  assert.equal(pauseOf({ status: "running", waiting: { kind: "retry", name: "push", due_at: at(99) } }), null);
  assert.equal(pauseOf({ status: "running", waiting: { kind: "signal", name: "approved" } }), null);
  assert.equal(pauseOf({ status: "running", waiting: { kind: "sleep", name: "" } }), null);
  assert.equal(pauseOf({ status: "running", waiting: { kind: "concurrency", name: "" } }), null);
  // Ended runs are never paused, whatever else the object holds.
  for (const status of ["completed", "failed", "cancelled", "terminated"]) {
    assert.equal(pauseOf({ ...pausedRun, status }, history), null, status);
  }
});

test("a resume the run took is seen; a new pause is a new one", () => {
  const resumed = [...history, { seq: 6, type: "resumed", time: at(6), by: "alice" }];
  assert.deepEqual(pauseOf(pausedRun, resumed), { step: "push", seq: 5, resumed: true });
  const again = [...resumed,
    { seq: 7, type: "step_started", name: "push", attempt: 3, time: at(7) },
    failed(8, 3, { retry_at: at(58) }),
    { seq: 9, type: "step_started", name: "push", attempt: 4, time: at(58) },
    failed(10, 4, { paused: true })];
  assert.deepEqual(pauseOf(pausedRun, again), { step: "push", seq: 10, resumed: false });
  // A resume before any pause of the step (another step's) does not count.
  assert.deepEqual(pauseOf(pausedRun, [{ seq: 1, type: "resumed", time: at(1) }, failed(2, 2, { paused: true })]),
    { step: "push", seq: 2, resumed: false });
});

test("only a paused failure of the waiting step counts", () => {
  const other = [failed(2, 2, { paused: true }), { ...failed(3, 1, { paused: true }), name: "prepare" },
    failed(4, 1, { final: true })];
  assert.equal(pauseOf(pausedRun, other).seq, 2);
});

test("answers it cannot use whole do not throw", () => {
  for (const run of [null, undefined, 7, "running", {}, { status: "running", waiting: null },
    { status: "running", waiting: "paused" }]) {
    assert.equal(pauseOf(run, history), null, JSON.stringify(run));
  }
  assert.deepEqual(pauseOf({ status: "running", waiting: { kind: "paused" } }, "junk"),
    { step: "", seq: null, resumed: false });
  assert.deepEqual(pauseOf(pausedRun, [null, 7, { type: "step_failed", name: "push", paused: true, seq: "x" }]),
    { step: "push", seq: null, resumed: false });
});

test("what a paused run waits for", () => {
  assert.equal(waitingText(pausedRun.waiting), "paused: step push used up its attempts");
  assert.equal(waitingText({ kind: "retry", name: "push" }), "to retry step push");
  assert.equal(waitingText({ kind: "signal", name: "approved" }), "for signal approved");
});
