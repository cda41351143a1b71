// SPDX-License-Identifier: MIT
// #/runs/ID: one run: its fields, input, result or error, custom status,
// the timeline, the actions (resume a paused run, signal, cancel,
// terminate) and the raw event list. Refreshed live while the run is
// running.
import { h, replace, time, json, statusBadge, duration, ms, keepFocus } from "./dom.js";
import { api } from "./api.js";
import { buildTimeline, renderTimeline, settleTimeline } from "./timeline.js";

// Whether a run is paused (a step used up its attempts under
// on_exhausted = "pause": the daemon says running, waiting.kind "paused"):
// null when not, else { step, seq, resumed }: the step's name, the seq of
// its last step_failed that says paused (null when events lack it), and
// whether events already hold a "resumed" after that failure (a resume
// the run has taken while the run object said paused). No DOM: the list
// uses it without events, and tests/ui/run.test.mjs in node.
export function pauseOf(run, events) {
  if (!run || typeof run !== "object" || run.status !== "running") return null;
  const w = run.waiting;
  if (!w || typeof w !== "object" || w.kind !== "paused") return null;
  const step = typeof w.name === "string" ? w.name : "";
  let seq = null;
  let resumed = false;
  for (const e of Array.isArray(events) ? events : []) {
    if (!e || typeof e !== "object") continue;
    if (e.type === "step_failed" && e.paused === true && e.name === step && Number.isFinite(e.seq)) {
      seq = e.seq;
      resumed = false;
    } else if (e.type === "resumed" && seq !== null) {
      resumed = true;
    }
  }
  return { step, seq, resumed };
}

// The "paused" flag next to a paused run's status (here and in the list).
export function pausedFlag(pause) {
  return h("span", { class: "flag flag-paused", title: `paused: step ${pause.step || "(unnamed)"} used up its attempts` },
    "paused");
}

// run.waiting: {kind: sleep | retry | signal | child | paused | concurrency, name, due_at?}.
export function waitingText(w) {
  const name = typeof w.name === "string" ? w.name : "";
  if (w.kind === "signal") return `for signal ${name || "(any)"}`;
  if (w.kind === "retry") return `to retry${name ? ` step ${name}` : ""}`;
  if (w.kind === "sleep") return name ? `on timer ${name}` : "asleep (ctx:sleep)";
  if (w.kind === "paused") return `paused: step ${name || "(unnamed)"} used up its attempts`;
  return `${String(w.kind || "waiting")}${name ? ` ${name}` : ""}`;
}

