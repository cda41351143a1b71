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
-- ctx:step(name, fn, opts) runs fn(s) with s.attempt, s.idempotency_key,
-- s.id, s:secret(name), s:log(...) and s.http (lodestone.http, bounded by
-- the step's deadline); opts: retry (overrides fields of the workflow's
-- policy) and timeout. A step that raises is retried by the policy, unless
-- it raised workflow.fatal(...) or a workflow.error whose code the policy
-- lists in non_retryable.
--
-- define, fatal, error and duration_ms work in any Lua (tests use them);
-- _activate runs inside lodestoned's worker states (tests give it a
-- stand-in for lodestone.flowrt).
-- The globals this module uses, kept as they are now: a workflow that
-- assigns one by mistake (type = input.kind, a `local` forgotten) must not
-- break the driver of every run in its worker.
local type, error, pcall, xpcall, tostring, tonumber = type, error, pcall, xpcall, tostring, tonumber
local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
local pairs, ipairs, select, require = pairs, ipairs, select, require
local coroutine, debug, math, string, table, package = coroutine, debug, math, string, table, package

local core = require("lodestone.core")
local json = core.json

local M = {}

local WORKFLOW = {} -- metatable marking definitions
local FATAL = {}    -- metatable of workflow.fatal / workflow.error values
FATAL.__tostring = function(e) return e.message end
local CANCEL = {}   -- metatable of the cancellation error
CANCEL.__tostring = function(e) return e.message end

local function cancel_error(reason)
  return setmetatable({ message = "cancelled" .. ((reason and reason ~= "") and (": " .. reason) or ""),
                        reason = reason or "", cancelled = true }, CANCEL)
end

--- Whether e is the error ctx raises when the run is cancelled (catch it
--- with pcall to run cleanup steps; the run then ends `cancelled`).
function M.is_cancelled(e)
  return getmetatable(e) == CANCEL
end

-- Milliseconds in duration v, or an error "what: ..." raised at level
-- (counted as error() counts them from parse_duration's caller). Strings
-- follow the project's one grammar (core.duration_ms, the C parser that
-- the engine and the policies use too); in Lua, plain seconds are numbers.
local MAX_MS = 100 * 365 * 24 * 3600 * 1000 -- a century, as core.duration_ms allows

local function parse_duration(v, what, level)
  level = level + 1
  if type(v) == "number" then
    if v ~= v or v < 0 or v == math.huge then
      error(what .. ": must be a non-negative number of seconds, got " .. tostring(v), level)
    end
    -- Longer is taken as a century: "for ever" written as 1e10 seconds
    -- worked before durations had a bound, and runs recorded so must replay.
    local ms = math.floor(v * 1000 + 0.5)
    return ms > MAX_MS and MAX_MS or ms
  end
  if type(v) ~= "string" then
    error(what .. ": must be seconds (a number) or a string like \"10s\", got a " .. type(v), level)
  end
  if v:match("^[%d.]+$") then
    error(string.format('%s: duration %q needs a unit (ms, s, m, h or d), or pass seconds as a number',
      what, v), level)
  end
  local ms, err = core.duration_ms(v)
  if not ms then error(what .. ": " .. err, level) end
  return ms
end

-- A duration that must be at least 1 ms (timeouts, retry intervals).
local function parse_positive(v, what, level)
  local ms = parse_duration(v, what, level + 1)
  if ms < 1 then error(what .. ": must be more than 0, got " .. tostring(v), level + 1) end
  return ms
end

--- Milliseconds in a duration: a number of seconds, or a string such as
--- "250ms", "10s", "1m30s", "2h", "1d" (fractions allowed: "1.5s").
--- Raises "what: ..." (what defaults to "duration") for anything else.
function M.duration_ms(v, what)
  local ms = parse_duration(v, what or "duration", 2)
  return ms
end

local RETRY_KEYS = { initial_interval = true, backoff = true, max_interval = true,
                     max_attempts = true, jitter = true, non_retryable = true }

local function is_number(v)
  return type(v) == "number" and v == v and v > -math.huge and v < math.huge
end

