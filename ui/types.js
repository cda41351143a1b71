// SPDX-License-Identifier: MIT
// #/types: the workflow types the daemon has loaded (GET /v1/workflow-types),
// with their files and versions, how many of their runs are running and
// stored, and the files that failed to load.
import { h, replace } from "./dom.js";
import { api } from "./api.js";

const KNOWN = new Set(["name", "file", "version", "description"]);
const MAX = 1000; // the API's largest page: counts stop there ("1000+")

// How many runs of `type` (with `status`) the list API gives, up to MAX.
async function count(type, status) {
  const data = await api.listRuns({ type, status, limit: MAX });
  const n = Array.isArray(data.runs) ? data.runs.length : 0;
  return data.next_cursor ? `${n}+` : String(n);
}

export function typesPage(ui) {
  const content = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const view = h("section", {}, h("h1", { tabindex: "-1" }, "Workflow types"), content);
  const counted = new Map(); // type name -> { running, all }, counted once per visit

  async function countRuns(names, cells) {
    for (const name of names) {
      if (!counted.has(name)) {
        const [running, all] = await Promise.all([count(name, "running"), count(name, "")]);
        counted.set(name, { running, all });
      }
      const c = counted.get(name);
      const cell = cells.get(name);
      if (cell) replace(cell, h("a", { href: `#/runs?type=${encodeURIComponent(name)}&status=running` }, c.running),
        " running of ", h("a", { href: `#/runs?type=${encodeURIComponent(name)}` }, c.all));
    }
  }

  async function refresh() {
    const data = await api.types();
    const types = Array.isArray(data.types) ? data.types.filter((t) => t && typeof t === "object") : [];
    const errors = Array.isArray(data.errors) ? data.errors.filter((e) => e && typeof e === "object") : [];
    const cells = new Map();
    const parts = [];
    if (types.length === 0) parts.push(h("p", {}, "No workflow types are loaded."));
    else {
      const extra = types.some((t) => Object.keys(t).some((k) => !KNOWN.has(k)));
      parts.push(h("table", { class: "types" },
        h("thead", {}, h("tr", {}, ["Name", "Version", "File", "Runs", extra ? "Other" : null]
          .filter(Boolean).map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, types.map((t) => {
          const name = String(t.name ?? "");
          const runs = h("td", { class: "runs-count" }, counted.has(name) ? "" : h("span", { class: "muted" }, "counting…"));
          cells.set(name, runs);
          const other = Object.entries(t).filter(([k]) => !KNOWN.has(k));
          return h("tr", { dataset: { name } },
            h("td", {}, h("a", { href: `#/runs?type=${encodeURIComponent(name)}` }, name),
              t.description ? h("div", { class: "muted" }, String(t.description)) : null),
            h("td", {}, t.version !== undefined ? String(t.version) : "—"),
            h("td", { class: "mono" }, String(t.file ?? "")),
            runs,
            extra ? h("td", {}, other.length ? h("code", {}, JSON.stringify(Object.fromEntries(other))) : "") : null);
        }))));
    }
    parts.push(h("h2", {}, "Load errors"));
    if (errors.length === 0) parts.push(h("p", { id: "no-load-errors" }, "Every workflow file loaded."));
    else {
      parts.push(h("ul", { class: "load-errors" }, errors.map((e) =>
        h("li", {}, h("span", { class: "mono" }, String(e.file ?? "?")), ": ", h("pre", { class: "json" }, String(e.error ?? ""))))));
    }
    replace(content, ...parts);
    await countRuns(types.map((t) => String(t.name ?? "")), cells);
  }

  return { view, refresh };
}
