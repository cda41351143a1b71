-- SPDX-License-Identifier: MIT
-- lodestone.workflow: declare durable workflows.
--
--   local workflow = require "lodestone.workflow"
--   return workflow.define {
--     name = "order",
--     retry = { initial_interval = "1s", backoff = 2.0, max_interval = "1m", max_attempts = 5 },
--     step_timeout = "30s",
--     run = function(ctx, input)
--       local charge = ctx:step("charge", function(s) ... end)
--       ctx:sleep("10s")
--       return { charge = charge.id }
--     end,
--   }
--
-- `run` is orchestration code, replayed after restarts: everything that
-- touches the outside world goes in a step (its result is recorded and
-- returned on replay without running the step again); time and randomness
-- come from ctx:now(), ctx:random() and ctx:uuid(), which are recorded too.
--
-- define, fatal, error and duration_ms work in any Lua (tests use them);
-- _activate runs inside lodestoned's worker states only.
local core = require("lodestone.core")
local json = core.json

local M = {}

local WORKFLOW = {} -- metatable marking definitions
local FATAL = {}    -- metatable of workflow.fatal / workflow.error values
FATAL.__tostring = function(e) return e.message end

local UNITS = { ms = 1, s = 1000, m = 60000, h = 3600000, d = 86400000 }

--- Milliseconds in a duration: a number of seconds, or a string such as
--- "250ms", "10s", "1m30s", "2h", "1d" (fractions allowed: "1.5s").
function M.duration_ms(v, what)
  what = what or "duration"
  if type(v) == "number" then
    if v ~= v or v < 0 or v == math.huge then
      error(what .. ": must be a non-negative number of seconds, got " .. tostring(v), 3)
    end
    return math.floor(v * 1000 + 0.5)
  end
  if type(v) ~= "string" then
    error(what .. ": must be seconds (a number) or a string like \"10s\", got a " .. type(v), 3)
  end
  local total, pos = 0, 1
  if v == "" then error(what .. ": empty duration", 3) end
  while pos <= #v do
    local num, unit, nxt = v:match("^(%d+%.?%d*)(%a+)()", pos)
    if not num or not UNITS[unit] then
      error(string.format("%s: cannot read %q (use a number with ms, s, m, h or d, like \"10s\")",
        what, v), 3)
    end
    total = total + tonumber(num) * UNITS[unit]
    pos = nxt
  end
  return math.floor(total + 0.5)
end

local RETRY_KEYS = { initial_interval = true, backoff = true, max_interval = true,
                     max_attempts = true, jitter = true, non_retryable = true }

local function check_retry(t, what)
  if t == nil then return nil end
  if type(t) ~= "table" then error(what .. ": must be a table", 4) end
  for k in pairs(t) do
    if not RETRY_KEYS[k] then
      error(string.format("%s.%s: unknown field (known: initial_interval, backoff, " ..
        "max_interval, max_attempts, jitter, non_retryable)", what, tostring(k)), 4)
    end
  end
  local ok, text = pcall(json.encode, t)
  if not ok or text == nil then error(what .. ": cannot be encoded", 4) end
  return text
end

--- Declares a workflow. Fields: name (letters, digits, _ . : -), run
--- (function(ctx, input)), and optionally retry (the default policy of its
--- steps) and step_timeout (default "30s").
function M.define(spec)
  if type(spec) ~= "table" then error("workflow.define: expects a table", 2) end
  if type(spec.name) ~= "string" or not spec.name:match("^[%w_.:%-]+$") then
    error("workflow.define: name must be a non-empty string of letters, digits, _ . : -", 2)
  end
  if type(spec.run) ~= "function" then
    error("workflow.define: run must be a function(ctx, input)", 2)
  end
  for k in pairs(spec) do
    if k ~= "name" and k ~= "run" and k ~= "retry" and k ~= "step_timeout"
        and k ~= "description" then
      error("workflow.define: unknown field " .. tostring(k), 2)
    end
  end
  local def = {
    name = spec.name,
    run = spec.run,
    description = spec.description,
    retry = spec.retry,
    retry_json = check_retry(spec.retry, "retry"),
    step_timeout_ms = M.duration_ms(spec.step_timeout or "30s", "step_timeout"),
  }
  return setmetatable(def, WORKFLOW)
end

function M.is_workflow(v)
  return getmetatable(v) == WORKFLOW
end

--- An error that is never retried: error(workflow.fatal("card declined")).
function M.fatal(message, code)
  return setmetatable({ message = tostring(message), code = code, fatal = true }, FATAL)
end

--- A retryable error with a code, which a retry policy's non_retryable
--- list can name: error(workflow.error("rate_limited", "try later")).
function M.error(code, message)
  return setmetatable({ message = tostring(message or code), code = code, fatal = false }, FATAL)
end

-- ---------------------------------------------------------------------
-- The driver (lodestoned only): one activation of a run.

local SUSPEND = setmetatable({}, { __tostring = function() return "(suspended)" end })

local function describe_error(e)
  if getmetatable(e) == FATAL then return e.message, e.code, e.fatal end
  if type(e) == "table" and type(e.message) == "string" then return e.message, e.code, false end
  return tostring(e), nil, false
end

-- xpcall handler: keep the message and add a traceback.
local function handler(e)
  local msg = describe_error(e)
  return { err = e, message = msg, traceback = debug.traceback(msg, 2) }
end

local Ctx = {}
Ctx.__index = Ctx

local function decode(text)
  local v, err = json.decode(text)
  if v == nil and err then error("recorded value does not decode: " .. err, 0) end
  return v
