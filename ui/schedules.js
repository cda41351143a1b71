// SPDX-License-Identifier: MIT
// #/schedules: the daemon's schedules (GET /v1/schedules). A daemon
// without the schedules API answers 404: the page says so instead of
// showing an error.
import { h, replace, time } from "./dom.js";
import { api } from "./api.js";

export function schedulesPage(ui) {
  const content = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const view = h("section", {}, h("h1", { tabindex: "-1" }, "Schedules"), content);

  async function refresh() {
    let data;
    try {
      data = await api.schedules();
    } catch (e) {
      if (e.status === 404) {
        replace(content, h("p", { class: "notice", id: "no-schedules-api" },
          "No schedules API yet: this lodestoned does not serve GET /v1/schedules."));
        return;
      }
      throw e;
    }
    const list = Array.isArray(data.schedules) ? data.schedules.filter((s) => s && typeof s === "object") : [];
    if (list.length === 0) {
      replace(content, h("p", {}, "No schedules."));
      return;
    }
    replace(content, h("table", { class: "schedules" },
      h("thead", {}, h("tr", {},
        ["Name", "Workflow", "Cron", "Time zone", "Overlap", "Next fire", "Last fire", "State"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, list.map((s) => h("tr", { dataset: { name: String(s.name ?? "") } },
        h("td", {}, String(s.name ?? "")),
        h("td", {}, String(s.workflow ?? "")),
        h("td", {}, h("code", {}, String(s.cron ?? ""))),
        h("td", {}, String(s.timezone ?? "")),
        h("td", {}, String(s.overlap ?? "")),
        h("td", {}, time(s.next_fire)),
        h("td", {}, time(s.last_fire)),
        h("td", {}, s.paused ? "paused" : "active"))))));
  }

  return { view, refresh };
}
