// SPDX-License-Identifier: MIT
// #/runs: the runs, newest first, filtered by status and type (kept in the
// hash: #/runs?status=failed&type=order), refreshed live, with "Load more"
// following the API's cursor (pages of 50, or ?limit=N). A paused run
// (running, waiting for a resume) is flagged "paused" next to its status.
import { h, replace, time, statusBadge, duration, ms, keepFocus } from "./dom.js";
import { api } from "./api.js";
import { pauseOf, pausedFlag } from "./run.js";

export const STATUSES = ["running", "completed", "failed", "cancelled", "terminated", "paused"];
const PAGE = 50;

export function runsPage(params, ui) {
  const status = params.get("status") || "";
  const type = params.get("type") || "";
  // The page size: ?limit=N (1 to 1000) in the hash, 50 by default.
  const asked = Number.parseInt(params.get("limit") || "", 10);
  const page = asked >= 1 && asked <= 1000 ? asked : PAGE;
  let shown = 0; // runs listed now; a refresh asks for as many again
  let cursor = null;

  const setFilter = () => {
    const q = new URLSearchParams();
    if (statusSel.value) q.set("status", statusSel.value);
    if (typeSel.value) q.set("type", typeSel.value);
    if (page !== PAGE) q.set("limit", String(page));
    const s = q.toString();
    location.hash = `#/runs${s ? `?${s}` : ""}`;
  };
  const statusSel = h("select", { id: "filter-status", name: "status", onchange: setFilter },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
  const typeSel = h("select", { id: "filter-type", name: "type", onchange: setFilter },
    h("option", { value: "" }, "any type"),
    type ? h("option", { value: type, selected: true }, type) : null);
  const body = h("tbody", {});
  const summary = h("p", { class: "muted", "aria-live": "polite" }, "Loading…");
  const more = h("button", { type: "button", hidden: true, onclick: () => loadMore() }, "Load more");

  const view = h("section", {},
    h("h1", { tabindex: "-1" }, "Runs"),
    h("form", { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      h("label", { for: "filter-status" }, "Status "), statusSel,
      h("label", { for: "filter-type" }, "Type "), typeSel,
      (status || type) ? h("a", { href: "#/runs" }, "clear filters") : null),
    h("table", { class: "runs" },
      h("thead", {}, h("tr", {},
        ["Run", "Type", "Status", "Started", "Updated", "Took", "Steps done", "Failed attempts"].map((c) => h("th", { scope: "col" }, c)))),
      body),
    summary, more);

  let gone = false; // another page is shown: answers that arrive now are dropped

  // The types for the filter: once per visit; a failure leaves the list usable.
  api.types().then((t) => {
    const names = (Array.isArray(t.types) ? t.types : []).map((x) => x && x.name).filter((n) => typeof n === "string");
    for (const n of names.sort()) if (n !== type) typeSel.appendChild(h("option", { value: n }, n));
  }, (e) => {
    if (!gone) ui.error(e);
  });

  function rowOf(r) {
    const id = String(r.id ?? "");
    const pause = pauseOf(r);
    return h("tr", { dataset: { id } },
      h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(id)}`, class: "mono" }, id)),
      h("td", {}, String(r.type ?? "")),
      h("td", {}, statusBadge(r.status), pause ? [" ", pausedFlag(pause)] : null),
      h("td", {}, time(r.created_at)),
      h("td", {}, time(r.updated_at)),
      h("td", { class: "num" }, r.status === "running" ? "" : duration(ms(r.updated_at) - ms(r.created_at))),
      h("td", { class: "num" }, String(r.steps_completed ?? "")),
      h("td", { class: "num" }, String(r.attempts_failed ?? "")));
  }

  function show(data, append) {
    const runs = Array.isArray(data.runs) ? data.runs : [];
    keepFocus(body, () => {
      if (!append) body.replaceChildren();
      for (const r of runs) if (r && typeof r === "object") body.appendChild(rowOf(r));
    });
    shown = body.rows.length;
    cursor = typeof data.next_cursor === "string" && data.next_cursor ? data.next_cursor : null;
    more.hidden = !cursor;
    const filt = [status && `status ${status}`, type && `type ${type}`].filter(Boolean).join(", ");
    replace(summary, shown === 0
      ? `No runs${filt ? ` with ${filt}` : ""}.`
      : `${shown} run${shown === 1 ? "" : "s"}${filt ? ` with ${filt}` : ""}${cursor ? ", more to load" : ""}.`);
  }

  let pages = 0; // pages loaded with "Load more": a refresh asked before one is stale

  async function refresh() {
    const asOf = pages;
    const data = await api.listRuns({ status, type, limit: Math.min(1000, Math.max(page, shown)) });
    if (asOf === pages) show(data, false);
  }

  async function loadMore() {
    if (!cursor) return;
    more.disabled = true;
    try {
      const data = await api.listRuns({ status, type, limit: page, cursor });
      pages++;
      show(data, true);
    } catch (e) {
      if (!gone) ui.error(e, { sticky: true });
    } finally {
      more.disabled = false;
    }
  }

  return { view, refresh, dispose: () => { gone = true; } };
}
