-- SPDX-License-Identifier: MIT
-- lodestone.testing: run a workflow inside busted (or any Lua) with an
-- in-memory history and virtual time, through the driver lodestoned uses
-- (workflow._activate over a Lua port of the engine's activation calls,
-- native/flow/act.c and replay.c): every activation replays the run from
-- the start against its history, exactly as the daemon does.
--
--   local testing = require "lodestone.testing"
--   local t = testing.run("workflows/approval.lua", { input = { item = "laptop" }, id = "req-1" })
--   assert.same({ kind = "signal", name = "approved", due_at = "2023-11-17T22:13:20.000Z" }, t.waiting)
--   t:signal("approved", { by = "alice" })
--   assert.equal("completed", t.status)
--   t:replay()   -- a restart would replay it without running a step again
--
-- Full reference: docs/workflows.md, "Testing". Runs on LuaJIT and Lua 5.4;
-- needs lodestone.core (JSON, durations) and lodestone.workflow.
local core = require("lodestone.core")
local workflow = require("lodestone.workflow")
local json = core.json

local M = {}

local NAMEMAX = 200              -- LS_FLOW_NAMEMAX: run ids, signal names
local MAX_ACTIVATIONS = 1000     -- per call: an endless retry or sleep loop stops here
local DEFAULT_NOW = 1700000000   -- 2023-11-14T22:13:20Z
local LOG_WARN = 3

-- ---------------------------------------------------------------------
-- Small helpers

