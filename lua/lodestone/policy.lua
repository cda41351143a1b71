-- SPDX-License-Identifier: MIT
-- lodestone.policy: write access policies in Lua, enforce them in lighttpd.
--
--   -- policies/orders-api.lua
--   local policy = require "lodestone.policy"
--   return policy.define {
--     name = "orders-api",
--     authenticate = { policy.jwt { jwks = "jwks.json", algorithms = { "RS256" } } },
--     rules = { { path = "/healthz", allow = "anyone" }, { path = "/orders/**", scopes = { "orders:read" } } },
--   }
--
--   -- the mod_magnet gate (lighttpd.conf: magnet.attract-raw-url-to = ( "/etc/lodestone/gate.lua" ))
--   return require("lodestone.policy").enforce(lighty, "/etc/lodestone/policies/orders-api.lua")
--
-- `lighty` is passed in because mod_magnet gives it to the script's own
-- environment only, not to the modules the script requires.
--
-- The declaration is compiled once into the C engine (lodestone.core) and
-- kept in this module, which survives between requests (mod_magnet clears a
-- script's globals after each request, not package.loaded). enforce() looks
-- at the policy file at most once a second and reloads it when it changed;
-- a file that fails to load keeps the last good version and logs why, and
-- with no good version every request is denied (503): policies fail closed.
-- Runs on Lua 5.1/LuaJIT and 5.4 alike.
local core = require("lodestone.core")
local json = core.json

local M = {}

-- Each request leaves a few short-lived strings behind (header values, the
-- token). Lua 5.4's generational collector handles such garbage far more
-- cheaply than the incremental one; the state is the gate script's own.
if _VERSION == "Lua 5.4" then
  pcall(collectgarbage, "generational")
end

local POLICY = { __name = "lodestone.policy.declaration" }
local unpack = table.unpack or unpack -- luacheck: ignore

-- ---- declaring ----

--- policy.define{ name = ..., authenticate = {...}, rules = {...}, ... } -> declaration
function M.define(decl)
  if type(decl) ~= "table" then error("policy.define: expected a table", 2) end
  if type(decl.name) ~= "string" or decl.name == "" then
    error("policy.define: name is required (a string such as \"orders-api\")", 2)
  end
  return setmetatable(decl, POLICY)
end

local function authenticator(kind)
  return function(opts)
    if type(opts) ~= "table" then error("policy." .. kind .. ": expected a table", 2) end
    local t = { type = kind }
    for k, v in pairs(opts) do t[k] = v end
    return t
  end
end

--- policy.jwt{ jwks | jwks_url | pem | secret_file, algorithms, issuer, audience, leeway,
--              roles_claim, ... }  (see docs/policies.md)
M.jwt = authenticator("jwt")
--- policy.api_key{ header = "X-API-Key" | query = "api_key", keys = FILE }
M.api_key = authenticator("api_key")
--- policy.basic{ users = FILE, realm = "..." }
M.basic = authenticator("basic")
--- policy.webhook{ provider = "github" | "stripe" | "hmac", secret_file = FILE, ... }
M.webhook = authenticator("webhook")

-- Fields whose values are lists: an empty Lua table there must encode as
-- [] and not {}.
local LISTS = { methods = true, roles = true, scopes = true, algorithms = true, audience = true,
  required_claims = true, allow = true, deny = true, trusted_proxies = true, authenticate = true,
  rules = true, paths = true }

local function mark_lists(t, depth)
  if depth > 16 then return end
  for k, v in pairs(t) do
    if type(v) == "table" then
      if LISTS[k] and next(v) == nil then json.array(v) end
      mark_lists(v, depth + 1)
    end
  end
end

--- policy.to_json(declaration) -> the engine's JSON text | nil, msg, code
function M.to_json(decl)
  if getmetatable(decl) ~= POLICY then
    return nil, "not a policy: the file must return policy.define{...}", "EINVAL"
  end
  local plain = {}
  for k, v in pairs(decl) do plain[k] = v end
  mark_lists(plain, 0)
  local text, msg, code = json.encode(plain)
  if not text then return nil, msg, code end
  return text
end

--- policy.compile(declaration, opts) -> compiled policy | nil, msg, code
-- opts: base_dir (relative file names), rl_dir (shared rate-limit tables,
-- default /dev/shm), cache_dir (jwks_url caches, default /var/cache/lodestone),
-- no_audit, private_rl, now (a frozen clock, for offline checks).
function M.compile(decl, opts)
  local text, msg, code = M.to_json(decl)
  if not text then return nil, msg, code end
  return core.policy_load(text, opts)
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

--- policy.load(path, opts) -> compiled policy, declaration | nil, msg, code
-- Runs the policy file and compiles what it returns; relative file names in
-- it resolve against the file's directory unless opts.base_dir says else.
function M.load(path, opts)
  -- (not loadfile: a FIFO put in the file's place would stall lighttpd)
  local chunk, err, ecode = core.load_file(path)
  if not chunk then return nil, err, ecode end
  local ok, decl = pcall(chunk)
  if not ok then return nil, path .. ": " .. tostring(decl), "EINVAL" end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.base_dir = o.base_dir or dirname(path)
  local pol, msg, code = M.compile(decl, o)
  if not pol then return nil, path .. ": " .. msg, code end
  return pol, decl
end

-- Which request attributes a declaration looks at beyond method, path and
-- client address: each mod_magnet attribute read costs time per request.
local function needs(decl)
  local n = { query = false, host = false }
  for _, a in ipairs(decl.authenticate or {}) do
    if type(a) == "table" and a.query ~= nil then n.query = true end
  end
  for _, r in ipairs(decl.rules or {}) do
    if type(r) == "table" and r.host ~= nil then n.host = true end
  end
  return n
end

-- ---- enforcing in mod_magnet ----

-- How often enforce() looks at a policy file for changes.
M.reload_interval_ms = 1000
local states = {} -- policy file path -> state

local function log(msg)
  -- mod_magnet sends print() to lighttpd's error log.
  print("lodestone: " .. msg)
end

local function install(st, pol, decl)
  -- Everything first, then all at once: a raise half way (out of memory)
  -- leaves the state as it was, the last good policy whole.
  local need, headers, strip = needs(decl), pol:headers(), pol:strip()
  local needs_body, every_path = pol:needs_body()
  local m = st.metrics
  -- What enforce() calls on each request, bound to its options once. It
  -- leaves requests whose authenticators read the body to enforce_general:
  -- none for a webhook on every path.
  local fast = not every_path and pol:gate_fn(m and m.path, need.query, need.host) or nil
  st.pol, st.needs, st.needs_body, st.values, st.fast = pol, need, needs_body, {}, fast
  st.headers, st.nheaders, st.strip, st.nstrip = headers, #headers, strip, #strip
end

-- ---- decision metrics (docs/policies.md) ----

-- enforce() answers GET M.metrics_path itself, with the decision counters
-- and times in Prometheus text, when the client is in opts.metrics.allow
-- (default: loopback); for other clients that path is like any other.
M.metrics_path = "/_lodestone/metrics"
local LOOPBACK = { "127.0.0.0/8", "::1" }
local metric_tables = {} -- file -> shared table (false: could not open)

-- opts.metrics: nil (defaults), false (off), or { file = PATH, allow =
-- { CIDR, ... }, path = "/_lodestone/metrics" }. The file is shared by
-- every lighttpd worker: default (opts.rl_dir or "/dev/shm") ..
-- "/lodestone-policy.metrics". Returns nil when metrics are off or the file
-- cannot be opened (logged; decisions go on uncounted).
local function metrics_setup(opts)
  local mo = opts and opts.metrics
  if mo == false then return nil end
  if mo ~= nil and type(mo) ~= "table" then
    error("policy.enforce: opts.metrics: expected a table or false, got " .. type(mo), 3)
  end
  mo = mo or {}
  local allow, amsg = core.cidr_new(mo.allow or LOOPBACK)
  if not allow then error("policy.enforce: opts.metrics.allow: " .. tostring(amsg), 3) end
  if mo.path ~= nil and type(mo.path) ~= "string" then
    error("policy.enforce: opts.metrics.path: expected a string, got " .. type(mo.path), 3)
  end
  local file = mo.file or (((opts and opts.rl_dir) or "/dev/shm") .. "/lodestone-policy.metrics")
  local t = metric_tables[file]
  if t == nil then
    local msg
    t, msg = core.policy_metrics(file)
    if not t then log(tostring(msg) .. " (decisions are not counted)") end
    metric_tables[file] = t or false
  end
  if not t then return nil end
  return { table = t, allow = allow, path = mo.path or M.metrics_path }
end

local function serve_metrics(r, m)
  local text, msg = m.table:render()
  if not text then
    log(tostring(msg))
    return 500
  end
  r.resp_header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
  r.resp_header["Cache-Control"] = "no-store"
  r.resp_body:set({ text })
  return 200
end

-- opts for M.load: the caller's, with the shared metrics table in place of
-- the metrics configuration.
local function load_opts(st, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.metrics = st.metrics and st.metrics.table or nil
  return o
end

local function refresh(path, st, now, opts)
  st.next_check = now + M.reload_interval_ms
  local stamp, serr = core.file_stamp(path)
  if stamp and stamp == st.stamp then return end
  if not stamp then
    if st.error ~= serr then log(serr .. (st.pol and ": keeping the last good policy" or ": denying every request")) end
    st.error = serr
    return
  end
  local pol, msg = M.load(path, load_opts(st, opts))
  st.stamp = stamp
  if pol then
    if st.pol then log("reloaded " .. path) end
    install(st, pol, msg) -- (on success the second value is the declaration)
    st.error = nil
  else
    log(msg .. (st.pol and " (keeping the last good version)" or " (denying every request until it is fixed)"))
    st.error = msg
  end
end

local UNAVAILABLE = '{"error":"policy_unavailable"}'

-- Sends the answer of a decision that did not let the request through.
local function answer(r, pol, status)
  local hdrs, rbody = pol:response()
  local oh = r.resp_header
  for k, v in pairs(hdrs) do oh[k] = v end
  r.resp_body:set({ rbody })
  return status
end

-- An answer the gate makes itself, without a decision: as a denial's,
-- JSON and never cached.
local function refuse(r, status, body)
  local oh = r.resp_header
  oh["Content-Type"] = "application/json"
  oh["Cache-Control"] = "no-store"
  r.resp_body:set({ body })
  return status
end

local function internal_error(r, msg)
  log(tostring(msg))
  return refuse(r, 500, '{"error":"internal_error"}')
end

-- What a gate's answer (pol:gate, or a pol:gate_fn closure) means for
-- mod_magnet: 0, a denial's status or a 500; nil when the gate left the
-- request to its caller (false).
local function gate_result(r, pol, status, notice, code)
  if status == nil then return internal_error(r, notice .. " (" .. tostring(code) .. ")") end
  if not status then return nil end
  if notice then log(notice) end
  if status == 0 then return 0 end
  return answer(r, pol, status)
end

-- Every case pol:gate does not take: no policy yet, the metrics path, a
-- request whose authenticators read its body (webhook signatures).
local function enforce_general(r, st, body_needed)
  local attr = r.req_attr
  local raw_path = attr["uri.path-raw"]
  local m = st.metrics
  local rh = r.req_header
  -- A request a proxy forwarded is from the proxy's client, not from the
  -- peer: a local reverse proxy must not open the metrics to everyone.
  if m and raw_path == m.path and m.allow:contains(attr["request.remote-addr"])
    and attr["request.method"] == "GET"
    and not rh["X-Forwarded-For"] and not rh["Forwarded"] and not rh["X-Real-IP"] then
    return serve_metrics(r, m)
  end

  local pol = st.pol
  if not pol then return refuse(r, 503, UNAVAILABLE) end
  local values, headers = st.values, st.headers
  for i = 1, st.nheaders do values[i] = rh[headers[i]] end
  local strip = st.strip

  local body
  if body_needed or (st.needs_body and pol:needs_body(raw_path)) then
    local pending
    body, pending = M.request_body(r)
    -- lighttpd now reads the whole body (mod_magnet became the request's
    -- handler, so mod_proxy and static files stay out) and then runs this
    -- gate again from the start. The identity headers go meanwhile all
    -- the same: a client never sets them.
    if pending then
      for i = 1, st.nstrip do rh[strip[i]] = nil end
      return 0
    end
  end
  -- The raw path: the engine decodes it once, as the backend will.
  local need = st.needs
  local status, vals, notice = pol:decide(attr["request.method"], raw_path,
    need.query and attr["uri.query"] or nil, need.host and attr["uri.authority"] or nil,
    attr["request.remote-addr"], body, unpack(values, 1, st.nheaders))
  if notice then log(notice) end
  if status == nil then return internal_error(r, vals) end -- the engine could not decide: fail closed
  if status == 0 then
    -- One write per identity header: the value replaces whatever the
    -- client sent under that name, and nil removes it, so a client never
    -- sets identity headers. (A denied request goes nowhere: nothing to
    -- strip.) Names that pass for theirs with a backend that reads
    -- headers the CGI way (X_User for X-User) are removed too.
    pol:strip_lookalikes(rh)
    for i = 1, st.nstrip do rh[strip[i]] = vals[i] end
    return 0
  end
  return answer(r, pol, status)
end

-- Every request the fast gate did not take: the first one for a path, a
-- look at the policy file, no good policy, the metrics path, a request
-- whose authenticators read its body.
local function enforce_slow(lt, path, opts)
  if type(lt) ~= "table" then
    if type(lt) == "string" then
      lt, path, opts = rawget(_G, "lighty"), lt, path
    end
    if type(lt) ~= "table" then error("policy.enforce: pass mod_magnet's lighty table first", 2) end
  end
  local r = lt.r
  local st = states[path]
  local now = core.monotonic_ms()
  if not st then
    st = { next_check = 0, metrics = metrics_setup(opts) }
    states[path] = st
  end
  if now >= st.next_check then refresh(path, st, now, opts) end

  -- The common case in one call: the policy's bound gate reads the
  -- request, decides and sets the identity headers itself. (The file was
  -- just looked at, or is not due: no deadline.)
  local fast = st.fast
  if fast then
    local status, notice, code = fast(lt, math.huge)
    if status == false then return enforce_general(r, st, notice == "body") end -- or the metrics path
    return gate_result(r, st.pol, status, notice, code)
  end
  return enforce_general(r, st)
end

--- policy.enforce(lighty, path, opts) -> status for mod_magnet (0: go on)
-- Call it as the gate script's return value. opts as for policy.load.
-- policy.enforce(path, opts) works too where `lighty` is a true global.
function M.enforce(lt, path, opts)
  -- The common case: one call to the policy's bound gate (st.fast), which
  -- answers false when the policy file is due a look (st.next_check) or
  -- the request is not its to decide.
  local st = states[path]
  local fast = st and st.fast
  if fast then
    local status, notice, code = fast(lt, st.next_check)
    if status == 0 and not notice then return 0 end
    if notice == "body" and status == false then return enforce_general(lt.r, st, true) end
    local done = gate_result(lt.r, st.pol, status, notice, code)
    if done then return done end
  end
  return enforce_slow(lt, path, opts)
end

--- policy.request_body(r) -> body | nil, "pending"
-- The raw request body in mod_magnet. When it has not all arrived yet,
-- asks lighttpd to collect it and returns nil, "pending": the gate then
-- returns 0 and mod_magnet runs it again once the body is complete.
function M.request_body(r)
  local rb = r.req_body
  local len = rb and rb.len or 0
  if len == 0 then return "" end
  if not rb.collect then return nil, "pending" end
  local body = rb.get or ""
  if #body > len then
    -- lighttpd 1.4.69 may hand back the request head with the body when
    -- both arrived in one read: the body is the last len bytes.
    body = body:sub(-len)
  end
  return body
end

--- policy.request_id(path, r) -> id, header | nil
-- For an audit record a caller writes about a request the policy at path
-- (as enforce() keeps it) let through: the id the policy's own record gave
-- the request when it logs every decision (its header on r.req_header is
-- the policy's, a client's copy replaced), else a new one (32 hex digits);
-- and the header to name it in, or nil when the policy sends ids nowhere.
-- nil before the policy has loaded.
function M.request_id(path, r)
  local st = states[path]
  local pol = st and st.pol
  if not pol then return nil end
  local header, to_backend = pol:request_id_header()
  local id = to_backend and r.req_header[header] or pol:new_request_id()
  return id, header
end

-- (benchmarks) the state enforce() keeps for a policy file
function M._state(path) return states[path] end

--- Forgets compiled policies (tests; a reload happens on the next request).
function M.reset()
  for k in pairs(states) do states[k] = nil end
end

return M