-- Checks a retry policy (the engine's rules, so that a bad one fails when
-- the workflow loads, not when a step first fails) and returns it as JSON.
-- base_initial_ms, base_max_ms: the initial_interval and max_interval it
-- inherits (a step's from its workflow's; max none: nil). Errors are
-- raised at level, as for parse_duration.
local function check_retry(t, what, level, base_initial_ms, base_max_ms)
  if t == nil then return nil end
  level = level + 1
  if type(t) ~= "table" then error(what .. ": must be a table, got a " .. type(t), level) end
  for k, v in pairs(t) do
    local field = what .. "." .. tostring(k)
    if not RETRY_KEYS[k] then
      error(field .. ": unknown field (known: initial_interval, backoff, max_interval, " ..
        "max_attempts, jitter, non_retryable)", level)
    elseif k == "initial_interval" or k == "max_interval" then
      parse_positive(v, field, level)
    elseif k == "backoff" and not (is_number(v) and v >= 1) then
      error(field .. ": must be a number of at least 1, got " .. tostring(v), level)
    elseif k == "max_attempts" and not (is_number(v) and v >= 0 and v == math.floor(v)) then
      error(field .. ": must be a whole number, 0 (no limit) or more, got " .. tostring(v), level)
    elseif k == "jitter" and not (is_number(v) and v >= 0 and v <= 1) then
      error(field .. ": must be a number from 0 to 1, got " .. tostring(v), level)
    elseif k == "non_retryable" then
      if type(v) ~= "table" then
        error(field .. ": must be a list of error codes (strings), got a " .. type(v), level)
      end
      local n = 0
      for _ in pairs(v) do n = n + 1 end
      for i = 1, n do
        local code = v[i]
        if type(code) ~= "string" or #code == 0 or #code > 64 then
          error(string.format("%s[%d]: must be an error code of 1 to 64 characters, got %s",
            field, i, type(code) == "string" and string.format("%q", code) or tostring(code)), level)
        end
      end
    end
  end
  -- the policy the engine will merge: the step's fields over the workflow's
  local initial = t.initial_interval and parse_duration(t.initial_interval, what, level)
    or base_initial_ms
  if t.max_interval ~= nil then
    if parse_duration(t.max_interval, what, level) < initial then
      error(string.format("%s.max_interval: must be at least initial_interval (%d ms)", what, initial),
        level)
    end
  elseif base_max_ms ~= nil and initial > base_max_ms then
    error(string.format("%s.initial_interval: must be at most the workflow's max_interval (%d ms)",
      what, base_max_ms), level)
  end
  local ok, text = pcall(json.encode, t)
  if not ok or text == nil then error(what .. ": cannot be encoded as JSON", level) end
  return text
end

local DEFAULT_INITIAL_MS = 1000 -- the engine's default initial_interval

local DEFINE_KEYS = { name = true, run = true, retry = true, step_timeout = true,
                      description = true, on_exhausted = true, schedule = true, concurrency = true,
                      retention = true }

-- concurrency = { limit = N, key = "input.field", total = M }: checked, and
-- returned as the JSON lodestoned takes.
local function check_concurrency(t, level)
  if t == nil then return nil end
  level = level + 1
  local what = "workflow.define: concurrency"
  if type(t) ~= "table" then error(what .. ": must be a table, got a " .. type(t), level) end
  for k, v in pairs(t) do
    if k == "limit" or k == "total" then
      if not (is_number(v) and v >= 1 and v == math.floor(v) and v <= 1e6) then
        error(what .. "." .. k .. ": must be a whole number from 1 to 1000000, got " .. tostring(v), level)
      end
    elseif k == "key" then
      if type(v) ~= "string" or not v:match("^[%w_]+[%w_.]*$") or #v > 200 then
        error(what .. '.key: must name an input field such as "tenant" or "customer.id", got '
          .. tostring(v), level)
      end
    else
      error(what .. ": unknown field " .. tostring(k) .. " (known: limit, key, total)", level)
    end
  end
  if t.limit == nil and t.total == nil then error(what .. ": needs limit (or total)", level) end
  if t.key ~= nil and t.limit == nil then error(what .. ": key goes with limit (runs per key)", level) end
  return json.encode(t)
end

-- retention: how long finished runs of the type are kept (a duration, or
-- "forever"); nil leaves it to lodestoned --retention. Milliseconds, -1
-- for forever.
local function check_retention(v, what, level)
  if v == nil then return nil end
  if v == "forever" then return -1 end
  if type(v) ~= "string" and type(v) ~= "number" then
    error(what .. ': must be a duration like "30d" or "forever", got a ' .. type(v), level + 1)
  end
  -- (lodestoned --retention 0 keeps runs for ever; here that is said "forever")
  if v == 0 or v == "0" then
    error(what .. ': must be more than 0 (write "forever" to keep finished runs), got ' .. v, level + 1)
  end
  local ms = parse_positive(v, what, level + 1) -- not a tail call: levels count frames
  return ms
end

-- on_exhausted: what a step that used up its attempts does to the run.
local function check_exhausted(v, what, level)
  if v ~= nil and v ~= "fail" and v ~= "pause" then
    error(what .. ': must be "fail" or "pause", got ' .. tostring(v), level + 1)
  end
  return v
end

