// SPDX-License-Identifier: MIT
// The run page's timeline: a model built from the history's events
// (buildTimeline, no DOM, so it can be tested on its own) and its drawing
// as horizontal bars, one row per step, timer and signal name.
import { h, ms, duration } from "./dom.js";

// A timer's row: ctx:sleep's timers have no name; a wait for a signal
// with a timeout records a timer named "signal:NAME".
function timerLabel(name) {
  if (!name) return "sleep";
  if (name.startsWith("signal:")) return `wait for ${name.slice(7)}`;
  return `timer ${name}`;
}

// Returns { start, end, rows }: start and end in ms since the epoch; rows
// [{ kind: "run"|"step"|"timer"|"signals"|"events", name, label, items }]
// where items are bars { kind, from, to, label, title, open } (open: still
// going at `now`) or markers { kind: "marker", at, label, title }.
// Cancellation requests, resumes and unknown event types become markers
// in an "other events" row; events
// with a time that does not parse are left out of the drawing (they stay
// in the raw list).
export function buildTimeline(events, run, now) {
  const evs = (Array.isArray(events) ? events : []).filter(
    (e) => e && typeof e === "object" && Number.isFinite(ms(e.time)),
  );
  const ended = run && typeof run.status === "string" && run.status !== "running";
  let start = Infinity;
  let last = -Infinity;
  for (const e of evs) {
    start = Math.min(start, ms(e.time));
    last = Math.max(last, ms(e.time));
  }
  if (!Number.isFinite(start)) {
    start = ms(run && run.created_at);
    last = start;
  }
  if (!Number.isFinite(start)) return { start: now, end: now, rows: [] };
  const end = ended ? Math.max(last, ms(run.updated_at) || last) : Math.max(now, last);

  const rows = [];
  const byKey = new Map();
  const row = (kind, name, label) => {
    const key = `${kind}\u0000${name}`;
    let r = byKey.get(key);
    if (!r) {
      r = { kind, name, label, items: [] };
      byKey.set(key, r);
      rows.push(r);
    }
    return r;
  };

  const runRow = row("run", "", "run");
  const runBar = { kind: "run", from: start, to: end, open: !ended, label: "", title: "" };
  runRow.items.push(runBar);

  const attempts = new Map(); // step name + attempt -> open bar
  const waits = new Map(); // step name -> open retry wait
  const timers = new Map(); // timer name -> list of open bars, oldest first
  for (const e of evs) {
    const t = ms(e.time);
    const name = typeof e.name === "string" ? e.name : "";
    switch (e.type) {
      case "workflow_started":
        break;
      case "step_started": {
        const r = row("step", name, name);
        const w = waits.get(name);
        if (w) {
          w.to = Math.max(w.from, t);
          w.open = false;
          waits.delete(name);
        }
        const bar = { kind: "attempt", attempt: e.attempt, from: t, to: end, open: !ended };
        attempts.set(`${name}\u0000${e.attempt}`, bar);
        r.items.push(bar);
        break;
      }
      case "step_completed":
      case "step_failed": {
        const r = row("step", name, name);
        const key = `${name}\u0000${e.attempt}`;
        let bar = attempts.get(key);
        if (!bar) {
          bar = { kind: "attempt", attempt: e.attempt, from: t };
          r.items.push(bar);
        }
        attempts.delete(key);
        bar.to = t;
        bar.open = false;
        bar.kind = e.type === "step_completed" ? "attempt-ok" : "attempt-failed";
        bar.error = e.error;
        bar.paused = e.type === "step_failed" && e.paused === true;
        if (e.type === "step_failed" && !e.final && Number.isFinite(ms(e.retry_at))) {
          const wait = { kind: "retry-wait", from: t, to: ended ? Math.min(ms(e.retry_at), end) : Math.max(ms(e.retry_at), t), open: false, due: ms(e.retry_at) };
          r.items.push(wait);
          waits.set(name, wait);
        }
        break;
      }
      case "timer_started": {
        const r = row("timer", name, timerLabel(name));
        const due = ms(e.due_at);
        const bar = { kind: "timer", from: t, to: ended ? end : now, open: !ended, due };
        if (!timers.has(name)) timers.set(name, []);
        timers.get(name).push(bar);
        r.items.push(bar);
        break;
      }
      case "timer_fired":
      case "timer_cancelled": {
        const list = timers.get(name);
        const bar = list && list.shift();
        const how = e.type === "timer_fired" ? "fired" : "cancelled";
        if (bar) {
          bar.to = Math.max(bar.from, t);
          bar.open = false;
          bar.ended = how;
        } else {
          row("timer", name, timerLabel(name)).items.push({ kind: "marker", at: t, label: how });
        }
        break;
      }
      case "cancel_requested":
        row("events", "", "other events").items.push({
          kind: "marker", mark: "cancel", at: t,
          label: `cancel requested${typeof e.by === "string" && e.by ? ` by ${e.by}` : ""}`,
        });
        break;
      case "resumed":
        row("events", "", "other events").items.push({
          kind: "marker", mark: "resume", at: t,
          label: `resumed${typeof e.by === "string" && e.by ? ` by ${e.by}` : ""}`,
        });
        break;
      case "signal_received":
        row("signals", "", "signals").items.push({ kind: "marker", mark: "signal", at: t, label: name || "(signal)", payload: e.payload });
        break;
      case "side_effect_recorded":
        row("events", "", "other events").items.push({ kind: "marker", mark: "side-effect", at: t, label: name ? `side effect ${name}` : "side effect" });
        break;
      case "workflow_completed":
      case "workflow_failed":
      case "workflow_cancelled":
      case "workflow_terminated":
        runBar.to = Math.max(start, t);
        runBar.open = false;
        runBar.outcome = e.type.slice("workflow_".length);
        break;
      default:
        row("events", "", "other events").items.push({ kind: "marker", mark: "other", at: t, label: String(e.type || "event") });
    }
  }

  // Labels and titles, now that every bar has its end.
  for (const r of rows) {
    for (const it of r.items) {
      if (it.kind === "marker") {
        it.title = `${it.label} at +${duration(it.at - start)}`;
        continue;
      }
      const d = duration(it.to - it.from);
      const pending = it.open ? " so far" : "";
      switch (it.kind) {
        case "run":
          it.label = `${d}${pending}`;
          it.title = `run ${it.outcome || run?.status || ""}: ${d}${pending}`;
          break;
        case "attempt":
          it.label = `#${it.attempt} ${d}${pending}`;
          it.title = `attempt ${it.attempt}: running, ${d}${pending}`;
          break;
        case "attempt-ok":
          it.label = `#${it.attempt} ${d}`;
          it.title = `attempt ${it.attempt} completed in ${d}`;
          break;
        case "attempt-failed":
          it.label = `#${it.attempt} failed ${d}`;
          it.title = `attempt ${it.attempt} failed after ${d}: ${it.error || ""}${it.paused ? " (the run paused)" : ""}`;
          break;
        case "retry-wait":
          it.label = `retry wait ${d}`;
          it.title = `waited ${d} before the next attempt`;
          break;
        case "timer":
          it.label = it.open
            ? `${d} so far${Number.isFinite(it.due) ? `, due in ${duration(it.due - now)}` : ""}`
            : d;
          it.title = it.open
            ? `timer pending for ${d}${Number.isFinite(it.due) ? `, due at ${new Date(it.due).toISOString()}` : ""}`
            : it.ended === "fired" ? `timer fired after ${d}`
              : it.ended === "cancelled" ? `timer cancelled after ${d}`
                : `timer did not fire (run ended after ${d})`;
          if (it.ended === "cancelled") it.label = `${d} (cancelled)`;
          break;
      }
    }
  }
  return { start, end, rows };
}

