// SPDX-License-Identifier: MIT
// Small DOM helpers. Everything the UI shows from the API becomes text
// nodes or attribute values (h() and replace()); nothing is parsed as
// HTML, so no data can turn into markup.

// h("a", { href: "#/runs", class: "x" }, "text", child, ...) builds an
// element. Attributes whose name starts with "on" are event listeners;
// null/undefined/false attributes and children are left out; strings and
// numbers become text nodes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k === "dataset" && typeof v === "object") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Replaces the children of el.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Milliseconds since the epoch from an RFC 3339 time ("2026-11-26T14:20:19.128Z"),
// or NaN.
export function ms(t) {
  return typeof t === "string" ? Date.parse(t) : NaN;
}

// "850 ms", "1.25 s", "2 m 05 s", "1 h 02 m".
export function duration(d) {
  if (!Number.isFinite(d)) return "?";
  if (d < 0) d = 0;
  if (d < 1000) return `${Math.round(d)} ms`;
  if (d < 60000) return `${(d / 1000).toFixed(d < 10000 ? 2 : 1)} s`;
  const s = Math.round(d / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, "0")} s`;
  const m = Math.round(s / 60);
  if (m < 1440) return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} m`;
  return `${Math.floor(m / 1440)} d ${String(Math.floor((m % 1440) / 60)).padStart(2, "0")} h`;
}

// A local time "2026-11-26 14:20:19.128" for an RFC 3339 string, in a
// <time> that keeps the original (shown on hover).
export function time(t) {
  if (typeof t !== "string" || !t) return h("span", { class: "muted" }, "—");
  const v = ms(t);
  let shown = t;
  if (Number.isFinite(v)) {
    const d = new Date(v);
    const p = (n, w = 2) => String(n).padStart(w, "0");
    shown = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
      `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }
  return h("time", { datetime: t, title: t }, shown);
}

// Pretty JSON in a <pre>, for inputs, outputs and event payloads.
export function json(v) {
  let s;
  try {
    s = JSON.stringify(v, null, 2);
  } catch (e) {
    s = String(v);
  }
  return h("pre", { class: "json" }, s === undefined ? "undefined" : s);
}

export function statusBadge(status) {
  const s = typeof status === "string" ? status : "unknown";
  return h("span", { class: `status status-${s.replace(/[^a-z_-]/g, "")}` }, s);
}

// Runs fn(), which rebuilds part of container, and puts the keyboard focus
// back where it was: on the element at the same place among the
// container's focusable elements (a live refresh must not throw a keyboard
// user back to the top of the page).
export function keepFocus(container, fn) {
  const focusables = () => [...container.querySelectorAll("a[href], button, input, select, textarea, [tabindex]")];
  const i = container.contains(document.activeElement) ? focusables().indexOf(document.activeElement) : -1;
  fn();
  if (i >= 0) {
    const list = focusables();
    const el = list[Math.min(i, list.length - 1)];
    if (el) el.focus({ preventScroll: true });
  }
}
