-- SPDX-License-Identifier: MIT
-- lodestone.route: a policy-protected HTTP endpoint that starts a durable
-- workflow, in a few lines of a mod_magnet gate script.
--
--   -- /etc/lodestone/routes/github.lua  (magnet.attract-raw-url-to = ( this file ))
--   local route = require "lodestone.route"
--   return route.workflow(lighty, {
--     policy = "/etc/lodestone/policies/github-webhook.lua",
--     method = "POST", path = "/hooks/github", workflow = "github-push",
--     input = function(req) return { event = req.headers["X-GitHub-Event"], push = req.json } end,
--     id = function(req) return req.headers["X-GitHub-Delivery"] end,
--   })
--
-- For a request that matches method and path: the body is collected (413
-- over max_body), the policy is enforced first (a denial is answered as the
-- policy says, and nothing starts), a JSON body is decoded (400 naming the
-- problem), id(req) and input(req) build the start, and lodestone.client
-- starts the run: 202 with Location: /v1/workflows/{id} and
-- {"id": ..., "status": ...}. A repeated id answers 202 with the same run,
-- never a second one. An unreachable or silent daemon answers 503 within
-- the client's timeout and leaves an audit line. Every other request gets
-- the policy's decision (0: lighttpd goes on; a denial), so a gate that
-- serves one route still fails closed; route.dispatch serves several, and
-- route.signal sends a signal to a run the same way. docs/client.md has
-- the reference.
-- Runs on Lua 5.1/LuaJIT and 5.4 alike.
local core = require("lodestone.core")
local policy = require("lodestone.policy")
local client = require("lodestone.client")
local json = core.json

local M = {}

M.MAX_BODY = 64 * 1024 -- default max_body, bytes

local KNOWN = { policy = true, policy_opts = true, method = true, path = true, workflow = true,
  input = true, id = true, body = true, max_body = true, socket = true, timeout_ms = true,
  signal = true, payload = true }