end

local function encode(v, what)
  if v == nil then v = json.null end
  local text, err = json.encode(v)
  if text == nil then error(what .. " is not JSON: " .. tostring(err), 0) end
  return text
end

local function not_in_step(ctx, what)
  if ctx._in_step then
    error(what .. " inside a step: call it in run and pass the value to the step", 3)
  end
end

local function suspend()
  coroutine.yield(SUSPEND)
  error("a suspended run was resumed", 0) -- never: the activation ends at a yield
end

local function new_step_ctx(ctx, attempt, key)
  local rt, act = ctx._rt, ctx._act
  local s = { attempt = attempt, idempotency_key = key, id = ctx.id }
  function s.secret(_, name)
    if type(name) ~= "string" then error("s:secret(name): name must be a string", 2) end
    return rt.secret(act, name)
  end
  function s.log(_, ...)
    local parts = {}
    for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
    rt.log(act, rt.INFO, table.concat(parts, " "))
  end
  -- HTTP calls carry what is left of the step's deadline as their timeout.
  local http = require("lodestone.http")
  local function bounded(opts)
    opts = opts or {}
    local left = rt.deadline_left()
    if left then
      local want = opts.timeout and M.duration_ms(opts.timeout, "http timeout") or left
      local copy = {}
      for k, v in pairs(opts) do copy[k] = v end
      copy.timeout = math.max(1, math.min(want, left)) / 1000
      return copy
    end
    return opts
  end
  s.http = {
    request = function(t) return http.request(bounded(t)) end,
  }
  for _, m in ipairs({ "get", "post", "put", "patch", "delete" }) do
    s.http[m] = function(url, opts) return http[m](url, bounded(opts)) end
  end
  return s
end

--- ctx:step(name, fn, opts): runs fn(s) once and records its result.
--- opts: retry (overrides the workflow's policy), timeout.
function Ctx:step(name, fn, opts)
  if type(name) ~= "string" or name == "" then error("ctx:step: name must be a non-empty string", 2) end
  if type(fn) ~= "function" then error("ctx:step: fn must be a function(s)", 2) end
  not_in_step(self, "ctx:step")
  opts = opts or {}
  local rt, act, def = self._rt, self._act, self._def
  local st, a, key = rt.step(act, name)
  if st == "done" then return decode(a) end
  if st == "failed" then error(a, 0) end
  if st == "wait" then suspend() end
  local timeout = opts.timeout and M.duration_ms(opts.timeout, "step timeout") or def.step_timeout_ms
  local step_retry = check_retry(opts.retry, "step retry")
  local s = new_step_ctx(self, a, key)
  rt.deadline(timeout)
  self._in_step = true
  local ok, res = xpcall(fn, handler, s)
  self._in_step = false
  rt.deadline(def.step_timeout_ms)
  if rt.interrupted(act) then
    rt.abandon(act)
    suspend()
  end
  if ok then
    local text, err = json.encode(res == nil and json.null or res)
    if text then
      rt.step_done(act, name, a, text)
      return decode(text)
    end
    res = handler("step result is not JSON: " .. tostring(err))
  end
  local msg, code, fatal = describe_error(res.err)
  local verdict, final = rt.step_failed(act, name, a, msg, code, fatal, def.retry_json, step_retry)
  if verdict == "wait" then suspend() end
  error(final, 0)
end

--- ctx:sleep(duration): a durable timer.
function Ctx:sleep(d)
  not_in_step(self, "ctx:sleep")
  local ms = M.duration_ms(d, "ctx:sleep")
  if self._rt.sleep(self._act, ms) == "wait" then suspend() end
end

function Ctx:now()
  not_in_step(self, "ctx:now")
  local rt = self._rt
  return decode(rt.side_effect(self._act, "now", string.format("%.3f", rt.wall_ms() / 1000)))
end

function Ctx:random()
  not_in_step(self, "ctx:random")
  local rt = self._rt
  return decode(rt.side_effect(self._act, "random", string.format("%.17g", rt.random())))
end

function Ctx:uuid()
  not_in_step(self, "ctx:uuid")
  local rt = self._rt
  return decode(rt.side_effect(self._act, "uuid", '"' .. rt.uuid() .. '"'))
end

--- ctx:log(...): a log line for the run, muted while replaying.
function Ctx:log(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
  self._rt.log(self._act, self._rt.INFO, table.concat(parts, " "))
end

function M._activate(def, act)
  local rt = require("lodestone.flowrt")
  local ctx = setmetatable({ _rt = rt, _act = act, _def = def, id = rt.name(act),
                             type = def.name, attempt = 1 }, Ctx)
  local input = decode(rt.input(act))
  local co = coroutine.create(function()
    return xpcall(def.run, handler, ctx, input)
  end)
  rt.deadline(def.step_timeout_ms)
  local ok, first, second = coroutine.resume(co)
  rt.deadline(nil)
  if rt.interrupted(act) then
    rt.abandon(act)
    return
  end
  if not ok then
    rt.fail(act, tostring(first), debug.traceback(co))
  elseif coroutine.status(co) == "suspended" then
    if first ~= SUSPEND then
      rt.fail(act, "the workflow yielded outside ctx:sleep/ctx:step (coroutine.yield is not allowed in run)")
    end
  elseif first then
    local text, err = json.encode(second == nil and json.null or second)
    if text then
      rt.complete(act, text)
    else
      rt.fail(act, "the workflow's result is not JSON: " .. tostring(err))
    end
  else
    rt.fail(act, second.message, second.traceback)
  end
end

return M
