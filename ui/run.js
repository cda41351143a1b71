// SPDX-License-Identifier: MIT
// #/runs/ID: one run: its fields, input, result or error, custom status,
// the timeline, the actions (signal, cancel, terminate) and the raw event
// list. Refreshed live while the run is running.
import { h, replace, time, json, statusBadge, duration, ms, keepFocus } from "./dom.js";
import { api } from "./api.js";
import { buildTimeline, renderTimeline, settleTimeline } from "./timeline.js";

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

  // run.waiting: {kind: sleep | retry | signal, name, due_at?}.
  function waitingText(w) {
    const name = typeof w.name === "string" ? w.name : "";
    if (w.kind === "signal") return `for signal ${name || "(any)"}`;
    if (w.kind === "retry") return `to retry${name ? ` step ${name}` : ""}`;
    if (w.kind === "sleep") return name ? `on timer ${name}` : "asleep (ctx:sleep)";
    return `${String(w.kind || "waiting")}${name ? ` ${name}` : ""}`;
  }

  function fact(term, ...value) {
    return [h("dt", {}, term), h("dd", {}, ...value)];
  }

  function show() {
    replace(status, statusBadge(run.status));
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
    actions.enable(run.status === "running");
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
    const buttons = [];
    const button = (label, cls) => {
      const b = h("button", { type: "submit", class: cls }, label);
      buttons.push(b);
      return b;
    };
    const act = (fn) => async (ev) => {
      ev.preventDefault();
      for (const b of buttons) b.disabled = true;
      try {
        await fn();
      } catch (e) {
        ui.error(e, { sticky: true });
      } finally {
        for (const b of buttons) b.disabled = !running;
      }
    };
    let running = false;

    const signalForm = h("form", { class: "action", onsubmit: act(async () => {
      const name = sigName.value.trim();
      if (!name) throw new Error("signal: a name is required");
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
      h("h2", { id: "h-actions" }, "Actions"), note, h("div", { class: "action-forms" }, signalForm, cancelForm, termForm));
    return {
      view,
      enable(on) {
        running = on;
        for (const b of buttons) b.disabled = !on;
        replace(note, on ? "" : "The run has ended: nothing to signal, cancel or terminate.");
      },
    };
  }

  const onResize = () => settleTimeline(timeline);
  window.addEventListener("resize", onResize);
  return { view, refresh, dispose: () => window.removeEventListener("resize", onResize) };
}
