-- SPDX-License-Identifier: MIT
-- lodestone.testing.engine: lodestoned's workflow engine in Lua, for
-- lodestone.testing. A port of what native/flow/ does in one activation of
-- a run: the replay cursor (replay.c), the activation calls that the
-- driver in lodestone.workflow makes through lodestone.flowrt (act.c), and
-- retry schedules (retry.c, without jitter). Same outcomes, same events,
-- same messages; no store, no parking (every write is durable at once), no
-- deadlines.
--
-- The run it works on is a table with: id, status, now_ms, _events (the
-- history: {seq, type, time_ms, name, attempt, payload (JSON text), error,
-- due_ms, fatal, traceback}), _custom (custom status JSON), _secrets,
-- logs, steps_completed, attempts_failed, and methods _random(), _uuid()
-- and _start_child(type, id, input, detached). engine.activate(run, def, terminate, verify) runs one
-- activation and returns it (ended, end_status, end_ev, waiting, nondet).
local core = require("lodestone.core")
local workflow = require("lodestone.workflow")
local json = core.json

local E = {}

local NAMEMAX = 200 -- LS_FLOW_NAMEMAX: signal and step names
local MAX_DEPTH = 32 -- LS_FLOW_MAX_DEPTH: lodestoned --max-depth's default
local LOG_WARN = 3

-- ---------------------------------------------------------------------
-- Replay: a cursor over a run's history (native/flow/replay.c, replay.h).
-- Commands (steps, timers, side effects) match records in order; signals
-- and cancel requests are non-command events anywhere in history.