-- A workflow type's name: lodestoned's rule (ls_flow_check_type_name),
-- which the daemon checks again when it loads a file. The API's
-- POST /v1/workflows/{type} carries the name as one path segment.
local TYPE_NAMEMAX = 200  -- LS_FLOW_NAMEMAX
local SCHEDULE_NAMEMAX = 100 -- FLOW_SCHED_NAMEMAX: a fire's run id is NAME@TIME

-- What is wrong with name as a workflow type's name, or nil.
local function type_name_problem(name)
  if type(name) ~= "string" then
    return "must be a string of letters, digits and - _ . :, got " ..
      (name == nil and "nothing" or "a " .. type(name))
  end
  if #name == 0 or #name > TYPE_NAMEMAX then
    return string.format("must be 1 to %d characters, got %d", TYPE_NAMEMAX, #name)
  end
  if name == "." or name == ".." then
    return string.format('"%s" is not allowed: a URL reads it as a path step', name)
  end
  local at = name:find("[^A-Za-z0-9_.:%-]")
  if at then
    return string.format("character %d (0x%02x) is not allowed; use letters, digits and - _ . :",
      at, name:byte(at))
  end
  return nil
end
M._type_name_problem = type_name_problem -- (lodestone.testing checks definitions with it)

local SCHEDULE_KEYS = { cron = true, timezone = true, overlap = true, catchup = true, input = true }
local OVERLAP = { skip = true, buffer_one = true, allow = true }
local CATCHUP = { one = true, none = true }

-- Checks a schedule (the engine's rules: the cron text goes through the C
-- parser lodestoned uses) and returns it with its defaults, and as the
-- JSON definition lodestoned takes: the schedule is named after the
-- workflow. Errors are raised at level, as for parse_duration.
local function check_schedule(t, name, level)
  if t == nil then return nil end
  level = level + 1
  local what = "workflow.define: schedule"
  if type(t) ~= "table" then error(what .. ": must be a table, got a " .. type(t), level) end
  if #name > SCHEDULE_NAMEMAX then
    error(string.format("%s: a schedule is named after its workflow, and is at most %d characters " ..
      "long: name has %d", what, SCHEDULE_NAMEMAX, #name), level)
  end
  for k in pairs(t) do
    if not SCHEDULE_KEYS[k] then
      error(what .. ": unknown field " .. tostring(k) ..
        " (known: cron, timezone, overlap, catchup, input)", level)
    end
  end
  if type(t.cron) ~= "string" then
    error(what .. ".cron: must be a string such as \"*/15 * * * *\", \"@daily\" or \"@every 30s\", got "
      .. (t.cron == nil and "nothing" or "a " .. type(t.cron)), level)
  end
  local next_ms, msg = core.cron_next(t.cron)
  if not next_ms then error(what .. ".cron: " .. msg, level) end
  -- The zone's name is checked by lodestoned (ICU knows the zones): here
  -- only its shape.
  if t.timezone ~= nil and (type(t.timezone) ~= "string" or not t.timezone:match("^[%w_+%-/]+$")
      or #t.timezone > 64) then
    error(string.format('%s.timezone: must be an IANA zone name such as "Europe/Berlin" or "UTC", got %s',
      what, type(t.timezone) == "string" and string.format("%q", t.timezone) or "a " .. type(t.timezone)), level)
  end
  if t.overlap ~= nil and not OVERLAP[t.overlap] then
    error(what .. ".overlap: must be skip, buffer_one or allow, got " .. tostring(t.overlap), level)
  end
  if t.catchup ~= nil and not CATCHUP[t.catchup] then
    error(what .. ".catchup: must be one or none, got " .. tostring(t.catchup), level)
  end
  local sched = { name = name, workflow = name, cron = t.cron, timezone = t.timezone or "UTC",
                  overlap = t.overlap or "skip", catchup = t.catchup or "one", input = t.input }
  local ok, text = pcall(json.encode, sched)
  if not ok or text == nil then error(what .. ".input: cannot be encoded as JSON", level) end
  return sched, text
end

--- Declares a workflow. Fields: name (1 to 200 letters, digits, _ . : -;
--- not "." or ".."), run
--- (function(ctx, input)), and optionally description (a string), retry
--- (the default policy of its steps), step_timeout (default "30s") and
--- schedule ({cron, timezone = "UTC" or a zone such as "Europe/Berlin", overlap = "skip" | "buffer_one" |
--- "allow", catchup = "one" | "none", input}: lodestoned starts a run at
--- each fire time), concurrency ({limit, key, total}) and retention (how
--- long finished runs are kept: "30d" or "forever").
function M.define(spec)
  if type(spec) ~= "table" then error("workflow.define: expects a table", 2) end
  for k in pairs(spec) do
    if not DEFINE_KEYS[k] then
      error("workflow.define: unknown field " .. tostring(k) ..
        " (known: name, run, retry, step_timeout, description, on_exhausted, schedule, concurrency, retention)", 2)
    end
  end
  local problem = type_name_problem(spec.name)
  -- (lodestoned sets _pinned_type while it loads the source a run started
  -- with, kept in the store: a run of a type whose name an older version
  -- took goes on under it, and the file's schedule, which such a load
  -- never uses, is not checked either: an older version took a schedule
  -- of a name over 100 characters, only refusing to install it)
  local pinned = spec.name ~= nil and spec.name == M._pinned_type
  if problem and not pinned then error("workflow.define: name: " .. problem, 2) end
  if type(spec.run) ~= "function" then
    error("workflow.define: run must be a function(ctx, input)", 2)
  end
  if spec.description ~= nil and type(spec.description) ~= "string" then
    error("workflow.define: description must be a string", 2)
  end
  local def = {
    name = spec.name,
    run = spec.run,
    description = spec.description,
    retry = spec.retry,
    retry_json = check_retry(spec.retry, "workflow.define: retry", 2, DEFAULT_INITIAL_MS),
    step_timeout_ms = parse_positive(spec.step_timeout or "30s", "workflow.define: step_timeout", 2),
    on_exhausted = check_exhausted(spec.on_exhausted, "workflow.define: on_exhausted", 2),
    retention_ms = check_retention(spec.retention, "workflow.define: retention", 2),
  }
  if not pinned then -- (a pinned definition only runs its run's code)
    def.schedule, def.schedule_json = check_schedule(spec.schedule, spec.name, 2)
  end
  def.concurrency_json = check_concurrency(spec.concurrency, 2)
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

-- The text of an error value that is not a string, and never raises: a
-- table's own __tostring when it has one that works, else its JSON (an
-- address such as "table: 0x55d0..." would say nothing, and differ on
-- every replay).
local function error_text(e)
  local t = type(e)
  if t == "string" then return e end
  if t == "number" or t == "boolean" then return tostring(e) end
  if e == nil then return "error(nil): the code raised nil, with no message" end
  local mt = getmetatable(e)
  if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then
    local ok, text = pcall(tostring, e)
    if ok and type(text) == "string" then return text end
    return "an error value (a " .. t .. ") whose __tostring failed: " ..
      (type(text) == "string" and text or "it did not return a string")
  end
  if t == "table" then
    local ok, text = pcall(json.encode, e)
    if ok and type(text) == "string" then return "error value (a table, not a string): " .. text end
  end
  return "an error value that is a " .. t .. ", not a string: raise error(\"message\") " ..
    "or workflow.error(code, message)"
end

-- An error code a retry policy's non_retryable can name (a string), or nil.
local function error_code(c)
  if type(c) == "string" then return c end
  if type(c) == "number" and c == c then return string.format("%.14g", c) end
  return nil
end

local function describe_error(e)
  if getmetatable(e) == FATAL then return e.message, error_code(e.code), e.fatal end
  if getmetatable(e) == CANCEL then return e.message, "cancelled", true end
  if type(e) == "table" and type(e.message) == "string" then return e.message, error_code(e.code), false end
  return error_text(e), nil, false
end

-- xpcall handler: keep the message and add a traceback.
local function handler(e)
  local msg = describe_error(e)
  return { err = e, message = msg, traceback = debug.traceback(msg, 2) }
end

-- What an xpcall with handler returned on failure: the handler's table,
-- or (when the handler itself failed: out of memory) the bare message.
local function caught(res)
  if type(res) == "table" and type(res.message) == "string" then return res end
  return { err = res, message = error_text(res) }
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

-- A mistake in the workflow's code, which no retry mends: a fatal error
-- (the step fails at once), naming where the call was.
local function not_in_step(ctx, what)
  if ctx._in_step then
    local info = debug.getinfo(3, "Sl")
    local where = info and info.currentline > 0 and (info.short_src .. ":" .. info.currentline .. ": ") or ""
    error(M.fatal(where .. what .. " inside a step: call it in run and pass the value to the step",
      "ctx_in_step"))
  end
end

-- What the engine raised for a call (pcall's results): raised again; a
-- refusal of what the code gave (its message starts with the call's name:
-- "ctx:step: step name: ...") names where the call was, as the driver's
-- own refusals do. level: as error()'s, from the caller's caller.
local function refused(what, level, ok, ...)
  if ok then return ... end
  local msg = ...
  if type(msg) == "string" and msg:sub(1, #what + 2) == what .. ": " then
    local info = debug.getinfo(level + 1, "Sl")
    if info and info.currentline > 0 then msg = info.short_src .. ":" .. info.currentline .. ": " .. msg end
  end
  error(msg, 0)
end

local PARK = setmetatable({}, { __tostring = function() return "(parked)" end })

local run_cos = setmetatable({}, { __mode = "k" }) -- the runs' coroutines

-- A call that may wait (yield the run's coroutine to the driver) made in
-- a coroutine of the workflow's own: its yield would go to that coroutine,
-- and the run would go on past a wait that the engine has recorded. Refused
-- always, so that every replay decides alike, naming where the call was.
local function in_run(what)
  local co = coroutine.running()
  if co == nil or not run_cos[co] then
    local info = debug.getinfo(3, "Sl")
    local where = info and info.currentline > 0 and (info.short_src .. ":" .. info.currentline .. ": ") or ""
    error(where .. what .. " inside a coroutine the workflow made: call it from run " ..
      "itself (pcall is fine), not from coroutine.wrap/create", 0)
  end
end

-- After a call that writes: when lodestoned parked the activation, yield
-- to the worker until the write is durable, then check that it worked.
local function park(rt, act)
  if rt.parked(act) then
    coroutine.yield(PARK)
    rt.check(act)
  end
end

local function suspend()
  coroutine.yield(SUSPEND)
  error("a suspended run was resumed", 0) -- never: the activation ends at a yield
end

-- The step context's methods, shared by every step. Once its step has
-- ended, a step context kept by the code refuses what would have effects
-- that no record holds (a secret read, an HTTP call, from run code).
local Step = {}
Step.__index = Step

local function live(s, what)
  if s._ended then
    error(what .. ": the step context of step '" .. s._name .. "' is used after that step ended " ..
      "(do it inside a ctx:step)", 3)
  end
end

function Step:secret(name)
  live(self, "s:secret")
  if type(name) ~= "string" then error("s:secret(name): name must be a string", 2) end
  return self._rt.secret(self._act, name)
end

function Step:log(...)
  live(self, "s:log")
  local parts = {}
  for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
  self._rt.log(self._act, self._rt.INFO, table.concat(parts, " "))
end

-- s.http: lodestone.http with what is left of the step's deadline as the
-- timeout of every call (made once per state: the deadline is the
-- running step's, kept by lodestoned per worker thread).
local step_http
local function http_for_steps(rt)
  if step_http then return step_http end
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
  step_http = { request = function(t) return http.request(bounded(t)) end }
  for _, m in ipairs({ "get", "post", "put", "patch", "delete" }) do
    step_http[m] = function(url, opts) return http[m](url, bounded(opts)) end
  end
  return step_http
end

local function new_step_ctx(ctx, name, attempt, key)
  local s = setmetatable({ attempt = attempt, idempotency_key = key, id = ctx.id, _name = name,
                           _rt = ctx._rt, _act = ctx._act }, Step)
  local bound = {}
  for k, f in pairs(http_for_steps(ctx._rt)) do
    bound[k] = function(...)
      live(s, "s.http")
      return f(...)
    end
  end
  s.http = bound
  return s
end

--- ctx:step(name, fn, opts): runs fn(s) once and records its result.
--- opts: retry (overrides the workflow's policy), timeout.
function Ctx:step(name, fn, opts)
  if type(name) ~= "string" or name == "" then error("ctx:step: name must be a non-empty string", 2) end
  if type(fn) ~= "function" then error("ctx:step: fn must be a function(s)", 2) end
  not_in_step(self, "ctx:step")
  in_run("ctx:step")
  local rt, act, def = self._rt, self._act, self._def
  local timeout, step_retry, on_exhausted = def.step_timeout_ms, nil, nil
  if opts ~= nil then -- (without options, the workflow's own, checked by define)
    if type(opts) ~= "table" then error("ctx:step: opts must be a table", 2) end
    for k in pairs(opts) do
      if k ~= "retry" and k ~= "timeout" and k ~= "on_exhausted" then
        error("ctx:step: unknown option " .. tostring(k) .. " (known: retry, timeout, on_exhausted)", 2)
      end
    end
    on_exhausted = check_exhausted(opts.on_exhausted, "ctx:step: on_exhausted", 2)
    timeout = opts.timeout and parse_positive(opts.timeout, "ctx:step: timeout", 2) or timeout
    local wf_initial = def.retry and def.retry.initial_interval
    local wf_max = def.retry and def.retry.max_interval
    step_retry = check_retry(opts.retry, "ctx:step: retry", 2,
      wf_initial and parse_duration(wf_initial, "retry", 1) or DEFAULT_INITIAL_MS,
      wf_max and parse_duration(wf_max, "retry", 1) or nil)
  end
  local st, a, key = refused("ctx:step", 2, pcall(rt.step, act, name))
  park(rt, act)
  if st == "done" then return decode(a) end
  if st == "failed" then error(a, 0) end
  if st == "cancelled" then error(cancel_error(a), 0) end
  if st == "wait" then suspend() end
  local s = new_step_ctx(self, name, a, key)
  rt.deadline(timeout)
  self._in_step = true
  local ok, res = xpcall(fn, handler, s)
  self._in_step = false
  s._ended = true
  rt.deadline(def.step_timeout_ms)
  if rt.interrupted(act) then
    rt.abandon(act)
    suspend()
  end
  if ok then
    local text, err = json.encode(res == nil and json.null or res)
    if text then
      rt.step_done(act, name, a, text) -- queued: the next write carries it
      return decode(text)
    end
    -- The code's mistake, which a retry would only repeat (for ever, with
    -- no max_attempts): the step fails at once.
    res = handler(M.fatal("step result is not JSON: " .. tostring(err), "not_json"))
  end
  res = caught(res)
  local msg, code, fatal = describe_error(res.err)
  local pause = (on_exhausted or def.on_exhausted) == "pause"
  local verdict, final = rt.step_failed(act, name, a, msg, code, fatal, def.retry_json, step_retry, pause)
  park(rt, act)
  if verdict == "wait" then suspend() end
  error(final, 0)
end

--- ctx:sleep(duration): a durable timer.
function Ctx:sleep(d)
  not_in_step(self, "ctx:sleep")
  in_run("ctx:sleep")
  local ms = parse_duration(d, "ctx:sleep", 2)
  local st = self._rt.sleep(self._act, ms)
  park(self._rt, self._act) -- in a ctx:all branch a new timer's write parks
  if st == "wait" then suspend() end
  if st == "cancelled" then error(cancel_error(), 0) end
end

--- ctx:wait_signal(name, { timeout = "1d" }): the payload of the next
--- signal `name` (signals sent before the wait are kept, in order), or
--- nil, "timeout" when the timeout passes first.
function Ctx:wait_signal(name, opts)
  not_in_step(self, "ctx:wait_signal")
  in_run("ctx:wait_signal")
  if type(name) ~= "string" or name == "" then
    error("ctx:wait_signal: name must be a non-empty string", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("ctx:wait_signal: opts must be a table", 2) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "timeout" then error("ctx:wait_signal: unknown option " .. tostring(k) .. " (known: timeout)", 2) end
  end
  local ms = opts.timeout ~= nil and parse_duration(opts.timeout, "ctx:wait_signal: timeout", 2) or -1
  local rt, act = self._rt, self._act
  local st, v = refused("ctx:wait_signal", 2, pcall(rt.wait_signal, act, name, ms))
  park(rt, act)
  if st == "done" then
    local value = decode(v)
    if value == json.null then value = nil end
    return value
  end
  if st == "timeout" then return nil, "timeout" end
  if st == "cancelled" then error(cancel_error(v), 0) end
  suspend()
end

-- ---- HTTP waits and parallel branches ----

-- A step waits for an HTTP transfer: the run's coroutine yields IO, and
-- the driver parks the activation (the worker runs other runs meanwhile)
-- or, where it cannot, waits for the transfer itself.
local IO = setmetatable({}, { __tostring = function() return "(waiting for I/O)" end })

local function io_await(handle)
  local httpc = require("lodestone.httpc")
  repeat coroutine.yield(IO, { handle }) until httpc.done(handle)
end

-- lodestone.http asks this: in workflow code, a request yields while it
-- is in flight.
require("lodestone.http")._await = function()
  local co = coroutine.running()
  if co and run_cos[co] then return io_await end
  return nil
end

-- In a branch run: runs the branch of scope (fn) here, in place, and ends
-- the run with its outcome when scope is the run's own branch (mine); an
-- ancestor of it (a nested section) never returns: the run ends inside.
-- Either way no more of the workflow's code runs after it.
local function run_own_branch(ctx, fn, scope, mine)
  local rt, act = ctx._rt, ctx._act
  local bctx = setmetatable({ _scope = scope, _sections = 0, _in_step = false }, { __index = ctx })
  rt.branch(act, scope)
  local ok, res = xpcall(fn, handler, bctx)
  if ok and scope ~= mine then
    ok, res = false, handler("ctx:all: the code of branch " .. scope .. " returned without " ..
      "reaching branch " .. mine .. " (non-determinism)")
  end
  -- (an end refused, say a result over the payload limit, fails the run
  -- here: the code around the section must not catch it and go on)
  local ended, why = pcall(function()
    if ok then
      local text, err = json.encode(res == nil and json.null or res)
      if text then
        rt.complete(act, text)
      else
        rt.fail(act, "the result of branch " .. scope .. " is not JSON: " .. tostring(err))
      end
    elseif getmetatable(res.err) == CANCEL then
      rt.cancelled(act)
    else
      rt.fail(act, res.message, res.traceback)
    end
  end)
  if not ended then pcall(rt.fail, act, tostring(why)) end
  suspend() -- the run has ended
end

--- ctx:all{ fn1, fn2, ... }: runs the functions as parallel branches, each
--- with its own ctx (fn(ctx)), and returns their results in order. Each
--- branch is a run of its own (a branch run, "ID-b1.2" for branch 2 of the
--- first section), on any worker: it replays this run's code up to here
--- from a copy of its history, runs its branch alone and ends with the
--- branch's result. So branches' Lua code runs in parallel, and while one
--- waits (a timer, a retry, a child run, an HTTP call) the others go on.
--- Results pass through JSON, as step results do. When a branch fails,
--- the others still run to their end, then the first failure (in list
--- order) is raised. ctx:wait_signal is refused in a branch.
function Ctx:all(fns)
  not_in_step(self, "ctx:all")
  in_run("ctx:all")
  if type(fns) ~= "table" then error("ctx:all: expects a list of functions", 2) end
  local n = #fns
  for k, v in pairs(fns) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then
      error("ctx:all: expects a list of functions (1..n), got key " .. tostring(k), 2)
    end
    if type(v) ~= "function" then
      error(string.format("ctx:all: item %d is a %s, not a function", k, type(v)), 2)
    end
  end
  local results = setmetatable({}, json.array_mt) -- [] even when empty
  if n == 0 then return results end
  local rt, act = self._rt, self._act
  self._sections = (self._sections or 0) + 1
  local head = (self._scope or "") .. "[" .. self._sections .. "."
  local mine = rt.branch_of(act)
  if mine and mine:sub(1, #head) == head then
    -- This branch run's section: its branch alone, here.
    local i = tonumber(mine:sub(#head + 1):match("^(%d+)%]"))
    if i == nil or i > n then
      error(string.format("ctx:all: branch run of %s finds %d branches here (non-determinism)",
        mine, n), 0)
    end
    run_own_branch(self, fns[i], head .. i .. "]", mine)
  end
  rt.flush(act) -- a branch run starts from durable history
  park(rt, act)
  local ids = {}
  for i = 1, n do ids[i] = rt.branch_start(act, head .. i .. "]") end
  local failed
  for i = 1, n do
    local st, v = rt.child_wait(act, ids[i])
    park(rt, act)
    if st == "done" then
      results[i] = decode(v)
    elseif st == "failed" then
      failed = failed or ("ctx:all: branch " .. i .. " " .. v:gsub("^child workflow %S+ ", ""))
    elseif st == "cancelled" then
      error(cancel_error(v), 0)
    else
      suspend() -- woken when that branch run ends
    end
  end
  if failed ~= nil then error(failed, 0) end
  return results
end

-- A started child run: handle.id, handle:result().
local Child = {}
Child.__index = Child

--- handle:result(): waits for the child run to end; returns its output,
--- or raises when it failed, was cancelled or terminated.
function Child:result()
  local ctx = self._ctx
  not_in_step(ctx, "child:result")
  in_run("child:result")
  local rt, act = ctx._rt, ctx._act
  local st, v = rt.child_wait(act, self.id)
  if st == "done" then
    local value = decode(v)
    if value == json.null then value = nil end
    return value
  end
  if st == "failed" then error(v, 0) end
  if st == "cancelled" then error(cancel_error(v), 0) end
  suspend()
end

local CHILD_OPTS = { id = true, detached = true }

--- ctx:start_child(type, input, { id = ..., detached = false }): starts a
--- child workflow run and returns a handle (handle.id, handle:result()).
--- A child that is not detached is cancelled when this run ends first.
function Ctx:start_child(wtype, input, opts)
  not_in_step(self, "ctx:start_child")
  if type(wtype) ~= "string" or wtype == "" then
    error("ctx:start_child: type must be a workflow type name", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("ctx:start_child: opts must be a table", 2) end
  opts = opts or {}
  for k in pairs(opts) do
    if not CHILD_OPTS[k] then
      error("ctx:start_child: unknown option " .. tostring(k) .. " (known: id, detached)", 2)
    end
  end
  if opts.id ~= nil and (type(opts.id) ~= "string" or opts.id == "") then
    error("ctx:start_child: id must be a non-empty string", 2)
  end
  local rt, act = self._rt, self._act
  local id = rt.child_start(act, wtype, encode(input, "ctx:start_child: input"), opts.id,
    opts.detached and true or false)
  return setmetatable({ id = id, type = wtype, _ctx = self }, Child)
end

--- ctx:child(type, input, opts): starts a child run and waits for its
--- output (its failure is raised here).
function Ctx:child(wtype, input, opts)
  not_in_step(self, "ctx:child")
  in_run("ctx:child") -- before the child starts: it could not be waited for
  local h = Ctx.start_child(self, wtype, input, opts)
  return h:result()
end

--- ctx:set_status(value): a custom status (any JSON value) shown with
--- the run, e.g. ctx:set_status{ stage = "waiting for approval" }.
function Ctx:set_status(v)
  not_in_step(self, "ctx:set_status")
  self._rt.set_status(self._act, encode(v, "ctx:set_status: value"))
end

-- A saga: compensations registered as the run goes, run in reverse order
-- by compensate() (each is the caller's function, normally a ctx:step).
local Saga = {}
Saga.__index = Saga

function Saga:add(fn)
  if type(fn) ~= "function" then error("saga:add: expects a function", 2) end
  self._list[#self._list + 1] = fn
end

--- Runs every compensation, newest first; all are tried even when one
--- fails, then the first failure is raised.
function Saga:compensate()
  local failed, first = false, nil -- (a compensation may raise nil)
  for i = #self._list, 1, -1 do
    local ok, e = pcall(self._list[i])
    if not ok and not failed then failed, first = true, e end
  end
  self._list = {}
  if failed then error(first, 0) end
end

--- ctx:saga(): local saga = ctx:saga(); saga:add(function() ctx:step("refund", ...) end)
function Ctx:saga()
  return setmetatable({ _list = {} }, Saga)
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

-- Activations parked while their write is made durable (lodestoned's
-- workers run others meanwhile), or while their steps' HTTP transfers go
-- on: act -> { coroutine, definition, the step's deadline (ns, ms) }.
local parked = {}

-- Holds the worker until one of handles is done (where the activation
-- cannot park); false when the engine wants the run given up.
local function wait_io(rt, act, handles)
  local httpc = require("lodestone.httpc")
  while #httpc.wait(handles, 1000) == 0 do
    if rt.interrupted(act) then return false end
  end
  return true
end

local function drive(co, act, rt, def, deadline_ns, deadline_ms)
  if deadline_ns then
    rt.deadline_restore(deadline_ns, deadline_ms) -- a step's, across its HTTP wait
  else
    rt.deadline(def.step_timeout_ms)
  end
  local ok, first, second = coroutine.resume(co)
  while ok and first == IO and coroutine.status(co) == "suspended" do
    if rt.park_io and rt.park_io(act, second) then
      parked[act] = { co, def, rt.deadline_save() }
      rt.deadline(nil)
      return
    end
    if not wait_io(rt, act, second) then break end
    ok, first, second = coroutine.resume(co)
  end
  rt.deadline(nil)
  if rt.interrupted(act) then
    rt.abandon(act)
    return
  end
  if ok and first == PARK and coroutine.status(co) == "suspended" then
    parked[act] = { co, def }
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
      -- A limit the run crossed earlier (--max-depth, --max-events: the
      -- engine's calls all fail from then on), caught by the code, comes
      -- back here: the run fails with that message as it is (the driver's
      -- frames would only mislead), as the testing harness records it.
      local done, why = pcall(rt.complete, act, text)
      if not done then rt.fail(act, tostring(why)) end
    else
      rt.fail(act, "the workflow's result is not JSON: " .. tostring(err))
    end
  else
    second = caught(second)
    if getmetatable(second.err) == CANCEL then
      rt.cancelled(act)
    else
      rt.fail(act, second.message, second.traceback)
    end
  end
end

-- lodestone.flowrt, as package.loaded has it now (lodestone.testing puts
-- its own there for the length of an activation).
local loaded = package.loaded
local function flowrt()
  return loaded["lodestone.flowrt"] or require("lodestone.flowrt")
end

function M._activate(def, act)
  local rt = flowrt()
  local ctx = setmetatable({ _rt = rt, _act = act, _def = def, id = rt.name(act),
                             type = def.name, attempt = 1 }, Ctx)
  local input = decode(rt.input(act))
  if input == json.null then input = nil end -- no input: `input or {}` works
  local co = coroutine.create(function()
    return xpcall(def.run, handler, ctx, input)
  end)
  run_cos[co] = true
  drive(co, act, rt, def)
end

function M._resume(act)
  local rt = flowrt()
  local p = parked[act]
  parked[act] = nil
  if p == nil or rt.interrupted(act) then
    rt.abandon(act)
    return
  end
  drive(p[1], act, rt, p[2], p[3], p[4])
end

return M
