// SPDX-License-Identifier: MIT
// The UI's shell: hash routes (#/runs, #/runs/ID, #/schedules, #/types),
// the error banner, and the 2-second live refresh that the current page
// hooks into (pausable with the "Live refresh" switch).
import { h, replace } from "./dom.js";
import { runsPage } from "./runs.js";
import { runPage } from "./run.js";
import { schedulesPage } from "./schedules.js";
import { typesPage } from "./types.js";
import { getToken, setToken } from "./api.js";

const REFRESH_MS = 2000;
const main = document.getElementById("main");
const banner = document.getElementById("banner");
const live = document.getElementById("live");

// The banner shows one message. A "sticky" message (the answer to an
// action the user took) stays until dismissed or the page changes; a
// refresh's error is replaced by the next refresh's outcome.
let bannerSticky = false;
function showBanner(text, { kind = "error", sticky = false } = {}) {
  bannerSticky = sticky;
  replace(banner,
    h("p", {}, h("strong", {}, kind === "error" ? "Error: " : ""), text),
    h("button", { type: "button", class: "dismiss", onclick: clearBanner, "aria-label": "Dismiss message" }, "×"));
  banner.className = `banner banner-${kind}`;
  banner.hidden = false;
}
function clearBanner() {
  bannerSticky = false;
  banner.hidden = true;
  banner.replaceChildren();
}

// What pages get: errors shown plainly, never a blank page.
const ui = {
  error(e, opts) {
    showBanner(e && e.message ? e.message : String(e), opts);
  },
  notice(text) {
    showBanner(text, { kind: "info", sticky: true });
  },
  refreshed() {
    if (!bannerSticky) clearBanner();
  },
  clear: clearBanner,
  get live() {
    return live.checked;
  },
};

let current = null; // { view, refresh?, dispose? } of the page shown

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  const parts = path.split("/").filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch (e) {
      return p;
    }
  });
  return { parts, params };
}

function route() {
  // A filter's select keeps the focus when its change reloads the page.
  const focusedId = main.contains(document.activeElement) ? document.activeElement.id : "";
  if (current && current.dispose) current.dispose();
  current = null;
  clearBanner();
  const { parts, params } = parseHash();
  let name = parts[0] || "runs";
  let page;
  if (name === "runs" && parts.length === 1) page = runsPage(params, ui);
  else if (name === "runs" && parts.length >= 2) page = runPage(parts.slice(1).join("/"), ui);
  else if (name === "schedules") page = schedulesPage(ui);
  else if (name === "types") page = typesPage(ui);
  else {
    name = "";
    page = { view: h("section", {}, h("h1", { tabindex: "-1" }, "Not found"),
      h("p", {}, "No page here. ", h("a", { href: "#/runs" }, "Go to the runs."))) };
  }
  for (const a of document.querySelectorAll("nav a[data-page]")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  replace(main, page.view);
  current = page;
  const title = main.querySelector("h1");
  if (title) document.title = `${title.textContent} · Lodestone`;
  const again = focusedId && document.getElementById(focusedId);
  if (again && main.contains(again)) again.focus({ preventScroll: true });
  else if (title && (document.activeElement === document.body || document.activeElement === null)) {
    title.focus({ preventScroll: true });
  }
  tick(true);
}

async function tick(first) {
  const page = current;
  if (!page || !page.refresh || page.busy) return;
  if (!first && (!live.checked || document.hidden)) return;
  page.busy = true; // one refresh at a time per page
  try {
    await page.refresh();
    if (page === current) ui.refreshed();
  } catch (e) {
    if (page === current) ui.error(e);
  } finally {
    page.busy = false;
  }
}

// The API token form in the header.
const tokenBox = document.getElementById("token");
const tokenInput = document.getElementById("token-input");
function showTokenState() {
  document.getElementById("token-state").textContent = getToken() ? "set" : "none";
}
document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setToken(tokenInput.value.trim().replace(/^Bearer\s+/i, ""));
  tokenInput.value = "";
  tokenBox.open = false;
  showTokenState();
  route(); // load the page again with the token
});
document.getElementById("token-forget").addEventListener("click", () => {
  setToken("");
  tokenInput.value = "";
  tokenBox.open = false;
  showTokenState();
  route();
});
showTokenState();

live.addEventListener("change", () => {
  document.getElementById("live-state").textContent = live.checked ? "on" : "paused";
  if (live.checked) tick(false);
});
window.addEventListener("hashchange", route);
setInterval(() => tick(false), REFRESH_MS);
if (!location.hash) history.replaceState(null, "", "#/runs");
route();