local checked = setmetatable({}, { __mode = "k" }) -- specs that passed (route.load's)

local function check_spec(spec, where)
  if checked[spec] then return end
  if type(spec) ~= "table" then error(where .. ": expected a route table", 3) end
  for k in pairs(spec) do
    if not KNOWN[k] then error(where .. ": unknown field '" .. tostring(k) .. "'", 3) end
  end
  if type(spec.policy) ~= "string" or spec.policy == "" then
    error(where .. ": policy is required (the policy file's path)", 3)
  end
  if type(spec.path) ~= "string" or spec.path:sub(1, 1) ~= "/" then
    error(where .. ": path is required (a path such as \"/hooks/github\")", 3)
  end
  for seg in spec.path:gmatch("/:([^/]*)") do
    if not seg:match("^[%a_][%w_]*$") then
      error(where .. ": path: a parameter is ':' and a name (letters, digits, _), got ':" .. seg .. "'", 3)
    end
  end
  if spec.signal ~= nil then -- a signal route
    if type(spec.signal) ~= "string" or spec.signal == "" then
      error(where .. ": signal must be a signal name such as \"approve\"", 3)
    end
    if spec.workflow ~= nil or spec.input ~= nil then
      error(where .. ": a signal route has no workflow or input (it has payload)", 3)
    end
    if spec.id == nil and not spec.path:find("/:id/", 1, true) and not spec.path:find("/:id$") then
      error(where .. ": a signal route needs id(req) or an :id in its path", 3)
    end
  else
    if type(spec.workflow) ~= "string" or spec.workflow == "" then
      error(where .. ": workflow is required (a workflow type such as \"github-push\")", 3)
    end
    if spec.payload ~= nil then error(where .. ": payload is for signal routes (use input)", 3) end
  end
  if spec.method ~= nil and type(spec.method) ~= "string" then
    error(where .. ": method must be a string such as \"POST\"", 3)
  end
  for _, f in ipairs({ "input", "id", "payload" }) do
    if spec[f] ~= nil and type(spec[f]) ~= "function" then
      error(where .. ": " .. f .. " must be a function(req)", 3)
    end
  end
  if spec.body ~= nil and spec.body ~= "json" and spec.body ~= "raw" then
    error(where .. ": body must be \"json\" (the default) or \"raw\"", 3)
  end
  if spec.max_body ~= nil and (type(spec.max_body) ~= "number" or spec.max_body < 0) then
    error(where .. ": max_body must be a number of bytes", 3)
  end
end

-- The path's parameters ({} when it has none) when method and path match.
local function matches(spec, attr)
  if attr["request.method"] ~= (spec.method or "POST") then return nil end
  local pattern, path = spec.path, attr["uri.path"]
  if not pattern:find("/:", 1, true) then return pattern == path and {} or nil end
  local params, segs = {}, {}
  for seg in path:gmatch("/([^/]*)") do segs[#segs + 1] = seg end
  local i = 0
  for seg in pattern:gmatch("/([^/]*)") do
    i = i + 1
    local v = segs[i]
    if v == nil then return nil end
    if seg:sub(1, 1) == ":" then
      if v == "" then return nil end
      params[seg:sub(2)] = v
    elseif seg ~= v then
      return nil
    end
  end
  if i ~= #segs then return nil end
  return params
end

-- ---- answers ----

local function answer(r, status, obj, headers)
  local oh = r.resp_header
  oh["Content-Type"] = "application/json"
  oh["Cache-Control"] = "no-store" -- a run's state, or an error of this moment
  for k, v in pairs(headers or {}) do oh[k] = v end
  r.resp_body:set({ json.encode(obj) })
  return status
end

local function fail(r, status, code, message)
  return answer(r, status, { error = code, message = message })
end

-- ---- audit: the policy's audit log when it has one, and lighttpd's error log ----

-- policy path -> { name, path = audit file or false, subject = header or
-- false }, read from the policy file once per Lua state
local audit_of = {}

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- "a/b/../c" -> "a/c", "a/./c" -> "a/c": one text per file, so that a
-- policy reached from a route file and from a gate shares one compiled state.
local function normalize(path)
  local abs = path:sub(1, 1) == "/"
  local out = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." and #out > 0 and out[#out] ~= ".." then
      out[#out] = nil
    elseif seg ~= "." and not (seg == ".." and abs) then
      out[#out + 1] = seg
    end
  end
  local text = table.concat(out, "/")
  if abs then return "/" .. text end
  return text == "" and "." or text
end
local normal = {} -- a fallback policy path as given -> normalized

local function policy_info(path, opts)
  local info = audit_of[path]
  if info then return info end
  info = { name = path, path = false, subject = false }
  local chunk = core.load_file(path)
  local ok, decl = false, nil
  if chunk then ok, decl = pcall(chunk) end
  if ok and type(decl) == "table" then
    info.name = type(decl.name) == "string" and decl.name or path
    -- the identity header that carries the subject, if the policy sets one
    -- (only then is it trusted: the policy strips what a client sent)
    if type(decl.identity_headers) == "table" then
      for h, claim in pairs(decl.identity_headers) do
        if claim == "sub" then info.subject = h end
      end
    end
    local a = decl.audit
    if type(a) == "table" and type(a.path) == "string" and a.path ~= "" then
      local p = a.path
      if p:sub(1, 1) ~= "/" then p = ((opts and opts.base_dir) or dirname(path)) .. "/" .. p end
      info.path = p
    end
  end
  audit_of[path] = info
  return info
end

-- One JSON line; print() reaches lighttpd's error log from mod_magnet.
-- Its request id is the policy's (policy.request_id), and the answer names
-- it as the engine's denials do.
local function audit(spec, r, status, reason, msg, id)
  local attr = r.req_attr
  local info = policy_info(spec.policy, spec.policy_opts)
  local rid, rid_header = policy.request_id(spec.policy, r)
  rid = rid or core.id_new()
  if rid_header then r.resp_header[rid_header] = rid end
  local rec = {
    time = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    request_id = rid,
    method = attr["request.method"],
    path = attr["uri.path"],
    client = attr["request.remote-addr"],
    subject = info.subject and r.req_header[info.subject] or nil,
    policy = info.name,
    decision = "error",
    status = status,
    reason = reason,
    workflow = spec.workflow,
    signal = spec.signal,
    id = id,
    error = msg,
  }
  local line = json.encode(rec) or ('{"decision":"error","reason":"' .. reason .. '"}')
  print("lodestone: route " .. spec.path .. ": " .. line)
  if info.path then
    local f = io.open(info.path, "a")
    if f then
      f:write(line, "\n") -- one write() of a short line, appended
      f:close()
    end
  end
end

-- ---- serving a matched route ----

local function header_proxy(rh)
  return setmetatable({}, { __index = function(_, k) return rh[k] end })
end

-- Runs a spec function; value | nil, status, code, message
local function run_fn(fn, req, what)
  local ok, v, msg = pcall(fn, req)
  if not ok then return nil, 500, "internal_error", what .. "(req) failed: " .. tostring(v) end
  if v == nil and msg ~= nil then return nil, 400, "bad_request", tostring(msg) end
  return v
end

-- The steps every route takes before its action: 413, the body, the
-- policy, JSON. req | nil, status (the request is answered).
local function prepare(lt, spec, params)
  local r = lt.r
  local rb = r.req_body
  local len = rb and rb.len or 0
  local max = spec.max_body or M.MAX_BODY
  if len > max then
    return nil, fail(r, 413, "payload_too_large", "the body exceeds " .. max .. " bytes")
  end
  local body, pending = policy.request_body(r)
  -- lighttpd collects the body and runs the gate again
  if pending then return nil, 0 end
  if #body > max then -- a chunked upload has no length up front
    return nil, fail(r, 413, "payload_too_large", "the body exceeds " .. max .. " bytes")
  end

  local decision = policy.enforce(lt, spec.policy, spec.policy_opts)
  if decision ~= 0 then return nil, decision end -- denied: nothing happens

  local attr = r.req_attr
  local req = {
    method = attr["request.method"],
    path = attr["uri.path"],
    query = attr["uri.query"],
    client = attr["request.remote-addr"],
    headers = header_proxy(r.req_header), -- identity headers as the policy set them
    params = params,
    body = body,
  }
  if (spec.body or "json") == "json" and body ~= "" then
    local v, msg = json.decode(body)
    if v == nil then
      return nil, fail(r, 400, "bad_request", "body: invalid JSON: " .. (msg:gsub("^json%.decode: ", "")))
    end
    req.json = v
  end
  return req
end

-- Calls spec[f](req) and answers its failure: value | nil, status
local function call_fn(spec, r, f, req, id)
  local v, st, code, msg = run_fn(spec[f], req, f)
  if st then
    if st >= 500 then audit(spec, r, st, code, msg, id) end
    return nil, fail(r, st, code, st < 500 and msg or nil)
  end
  return v
end

-- The id from spec.id(req), or nil. id | nil, status (answered)
local function route_id(spec, r, req)
  if not spec.id then return nil end
  local id, st = call_fn(spec, r, "id", req)
  if st then return nil, st end
  if id ~= nil and (type(id) ~= "string" or id == "") then
    audit(spec, r, 500, "internal_error", "id(req) returned a " .. type(id) .. ", not a string")
    return nil, fail(r, 500, "internal_error")
  end
  return id
end

-- The daemon could not be asked, or refused: the answer for the caller.
local function daemon_failed(spec, r, id, emsg, ecode, status, failed)
  if status == nil and ecode == "EINVAL" then
    -- ours, not the daemon's: input(req) gave what JSON cannot hold, a
    -- bad socket path
    audit(spec, r, 500, "internal_error", emsg, id)
    return fail(r, 500, "internal_error")
  end
  if status == nil then -- unreachable, closed, timed out, not HTTP
    audit(spec, r, 503, "workflows_unavailable", emsg, id)
    return answer(r, 503, { error = "workflows_unavailable" }, { ["Retry-After"] = "1" })
  end
  if status == 400 or status == 413 or (spec.signal and (status == 404 or status == 409)) then
    -- the caller's input (an id's characters), or a run that is absent or finished
    return fail(r, status, ecode, (emsg:gsub("^lodestoned: %d+ [%w_]+: ", "")))
  end
  audit(spec, r, 502, ecode, emsg, id)
  return answer(r, 502, { error = failed })
end

local function start_run(lt, spec, req)
  local r = lt.r
  -- The id first (input(req) may use it as req.id); none: a fresh one.
  local id, st = route_id(spec, r, req)
  if st then return st end
  if id == nil then
    local msg
    id, msg = client.new_id()
    if not id then
      audit(spec, r, 500, "internal_error", msg)
      return fail(r, 500, "internal_error")
    end
  end
  req.id = id
  local input = req.json
  if spec.input then
    input, st = call_fn(spec, r, "input", req, id)
    if st then return st end
  end
  local run, emsg, ecode, status = client.start(spec.workflow, input,
    { id = id, socket = spec.socket, timeout_ms = spec.timeout_ms })
  if not run then return daemon_failed(spec, r, id, emsg, ecode, status, "workflow_start_failed") end
  if type(run) ~= "table" or type(run.id) ~= "string" or run.id == "" then
    audit(spec, r, 502, "bad_answer", "lodestoned: " .. tostring(emsg) .. " without a run id", id)
    return answer(r, 502, { error = "workflow_start_failed" })
  end
  local rid = run.id
  return answer(r, 202, { id = rid, status = run.status }, { Location = "/v1/workflows/" .. rid })
end

local function send_signal(lt, spec, req)
  local r = lt.r
  local id, st = route_id(spec, r, req)
  if st then return st end
  id = id or req.params.id
  if id == nil then return fail(r, 400, "bad_request", "the run id is missing") end
  req.id = id
  local payload = req.json
  if spec.payload then
    payload, st = call_fn(spec, r, "payload", req, id)
    if st then return st end
  end
  local ok, emsg, ecode, status = client.signal(id, spec.signal, payload,
    { socket = spec.socket, timeout_ms = spec.timeout_ms })
  if not ok then return daemon_failed(spec, r, id, emsg, ecode, status, "signal_failed") end
  return answer(r, 202, { id = id, signal = spec.signal }, { Location = "/v1/workflows/" .. id })
end

local function serve(lt, spec, params)
  local req, st = prepare(lt, spec, params)
  if not req then return st end
  if spec.signal then return send_signal(lt, spec, req) end
  return start_run(lt, spec, req)
end

--- route.workflow(lighty, spec) -> status for mod_magnet
-- spec: policy (file, required), policy_opts (as for policy.enforce),
-- method ("POST"), path (exact, required), workflow (type, required),
-- id(req) (default: a fresh id), input(req) (default: req.json; req.id is
-- the run id by then), body
-- ("json" or "raw"), max_body (64 KiB), socket and timeout_ms (client
-- defaults). input and id may return nil, message for a 400.
-- req = { method, path, query, client, headers, params, body, json, id }.
-- path may hold parameters: "/orders/:id/items" matches "/orders/7/items"
-- with req.params.id == "7" (one non-empty segment each).
function M.workflow(lt, spec)
  if type(lt) ~= "table" then error("route.workflow: pass mod_magnet's lighty table first", 2) end
  check_spec(spec, "route.workflow")
  if spec.signal then error("route.workflow: this is a signal route (use route.signal)", 2) end
  local params = matches(spec, lt.r.req_attr)
  if params then return serve(lt, spec, params) end
  return policy.enforce(lt, spec.policy, spec.policy_opts)
end

--- route.signal(lighty, spec) -> status for mod_magnet
-- Sends a signal to a run instead of starting one. spec as for
-- route.workflow, with signal (the name, required) instead of workflow,
-- payload(req) (default: req.json) instead of input, and the run's id from
-- id(req) or the path's :id parameter (path = "/orders/:id/approve").
-- Answers 202 {"id", "signal"} with Location; 404 for an unknown run, 409
-- for a finished one; 503 (and an audit line) when the daemon cannot be
-- asked.
function M.signal(lt, spec)
  if type(lt) ~= "table" then error("route.signal: pass mod_magnet's lighty table first", 2) end
  if type(spec) == "table" and spec.signal == nil then
    error("route.signal: signal is required (a signal name such as \"approve\")", 2)
  end
  check_spec(spec, "route.signal")
  local params = matches(spec, lt.r.req_attr)
  if params then return serve(lt, spec, params) end
  return policy.enforce(lt, spec.policy, spec.policy_opts)
end

--- route.dispatch(lighty, routes, fallback, [fallback_opts]) -> status
-- Serves the first route whose method and path match; any other request
-- gets fallback's decision: a policy file (enforced with fallback_opts) or
-- a function(lighty) returning a status (another gate's logic). Required.
function M.dispatch(lt, routes, fallback, fopts)
  if type(lt) ~= "table" then error("route.dispatch: pass mod_magnet's lighty table first", 2) end
  if type(routes) ~= "table" then error("route.dispatch: routes must be a list of route tables", 2) end
  local ft = type(fallback)
  if not ((ft == "string" and fallback ~= "") or ft == "function") then
    error("route.dispatch: a fallback is required (a policy file, or a function(lighty) -> status)", 2)
  end
  local attr = lt.r.req_attr
  for i = 1, #routes do
    check_spec(routes[i], "route.dispatch: routes[" .. i .. "]")
    local params = matches(routes[i], attr)
    if params then return serve(lt, routes[i], params) end
  end
  if ft == "function" then return fallback(lt) end
  -- The file as a route's policy names it, so that both share one state.
  local file = normal[fallback]
  if not file then
    file = normalize(fallback)
    normal[fallback] = file
  end
  return policy.enforce(lt, file, fopts)
end

-- ---- route files ----

-- How often route.load looks at a route file for changes.
M.reload_interval_ms = 1000
local files = {} -- path -> { routes, stamp, next_check }

local function log(msg)
  print("lodestone: " .. msg) -- lighttpd's error log
end

-- Runs a route file: a table of route tables, checked, with relative
-- policy paths resolved against the file's folder and defaults filled in.
-- routes | nil, msg
local function load_routes(path, defaults)
  local chunk, err = core.load_file(path) -- (not loadfile: a FIFO would stall lighttpd)
  if not chunk then return nil, err end
  local ok, routes = pcall(chunk)
  if not ok then return nil, path .. ": " .. tostring(routes) end
  if type(routes) ~= "table" then return nil, path .. ": must return a table of routes" end
  local dir = dirname(path)
  for name, spec in pairs(routes) do
    local where = path .. ": route " .. tostring(name)
    if type(spec) == "table" then
      for k, v in pairs(defaults or {}) do
        if spec[k] == nil then spec[k] = v end
      end
      if type(spec.policy) == "string" and spec.policy:sub(1, 1) ~= "/" then
        spec.policy = normalize(dir .. "/" .. spec.policy)
      end
    end
    local good, msg = pcall(check_spec, spec, where)
    if not good then return nil, (tostring(msg):gsub("^[^:]*:%d+: ", "")) end
    checked[spec] = true
  end
  return routes
end

--- route.load(path, [defaults]) -> the table of routes the file returns
-- Loads a route file once per Lua state, and again when it changed (looked
-- at once a second); a broken edit keeps the last good version (the error
-- log says why); a file that never loaded raises, so the gate fails (500).
-- defaults (e.g. { policy_opts = opts, socket = ... }) fill the fields a
-- route leaves out, when the file is (re)loaded.
function M.load(path, defaults)
  local e = files[path]
  local now = core.monotonic_ms()
  if e and now < e.next_check then
    if not e.routes then error("route.load: " .. e.err, 2) end
    return e.routes
  end
  if not e then
    e = { next_check = 0 }
    files[path] = e
  end
  e.next_check = now + M.reload_interval_ms
  local stamp, serr = core.file_stamp(path)
  if stamp and stamp == e.stamp then return e.routes end
  local routes, err
  if stamp then routes, err = load_routes(path, defaults) else err = serr end
  e.stamp = stamp
  if routes then
    if e.routes then log("reloaded " .. path) end
    e.routes = routes
  else
    log(err .. (e.routes and " (keeping the last good version)" or ""))
    if not e.routes then
      e.stamp, e.err = nil, err -- tried again after reload_interval_ms
      error("route.load: " .. err, 2)
    end
  end
  return e.routes
end

--- route.here() -> the folder of the script that calls it (mod_magnet names
-- a gate's chunk by its path), for paths relative to a gate; "." when unknown.
function M.here()
  local src = debug.getinfo(2, "S").source or ""
  -- loadfile and the lua command name a chunk "@path" (relative paths
  -- too); mod_magnet names it by its path alone. Other chunks: unknown.
  if src:sub(1, 1) == "@" then return dirname(src:sub(2)) end
  if src:sub(1, 1) == "/" or src:sub(1, 2) == "./" then return dirname(src) end
  return "."
end

--- Forgets loaded route files, policy names and audit paths (tests).
function M.reset()
  for k in pairs(audit_of) do audit_of[k] = nil end
  for k in pairs(files) do files[k] = nil end
end

return M
