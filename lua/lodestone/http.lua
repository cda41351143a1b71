-- SPDX-License-Identifier: MIT
-- lodestone.http: HTTP requests for workflow steps and the CLI, over the
-- native lodestone.httpc (libcurl, blocking; built for LuaJIT only, so it
-- exists in lodestoned's workers and the lodestone CLI, never in lighttpd).
-- Runs on Lua 5.1/LuaJIT and 5.4 alike; only request() needs httpc.
--
-- http.request{method=, url=, headers=, body= | json=, timeout=, unix_socket=, max_body=}
--     -> res = {status=, headers=, body=, json=, json_error=}
--   method       "GET" by default (upper-cased).
--   url          http:// or https:// only; redirects are not followed.
--   headers      {name = value}; values are turned into strings.
--   body         raw request body (a string); or
--   json         a Lua value, encoded and sent with Content-Type
--                application/json unless headers give a content-type.
--   timeout      total time: seconds (a number) or a duration string such as
--                "250ms", "10s", "1.5m" (units ms, s, m, h, d); default 30 s.
--   unix_socket  path of a unix socket to connect to instead of the URL's host.
--   max_body     largest response body accepted, in bytes (default 16 MiB).
--   res.headers  lowercased names; repeated headers joined with ", ".
--   res.json     the decoded body when the response's content-type is
--                application/json or */*+json and the body parses; else nil,
--                and res.json_error holds the parse error (JSON type only).
-- Every HTTP status is a response (check res.status). Bad arguments raise
-- "http.request: <field> ..."; transport failures (refused, timed out,
-- body too large) raise "http METHOD URL: <reason>", the URL without its
-- user information and with "?..." for a query or fragment (credentials
-- there would reach a run's history and lodestoned's log).
--
-- http.get(url, opts), http.post(url, opts), http.put, http.patch,
-- http.delete: request() with method and url filled in (opts as above).
--
-- http.duration_ms(v) -> milliseconds | nil, message: the timeout parser.
--
-- M._await (set by lodestone.workflow): returns, in workflow code, a
-- function that waits for a started transfer while the worker goes on with
-- other runs and other ctx:all branches; nil elsewhere (requests then
-- block, as always).
local core = require("lodestone.core")
local json = core.json

local M = {}

local DEFAULT_TIMEOUT_MS = 30000

-- Seconds (a number) or a duration string -> whole milliseconds (>= 1).
-- Strings follow the project's one grammar (core.duration_ms).
function M.duration_ms(v)
  local ms
  if type(v) == "number" then
    if v ~= v or v == math.huge then return nil, "expected seconds or a duration, got " .. tostring(v) end
    ms = v * 1000
  elseif type(v) == "string" and not v:match("^[%d.]+$") then
    local err
    ms, err = core.duration_ms(v)
    if not ms then return nil, "expected seconds or a duration: " .. err end
  else
    return nil, string.format('expected seconds or a duration such as "250ms", "10s", "5m" (units ms, s, m, h, d), got %s',
      type(v) == "string" and string.format("%q", v) or tostring(v))
  end
  if ms <= 0 then return nil, "must be more than 0, got " .. tostring(v) end
  return math.max(1, math.floor(ms + 0.5))
end

local httpc
local function native()
  if httpc == nil then
    local ok, mod = pcall(require, "lodestone.httpc")
    if not ok then
      error("http.request: the native module lodestone.httpc is not available here "
        .. "(it is built for LuaJIT only: lodestoned's workers and the lodestone CLI): " .. tostring(mod), 0)
    end
    httpc = mod
  end
  return httpc
end

local FIELDS = { method = true, url = true, headers = true, body = true, json = true, timeout = true,
  unix_socket = true, max_body = true }

local function is_json_type(ctype)
  local mt = type(ctype) == "string" and ctype:match("^%s*([^;%s]+)")
  if not mt then return false end
  mt = mt:lower()
  return mt == "application/json" or mt:match("^[%w!#$&^_.-]+/[%w!#$&^_.+-]*%+json$") ~= nil
end

local function bad(msg) error("http.request: " .. msg, 0) end

function M.request(opts)
  if type(opts) ~= "table" then bad("expected a table of options") end
  for k in pairs(opts) do
    if not FIELDS[k] then
      bad("unknown field '" .. tostring(k) .. "' (method, url, headers, body, json, timeout, unix_socket, max_body)")
    end
  end
  if type(opts.url) ~= "string" then bad("url must be a string") end
  if opts.method ~= nil and type(opts.method) ~= "string" then bad("method must be a string") end
  if opts.body ~= nil and opts.json ~= nil then bad("give body or json, not both") end
  if opts.body ~= nil and type(opts.body) ~= "string" then bad("body must be a string") end
  local headers, has_ctype = {}, false
  if opts.headers ~= nil then
    if type(opts.headers) ~= "table" then bad("headers must be a table") end
    for k, v in pairs(opts.headers) do
      if type(k) ~= "string" then bad("headers must be a table of name = value") end
      if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
        bad("header " .. k .. ": value must be a string")
      end
      headers[k] = tostring(v)
      if k:lower() == "content-type" then has_ctype = true end
    end
  end
  local body = opts.body
  if opts.json ~= nil then
    local text, err = json.encode(opts.json)
    if text == nil then bad("json: " .. tostring(err)) end
    body = text
    if not has_ctype then headers["Content-Type"] = "application/json" end
  end
  local timeout_ms = DEFAULT_TIMEOUT_MS
  if opts.timeout ~= nil then
    local err
    timeout_ms, err = M.duration_ms(opts.timeout)
    if timeout_ms == nil then bad("timeout " .. err) end
  end
  local method = (opts.method or "GET"):upper()

  local req = {
    method = method, url = opts.url, headers = headers, body = body, timeout_ms = timeout_ms,
    unix_socket = opts.unix_socket, max_body = opts.max_body,
  }
  local status, rheaders, rbody
  local await = M._await and M._await()
  if await then
    -- In workflow code: start the transfer, let other code run while it
    -- goes on, then collect it.
    local handle = native().start(req)
    await(handle)
    status, rheaders, rbody = native().finish(handle)
  else
    status, rheaders, rbody = native().request(req)
  end
  local res = { status = status, headers = rheaders, body = rbody }
  if rbody ~= "" and is_json_type(rheaders["content-type"]) then
    local value, err = json.decode(rbody)
    if value == nil then res.json_error = err else res.json = value end
  end
  return res
end

local function sugar(method)
  return function(url, opts)
    local t = {}
    if opts ~= nil then
      if type(opts) ~= "table" then bad("options must be a table") end
      for k, v in pairs(opts) do t[k] = v end
    end
    t.method, t.url = method, url
    return M.request(t)
  end
end

M.get = sugar("GET")
M.post = sugar("POST")
M.put = sugar("PUT")
M.patch = sugar("PATCH")
M.delete = sugar("DELETE")

return M
