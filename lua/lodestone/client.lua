-- SPDX-License-Identifier: MIT
-- lodestone.client: start, signal and read workflow runs from mod_magnet
-- scripts inside lighttpd (or any Lua), over lodestoned's HTTP API on its
-- unix socket. The protocol is C (native/client/ over libcurl, lodestone.core's
-- client_open): one kept-alive connection per socket path in this Lua state
-- (so one per gate script per lighttpd worker), reopened once transparently
-- when the daemon closed it, and one total timeout per call (default 500
-- ms): an absent or hung daemon costs a request at most the timeout, never
-- a hang. Runs on Lua 5.1/LuaJIT and 5.4 alike.
--
--   local client = require "lodestone.client"
--   client.configure { socket = "/run/lodestone/lodestoned.sock", timeout_ms = 300 }
--   local run, status = client.start("order", { amount = 4200 }, { id = "o-1001" })
--   -- run = {id = "o-1001", status = "running", type = "order", ...}; status 201 new, 200 existing
--   local ok, msg, code, http = client.signal("o-1001", "approve", { by = "alice" })
--   local run = client.get("o-1001")          -- nil when there is no such run
--
-- Failures return nil, message, code, http_status: code is the daemon's
-- error code ("unknown_type", "bad_request", ...) with the HTTP status as
-- the fourth value, or, when the daemon could not be asked or did not
-- answer properly, a transport code ("EIO": unreachable, closed or timed
-- out; "EBUSY": its listen queue is full; "EFORMAT": not an HTTP answer)
-- with no fourth value. A wrong argument type raises.
local core = require("lodestone.core")
local json = core.json

local M = {}

local DEFAULT_SOCKET = "./var/lodestone/lodestoned.sock"

-- The defaults of every call: socket from $LODESTONE_SOCKET, else
-- ./var/lodestone/lodestoned.sock (relative to the process's working
-- directory); timeout_ms 500.
local config = {
  socket = os.getenv("LODESTONE_SOCKET") or DEFAULT_SOCKET,
  timeout_ms = 500,
}

local conns = {} -- socket path -> lodestone.client handle

local function check_timeout(v, where)
  if type(v) ~= "number" or v < 1 or v > 3600000 or v ~= math.floor(v) then
    error(where .. ": timeout_ms must be a whole number of milliseconds from 1 to 3600000", 3)
  end
end

local function check_socket(v, where)
  if type(v) ~= "string" or v == "" or v:find("\0", 1, true) then
    error(where .. ": socket must be a non-empty path string", 3)
  end
end

local CALL_OPTS = { socket = true, timeout_ms = true }
local START_OPTS = { socket = true, timeout_ms = true, id = true }

-- Raises (for the caller of the caller) when opts is neither nil nor a
-- table of known options.
local function check_opts(opts, known, where)
  if opts == nil then return end
  if type(opts) ~= "table" then error(where .. ": options must be a table", 3) end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(where .. ": unknown option '" .. tostring(k) .. "' (expected " .. table.concat(names, ", ")
        .. ")", 3)
    end
  end
end

--- client.configure{ socket = PATH, timeout_ms = MS } -> the settings now in force
-- Changes the defaults of later calls in this Lua state. An unknown option
-- or a bad value raises, naming the field.
function M.configure(opts)
  if type(opts) ~= "table" then error("client.configure: expected a table", 2) end
  check_opts(opts, CALL_OPTS, "client.configure")
  if opts.socket ~= nil then check_socket(opts.socket, "client.configure") end
  if opts.timeout_ms ~= nil then check_timeout(opts.timeout_ms, "client.configure") end
  config.socket = opts.socket or config.socket
  config.timeout_ms = opts.timeout_ms or config.timeout_ms
  return { socket = config.socket, timeout_ms = config.timeout_ms }
end

local function call_opts(opts, where)
  if opts == nil then return config.socket, config.timeout_ms end
  local socket, timeout = opts.socket or config.socket, opts.timeout_ms or config.timeout_ms
  if opts.socket ~= nil then check_socket(opts.socket, where) end
  if opts.timeout_ms ~= nil then check_timeout(opts.timeout_ms, where) end
  return socket, timeout
end

local function handle(socket, timeout)
  local c = conns[socket]
  if not c then
    local msg, code
    c, msg, code = core.client_open(socket)
    if not c then return nil, msg, code end
    conns[socket] = c
  end
  c:set_timeout(timeout)
  return c
end

-- A path segment: what the daemon's ids and names allow stays as it is,
-- anything else is percent-encoded.
local function segment(s)
  return (s:gsub("[^%w%-%._~:@]", function(ch) return string.format("%%%02X", ch:byte()) end))
