// SPDX-License-Identifier: MIT
// #/types: the workflow types the daemon has loaded (GET /v1/workflow-types),
// with their files and versions, how many of their runs are running and
// stored, and the files that failed to load.
import { h, replace, keepFocus } from "./dom.js";
import { api } from "./api.js";

// (runs: unfinished runs per version, which the Runs column counts anew)
const KNOWN = new Set(["name", "file", "version", "description", "runs"]);
const MAX = 1000; // the API's largest page: counts stop there ("1000+")

// How many runs of `type` (with `status`) the list API gives, up to MAX.
async function count(type, status) {
  const data = await api.listRuns({ type, status, limit: MAX });
  const n = Array.isArray(data.runs) ? data.runs.length : 0;
  return data.next_cursor ? `${n}+` : String(n);
}

// Fills a Runs cell: links to the type's running runs and to all of them.
function fillCount(cell, name, c) {
  replace(cell, h("a", { href: `#/runs?type=${encodeURIComponent(name)}&status=running` }, c.running),
    " running of ", h("a", { href: `#/runs?type=${encodeURIComponent(name)}` }, c.all));
}

export function typesPage(ui) {
  const content = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const view = h("section", {}, h("h1", { tabindex: "-1" }, "Workflow types"), content);
  const counted = new Map(); // type name -> { running, all }, counted once per visit

  // Counts the types not counted yet (the others' cells were filled when
  // built: filling them again would take the focus off their links).
  async function countRuns(names, cells) {
    for (const name of names) {
      if (counted.has(name)) continue;
      const [running, all] = await Promise.all([count(name, "running"), count(name, "")]);
      counted.set(name, { running, all });
      const cell = cells.get(name);
      if (cell) fillCount(cell, name, counted.get(name));
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
          // counted before: the same links at once, so the focus finds its place again
          const runs = h("td", { class: "runs-count" }, h("span", { class: "muted" }, "counting…"));
          if (counted.has(name)) fillCount(runs, name, counted.get(name));
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
      // A message that names the file already (Lua's "FILE:LINE: ...") is
      // shown alone, not after the file's name again.
      parts.push(h("ul", { class: "load-errors" }, errors.map((e) => {
        const file = String(e.file ?? "?"), msg = String(e.error ?? "");
        return msg.startsWith(file + ":")
          ? h("li", {}, h("pre", { class: "json" }, msg))
          : h("li", {}, h("span", { class: "mono" }, file), ": ", h("pre", { class: "json" }, msg));
      })));
    }
    keepFocus(content, () => replace(content, ...parts)); // a live refresh keeps a keyboard user's place
    await countRuns(types.map((t) => String(t.name ?? "")), cells);
  }

  return { view, refresh };
}