// Draws a timeline model as an <ol> of rows; each row has a label and a
// track where bars are placed in percent of the run's span.
export function renderTimeline(model) {
  const span = Math.max(1, model.end - model.start);
  const pct = (t) => Math.min(100, Math.max(0, ((t - model.start) / span) * 100));
  const list = h("ol", { class: "timeline", "aria-label": "timeline" });
  for (const r of model.rows) {
    const track = h("div", { class: "tl-track" });
    for (const it of r.items) {
      if (it.kind === "marker") {
        const left = pct(it.at);
        track.appendChild(h("span", {
          class: `tl-marker tl-${it.mark || "other"}`, style: { left: `${left}%` }, title: it.title,
          tabindex: "0", "aria-label": it.title,
        }));
        track.appendChild(label(it.label, left, 0));
        continue;
      }
      const left = pct(it.from);
      const width = Math.max(0.6, pct(it.to) - left);
      const bar = h("span", {
        class: `tl-bar tl-${it.kind}${it.open ? " tl-open" : ""}`,
        style: { left: `${Math.min(left, 99.4)}%`, width: `${width}%` },
        title: it.title, tabindex: "0", "aria-label": it.title,
        dataset: it.attempt !== undefined ? { attempt: String(it.attempt) } : undefined,
      });
      track.appendChild(bar);
      track.appendChild(label(it.label, Math.min(left, 99.4), width));
    }
    list.appendChild(h("li", { class: `tl-row tl-row-${r.kind}`, dataset: { kind: r.kind, name: r.name } },
      h("span", { class: "tl-label", title: r.label }, r.label), track));
  }
  // The text under a bar or marker: from its start, or ending at its end
  // near the right edge. settleTimeline moves overlapping ones down.
  function label(text, left, width) {
    const style = left < 70 ? { left: `${left}%` } : { right: `${Math.max(0, 100 - left - width)}%` };
    return h("span", { class: "tl-text", "aria-hidden": "true", style }, text);
  }
  const axis = h("div", { class: "tl-axis", "aria-hidden": "true" },
    h("span", {}, "0"), h("span", {}, `+${duration(span / 2)}`), h("span", {}, `+${duration(span)}`));
  const key = (cls, text) => h("li", {}, h("span", { class: `tl-key ${cls}`, "aria-hidden": "true" }), text);
  const legend = h("ul", { class: "tl-legend", "aria-label": "legend" },
    key("tl-attempt-ok", "attempt completed"), key("tl-attempt-failed", "attempt failed"),
    key("tl-retry-wait", "retry wait"), key("tl-timer", "timer"), key("tl-signal", "signal"),
    key("tl-attempt tl-open", "still going"));
  return h("div", { class: "timeline-wrap" }, list, axis, legend);
}

// Once the timeline is in the document: puts each row's texts on as few
// lines as they fit without overlapping, and sizes the row to them.
export function settleTimeline(root) {
  const LINE = 15; // px per line of text
  const TOP = 22; // the first line, under the bars
  for (const track of root.querySelectorAll(".tl-track")) {
    const texts = [...track.querySelectorAll(".tl-text")];
    for (const t of texts) t.style.top = `${TOP}px`;
    const boxes = texts.map((t) => ({ t, r: t.getBoundingClientRect() })).sort((a, b) => a.r.left - b.r.left);
    const ends = []; // right edge of the last text on each line
    for (const { t, r } of boxes) {
      let line = ends.findIndex((end) => end + 8 <= r.left);
      if (line < 0) {
        line = ends.length;
        ends.push(0);
      }
      ends[line] = r.right;
      t.style.top = `${TOP + line * LINE}px`;
    }
    track.style.height = `${TOP + Math.max(1, ends.length) * LINE + 4}px`;
  }
}