export function runPage(id, ui) {
  let run = null;
  let events = [];
  let done = false; // the run has ended and been shown once after that

  const status = h("span", { id: "run-status" });
  const facts = h("dl", { class: "facts" });
  const payloads = h("div", { class: "payloads" });
  const timeline = h("div", { id: "timeline" }, h("p", { class: "muted" }, "Loading…"));
  const eventsBody = h("tbody", {});
  const actions = actionsView();

  const view = h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "← Runs")),
    h("h1", { tabindex: "-1" }, "Run ", h("span", { class: "mono" }, id), " ", status),
    facts,
    payloads,
    h("section", { "aria-labelledby": "h-timeline" }, h("h2", { id: "h-timeline" }, "Timeline"), timeline),
    actions.view,
    h("section", { "aria-labelledby": "h-events" },
      h("h2", { id: "h-events" }, "Events"),
      h("table", { class: "events" },
        h("thead", {}, h("tr", {}, ["#", "Time", "Type", "Details"].map((c) => h("th", { scope: "col" }, c)))),
        eventsBody)));

  function fact(term, ...value) {
    return [h("dt", {}, term), h("dd", {}, ...value)];
  }

  function show() {
    const pause = pauseOf(run);
    replace(status, statusBadge(run.status), pause ? [" ", pausedFlag(pause)] : null);
    const w = run.waiting && typeof run.waiting === "object" ? run.waiting : null;
    replace(facts,
      fact("Type", String(run.type ?? "")),
      run.version !== undefined ? fact("Version", String(run.version)) : null,
      run.parent !== undefined ? fact("Parent", String(run.parent)) : null,
      run.branch !== undefined ? fact("Branch", `${String(run.branch)} of ctx:all`) : null,
      fact("Started", time(run.created_at)),
      fact("Updated", time(run.updated_at)),
      fact("Steps completed", String(run.steps_completed ?? "")),
      fact("Failed attempts", String(run.attempts_failed ?? "")),
      w ? fact("Waiting", waitingText(w), w.due_at ? [" until ", time(w.due_at)] : null) : null,
      "reason" in run ? fact(run.status === "terminated" ? "Terminated" : "Cancelled",
        String(run.reason || "(no reason given)"), run.by ? ` (by ${run.by})` : "") : null);
    const parts = [h("section", { class: "payload", id: "run-input" }, h("h2", {}, "Input"), json(run.input ?? null))];
    if ("output" in run) parts.push(h("section", { class: "payload", id: "run-output" }, h("h2", {}, "Output"), json(run.output)));
    if ("error" in run) {
      const failedEv = events.find((e) => e && e.type === "workflow_failed" && typeof e.traceback === "string");
      parts.push(h("section", { class: "payload payload-error", id: "run-error" }, h("h2", {}, "Error"),
        h("pre", { class: "json" }, typeof run.error === "string" ? run.error : JSON.stringify(run.error, null, 2)),
        failedEv ? h("details", { class: "traceback" }, h("summary", {}, "Lua traceback"),
          h("pre", { class: "json" }, failedEv.traceback)) : null));
    }
    if ("custom_status" in run) {
      parts.push(h("section", { class: "payload", id: "run-custom-status" }, h("h2", {}, "Custom status"), json(run.custom_status)));
    }
    replace(payloads, ...parts);
    keepFocus(timeline, () => replace(timeline, renderTimeline(buildTimeline(events, run, Date.now()))));
    settleTimeline(timeline);
    actions.show(run, events);
    replace(eventsBody, ...events.map(eventRow));
  }

  function eventRow(e) {
    if (!e || typeof e !== "object") return h("tr", {}, h("td", { colspan: "4" }, json(e)));
    const rest = {};
    for (const [k, v] of Object.entries(e)) if (k !== "seq" && k !== "time" && k !== "type") rest[k] = v;
    const t0 = events.length ? ms(events[0].time) : NaN;
    const at = ms(e.time);
    return h("tr", { dataset: { type: String(e.type ?? "") } },
      h("td", { class: "num" }, String(e.seq ?? "")),
      h("td", {}, time(e.time), Number.isFinite(t0) && Number.isFinite(at) ? h("span", { class: "muted" }, ` +${duration(at - t0)}`) : null),
      h("td", {}, h("code", {}, String(e.type ?? "?"))),
      h("td", {}, Object.keys(rest).length ? h("pre", { class: "json compact" }, JSON.stringify(rest)) : ""));
  }

  async function refresh() {
    if (done) return;
    const [r, hist] = await Promise.all([api.getRun(id), api.history(id)]);
    run = r;
    events = Array.isArray(hist.events) ? hist.events : [];
    if (run.status !== "running") done = true;
    show();
  }

  // After an action, show the run's new state at once.
  async function after(text) {
    done = false;
    ui.notice(text);
    try {
      await refresh();
    } catch (e) {
      ui.error(e, { sticky: true });
    }
  }

  function actionsView() {
    const sigName = h("input", { id: "signal-name", name: "name", required: true, autocomplete: "off", placeholder: "approve" });
    const sigPayload = h("textarea", { id: "signal-payload", name: "payload", rows: "3", placeholder: '{"by": "alice"}' });
    const cancelReason = h("input", { id: "cancel-reason", name: "reason", autocomplete: "off" });
    const termReason = h("input", { id: "terminate-reason", name: "reason", autocomplete: "off" });
    const buttons = []; // signal, cancel, terminate: enabled while the run runs
    const button = (label, cls) => {
      const b = h("button", { type: "submit", class: cls }, label);
      buttons.push(b);
      return b;
    };
    const act = (fn) => async (ev) => {
      ev.preventDefault();
      busy = true;
      settle();
      try {
        await fn();
      } catch (e) {
        ui.error(e, { sticky: true });
      } finally {
        busy = false;
        settle();
      }
    };
    let running = false;
    let busy = false; // an action's request is under way
    let pause = null; // pauseOf the run shown
    let resumeSent = null; // the pause (its key) the page sent a resume for
    const pauseKey = (p) => `${p.step}\u0000${p.seq}`;
    // A resume waits for the run to take it: the page offers no second one
    // for the same pause (the run pauses again, with a new step_failed,
    // when the new round of attempts fails too).
    const resumePending = () => pause !== null && (pause.resumed || resumeSent === pauseKey(pause));
    function settle() {
      for (const b of buttons) b.disabled = busy || !running;
      resumeButton.disabled = busy || pause === null || resumePending();
    }

    const resumeButton = h("button", { type: "submit" }, "Resume run");
    const resumeText = h("p", { class: "muted", id: "resume-note", "aria-live": "polite" });
    const resumeForm = h("form", { class: "action", id: "resume-form", hidden: true, onsubmit: act(async () => {
      if (pause === null || resumePending()) return;
      const key = pauseKey(pause);
      await api.resume(id);
      resumeSent = key;
      await after("Resume requested: the step gets a new round of attempts.");
    }) },
      h("h3", {}, "Resume"),
      resumeText,
      resumeButton);

    const signalForm = h("form", { class: "action", onsubmit: act(async () => {
      const name = sigName.value.trim();
      if (!name) throw new Error("signal: a name is required");
      // (the browser removes such a path segment before it sends; lodestoned
      // refuses them, and "/")
      if (name === "." || name === "..") {
        throw new Error(`signal: "${name}" is not a signal name (the API's path cannot carry it)`);
      }
      let payload = null;
      if (sigPayload.value.trim()) {
        try {
          payload = JSON.parse(sigPayload.value);
        } catch (e) {
          throw new Error(`signal payload: not valid JSON (${e.message})`);
        }
      }
      await api.signal(id, name, payload);
      await after(`Signal "${name}" sent.`);
    }) },
      h("h3", {}, "Signal"),
      h("label", { for: "signal-name" }, "Name"), sigName,
      h("label", { for: "signal-payload" }, "Payload (JSON, optional)"), sigPayload,
      button("Send signal"));

    const cancelForm = h("form", { class: "action", onsubmit: act(async () => {
      await api.cancel(id, cancelReason.value.trim() || "cancelled from the web UI");
      await after("Cancellation requested.");
    }) },
      h("h3", {}, "Cancel"),
      h("p", { class: "muted" }, "The run stops at its next step and can clean up."),
      h("label", { for: "cancel-reason" }, "Reason"), cancelReason,
      button("Cancel run"));

    const termForm = h("form", { class: "action", onsubmit: act(async () => {
      if (!window.confirm(`Terminate run ${id} now? Its code gets no chance to clean up.`)) return;
      await api.terminate(id, termReason.value.trim() || "terminated from the web UI");
      await after("Run terminated.");
    }) },
      h("h3", {}, "Terminate"),
      h("p", { class: "muted" }, "Ends the run at once, without cleanup."),
      h("label", { for: "terminate-reason" }, "Reason"), termReason,
      button("Terminate run", "danger"));

    const note = h("p", { class: "muted", id: "actions-note" });
    const view = h("section", { "aria-labelledby": "h-actions", class: "actions" },
      h("h2", { id: "h-actions" }, "Actions"), note,
      h("div", { class: "action-forms" }, resumeForm, signalForm, cancelForm, termForm));
    return {
      view,
      // Shown only for a paused run: Resume (the daemon answers 409 for
      // any other); signal, cancel and terminate while the run runs.
      show(r, evs) {
        running = r.status === "running";
        pause = pauseOf(r, evs);
        resumeForm.hidden = pause === null;
        if (pause !== null) {
          replace(resumeText, resumePending()
            ? "Resume requested: waiting for the run to take it."
            : `Step ${pause.step || "(unnamed)"} used up its attempts and the run waits. ` +
              "Fix what the step calls, then resume: the step gets a new round of attempts.");
        }
        settle();
        replace(note, running ? "" : "The run has ended: nothing to resume, signal, cancel or terminate.");
      },
    };
  }

  const onResize = () => settleTimeline(timeline);
  window.addEventListener("resize", onResize);
  return { view, refresh, dispose: () => window.removeEventListener("resize", onResize) };
}
