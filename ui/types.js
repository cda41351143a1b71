// SPDX-License-Identifier: MIT
// #/types: the workflow types the daemon has loaded (GET /v1/workflow-types),
// with their files, versions and run counts when the API gives them, and
// the files that failed to load.
import { h, replace } from "./dom.js";
import { api } from "./api.js";

const KNOWN = new Set(["name", "file", "version", "description"]);

// Run counts, whichever shape the API gives: a number or {status: n}.
function counts(v) {
  if (typeof v === "number") return String(v);
  if (v && typeof v === "object") {
    return Object.entries(v).map(([k, n]) => `${k} ${typeof n === "object" ? JSON.stringify(n) : n}`).join(", ");
  }
  return "";
}

export function typesPage(ui) {
  const content = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const view = h("section", {}, h("h1", { tabindex: "-1" }, "Workflow types"), content);

  async function refresh() {
    const data = await api.types();
    const types = Array.isArray(data.types) ? data.types.filter((t) => t && typeof t === "object") : [];
    const errors = Array.isArray(data.errors) ? data.errors.filter((e) => e && typeof e === "object") : [];
    const parts = [];
    if (types.length === 0) parts.push(h("p", {}, "No workflow types are loaded."));
    else {
      parts.push(h("table", { class: "types" },
        h("thead", {}, h("tr", {}, ["Name", "Version", "File", "Runs", "Other"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, types.map((t) => {
          const other = Object.entries(t).filter(([k]) => !KNOWN.has(k) && k !== "runs" && k !== "counts");
          return h("tr", { dataset: { name: String(t.name ?? "") } },
            h("td", {}, h("a", { href: `#/runs?type=${encodeURIComponent(String(t.name ?? ""))}` }, String(t.name ?? "")),
              t.description ? h("div", { class: "muted" }, String(t.description)) : null),
            h("td", {}, t.version !== undefined ? String(t.version) : "—"),
            h("td", { class: "mono" }, String(t.file ?? "")),
            h("td", {}, counts(t.runs ?? t.counts)),
            h("td", {}, other.length ? h("code", {}, JSON.stringify(Object.fromEntries(other))) : ""));
        }))));
    }
    parts.push(h("h2", {}, "Load errors"));
    if (errors.length === 0) parts.push(h("p", { id: "no-load-errors" }, "Every workflow file loaded."));
    else {
      parts.push(h("ul", { class: "load-errors" }, errors.map((e) =>
        h("li", {}, h("span", { class: "mono" }, String(e.file ?? "?")), ": ", h("pre", { class: "json" }, String(e.error ?? ""))))));
    }
    replace(content, ...parts);
  }

  return { view, refresh };
}