end

-- One request; the answer decoded: value, status | nil, msg, code[, status]
local function call(method, path, body, opts, where)
  local socket, timeout = call_opts(opts, where)
  local c, msg, code = handle(socket, timeout)
  if not c then return nil, msg, code end
  local status, text, tcode = c:request(method, path, body)
  if not status then return nil, text, tcode end
  local v, jerr = true, nil -- an empty answer is true
  if text ~= "" then v, jerr = json.decode(text) end
  if status >= 400 then
    local e = type(v) == "table" and type(v.error) == "table" and v.error or {}
    local ecode = type(e.code) == "string" and e.code or ("http_" .. status)
    local emsg = type(e.message) == "string" and e.message or text
    return nil, "lodestoned: " .. status .. " " .. ecode .. ": " .. emsg, ecode, status
  end
  if v == nil then
    return nil, "lodestoned: the answer is not JSON: " .. tostring(jerr), "EFORMAT", status
  end
  return v, status
end

local function check_name(v, n, fname, what)
  if type(v) ~= "string" or v == "" then
    error("bad argument #" .. n .. " to '" .. fname .. "' (" .. what .. ": non-empty string expected, got "
      .. (v == "" and "an empty string" or type(v)) .. ")", 3)
  end
end

--- client.new_id() -> a fresh 26-character time-sortable id, like the daemon's own
M.new_id = core.id_new

--- client.start(type, input, { id = ..., socket = ..., timeout_ms = ... })
--    -> run, status (201 new, 200 an existing run with that id) | nil, msg, code[, status]
-- Without an id the run gets a fresh one made here, so that the one
-- transparent resend (after the daemon closed a kept connection) can never
-- start two runs. input is any JSON value (nil: none).
function M.start(wtype, input, opts)
  check_name(wtype, 1, "client.start", "workflow type")
  check_opts(opts, START_OPTS, "client.start")
  local id = opts and opts.id
  if id ~= nil then
    if type(id) ~= "string" or id == "" then
      error("client.start: id must be a non-empty string (leave it out for a fresh id)", 2)
    end
  else
    local msg, code
    id, msg, code = core.id_new()
    if not id then return nil, msg, code end
  end
  local body, msg, code = json.encode({ id = id, input = input })
  if not body then return nil, "client.start: input: " .. msg, code end
  return call("POST", "/v1/workflows/" .. segment(wtype), body, opts, "client.start")
end

--- client.signal(id, name, payload, opts) -> answer (true when empty), status (202)
--    | nil, msg, code[, status]
-- Sends the signal `name` with payload (any JSON value; nil sends null) as
-- the request body. The daemon answers 404 for an unknown run and 409 when the
-- run has finished. (A resend after a closed kept connection could deliver
-- a signal twice if the daemon had read it before closing.)
function M.signal(id, name, payload, opts)
  check_name(id, 1, "client.signal", "run id")
  check_name(name, 2, "client.signal", "signal name")
  check_opts(opts, CALL_OPTS, "client.signal")
  if name == "." or name == ".." then
    -- the HTTP client removes such a segment before it sends: lodestoned
    -- would never see the name (it refuses it, as it refuses "/")
    return nil, 'client.signal: signal name: "' .. name .. '" is not a name: HTTP clients remove such ' ..
      "segments from the API's path", "EINVAL"
  end
  local body, msg, code = "null", nil, nil -- no payload: JSON null, as the web UI sends
  if payload ~= nil then
    body, msg, code = json.encode(payload)
    if not body then return nil, "client.signal: payload: " .. msg, code end
  end
  return call("POST", "/v1/workflows/" .. segment(id) .. "/signals/" .. segment(name), body, opts,
    "client.signal")
end

--- client.get(id, opts) -> run, 200 | nil (no such run) | nil, msg, code[, status]
function M.get(id, opts)
  check_name(id, 1, "client.get", "run id")
  check_opts(opts, CALL_OPTS, "client.get")
  local v, msg, code, status = call("GET", "/v1/workflows/" .. segment(id), nil, opts, "client.get")
  if v == nil and status == 404 and code == "not_found" then return nil end
  return v, msg, code, status
end

--- client.stats([socket]) -> {requests, connects, reconnects, connected} of
-- this state's connection to socket (default: the configured one), or nil.
function M.stats(socket)
  local c = conns[socket or config.socket]
  return c and c:stats() or nil
end

--- Closes every kept connection (tests; the next call opens a new one).
function M.reset()
  for k, c in pairs(conns) do
    c:close()
    conns[k] = nil
  end
end

return M