--- RFC 3339 UTC time with milliseconds, as the daemon's API writes it.
function M.iso(seconds)
  local ms = math.floor(seconds * 1000 + 0.5)
  local sec = math.floor(ms / 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%03dZ", ms - sec * 1000)
end

local function iso_ms(ms)
  return M.iso(ms / 1000)
end

local function decode(text)
  if text == nil then return json.null end
  local v, err = json.decode(text)
  if v == nil and err then error("testing: recorded value does not decode: " .. err, 0) end
  return v
end

-- JSON text of v (nil is null), or an error "what is not JSON: ..." at level.
local function encode(v, what, level)
  if v == nil then return "null" end
  local text, err = json.encode(v)
  if text == nil then error(what .. " is not JSON: " .. tostring(err), level + 1) end
  return text
end

local function check_name(v, what, level)
  if type(v) ~= "string" or #v == 0 or #v > NAMEMAX then
    error(string.format("%s: must be a string of 1 to %d bytes, got %s", what, NAMEMAX,
      type(v) == "string" and string.format("%q", v) or tostring(v)), level + 1)
  end
  if v:find("%c") then error(what .. ": control characters are not allowed", level + 1) end
end

local function check_text(v, what, level)
  if v == nil then return "" end
  if type(v) ~= "string" then error(what .. ": must be a string, got a " .. type(v), level + 1) end
  if v:find("%c") then error(what .. ": control characters are not allowed", level + 1) end
  return v
end

-- ---------------------------------------------------------------------
-- Replay: a cursor over a run's history (native/flow/replay.c, replay.h).
-- Commands (steps, timers, side effects) match records in order; signals
-- and cancel requests are non-command events anywhere in history.

local KIND = {
  step_started = "step", step_completed = "step", step_failed = "step",
  timer_started = "timer", timer_fired = "timer", timer_cancelled = "timer",
  side_effect_recorded = "side effect",
}
local TERMINAL = { workflow_completed = true, workflow_failed = true,
                   workflow_cancelled = true, workflow_terminated = true }

-- name as printable text: \" \\ \xNN escapes, cut with "..." past 40
local function quote(name)
  local out, o = {}, 0
  for i = 1, #name do
    if o >= 40 then
      out[#out + 1] = "..."
      break
    end
    local b = name:byte(i)
    local c
    if b == 34 or b == 92 then
      c = "\\" .. string.char(b)
    elseif b < 0x20 or b >= 0x7f then
      c = string.format("\\x%02x", b)
    else
      c = string.char(b)
    end
    out[#out + 1] = c
    o = o + #c
  end
  return table.concat(out)
end

local function describe(e)
  return string.format('%s "%s"', KIND[e.type], quote(e.name or ""))
end

local Cursor = {}
Cursor.__index = Cursor

local function new_cursor(events, n)
  local c = setmetatable({ ev = events, n = n, pos = 1, commands = 0, used = {} }, Cursor)
  for i = 1, n do
    local e = events[i]
    if TERMINAL[e.type] then c.closed = e end
    if e.type == "cancel_requested" and c.cancel == nil then c.cancel = e end
  end
  return c
end

function Cursor:fail(kind, msg)
  self.failed, self.failed_kind = msg, kind
  return kind, msg
end

function Cursor:next_command(i)
  while i <= self.n and not KIND[self.ev[i].type] do i = i + 1 end
  return i
end

-- The run ended on its own (completed or failed): no command can follow.
function Cursor:ended()
  local c = self.closed
  return c ~= nil and (c.type == "workflow_completed" or c.type == "workflow_failed")
end

function Cursor:peek()
  if self.failed then return 0 end
  local i = self:next_command(self.pos)
  return i <= self.n and self.ev[i].seq or 0
end

-- The earliest unconsumed signal `name` with a seq below `before`.
function Cursor:take_signal(name, before)
  for i = 1, self.n do
    local e = self.ev[i]
    if e.seq >= before then break end
    if e.type == "signal_received" and e.name == name and not self.used[i] then
      self.used[i] = true
      return { state = "done", first = e, last = e }
    end
  end
end

function Cursor:corrupt(first, e, what)
  return self:fail("corrupt", string.format('history: %s (seq %d) %s at seq %d, a %s of "%s"',
    describe(first), first.seq, what, e.seq, e.type, quote(e.name or "")))
end

function Cursor:read_step(i)
  local first, last, st = self.ev[i], nil, "inflight"
  local j = i
  while j <= self.n do
    local e = self.ev[j]
    if TERMINAL[e.type] then break end
    if KIND[e.type] then
      if KIND[e.type] ~= "step" or e.name ~= first.name then
        return self:corrupt(first, e, "is unfinished")
      end
      last = e
      if e.type == "step_completed" then
        st = "done"
      elseif e.type == "step_failed" then
        st = e.fatal and "failed" or "backoff"
      else
        st = "inflight"
      end
      if st == "done" or st == "failed" then
        j = j + 1
        break
      end
    end
    j = j + 1
  end
  self.pos = j
  return "ok", { state = st, attempt = last.attempt, due = st == "backoff" and last.due_ms or 0,
                 first = first, last = last }
end

function Cursor:read_timer(i)
  local started = self.ev[i]
  if started.type ~= "timer_started" then
    return self:fail("corrupt", string.format('history: %s of "%s" at seq %d without timer_started',
      started.type, quote(started.name or ""), started.seq))
  end
  local m = { state = "pending", due = started.due_ms, first = started, last = started }
  local j = i + 1
  while j <= self.n do
    local e = self.ev[j]
    if TERMINAL[e.type] then break end
    if KIND[e.type] then
      if (e.type ~= "timer_fired" and e.type ~= "timer_cancelled") or e.name ~= started.name then
        return self:corrupt(started, e, "is pending")
      end
      m.state = e.type == "timer_fired" and "done" or "cancelled"
      m.due, m.last = 0, e
      j = j + 1
      break
    end
    j = j + 1
  end
  self.pos = j
  return "ok", m
end

function Cursor:next_signal(name)
  local m = self:take_signal(name, math.huge)
  if m then return "ok", m end
  local k = self:next_command(self.pos)
  if k <= self.n then
    return self:fail("nondet", string.format('non-determinism at command %d: history has %s, the ' ..
      'workflow waits for signal "%s", which history never received', self.commands + 1,
      describe(self.ev[k]), quote(name)))
  end
  if self:ended() then
    return self:fail("nondet", string.format('non-determinism at command %d: history ends with %s, ' ..
      'the workflow waits for signal "%s"', self.commands + 1, self.closed.type, quote(name)))
  end
  return "new"
end

-- Matches the next command: "ok", match | "new" | "nondet"/"corrupt", message.
function Cursor:next(kind, name)
  if self.failed then return self.failed_kind, self.failed end
  if kind == "signal" then return self:next_signal(name) end
  local i = self:next_command(self.pos)
  self.pos = i
  if i > self.n then
    if not self:ended() then return "new" end
    return self:fail("nondet", string.format('non-determinism at command %d: history ends with %s, ' ..
      'the workflow asked for %s "%s"', self.commands + 1, self.closed.type, kind, quote(name)))
  end
  local e = self.ev[i]
  if KIND[e.type] ~= kind or e.name ~= name then
    return self:fail("nondet", string.format('non-determinism at command %d: history has %s, the ' ..
      'workflow asked for %s "%s"', self.commands + 1, describe(e), kind, quote(name)))
  end
  local st, m
  if kind == "step" then
    st, m = self:read_step(i)
  elseif kind == "timer" then
    st, m = self:read_timer(i)
  else
    st, m = "ok", { state = "done", first = e, last = e }
    self.pos = i + 1
  end
  if st ~= "ok" then return st, m end
  self.commands = self.commands + 1
  m.command = self.commands
  return "ok", m
end

function Cursor:finish()
  if self.failed then return self.failed_kind, self.failed end
  local k = self:next_command(self.pos)
  if k > self.n then return "ok" end
  return self:fail("nondet", string.format('non-determinism at command %d: history has %s, the ' ..
    'workflow ended without it', self.commands + 1, describe(self.ev[k])))
end

-- ---------------------------------------------------------------------
-- Retry policies (native/flow/retry.c), without jitter: the delay after
-- attempt n is min(initial * backoff^(n-1), max_interval), exactly.

local DEFAULT_POLICY = { initial_ms = 1000, backoff = 2.0, max_ms = 100000, max_attempts = 0,
                         non_retryable = {}, set = {} }

local function interval_ms(v)
  if type(v) == "number" then return math.floor(v * 1000 + 0.5) end
  return workflow.duration_ms(v, "retry interval")
end

-- The policy in JSON text `text` over `base` (field by field).
local function policy(text, base)
  local p = { set = {} }
  for k, v in pairs(base) do p[k] = v end
  for k, v in pairs(base.set) do p.set[k] = v end
  if text ~= nil and text ~= "" then
    local t = decode(text)
    if type(t) ~= "table" then error("retry: expected a table", 0) end
    if t.initial_interval ~= nil then p.initial_ms, p.set.initial = interval_ms(t.initial_interval), true end
    if t.max_interval ~= nil then p.max_ms, p.set.max = interval_ms(t.max_interval), true end
    if t.backoff ~= nil then p.backoff = t.backoff end
    if t.max_attempts ~= nil then p.max_attempts = t.max_attempts end
    if t.non_retryable ~= nil then
      p.non_retryable = {}
      for _, code in ipairs(t.non_retryable) do p.non_retryable[code] = true end
    end
  end
  if not p.set.max then p.max_ms = p.initial_ms * 100 end
  return p
end

-- "again", delay_ms | "fatal" | "non_retryable" | "exhausted"
local function retry_next(p, attempt, code, fatal)
  if fatal then return "fatal" end
  if code ~= nil and p.non_retryable[code] then return "non_retryable" end
  if p.max_attempts > 0 and attempt >= p.max_attempts then return "exhausted" end
  local d = p.initial_ms * p.backoff ^ (attempt - 1)
  if not (d < p.max_ms) then return "again", p.max_ms end
  return "again", math.min(math.floor(d + 0.5), p.max_ms)
end

-- ---------------------------------------------------------------------
-- One activation (native/flow/act.c): the calls of lodestone.flowrt.

local Act = {}
Act.__index = Act

function Act:fail_sticky(msg, nondet)
  if self.sticky == nil then self.sticky, self.sticky_nondet = msg, nondet end
  if nondet and self.nondet == nil then self.nondet = msg end
end

function Act:check_sticky()
  if self.sticky ~= nil then error(self.sticky, 0) end
  if self.ended then error("the run has ended", 0) end
  if self.waiting then error("the run is suspended; unwind the workflow code", 0) end
end

-- Appends an event to the run's history (in a replay check: see below).
function Act:put_event(ev)
  local t = self.t
  ev.time_ms = ev.time_ms or t.now_ms
  local v = self.verify
  if v then
    -- A replay check writes nothing. Its end is compared with the run's;
    -- any other write means the replay went past what history holds.
    if TERMINAL[ev.type] then
      v.end_ev = ev
      return ev
    end
    local what = ev.type .. ((ev.name and ev.name ~= "") and (' "' .. quote(ev.name) .. '"') or "")
    local msg
    if t.status == "terminated" then
      v.stopped = true
      msg = "(the replay reached the point where the run was terminated)"
    else
      msg = "it would write " .. what .. ", which history does not hold"
      v.diverged = v.diverged or msg
    end
    self:fail_sticky(msg, false)
    error(msg, 0)
  end
  ev.seq = #t._events + 1
  t._events[ev.seq] = ev
  return ev
end

-- The code suspends on a durable wait (kind "sleep", "retry" or "signal").
function Act:suspend(kind, name, due, seq)
  self.waiting = { kind = kind, name = name, due_ms = due, seq = seq }
end

-- The command's position as a replay counts it: the idempotency key.
function Act:key(command)
  return self.t.id .. "-" .. command
end

-- The next record for a command, nil when it is new; raises (sticky) on
-- non-determinism.
function Act:next(kind, name)
  self:check_sticky()
  local st, m = self.cur:next(kind, name)
  if st == "new" then
    self.replaying = false
    return nil
  end
  if st ~= "ok" then
    local msg = "run " .. self.t.id .. ": " .. m
    self:fail_sticky(msg, st == "nondet")
    error(msg, 0)
  end
  return m
end

-- The seq of the cancel request still to deliver, or nil.
function Act:cancel_due()
  local c = (not self.cancel_delivered) and self.cur.cancel
  return c and c.seq or nil
end

function Act:cancel_before_record(cs)
  local p = self.cur:peek()
  return p == 0 or p > cs
end

function Act:deliver_cancel(with_reason)
  local c = self.cur.cancel
  self.cancel_delivered = true
  if not with_reason then return "cancelled" end
  return "cancelled", (c.error and c.error ~= "") and c.error or "cancelled"
end

function Act:cancel_timer(m)
  self:put_event { type = "timer_cancelled", name = m.first.name }
  self.replaying = false
end

local function final_message(name, attempt, err)
  return string.format('step "%s" failed on attempt %d: %s', name, attempt, err or "")
end

function Act:step(name)
  self:check_sticky()
  local cs = self:cancel_due()
  if cs and self:cancel_before_record(cs) then return self:deliver_cancel(true) end
  local m = self:next("step", name)
  if m == nil then
    local command = self.cur.commands + self.new_commands + 1
    self:put_event { type = "step_started", name = name, attempt = 1 }
    self.new_commands = self.new_commands + 1
    return "run", 1, self:key(command)
  end
  if cs then
    local closed = m.state == "done" or m.state == "failed"
    if closed and m.last.seq > cs then return self:deliver_cancel(true) end
    if not closed then
      -- an attempt in flight, or a retry waiting: the step ends here
      self.replaying = false
      self:put_event { type = "step_failed", name = name, attempt = m.attempt, error = "cancelled",
                       fatal = true }
      return self:deliver_cancel(true)
    end
  end
  if m.state == "done" then return "done", m.last.payload end
  if m.state == "failed" then return "failed", final_message(name, m.attempt, m.last.error) end
  if m.state == "inflight" then
    self.replaying = false
    return "run", m.attempt, self:key(m.command)
  end
  -- backoff
  if m.due > self.t.now_ms then
    self:suspend("retry", name, m.due, m.last.seq)
    return "wait"
  end
  self.replaying = false
  self:put_event { type = "step_started", name = name, attempt = m.attempt + 1 }
  return "run", m.attempt + 1, self:key(m.command)
end

function Act:step_done(name, attempt, text)
  self:check_sticky()
  self:put_event { type = "step_completed", name = name, attempt = attempt, payload = text }
  self.t.steps_completed = self.t.steps_completed + 1
end

function Act:step_failed(name, attempt, msg, code, fatal, wf_retry, step_retry)
  self:check_sticky()
  local wf = policy(wf_retry, DEFAULT_POLICY)
  local p = policy(step_retry, wf)
  local verdict, delay = retry_next(p, attempt, code, fatal)
  local ev = { type = "step_failed", name = name, attempt = attempt, error = msg }
  if verdict == "again" then
    ev.due_ms = self.t.now_ms + delay
  else
    ev.fatal = true
  end
  self:put_event(ev)
  self.t.attempts_failed = self.t.attempts_failed + 1
  if verdict == "again" then
    self:suspend("retry", name, ev.due_ms, ev.seq)
    return "wait"
  end
  return "failed", final_message(name, attempt, msg)
end

function Act:sleep(ms)
  self:check_sticky()
  local cs = self:cancel_due()
  if cs and self:cancel_before_record(cs) then return self:deliver_cancel(false) end
  local m = self:next("timer", "")
  local now = self.t.now_ms
  if m == nil then
    if ms < 0 then ms = 0 end
    local ev = self:put_event { type = "timer_started", name = "", due_ms = now + ms }
    self:suspend("sleep", "", ev.due_ms, ev.seq)
    self.new_commands = self.new_commands + 1
    return "wait"
  end
  if cs and m.state ~= "pending" and m.last.seq > cs then return self:deliver_cancel(false) end
  if cs and m.state == "pending" then
    self:cancel_timer(m)
    return self:deliver_cancel(false)
  end
  if m.state == "done" or m.state == "cancelled" then return "done" end
  if m.due > now then
    self:suspend("sleep", "", m.due, m.first.seq)
    return "wait"
  end
  self.replaying = false
  self:put_event { type = "timer_fired", name = "" }
  return "done"
end

function Act:wait_signal(name, timeout_ms)
  self:check_sticky()
  if #name == 0 or #name > NAMEMAX then
    error(string.format("signal name: must be 1 to %d bytes, got %d", NAMEMAX, #name), 0)
  end
  local cur, cs = self.cur, self:cancel_due()
  if timeout_ms < 0 then
    -- no timeout: no record of its own; it takes the next signal
    if cs then
      local s = cur:take_signal(name, cs)
      if s then return "done", s.last.payload end
      return self:deliver_cancel(true)
    end
    local m = self:next("signal", name)
    if m then return "done", m.last.payload end
    self:suspend("signal", name, 0, 0)
    return "wait"
  end
  -- with a timeout: a timer "signal:NAME" whose record says which came first
  local tname = "signal:" .. name
  if cs and self:cancel_before_record(cs) then return self:deliver_cancel(true) end
  local m = self:next("timer", tname)
  local now = self.t.now_ms
  if m == nil then
    local s = cur:take_signal(name, math.huge)
    local ev = self:put_event { type = "timer_started", name = tname, due_ms = now + timeout_ms }
    self.new_commands = self.new_commands + 1
    if s then
      self:put_event { type = "timer_cancelled", name = tname }
      return "done", s.last.payload
    end
    self:suspend("signal", name, ev.due_ms, ev.seq)
    return "wait"
  end
  if cs and m.state ~= "pending" and m.last.seq > cs then return self:deliver_cancel(true) end
  if m.state == "done" then return "timeout" end
  if m.state == "cancelled" then
    local s = cur:take_signal(name, m.last.seq)
    if s == nil then
      local msg = string.format('run %s: history shows signal "%s" won its wait, but holds no such signal',
        self.t.id, name)
      self:fail_sticky(msg, false)
      error(msg, 0)
    end
    return "done", s.last.payload
  end
  -- pending: decide now; a cancellation comes first, then a signal
  if cs then
    self:cancel_timer(m)
    return self:deliver_cancel(true)
  end
  local s = cur:take_signal(name, math.huge)
  if s then
    self:cancel_timer(m)
    return "done", s.last.payload
  end
  if m.due > now then
    self:suspend("signal", name, m.due, m.first.seq)
    return "wait"
  end
  self.replaying = false
  self:put_event { type = "timer_fired", name = tname }
  return "timeout"
end

function Act:side_effect(kind, value)
  local m = self:next("side effect", kind)
  if m == nil then
    self:put_event { type = "side_effect_recorded", name = kind, payload = value }
    self.new_commands = self.new_commands + 1
    return value
  end
  return m.last.payload
end

function Act:set_status(text)
  self:check_sticky()
  if self.verify then
    self.verify.custom = text
  else
    self.t._custom = text
  end
end

function Act:end_run(ev, status)
  self:put_event(ev)
  self.ended, self.end_status, self.end_ev = true, status, ev
  self.waiting = nil
end

function Act:complete(output)
  if self.sticky ~= nil and self.sticky_nondet then return self:fail(nil) end
  self:check_sticky()
  local st, msg = self.cur:finish()
  if st ~= "ok" then
    msg = "run " .. self.t.id .. ": " .. msg
    self:fail_sticky(msg, st == "nondet")
    if st == "nondet" then return self:fail(nil) end
    error(msg, 0)
  end
  self.replaying = false
  if self.cancel_delivered then return self:cancelled() end
  if output == nil or output == "" then output = "null" end
  self:end_run({ type = "workflow_completed", payload = output }, "completed")
end

function Act:cancelled()
  if not self.cancel_delivered then error("no cancellation was delivered to this run", 0) end
  if self.ended then error("the run has ended", 0) end
  local c = self.cur.cancel
  self.replaying = false
  self:end_run({ type = "workflow_cancelled", name = c.name, error = c.error }, "cancelled")
end

function Act:fail(msg, trace)
  if self.ended then error("the run has ended", 0) end
  if self.sticky ~= nil and self.sticky_nondet then
    msg = self.sticky -- whatever the code raised, the cause is the divergence
  end
  self.sticky, self.sticky_nondet, self.replaying = nil, nil, false
  self:end_run({ type = "workflow_failed", error = msg or "", traceback = trace }, "failed")
end

function Act:secret(name)
  local v = self.t._secrets[name]
  if v == nil then
    error(string.format('secret "%s" is not set (lodestone secret set %s)', name, name), 0)
  end
  return v
end

function Act:log(level, msg)
  if self.verify or (self.replaying and level < LOG_WARN) then return end
  local logs = self.t.logs
  logs[#logs + 1] = msg
end

-- lodestone.flowrt as the driver sees it: every call takes the activation.
local FLOWRT = { DEBUG = 0, INFO = 1, WARN = LOG_WARN, ERROR = 4 }
for _, fn in ipairs({ "step", "step_done", "step_failed", "sleep", "wait_signal", "set_status",
                      "cancelled", "side_effect", "complete", "fail", "secret", "log" }) do
  FLOWRT[fn] = function(a, ...) return Act[fn](a, ...) end
end
FLOWRT.input = function(a) return a.cur.ev[1].payload or "null" end
FLOWRT.name = function(a) return a.t.id end
FLOWRT.abandon = function(a) a.abandoned = true end
FLOWRT.replaying = function(a) return a.replaying end
FLOWRT.parked = function() return false end  -- every write is "durable" at once
FLOWRT.check = function() end
FLOWRT.interrupted = function() return false end
FLOWRT.deadline = function() end             -- step timeouts are not enforced
FLOWRT.deadline_left = function() return nil end
-- wall_ms, random and uuid take no activation: the one being run. The
-- driver asks for a fresh value before it knows whether history holds
-- one: when it does, the sequences are not advanced, so that the values
-- a run sees do not depend on how often it was replayed.
local current
local function recorded(kind)
  local c = current.cur
  local i = c:next_command(c.pos)
  return not c.failed and i <= c.n and c.ev[i].type == "side_effect_recorded" and c.ev[i].name == kind
end
FLOWRT.wall_ms = function() return current.t.now_ms end
FLOWRT.random = function()
  if recorded("random") then return 0 end
  return current.t:_random()
end
FLOWRT.uuid = function()
  if recorded("uuid") then return "00000000-0000-4000-8000-000000000000" end
  return current.t:_uuid()
end
M._flowrt = FLOWRT

-- ---------------------------------------------------------------------
-- Steps: stubs, call counts and s.http

local HTTP_METHODS = { "get", "post", "put", "patch", "delete" }

-- s.http for one step: the test's stub (a function for every step, or a
-- table of functions by step name), else an error that fails the step.
local function step_http(t, step)
  local stub = t._http
  if type(stub) == "table" then stub = stub[step] end
  local function request(req)
    if type(req) ~= "table" then error("http.request: expects a table", 2) end
    local method = string.upper(req.method or "GET")
    local url = req.url
    if stub == nil then
      error(workflow.fatal(string.format("http %s %s: HTTP is not available in tests: stub it " ..
        "(testing.run(..., { http = function(req) return { status = 200, json = {...} } end }))",
        method, tostring(url))), 2)
    end
    local r = { step = step, method = method, url = url, headers = req.headers or {},
                json = req.json, body = req.body, timeout = req.timeout }
    t.requests[#t.requests + 1] = r
    local res = stub(r)
    if type(res) ~= "table" then
      error(string.format("http %s %s: the http stub returned a %s, not a response table",
        method, tostring(url), type(res)), 2)
    end
    res.status = res.status or 200
    res.headers = res.headers or {}
    if res.body == nil then res.body = res.json ~= nil and json.encode(res.json) or "" end
    return res
  end
  local h = { request = request }
  for _, m in ipairs(HTTP_METHODS) do
    h[m] = function(url, opts)
      local r = {}
      for k, v in pairs(opts or {}) do r[k] = v end
      r.method, r.url = m, url
      return request(r)
    end
  end
  return h
end

-- Gives this activation's ctx a step() that counts real runs of a step's
-- function, applies the stubs and hands the step the test's s.http. The
-- call to the real ctx:step is a tail call, so its errors still point at
-- the workflow's line.
local function instrument(t, ctx)
  local base = getmetatable(ctx).step
  ctx.step = function(self, name, fn, opts)
    if type(name) == "string" and type(fn) == "function" then
      local real = fn
      fn = function(s)
        t._calls[name] = (t._calls[name] or 0) + 1
        s.http = step_http(t, name)
        local stub = t._stubs[name]
        if stub == nil then return real(s) end
        if type(stub) == "function" then return stub(s) end
        return stub
      end
    end
    return base(self, name, fn, opts)
  end
end

-- ---------------------------------------------------------------------
-- A run

local Run = {}
Run.__index = Run

local function render(e)
  local o = { seq = e.seq, type = e.type, time = iso_ms(e.time_ms) }
  local ty = e.type
  if ty == "workflow_started" then
    o.input = decode(e.payload)
  elseif ty == "step_started" then
    o.name, o.attempt = e.name, e.attempt
  elseif ty == "step_completed" then
    o.name, o.attempt, o.result = e.name, e.attempt, decode(e.payload)
  elseif ty == "step_failed" then
    o.name, o.attempt, o.error = e.name, e.attempt, e.error
    if e.fatal then o.final = true else o.retry_at = iso_ms(e.due_ms) end
  elseif ty == "timer_started" then
    o.name, o.due_at = e.name, iso_ms(e.due_ms)
  elseif ty == "timer_fired" or ty == "timer_cancelled" then
    o.name = e.name
  elseif ty == "side_effect_recorded" then
    o.name, o.value = e.name, decode(e.payload)
  elseif ty == "signal_received" then
    o.name, o.payload = e.name, decode(e.payload)
  elseif ty == "workflow_completed" then
    o.output = decode(e.payload)
  elseif ty == "workflow_failed" then
    o.error, o.traceback = e.error, e.traceback
  else -- cancel_requested, workflow_cancelled, workflow_terminated
    o.reason = e.error or ""
    if e.name and e.name ~= "" then o.by = e.name end
  end
  return o
end

-- Refreshes the public fields from the internal state.
function Run:_publish()
  local h = {}
  for i, e in ipairs(self._events) do h[i] = render(e) end
  self.history = h
  self.now = self.now_ms / 1000
  local cs = self._custom and decode(self._custom)
  if cs == json.null then cs = nil end
  self.custom_status = cs
  local w = self._wait
  if self.status == "running" and w then
    self.waiting = { kind = w.kind, name = w.name }
    if w.due_ms and w.due_ms > 0 then self.waiting.due_at = iso_ms(w.due_ms) end
  else
    self.waiting = nil
  end
end

-- One activation, as lodestoned runs it: the inbox joins history (a
-- terminate ends the run without its code), then the workflow's code is
-- replayed from the start. verify: a replay check (see Run:replay).
function Run:_activate(verify)
  local terminate
  if not verify then
    for _, e in ipairs(self._inbox) do
      if e.type == "workflow_terminated" then
        terminate = terminate or e
      else
        e.seq = #self._events + 1
        self._events[e.seq] = e
      end
    end
    self._inbox = {}
  end
  local n = #self._events
  local a = setmetatable({ t = self, cur = new_cursor(self._events, n), replaying = n > 1,
                           new_commands = 0, verify = verify }, Act)
  if terminate and not a.cur.closed then
    a.replaying = false
    a:end_run({ type = "workflow_terminated", name = terminate.name, error = terminate.error },
      "terminated")
  else
    local prev, prev_act = package.loaded["lodestone.flowrt"], current
    package.loaded["lodestone.flowrt"], current = FLOWRT, a
    local ok, err = pcall(workflow._activate, self._def, a)
    package.loaded["lodestone.flowrt"], current = prev, prev_act
    if not ok and not a.ended then
      -- the driver itself failed: fail the run with the message
      pcall(a.fail, a, tostring(err))
    end
    if not a.ended and not a.waiting and not a.abandoned then
      pcall(a.fail, a, "the runner returned without an outcome")
    end
  end
  if verify then return a end
  self.activations = self.activations + 1
  if a.ended then
    local ev = a.end_ev
    self.status = a.end_status
    self._wait = nil
    if a.end_status == "completed" then
      local out = decode(ev.payload)
      if out == json.null then out = nil end
      self.output = out
    elseif a.end_status == "failed" then
      self.error, self.traceback = ev.error, ev.traceback
    else
      self.reason, self.by = ev.error or "", ev.name
    end
  else
    self._wait = a.waiting
  end
  return a
end

local function guard(count)
  if count > MAX_ACTIVATIONS then
    error(string.format("testing: the run was activated more than %d times in one call " ..
      "(an endless retry or loop of timers?)", MAX_ACTIVATIONS), 0)
  end
end

-- Fires what is due now; with auto_advance, jumps to every sleep's and
-- retry's due time too (never to a signal wait's timeout).
function Run:_settle()
  local count = 0
  while self.status == "running" and self._wait and (self._wait.due_ms or 0) > 0 do
    local w = self._wait
    if w.due_ms > self.now_ms then
      if not self.auto_advance or w.kind == "signal" then break end
      self.now_ms = w.due_ms
    end
    count = count + 1
    guard(count)
    self:_activate()
  end
end

function Run:_random()
  local r = self._rand
  if type(r) == "function" then
    local v = r()
    if type(v) ~= "number" or v < 0 or v >= 1 then
      error("testing: the random option returned " .. tostring(v) .. ", not a number in [0, 1)", 0)
    end
    return v
  end
  self._seed = self._seed * 16807 % 2147483647 -- Park-Miller: the same sequence every run
  return self._seed / 2147483647
end

function Run:_uuid()
  self._uuids = self._uuids + 1
  return string.format("00000000-0000-4000-8000-%012d", self._uuids)
end

function Run:_running(what)
  if self.status ~= "running" then
    error(string.format("%s: run %s has finished (%s)", what, self.id, self.status), 3)
  end
end

--- t:signal(name, payload): sends a signal (any JSON value; nil is null)
--- and runs the workflow until it waits again or ends.
function Run:signal(name, payload)
  check_name(name, "t:signal: name", 2)
  local text = encode(payload, "t:signal: payload", 2)
  self:_running("t:signal")
  self._inbox[#self._inbox + 1] = { type = "signal_received", name = name, payload = text,
                                  time_ms = self.now_ms }
  self:_activate()
  self:_settle()
  self:_publish()
  return self
end

--- t:cancel(reason, by): requests cancellation, delivered at the run's next
--- ctx:step, ctx:sleep or ctx:wait_signal; runs until it waits or ends.
function Run:cancel(reason, by)
  reason = check_text(reason, "t:cancel: reason", 2)
  by = check_text(by or "test", "t:cancel: by", 2)
  self:_running("t:cancel")
  self._inbox[#self._inbox + 1] = { type = "cancel_requested", name = by, error = reason,
                                  time_ms = self.now_ms }
  self:_activate()
  self:_settle()
  self:_publish()
  return self
end

--- t:terminate(reason, by): ends the run at once; no more of its code runs.
function Run:terminate(reason, by)
  reason = check_text(reason, "t:terminate: reason", 2)
  by = check_text(by or "test", "t:terminate: by", 2)
  self:_running("t:terminate")
  self._inbox[#self._inbox + 1] = { type = "workflow_terminated", name = by, error = reason }
  self:_activate()
  self:_publish()
  return self
end

--- t:advance(d): moves virtual time forward by d (seconds or "10s", "3d"),
--- firing every timer, retry and signal timeout that falls due on the way,
--- each at its own due time.
function Run:advance(d)
  local ms = workflow.duration_ms(d, "t:advance")
  local target = self.now_ms + ms
  local count = 0
  while self.status == "running" and self._wait and (self._wait.due_ms or 0) > 0
    and self._wait.due_ms <= target do
    if self._wait.due_ms > self.now_ms then self.now_ms = self._wait.due_ms end
    count = count + 1
    guard(count)
    self:_activate()
  end
  if target > self.now_ms then self.now_ms = target end
  self:_settle()
  self:_publish()
  return self
end

--- t:stub(name, fn_or_value): replaces (nil: removes) the stub of a step.
function Run:stub(name, v)
  check_name(name, "t:stub: name", 2)
  self._stubs[name] = v
  return self
end

--- t:steps(): the names of the completed steps, in order.
function Run:steps()
  local names = {}
  for _, e in ipairs(self._events) do
    if e.type == "step_completed" then names[#names + 1] = e.name end
  end
  return names
end

--- t:calls(name): how many times the step's function (or its stub) ran.
function Run:calls(name)
  return self._calls[name] or 0
end

--- t:events(type): the history events of one type, in order.
function Run:events(ty)
  local out = {}
  for _, e in ipairs(self.history) do
    if e.type == ty then out[#out + 1] = e end
  end
  return out
end

local function describe_wait(w)
  if not w then return "nothing" end
  local s = w.kind .. (w.name ~= "" and (' "' .. w.name .. '"') or "")
  if w.due_ms and w.due_ms > 0 then s = s .. " due " .. iso_ms(w.due_ms) end
  return s
end

--- t:replay(): replays the whole history in a fresh activation, as a
--- restart of lodestoned would, and raises unless it replays cleanly: no
--- non-determinism, no step function run again, nothing written, and the
--- same place (the same wait, or the same end: output, error, status).
function Run:replay()
  local before = {}
  for k, v in pairs(self._calls) do before[k] = v end
  local v = {}
  local a = self:_activate(v)
  local function fail(msg) error("testing: replay of run " .. self.id .. ": " .. msg, 3) end
  if a.nondet then fail(a.nondet) end
  if v.diverged then fail(v.diverged) end
  for k, n in pairs(self._calls) do
    if n ~= (before[k] or 0) then fail(string.format('step "%s" ran again', k)) end
  end
  local st = self.status
  if st == "running" then
    if a.ended then fail("the replay ended " .. a.end_status .. ", the run is running") end
    local w, rw = a.waiting, self._wait
    if not w or not rw or w.kind ~= rw.kind or w.name ~= rw.name or (w.due_ms or 0) ~= (rw.due_ms or 0) then
      fail("the replay waits for " .. describe_wait(w) .. ", the run waits for " .. describe_wait(rw))
    end
  elseif st ~= "terminated" then
    local ev = v.end_ev
    if not ev then fail("the replay did not end, the run ended " .. st) end
    if a.end_status ~= st then fail("the replay ended " .. a.end_status .. ", the run ended " .. st) end
    local rec = self._events[#self._events]
    if st == "completed" and ev.payload ~= rec.payload then
      fail("the replay returned " .. ev.payload .. ", the run returned " .. rec.payload)
    elseif st == "failed" and ev.error ~= rec.error then
      fail(string.format("the replay failed with %q, the run failed with %q", ev.error, rec.error))
    end
  end
  if v.custom ~= nil and v.custom ~= self._custom then
    fail("the replay left the custom status " .. v.custom .. ", the run shows " .. tostring(self._custom))
  end
  return true
end

-- ---------------------------------------------------------------------
-- testing.run

local OPTIONS = { input = true, id = true, now = true, stubs = true, secrets = true, http = true,
                  auto_advance = true, random = true, workflow = true }
local OPTION_LIST = "auto_advance, http, id, input, now, random, secrets, stubs, workflow"

local function load_definition(wf, level)
  if workflow.is_workflow(wf) then return wf end
  if type(wf) ~= "string" then
    error("testing.run: expects the path of a workflow file or a workflow.define{...} result, got a "
      .. type(wf), level + 1)
  end
  local chunk, err = loadfile(wf)
  if not chunk then error("testing.run: " .. tostring(err), level + 1) end
  local ok, def = pcall(chunk)
  if not ok then error("testing.run: " .. wf .. ": " .. tostring(def), level + 1) end
  if not workflow.is_workflow(def) then
    error("testing.run: " .. wf .. ": does not return workflow.define{...}", level + 1)
  end
  return def
end

--- testing.run(workflow, opts) -> t: starts a run of workflow (a file's
--- path or a definition) and runs it until it waits or ends. Also
--- testing.run{ workflow = ..., ... }. Options: input, id ("run-1"), now
--- (seconds since the epoch, 1700000000), stubs ({step = fn(s) | value}),
--- secrets ({name = value}), http (fn(req) -> response, or {step = fn}),
--- auto_advance (fire sleeps and retries at once), random (fn -> [0, 1)).
function M.run(wf, opts)
  if opts == nil and type(wf) == "table" and not workflow.is_workflow(wf) then
    opts, wf = wf, wf.workflow
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("testing.run: opts must be a table", 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      error("testing.run: unknown option " .. tostring(k) .. " (known: " .. OPTION_LIST .. ")", 2)
    end
  end
  local def = load_definition(wf, 2)
  local id = opts.id or "run-1"
  check_name(id, "testing.run: id", 2)
  if not id:match("^[%w._:@-]+$") then
    error("testing.run: id: only letters, digits and . _ : @ - are allowed, got " .. string.format("%q", id), 2)
  end
  local now = opts.now or DEFAULT_NOW
  if type(now) ~= "number" or now ~= now or now < 0 or now == math.huge then
    error("testing.run: now: must be seconds since the epoch (a number), got " .. tostring(now), 2)
  end
  for _, f in ipairs({ "stubs", "secrets" }) do
    if opts[f] ~= nil and type(opts[f]) ~= "table" then
      error("testing.run: " .. f .. ": must be a table, got a " .. type(opts[f]), 2)
    end
  end
  for name, v in pairs(opts.secrets or {}) do
    if type(v) ~= "string" then
      error("testing.run: secrets." .. tostring(name) .. ": must be a string, got a " .. type(v), 2)
    end
  end
  local h = opts.http
  if h ~= nil and type(h) ~= "function" and type(h) ~= "table" then
    error("testing.run: http: must be a function(req) or a table of them by step name, got a " .. type(h), 2)
  end
  if type(h) == "table" then
    for name, f in pairs(h) do
      if type(f) ~= "function" then
        error("testing.run: http." .. tostring(name) .. ": must be a function(req), got a " .. type(f), 2)
      end
    end
  end
  if opts.random ~= nil and type(opts.random) ~= "function" then
    error("testing.run: random: must be a function returning a number in [0, 1), got a " .. type(opts.random), 2)
  end
  if opts.auto_advance ~= nil and type(opts.auto_advance) ~= "boolean" then
    error("testing.run: auto_advance: must be a boolean, got a " .. type(opts.auto_advance), 2)
  end
  local input = encode(opts.input, "testing.run: input", 2)

  local t = setmetatable({
    id = id, type = def.name, status = "running", definition = def,
    steps_completed = 0, attempts_failed = 0, activations = 0,
    logs = {}, requests = {}, _events = {}, _inbox = {},
    _stubs = {}, _secrets = {}, _http = h, auto_advance = opts.auto_advance or false,
    now_ms = math.floor(now * 1000 + 0.5), _calls = {}, _rand = opts.random, _seed = 42, _uuids = 0,
  }, Run)
  for k, v in pairs(opts.stubs or {}) do t._stubs[k] = v end
  for k, v in pairs(opts.secrets or {}) do t._secrets[k] = v end
  -- the definition the driver sees: the same, with an instrumented ctx
  local d = setmetatable({}, getmetatable(def))
  for k, v in pairs(def) do d[k] = v end
  d.run = function(ctx, inp)
    instrument(t, ctx)
    return def.run(ctx, inp)
  end
  t._def = d
  t._events[1] = { seq = 1, type = "workflow_started", time_ms = t.now_ms, payload = input }
  t:_activate()
  t:_settle()
  t:_publish()
  return t
end

return M