local KIND = {
  step_started = "step", step_completed = "step", step_failed = "step",
  timer_started = "timer", timer_fired = "timer", timer_cancelled = "timer",
  side_effect_recorded = "side effect",
  child_started = "child workflow",
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

-- Parallel branches (ctx:all): a command issued in a branch is recorded
-- under its scope, one "[SECTION.BRANCH]" token per level ("[1.2]charge");
-- each branch has a cursor that matches only its own scope's records.

-- Length of the scope prefix of a command name (0 at the root).
local function scope_len(name)
  local i = 0
  while true do
    local j = name:match("^%[%d+%.%d+%]()", i + 1)
    if j == nil then return i end
    i = j - 1
  end
end

local Cursor = {}
Cursor.__index = Cursor

local function new_cursor(events, n)
  local c = setmetatable({ ev = events, n = n, pos = 1, commands = 0, used = {}, scope = "" }, Cursor)
  for i = 1, n do
    local e = events[i]
    if TERMINAL[e.type] then c.closed = e end
    if e.type == "cancel_requested" and c.cancel == nil then c.cancel = e end
  end
  return c
end

-- A cursor over root's events for the commands of scope: it shares the
-- consumed signals, the end and the cancel request with root.
local function scope_cursor(root, scope)
  return setmetatable({ ev = root.ev, n = root.n, pos = 1, commands = 0, used = root.used,
                        closed = root.closed, cancel = root.cancel, scope = scope }, Cursor)
end

-- Whether e is a command event of this cursor's scope.
function Cursor:mine(e)
  if not KIND[e.type] then return false end
  local name = e.name or ""
  local pl = scope_len(name)
  return pl == #self.scope and (pl == 0 or name:sub(1, pl) == self.scope)
end

function Cursor:fail(kind, msg)
  self.failed, self.failed_kind = msg, kind
  return kind, msg
end

function Cursor:next_command(i)
  while i <= self.n and not self:mine(self.ev[i]) do i = i + 1 end
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

-- The end of child run `name` (child_completed: done, child_failed:
-- failed) among the events with a seq below `before`.
function Cursor:find_child(name, before)
  for i = 1, self.n do
    local e = self.ev[i]
    if e.seq >= before then break end
    if (e.type == "child_completed" or e.type == "child_failed") and e.name == name then
      return { state = e.type == "child_completed" and "done" or "failed", first = e, last = e }
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
    if self:mine(e) then
      if KIND[e.type] ~= "step" or e.name ~= first.name then
        return self:corrupt(first, e, "is unfinished")
      end
      last = e
      if e.type == "step_completed" then
        st = "done"
      elseif e.type == "step_failed" then
        st = e.fatal and "failed" or (e.paused and "paused" or "backoff")
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
    if self:mine(e) then
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
    local t = json.decode(text)
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
  if self.waiting and self.scope == "" then error("the run is suspended; unwind the workflow code", 0) end
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

-- The code suspends on a durable wait (kind "sleep", "retry", "signal" or
-- "child"). Branches may each wait: the run wakes at the earliest timer
-- (and for signals and children by its inbox).
function Act:suspend(kind, name, due, seq)
  local w = self.waiting
  if w and w.due_ms > 0 and (due == 0 or due >= w.due_ms) then return end
  self.waiting = { kind = kind, name = name, due_ms = due, seq = seq }
end

-- The current scope as a key part: "[1.2][3.1]" -> "1.2_3.1-" ("" at the root).
function Act:flat_scope()
  if self.scope == "" then return "" end
  return self.scope:gsub("^%[", ""):gsub("%]%[", "_"):gsub("%]$", "") .. "-"
end

-- The command's position as a replay counts it: the idempotency key.
function Act:key(command)
  return self.t.id .. "-" .. self:flat_scope() .. command
end

-- ---- parallel branches ----

-- Makes scope current: its cursor, cancellation state and command count.
function Act:switch_scope(scope)
  if scope == self.scope then return end
  local saved = self.scopes[self.scope]
  saved.cur, saved.cancel_delivered, saved.new_commands = self.cur, self.cancel_delivered, self.new_commands
  local s = self.scopes[scope]
  if s == nil then
    s = { cur = scope_cursor(self.scopes[""].cur, scope), new_commands = 0 }
    self.scopes[scope] = s
  end
  self.cur, self.cancel_delivered, self.new_commands = s.cur, s.cancel_delivered, s.new_commands
  self.scope = scope
end

-- rt.branch(act, scope): the scope of the commands that follow.
function Act:branch(scope)
  if self.sticky ~= nil then self:check_sticky() end
  if scope_len(scope) ~= #scope then
    error(string.format('branch scope "%s": expected [N.N] tokens', scope:sub(1, 60)), 0)
  end
  self:switch_scope(scope)
end


-- name with the current scope's prefix.
function Act:scoped(name)
  return self.scope .. name
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
  self.cancel_delivered, self.cancel_seen = true, true
  -- Delivered in a branch: the code around it has had it too (as the
  -- engine: its cleanup after ctx:all is not cancelled again).
  for scope, s in pairs(self.scopes) do
    if scope ~= self.scope and #scope < #self.scope and self.scope:sub(1, #scope) == scope then
      s.cancel_delivered = true
    end
  end
  if not with_reason then return "cancelled" end
  return "cancelled", (c.error and c.error ~= "") and c.error or "cancelled"
end

function Act:cancel_timer(m)
  self:put_event { type = "timer_cancelled", name = m.first.name }
  self.replaying = false
end

-- The length of the valid UTF-8 sequence at byte i of s (native/core/
-- json.c's utf8_seq: no overlongs, no surrogates, nothing past U+10FFFF),
-- or 0.
local function utf8_seq(s, i)
  local c, lo, hi, n = s:byte(i), 0x80, 0xBF, nil
  if c < 0x80 then return 1 end
  if c >= 0xC2 and c <= 0xDF then n = 2
  elseif c == 0xE0 then n, lo = 3, 0xA0
  elseif (c >= 0xE1 and c <= 0xEC) or c == 0xEE or c == 0xEF then n = 3
  elseif c == 0xED then n, hi = 3, 0x9F
  elseif c == 0xF0 then n, lo = 4, 0x90
  elseif c >= 0xF1 and c <= 0xF3 then n = 4
  elseif c == 0xF4 then n, hi = 4, 0x8F
  else return 0 end
  if #s - i + 1 < n then return 0 end
  local c1 = s:byte(i + 1)
  if c1 < lo or c1 > hi then return 0 end
  for k = i + 2, i + n - 1 do
    local b = s:byte(k)
    if b < 0x80 or b > 0xBF then return 0 end
  end
  return n
end

-- ---------------------------------------------------------------------
-- Secrets out of texts kept in clear (native/vault/mask.c): each
-- occurrence of a secret's value (MASK_MIN bytes or more; exact bytes)
-- replaced by "[secret NAME]". At one place the longest value wins (then
-- the first name); occurrences that overlap are masked as one stretch,
-- with a mark for each secret whose occurrence extends it. The harness's
-- `secrets` play the vault.

local MASK_MIN = 4 -- LS_VAULT_MASK_MIN

-- a before b in byte order (as memcmp), whatever the locale: Lua's own
-- comparison of strings follows the collation os.setlocale chose.
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The values to mask with: longest first, then by name (byte order, as
-- the vault sorts them).
local function mask_values(secrets)
  local list = {}
  for name, v in pairs(secrets or {}) do
    if type(v) == "string" and #v >= MASK_MIN then
      list[#list + 1] = { name = tostring(name), value = v }
    end
  end
  table.sort(list, function(a, b)
    if #a.value ~= #b.value then return #a.value > #b.value end
    return bytes_before(a.name, b.name)
  end)
  return list
end

-- text masked with values (mask_values), at most limit bytes of it (nil:
-- no limit), as ls_vault_mask_text: the masked text and how many bytes of
-- text it stands for. A cut falls where a character starts and never
-- inside a mark (an occurrence that does not fit is left out whole).
local function mask(text, values, limit)
  limit = limit or math.huge
  local at, pos = {}, {} -- position -> the longest value that starts there
  for _, v in ipairs(values) do
    local init = 1
    while true do
      local s = string.find(text, v.value, init, true)
      if s == nil then break end
      if at[s] == nil then
        at[s] = v
        pos[#pos + 1] = s
      end
      init = s + 1
    end
  end
  table.sort(pos)
  local out, olen = {}, 0
  local function plain(from, to) -- text[from, to): where it stopped
    local k = to - from
    if k > limit - olen then
      k = limit - olen
      for _ = 1, 3 do -- (as ls_utf8_cut)
        local b = text:byte(from + k)
        if k == 0 or b < 0x80 or b >= 0xC0 then break end
        k = k - 1
      end
    end
    if k > 0 then
      out[#out + 1] = text:sub(from, from + k - 1)
      olen = olen + k
    end
    return from + k
  end
  local start, k = 1, 1
  while k <= #pos do
    local i = pos[k]
    local v = at[i]
    local stop = plain(start, i)
    if stop < i then return table.concat(out), stop - 1 end
    local marks, finish = { "[secret " .. v.name .. "]" }, i + #v.value
    k = k + 1
    while k <= #pos and pos[k] < finish do
      local x = at[pos[k]]
      if pos[k] + #x.value > finish then
        finish = pos[k] + #x.value
        marks[#marks + 1] = "[secret " .. x.name .. "]"
      end
      k = k + 1
    end
    local m = table.concat(marks)
    if olen + #m > limit then return table.concat(out), i - 1 end
    out[#out + 1] = m
    olen = olen + #m
    start = finish
  end
  local stop = plain(start, #text + 1)
  return table.concat(out), stop - 1
end
E.mask = function(text, secrets, limit) return mask(text, mask_values(secrets), limit) end

-- A text of the run's code that lodestoned keeps or shows in clear,
-- masked with the run's secrets.
function Act:masked(text)
  if text == nil then return nil end
  return (mask(text, mask_values(self.t._secrets)))
end

-- native/flow/engine.c's flow_check_text: the message for a name kept in
-- history that is not at most max bytes of UTF-8 without control
-- characters (C0, DEL, C1: U+0000 to U+001F, U+007F to U+009F), or nil.
local function text_problem(what, s, max)
  if #s > max then return string.format("%s: at most %d bytes, got %d", what, max, #s) end
  local i = 1
  while i <= #s do
    local c = s:byte(i)
    if c < 0x20 or c == 0x7F then return string.format("%s: control character at byte %d", what, i) end
    local n = utf8_seq(s, i)
    if n == 0 then return string.format("%s: byte %d (0x%02x) is not valid UTF-8", what, i, c) end
    if c == 0xC2 and s:byte(i + 1) < 0xA0 then
      return string.format("%s: control character at byte %d", what, i)
    end
    i = i + n
  end
  return nil
end
E.text_problem = text_problem

-- engine.c's flow_check_signal_name: what is wrong with a signal's name
-- (a new wait's, one t:signal sends), without the call's prefix, or nil.
local function signal_name_problem(name)
  if #name == 0 or #name > NAMEMAX then
    return string.format("signal name: must be 1 to %d bytes, got %d", NAMEMAX, #name)
  end
  local p = text_problem("signal name", name, NAMEMAX)
  if p then return p end
  -- one segment of the API's path: no "/", and not a dot segment, which
  -- HTTP clients remove
  local slash = name:find("/", 1, true)
  if slash then
    return string.format('signal name: "/" at byte %d: a name is one segment of the API\'s path ' ..
      "(/v1/workflows/ID/signals/NAME)", slash)
  end
  if name == "." or name == ".." then
    return string.format('signal name: "%s" is not a name: HTTP clients remove such segments from ' ..
      "the API's path", name)
  end
  return nil
end
E.signal_name_problem = signal_name_problem

-- act.c's check_step_name: a new step's name.
local function step_name_problem(name)
  if #name == 0 or #name > NAMEMAX then
    return string.format("ctx:step: step name: must be 1 to %d bytes, got %d", NAMEMAX, #name)
  end
  local p = text_problem("step name", name, NAMEMAX)
  return p and "ctx:step: " .. p
end

local function final_message(name, attempt, err)
  return string.format('step "%s" failed on attempt %d: %s', name, attempt, err or "")
end

-- act.c's recorded_step: whether the next command record that history
-- holds (the one Cursor:next would match) is a step named name in the
-- current scope (compared without making the scoped name): a name longer
-- than the limit, recorded before the limit existed, replays.
function Act:recorded_step(name)
  local seq = self.cur:peek()
  if seq == 0 then return false end
  local sc = self.scope
  for _, e in ipairs(self.cur.ev) do
    if e.seq == seq then
      return KIND[e.type] == "step" and #e.name == #sc + #name and e.name:sub(1, #sc) == sc
        and e.name:sub(#sc + 1) == name
    end
  end
  return false
end

-- t:replay of a run that ended: its code asks for a command past the
-- last one history holds. Nothing can be recorded there, so a name the
-- run refused when it ran is refused again (the same end), not taken for
-- non-determinism. (lodestoned never replays a run that ended.)
function Act:past_end()
  return self.cur.closed ~= nil and self.cur:peek() == 0
end

function Act:step(name)
  self:check_sticky()
  if scope_len(name) ~= 0 then
    error(string.format('ctx:step: step name "%s": names starting with [N.N] are reserved for parallel branches',
      name:sub(1, 60)), 0)
  end
  local own = name -- as the code gave it, without the scope
  local cs = self:cancel_due()
  if cs and self:cancel_before_record(cs) then return self:deliver_cancel(true) end
  -- a new step's name is checked where it is about to be recorded (one
  -- that history holds replays; one that differs from it is
  -- non-determinism), its length before the scoped copy is made
  if (#own > NAMEMAX and not self:recorded_step(own)) or self:past_end() then
    local bad = step_name_problem(own)
    if bad then error(bad, 0) end
  end
  name = self:scoped(name)
  local m = self:next("step", name)
  if m == nil then
    local bad = step_name_problem(own)
    if bad then error(bad, 0) end
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
  if m.state == "paused" then
    if not self:resumed_after(m.last.seq) then
      self:suspend("paused", name, 0, 0)
      return "wait"
    end
    self.replaying = false
    self:put_event { type = "step_started", name = name, attempt = m.attempt + 1 }
    return "run", m.attempt + 1, self:key(m.command)
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
  name = self:scoped(name)
  self:put_event { type = "step_completed", name = name, attempt = attempt, payload = text }
  self.t.steps_completed = self.t.steps_completed + 1
end

-- Whether a resumed event follows seq.
function Act:resumed_after(seq)
  local ev = self.t._events
  for i = #ev, 1, -1 do
    local e = ev[i]
    if e.seq <= seq then return false end
    if e.type == "resumed" then return true end
  end
  return false
end

-- The attempt at which step name was last paused (0: never).
function Act:paused_at(name)
  local ev = self.t._events
  for i = #ev, 1, -1 do
    local e = ev[i]
    if e.type == "step_failed" and e.paused and e.name == name then return e.attempt end
  end
  return 0
end

function Act:step_failed(name, attempt, msg, code, fatal, wf_retry, step_retry, pause)
  self:check_sticky()
  name = self:scoped(name)
  msg = self:masked(msg)
  local wf = policy(wf_retry, DEFAULT_POLICY)
  local p = policy(step_retry, wf)
  -- after a resume the policy's attempts count again
  local base = self:paused_at(name)
  local verdict, delay = retry_next(p, attempt > base and attempt - base or 1, code, fatal)
  pause = pause and verdict == "exhausted"
  local ev = { type = "step_failed", name = name, attempt = attempt, error = msg }
  if verdict == "again" then
    ev.due_ms = self.t.now_ms + delay
  elseif pause then
    ev.paused = true
  else
    ev.fatal = true
  end
  self:put_event(ev)
  self.t.attempts_failed = self.t.attempts_failed + 1
  if verdict == "again" then
    self:suspend("retry", name, ev.due_ms, ev.seq)
    return "wait"
  end
  if pause then
    self:suspend("paused", name, 0, 0)
    return "wait"
  end
  return "failed", final_message(name, attempt, msg)
end

function Act:sleep(ms)
  self:check_sticky()
  local cs = self:cancel_due()
  if cs and self:cancel_before_record(cs) then return self:deliver_cancel(false) end
  local tname = self:scoped("")
  local m = self:next("timer", tname)
  local now = self.t.now_ms
  if m == nil then
    if ms < 0 then ms = 0 end
    local ev = self:put_event { type = "timer_started", name = tname, due_ms = now + ms }
    self:suspend("sleep", tname, ev.due_ms, ev.seq)
    self.new_commands = self.new_commands + 1
    return "wait"
  end
  if cs and m.state ~= "pending" and m.last.seq > cs then return self:deliver_cancel(false) end
  if cs and m.state == "pending" then
    self:cancel_timer(m)
    return self:deliver_cancel(false)
  end
  if m.state == "done" or m.state == "cancelled" then return "done" end
  return self:wait_or_fire(m, now, "sleep", tname, tname, "done")
end

-- A pending timer m (of a sleep or a signal wait on name): suspends until
-- it is due, or fires it and answers fired (act.c's wait_or_fire).
function Act:wait_or_fire(m, now, kind, name, tname, fired)
  if m.due > now then
    self:suspend(kind, name, m.due, m.first.seq)
    return "wait"
  end
  self.replaying = false
  self:put_event { type = "timer_fired", name = tname }
  return fired
end

function Act:wait_signal(name, timeout_ms)
  self:check_sticky()
  if #name == 0 or #name > NAMEMAX then
    error(string.format("ctx:wait_signal: signal name: must be 1 to %d bytes, got %d", NAMEMAX, #name), 0)
  end
  if self.scope ~= "" then
    error("ctx:wait_signal cannot be used in a ctx:all branch (which branch takes a signal " ..
      "would depend on timing): wait before or after it", 0)
  end
  local cur, cs = self.cur, self:cancel_due()
  if timeout_ms < 0 then
    -- no timeout: no record of its own; it takes the next signal
    if cs then
      local s = cur:take_signal(name, cs)
      if s then return "done", s.last.payload end
      return self:deliver_cancel(true)
    end
    -- a signal that history holds ends it, whatever its name (one sent
    -- before the API checked names)
    local bad = self:past_end() and signal_name_problem(name)
    if bad then
      local s = cur:take_signal(name, math.huge)
      if s == nil then error("ctx:wait_signal: " .. bad, 0) end
      return "done", s.last.payload
    end
    local m = self:next("signal", name)
    if m then return "done", m.last.payload end
    -- else it would wait: for ever, on a name no signal can have
    local bad = signal_name_problem(name)
    if bad then error("ctx:wait_signal: " .. bad, 0) end
    self:suspend("signal", name, 0, 0)
    return "wait"
  end
  -- with a timeout: a timer "signal:NAME" whose record says which came first
  local tname = "signal:" .. name
  if cs and self:cancel_before_record(cs) then return self:deliver_cancel(true) end
  local bad = self:past_end() and signal_name_problem(name)
  if bad then error("ctx:wait_signal: " .. bad, 0) end
  local m = self:next("timer", tname)
  local now = self.t.now_ms
  if m == nil then
    -- a wait that history holds replays whatever its name; a new one is
    -- checked before it is recorded
    local bad = signal_name_problem(name)
    if bad then error("ctx:wait_signal: " .. bad, 0) end
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
  return self:wait_or_fire(m, now, "signal", name, tname, "timeout")
end

function Act:side_effect(kind, value)
  self:check_sticky()
  kind = self:scoped(kind)
  local m = self:next("side effect", kind)
  if m == nil then
    self:put_event { type = "side_effect_recorded", name = kind, payload = value }
    self.new_commands = self.new_commands + 1
    return value
  end
  return m.last.payload
end

-- act.c's start_child: a run at the depth limit cannot start a child (a
-- limit crossed: the run fails).
function Act:check_depth(what)
  local depth, r = 0, self.t._parent
  while r ~= nil and depth <= MAX_DEPTH do
    depth, r = depth + 1, r._parent
  end
  if depth < MAX_DEPTH then return end
  local msg = string.format("run %s cannot start %s: it is nested %s%d deep, the limit of nested " ..
    "runs (lodestoned --max-depth); does a workflow start itself without end?", self.t.id, what,
    depth > MAX_DEPTH and "over " or "", MAX_DEPTH)
  self:fail_sticky(msg, false)
  error(msg, 0)
end

-- rt.child_start(act, type, input, id|nil, detached) -> the child's id.
-- Without an id the child is named after the parent and the command's
-- position ("ID-cN"). The run starts the child through
-- run:_start_child(type, id, input, detached) -> true | nil, message.
function Act:child_start(wtype, input, id, detached)
  self:check_sticky()
  if id == nil or id == "" then
    id = self.t.id .. "-" .. self:flat_scope() .. "c" .. (self.cur.commands + self.new_commands + 1)
  end
  local cname = self:scoped(id) -- the command is named by the child's id, with the branch's prefix
  local m = self:next("child workflow", cname)
  if m then return id end -- started before
  local ev = { type = "child_started", name = cname, payload = json.encode({ type = wtype }),
               detached = detached and true or nil }
  if self.verify then self:put_event(ev) end -- a replay check starts nothing
  self:check_depth(string.format('child workflow "%s"', wtype:sub(1, 100)))
  local ok, err = self.t:_start_child(wtype, id, input, detached)
  if not ok then error("child workflow: " .. err, 0) end
  self:put_event(ev)
  self.new_commands = self.new_commands + 1
  return id
end

-- rt.flush(act): every write is durable at once here.
function Act:flush()
  self:check_sticky()
  self.fork = #self.t._events -- what the section's branch runs start from
end

-- rt.branch_start(act, scope) -> the branch run's id ("ID-b1.2" for
-- "[1.2]"): a child run of this run's type whose history starts as a copy
-- of this run's, through run:_start_branch(id, scope).
function Act:branch_start(scope)
  self:check_sticky()
  if scope == "" or scope_len(scope) ~= #scope then
    error(string.format('branch scope "%s": expected [N.N] tokens', scope:sub(1, 60)), 0)
  end
  local id = self.t.id .. "-b" .. scope:gsub("%]%[", "_"):gsub("[%[%]]", "")
  local cname = self:scoped(id)
  local m = self:next("child workflow", cname)
  if m then return id end -- started before
  local ev = { type = "child_started", name = cname, payload = json.encode({ type = self.t.type }) }
  if not self.verify then
    self:check_depth("a ctx:all branch run")
    local ok, err = self.t:_start_branch(id, scope, self.fork or #self.t._events)
    if not ok then error("child workflow: " .. err, 0) end
  end
  self:put_event(ev)
  self.new_commands = self.new_commands + 1
  return id
end

-- rt.branch_of(act) -> the scope this branch run runs, or nil.
function Act:branch_of()
  return self.t._branch
end

-- rt.child_wait(act, id) -> "done", json | "failed", msg | "wait" | "cancelled", reason
function Act:child_wait(id)
  self:check_sticky()
  local cs = self:cancel_due()
  local m = self.cur:find_child(id, cs or math.huge)
  if m == nil and cs then return self:deliver_cancel(true) end
  if m == nil then
    self:suspend("child", id, 0, 0)
    return "wait"
  end
  if m.state == "done" then return "done", m.last.payload end
  return "failed", "child workflow " .. id .. " " .. (m.last.error or "")
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
  if self.cancel_seen then return self:cancelled() end
  if output == nil or output == "" then output = "null" end
  self:end_run({ type = "workflow_completed", payload = output }, "completed")
end

function Act:cancelled()
  if not self.cancel_seen then error("no cancellation was delivered to this run", 0) end
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
  self:end_run({ type = "workflow_failed", error = self:masked(msg or ""),
                 traceback = self:masked(trace) }, "failed")
end

function Act:secret(name)
  local v = self.t._secrets[name]
  if v == nil then
    error(string.format('secret "%s" is not set (lodestone secret set %s)', name, name), 0)
  end
  return v
end

-- engine.c's flow_log_text: the line lodestoned's log gets for msg, its
-- secrets' values masked, NULs as U+FFFD, and past LS_FLOW_LOG_LINEMAX
-- bytes cut where the character at that byte starts (never inside a
-- mark), saying how many bytes of msg were dropped; then, as lodestoned's
-- log writes it, each byte that starts no UTF-8 character as U+FFFD too.
local LOG_LINEMAX = 8192 -- LS_FLOW_LOG_LINEMAX

local function log_line(msg, secrets)
  local line, used = mask(msg, mask_values(secrets), LOG_LINEMAX)
  if line:find("%z") then line = line:gsub("%z", "\239\191\189") end
  if line:find("[\128-\255]") then
    local parts, i = {}, 1
    while i <= #line do
      local n = utf8_seq(line, i)
      parts[#parts + 1] = n == 0 and "\239\191\189" or line:sub(i, i + n - 1)
      i = i + (n == 0 and 1 or n)
    end
    line = table.concat(parts)
  end
  if used < #msg then
    local dropped = #msg - used
    line = line .. string.format(" [cut: %d byte%s dropped]", dropped, dropped == 1 and "" or "s")
  end
  return line
end
E.log_line = log_line

function Act:log(level, msg)
  if self.verify or (self.replaying and level < LOG_WARN) then return end
  local logs = self.t.logs
  logs[#logs + 1] = log_line(msg, self.t._secrets)
end

-- lodestone.flowrt as the driver sees it: every call takes the activation.
local FLOWRT = { DEBUG = 0, INFO = 1, WARN = LOG_WARN, ERROR = 4 }
for _, fn in ipairs({ "step", "step_done", "step_failed", "sleep", "wait_signal", "set_status",
                      "cancelled", "side_effect", "complete", "fail", "secret", "log",
                      "child_start", "child_wait", "branch", "flush", "branch_start",
                      "branch_of" }) do
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
FLOWRT.deadline_save = function() return 0, 0 end
FLOWRT.deadline_restore = function() end
-- wall_ms, random and uuid take no activation: the one being run. The
-- driver asks for a fresh value before it knows whether history holds
-- one: when it does, the sequences are not advanced, so that the values
-- a run sees do not depend on how often it was replayed.
local current
local function recorded(kind)
  local c = current.cur
  local i = c:next_command(c.pos)
  return not c.failed and i <= c.n and c.ev[i].type == "side_effect_recorded"
    and c.ev[i].name == current:scoped(kind)
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

E.FLOWRT = FLOWRT

--- One activation of run: a terminate request (an inbox entry) ends it
--- without its code; otherwise def's code is replayed from the start
--- against run._events through the driver in lodestone.workflow, with
--- FLOWRT as lodestone.flowrt (restored afterwards). verify: a replay
--- check, which writes nothing (a table that collects what it saw).
function E.activate(run, def, terminate, verify)
  local n = #run._events
  local a = setmetatable({ t = run, cur = new_cursor(run._events, n), replaying = n > 1,
                           new_commands = 0, verify = verify, scope = "" }, Act)
  a.scopes = { [""] = { cur = a.cur, new_commands = 0 } }
  if terminate and not a.cur.closed then
    a.replaying = false
    a:end_run({ type = "workflow_terminated", name = terminate.name, error = terminate.error },
      "terminated")
    return a
  end
  local prev, prev_act = package.loaded["lodestone.flowrt"], current
  package.loaded["lodestone.flowrt"], current = FLOWRT, a
  local ok, err = pcall(workflow._activate, def, a)
  package.loaded["lodestone.flowrt"], current = prev, prev_act
  if not ok and not a.ended then
    -- the driver itself failed: fail the run with the message
    pcall(a.fail, a, tostring(err))
  end
  if not a.ended and not a.waiting and not a.abandoned then
    pcall(a.fail, a, "the runner returned without an outcome")
  end
  return a
end

E.TERMINAL = TERMINAL
E.quote = quote
E.scope_len = scope_len

return E
