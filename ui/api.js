// SPDX-License-Identifier: MIT
// The daemon's HTTP API under /v1/ (same origin: lighttpd proxies it).
// Every call resolves to the decoded JSON body or throws an ApiError whose
// message is fit to show to a person.

export class ApiError extends Error {
  constructor(status, code, message, path) {
    super(message);
    this.status = status; // HTTP status, 0 when the request did not get an answer
    this.code = code; // the API's error code ("not_found", ...) or "network"/"bad_response"
    this.path = path;
  }
}

const BASE = "/v1";

// A bearer token for an API that lighttpd's policy guards (the demo's /v1/
// is for admins). Kept in sessionStorage: it lasts as long as the tab and
// is never written into a URL or the page.
const TOKEN_KEY = "lodestone.token";
export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (e) {
    return "";
  }
}
export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) {
    // storage disabled: requests go without a token
  }
}

export async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, cache: "no-store" };
  const token = getToken();
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (e) {
    throw new ApiError(0, "network", `could not reach the API (${method} ${BASE}${path}): ${e.message}`, path);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data && typeof data === "object" && data.error;
    if (err && typeof err.message === "string") {
      throw new ApiError(res.status, String(err.code || res.status), err.message, path);
    }
    // Not the daemon's answer: lighttpd's (a policy's denial, a proxy error).
    let msg = `${method} ${BASE}${path} answered HTTP ${res.status} ${res.statusText}`.trim();
    if (typeof err === "string" && err) msg += ` (${err})`;
    if (res.status === 401 || res.status === 403) {
      msg += token
        ? ": the API token was refused; set another under \"API token\""
        : ": the API wants a token; set one under \"API token\"";
    }
    throw new ApiError(res.status, typeof err === "string" && err ? err : "bad_response", msg, path);
  }
  if (data === null || typeof data !== "object") {
    throw new ApiError(res.status, "bad_response", `${method} ${BASE}${path} did not answer JSON`, path);
  }
  return data;
}

const seg = encodeURIComponent;

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const api = {
  listRuns: (params) => request("GET", `/workflows${query(params)}`),
  getRun: (id) => request("GET", `/workflows/${seg(id)}`),
  history: (id) => request("GET", `/workflows/${seg(id)}/history`),
  signal: (id, name, payload) => request("POST", `/workflows/${seg(id)}/signals/${seg(name)}`, payload),
  cancel: (id, reason) => request("POST", `/workflows/${seg(id)}/cancel`, { reason }),
  terminate: (id, reason) => request("POST", `/workflows/${seg(id)}/terminate`, { reason }),
  // No body: the daemon records who resumed from the request (X-User, set
  // by lighttpd's policy gate), not from anything the page sends.
  resume: (id) => request("POST", `/workflows/${seg(id)}/resume`),
  types: () => request("GET", "/workflow-types"),
  schedules: () => request("GET", "/schedules"),
};
