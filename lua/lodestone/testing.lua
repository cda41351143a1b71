-- SPDX-License-Identifier: MIT
-- lodestone.testing: run a workflow inside busted (or any Lua) with an
-- in-memory history and virtual time, through the driver lodestoned uses
-- (workflow._activate, here over lodestone.testing.engine, a Lua port of
-- the engine's activation calls): every activation replays the run from
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
local engine = require("lodestone.testing.engine")
local json = core.json

local M = {}

local NAMEMAX = 200              -- LS_FLOW_NAMEMAX: run ids, signal names
local MAX_ACTIVATIONS = 1000     -- per call: an endless retry or sleep loop stops here
local DEFAULT_NOW = 1700000000   -- 2023-11-14T22:13:20Z

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

-- A control character as lodestoned refuses them in names and notes: C0,
-- DEL, and C1 (U+0080 to U+009F, "\194\128" to "\194\159" in UTF-8).
local function has_control(v)
  return v:find("%c") ~= nil or v:find("\194[\128-\159]") ~= nil
end

local function check_name(v, what, level)
  if type(v) ~= "string" or #v == 0 or #v > NAMEMAX then
    error(string.format("%s: must be a string of 1 to %d bytes, got %s", what, NAMEMAX,
      type(v) == "string" and string.format("%q", v) or tostring(v)), level + 1)
  end
  if has_control(v) then error(what .. ": control characters are not allowed", level + 1) end
end

local function check_text(v, what, level)
  if v == nil then return "" end
  if type(v) ~= "string" then error(what .. ": must be a string, got a " .. type(v), level + 1) end
  if has_control(v) then error(what .. ": control characters are not allowed", level + 1) end
  return v
end

-- ---------------------------------------------------------------------
-- Steps: stubs, call counts and s.http

M._flowrt = engine.FLOWRT -- what the driver sees as lodestone.flowrt during an activation

local HTTP_METHODS = { "get", "post", "put", "patch", "delete" }

-- A URL as lodestone.httpc's messages show it: no user information, and
-- "?..." for a query or a fragment (they may hold credentials).
local function shown_url(url)
  if type(url) ~= "string" then return tostring(url) end
  local scheme, rest = url:match("^(%a[%w+.-]*://)(.*)$")
  if not scheme then scheme, rest = "", url end
  local authority = rest:match("^[^/?#]*")
  rest = (authority:match("^.*@(.*)$") or authority) .. rest:sub(#authority + 1)
  local path = rest:match("^[^?#]*")
  return scheme .. path .. (#path < #rest and "?..." or "")
end

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
        method, shown_url(url))), 2)
    end
    local r = { step = step, method = method, url = url, headers = req.headers or {},
                json = req.json, body = req.body, timeout = req.timeout }
    t.requests[#t.requests + 1] = r
    local res = stub(r)
    if type(res) ~= "table" then
      error(string.format("http %s %s: the http stub returned a %s, not a response table",
        method, shown_url(url), type(res)), 2)
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
    if e.fatal then
      o.final = true
    elseif e.paused then
      o.paused = true
    else
      o.retry_at = iso_ms(e.due_ms)
    end
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
  elseif ty == "child_started" then
    o.name, o.workflow = e.name, decode(e.payload).type
    if e.detached then o.detached = true end
  elseif ty == "child_completed" then
    o.name, o.output = e.name, decode(e.payload)
  elseif ty == "child_failed" then
    o.name, o.error = e.name, e.error
  elseif ty == "resumed" then
    if e.name and e.name ~= "" then o.by = e.name end
  else -- cancel_requested, workflow_cancelled, workflow_terminated
    o.reason = e.error or ""
    if e.name and e.name ~= "" then o.by = e.name end
  end
  return o
end

-- Refreshes the public fields from the internal state.
function Run:_publish()
  local h = {}
  for i, e in ipairs(self._events) do
    if i > (self._fork or 0) then h[#h + 1] = render(e) end -- a branch run's own
  end
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
  local a = engine.activate(self, self._def, terminate, verify)
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
    self:_ended(ev)
  else
    self._wait = a.waiting
  end
  return a
end

-- The run ended (with end event ev): its parent's inbox gets the end
-- (child_completed, or child_failed "STATUS: why"), and its children that
-- have not ended and are not detached are asked to cancel (act.c's
-- notify_parent and cancel_children).
function Run:_ended(ev)
  local env, p = self._env, self._parent
  if p then
    local e = { name = self.id, time_ms = env.now_ms }
    if self.status == "completed" then
      e.type, e.payload = "child_completed", ev.payload
    else
      local why = ev.error or ""
      e.type, e.error = "child_failed", self.status .. (why ~= "" and (": " .. why:sub(1, 150)) or "")
    end
    p._inbox[#p._inbox + 1] = e
    env:wake(p)
  end
  local ended = {}
  for _, e in ipairs(self._events) do
    if e.type == "child_completed" or e.type == "child_failed" then ended[e.name] = true end
  end
  for _, e in ipairs(self._events) do
    local id = e.type == "child_started" and e.seq > (self._fork or 0) -- not the parent's, copied
      and e.name:sub(engine.scope_len(e.name) + 1) -- a branch's too
    local kid = id and not e.detached and not ended[id] and env.by_id[id]
    if kid and kid.status == "running" then
      kid._inbox[#kid._inbox + 1] = { type = "cancel_requested", name = self.id,
                                      error = "its parent run ended", time_ms = env.now_ms }
      env:wake(kid)
    end
  end
end

-- Whether child `id` of run self was started before: true; nil and a
-- message when the id is another run's; false when it is free.
local function existing_child(self, id)
  local existing = self._env.by_id[id]
  if existing == nil then return false end
  if existing._parent ~= self then
    return nil, string.format('a run with id "%s" exists and is not a child of this run', id)
  end
  return true
end

-- Starts child run `id` of workflow type wtype (engine.lua's child_start):
-- true, or nil and the engine's message.
function Run:_start_child(wtype, id, input, detached)
  local env = self._env
  local problem = workflow._type_name_problem(wtype)
  if problem then return nil, "workflow type: " .. problem end -- (the engine's check, first)
  local def = env.types[wtype]
  if def == nil then
    local known = {}
    for name in pairs(env.types) do known[#known + 1] = name end
    table.sort(known)
    return nil, string.format('unknown workflow type "%s"; known types: %s', wtype:sub(1, 100),
      #known > 0 and table.concat(known, ", ") or "(none)")
  end
  local known, msg = existing_child(self, id)
  if known ~= false then return known, msg end
  if #id > NAMEMAX or not id:match("^[%w._:@-]+$") then
    return nil, string.format("id: must be 1 to %d of letters, digits and . _ : @ -, got %q", NAMEMAX, id)
  end
  local kid = env:new_run(def, id, input)
  kid._parent, kid.parent, kid.detached = self, self.id, detached or nil
  env:wake(kid)
  return true
end

-- Starts branch run `id` of scope (engine.lua's branch_start): a child run
-- of this run's definition whose history is a copy of this run's, which
-- replays the code up to the ctx:all and runs that branch alone.
function Run:_start_branch(id, scope, fork)
  local env = self._env
  local known, msg = existing_child(self, id)
  if known ~= false then return known, msg end
  if #id > NAMEMAX then
    return nil, string.format("id: must be 1 to %d characters, got %d", NAMEMAX, #id)
  end
  local kid = env:new_run(self.definition, id, nil)
  kid._events = {}
  for i = 1, fork do
    local copy = {}
    for k, v in pairs(self._events[i]) do copy[k] = v end
    kid._events[i] = copy
  end
  kid._parent, kid.parent, kid._branch, kid._fork = self, self.id, scope, fork
  kid.branch = scope
  kid:_publish()
  env:wake(kid)
  return true
end

local function guard(count)
  if count > MAX_ACTIVATIONS then
    error(string.format("testing: more than %d activations in one call " ..
      "(an endless retry or loop of timers?)", MAX_ACTIVATIONS), 0)
  end
end

-- ---------------------------------------------------------------------
-- The environment: one virtual clock, the run and its children, the
-- workflow types children can use, and the runs waiting to be activated
-- (lodestoned's queue and timer thread).

local Env = {}
Env.__index = Env

function Env:set_now(ms)
  self.now_ms = ms
  for _, r in ipairs(self.runs) do r.now_ms = ms end
end

function Env:wake(run)
  if not run._queued then
    run._queued = true
    self.queue[#self.queue + 1] = run
  end
end

-- The running run whose wait falls due first (ties: the oldest run).
function Env:next_due()
  local best
  for _, r in ipairs(self.runs) do
    local w = r.status == "running" and r._wait
    if w and (w.due_ms or 0) > 0 and (best == nil or w.due_ms < best._wait.due_ms) then best = r end
  end
  return best
end

-- Activates the runs woken meanwhile and those due by now, until quiet.
function Env:drain(count)
  while true do
    local r = table.remove(self.queue, 1)
    if r then r._queued = false end
    if r == nil then
      r = self:next_due()
      if r == nil or r._wait.due_ms > self.now_ms then return count end
    end
    if r.status == "running" then
      count = count + 1
      guard(count)
      r:_activate()
    end
  end
end

-- drain; with auto_advance, the clock then jumps to the next sleep or
-- retry due, but stops before a signal wait's timeout.
function Env:settle(count)
  count = self:drain(count or 0)
  while self.auto_advance do
    local r = self:next_due()
    if r == nil or r._wait.kind == "signal" then break end
    self:set_now(r._wait.due_ms)
    count = self:drain(count)
  end
  for _, run in ipairs(self.runs) do run:_publish() end
end

-- Moves the clock by ms, firing every wait that falls due on the way at
-- its own time, then settles.
function Env:advance(ms)
  local target = self.now_ms + ms
  local count = self:drain(0)
  while true do
    local r = self:next_due()
    if r == nil or r._wait.due_ms > target then break end
    if r._wait.due_ms > self.now_ms then self:set_now(r._wait.due_ms) end
    count = self:drain(count)
  end
  if target > self.now_ms then self:set_now(target) end
  self:settle(count)
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
  -- what lodestoned's API refuses (ls_flow_signal), in its words
  local bad = type(name) == "string" and #name > 0 and engine.signal_name_problem(name)
  if bad then error("t:signal: " .. bad, 2) end
  check_name(name, "t:signal: name", 2)
  local text = encode(payload, "t:signal: payload", 2)
  self:_running("t:signal")
  self._inbox[#self._inbox + 1] = { type = "signal_received", name = name, payload = text,
                                    time_ms = self.now_ms }
  self._env:wake(self)
  self._env:settle()
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
  self._env:wake(self)
  self._env:settle()
  return self
end

--- t:terminate(reason, by): ends the run at once; no more of its code runs.
function Run:terminate(reason, by)
  reason = check_text(reason, "t:terminate: reason", 2)
  by = check_text(by or "test", "t:terminate: by", 2)
  self:_running("t:terminate")
  self._inbox[#self._inbox + 1] = { type = "workflow_terminated", name = by, error = reason }
  self._env:wake(self)
  self._env:settle()
  return self
end

--- t:resume(by): resumes a run that a step paused (on_exhausted =
--- "pause"): the step gets a new round of attempts; runs until it waits or
--- ends. Raises when the run is not paused.
function Run:resume(by)
  by = check_text(by or "test", "t:resume: by", 2)
  self:_running("t:resume")
  if not (self.waiting and self.waiting.kind == "paused") then
    error(string.format("t:resume: run %s is not paused", self.id), 2)
  end
  self._inbox[#self._inbox + 1] = { type = "resumed", name = by, time_ms = self.now_ms }
  self._env:wake(self)
  self._env:settle()
  return self
end

--- t:advance(d): moves virtual time forward by d (seconds or "10s", "3d"),
--- firing every timer, retry and signal timeout that falls due on the way
--- (of this run and its children), each at its own due time.
function Run:advance(d)
  self._env:advance(workflow.duration_ms(d, "t:advance"))
  return self
end

--- t:child(id): the child run `id` (started with ctx:child or
--- ctx:start_child), a run like t.
function Run:child(id)
  local kid = self._env.by_id[id]
  if kid == nil or kid._parent ~= self then
    error(string.format("t:child: run %s has no child %q", self.id, tostring(id)), 2)
  end
  return kid
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
  for i, e in ipairs(self._events) do
    if e.type == "step_completed" and i > (self._fork or 0) then names[#names + 1] = e.name end
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
                  auto_advance = true, random = true, workflow = true, workflows = true }
local OPTION_LIST = "auto_advance, http, id, input, now, random, secrets, stubs, workflow, workflows"

-- def's name checked as lodestoned checks a loaded file's (the code may
-- have changed it after workflow.define): an error at level otherwise.
local function check_type_name(def, where, level)
  local problem = workflow._type_name_problem(def.name)
  if problem then error("testing.run: " .. where .. "workflow.define: name: " .. problem, level + 1) end
end

local function load_definition(wf, level)
  if workflow.is_workflow(wf) then
    check_type_name(wf, "", level + 1) -- (not a tail call: levels count frames)
    return wf
  end
  if type(wf) ~= "string" then
    error("testing.run: expects the path of a workflow file or a workflow.define{...} result, got a "
      .. type(wf), level + 1)
  end
  -- globals of its own, as lodestoned loads it: one the file sets stays in
  -- them (reads fall through to the real ones)
  local env = setmetatable({}, { __index = _G })
  env._G = env -- _G["name"] finds the file's own globals, as in lodestoned
  local chunk, err
  if setfenv then
    chunk, err = loadfile(wf)
    if chunk then setfenv(chunk, env) end
  else
    chunk, err = loadfile(wf, "bt", env)
  end
  if not chunk then error("testing.run: " .. tostring(err), level + 1) end
  local ok, def = pcall(chunk)
  if not ok then error("testing.run: " .. wf .. ": " .. tostring(def), level + 1) end
  if not workflow.is_workflow(def) then
    error("testing.run: " .. wf .. ": does not return workflow.define{...}", level + 1)
  end
  check_type_name(def, wf .. ": ", level + 1)
  return def
end

-- The workflow types child runs can use: the run's own, and those of the
-- workflows option (a directory of workflow files, or a table: list items
-- are files or definitions, keys name a type: a file, a definition, or a
-- function(ctx, input) used as its run).
local function load_types(spec, def, level)
  local types = { [def.name] = def }
  if spec == nil then return types end
  local function add(v, key)
    local d
    if type(v) == "function" and type(key) == "string" then
      d = workflow.define { name = key, run = v }
    else
      d = load_definition(v, level + 2)
    end
    if type(key) == "string" and d.name ~= key then
      error(string.format("testing.run: workflows.%s: defines workflow %q", key, d.name), level + 2)
    end
    types[d.name] = d
  end
  if type(spec) == "string" then
    local p = io.popen('ls -1 "' .. spec:gsub('"', '\\"') .. '" 2>/dev/null')
    local found = 0
    for f in p:lines() do
      if f:match("%.lua$") then
        add(spec .. "/" .. f)
        found = found + 1
      end
    end
    p:close()
    if found == 0 then error("testing.run: workflows: no *.lua files in " .. spec, level + 1) end
  elseif type(spec) == "table" then
    for k, v in pairs(spec) do add(v, type(k) == "string" and k or nil) end
  else
    error("testing.run: workflows: must be a directory or a table, got a " .. type(spec), level + 1)
  end
  return types
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
  local types = load_types(opts.workflows, def, 2)

  local env = setmetatable({ now_ms = math.floor(now * 1000 + 0.5), runs = {}, by_id = {}, queue = {},
                             types = types, auto_advance = opts.auto_advance or false,
                             stubs = {}, secrets = {}, http = h, random = opts.random }, Env)
  for k, v in pairs(opts.stubs or {}) do env.stubs[k] = v end
  for k, v in pairs(opts.secrets or {}) do env.secrets[k] = v end
  local t = env:new_run(def, id, input)
  env:wake(t)
  env:settle()
  return t
end

-- A new run of def in env (not activated yet).
function Env:new_run(def, id, input)
  local t = setmetatable({
    id = id, type = def.name, status = "running", definition = def,
    steps_completed = 0, attempts_failed = 0, activations = 0,
    logs = {}, requests = {}, _events = {}, _inbox = {}, _env = self,
    _stubs = self.stubs, _secrets = self.secrets, _http = self.http,
    now_ms = self.now_ms, _calls = {}, _rand = self.random, _seed = 42, _uuids = 0,
  }, Run)
  -- the definition the driver sees: the same, with an instrumented ctx
  local d = setmetatable({}, getmetatable(def))
  for k, v in pairs(def) do d[k] = v end
  d.run = function(ctx, inp)
    instrument(t, ctx)
    return def.run(ctx, inp)
  end
  t._def = d
  t._events[1] = { seq = 1, type = "workflow_started", time_ms = self.now_ms, payload = input }
  self.runs[#self.runs + 1] = t
  self.by_id[id] = t
  t:_publish()
  return t
end

return M
