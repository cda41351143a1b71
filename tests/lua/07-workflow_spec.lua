-- SPDX-License-Identifier: MIT
-- lodestone.workflow in any Lua: define and its messages for every bad
-- field, durations, fatal/error values, is_workflow; the driver
-- (_activate) against a scripted stand-in for lodestoned's flowrt; and the
-- example workflows in workflows/, loaded as the daemon loads them and run
-- against a fake ctx and fake HTTP. Every case checks the value and the
-- error.
local workflow = require("lodestone.workflow")
local json = require("lodestone.core").json

local function noop() end

-- The message of the error fn(...) raises (fails the test when none).
local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return e
end

local function defines(fields)
  local spec = { name = "w", run = noop }
  for k, v in pairs(fields) do spec[k] = v end
  return function() return workflow.define(spec) end
end

describe("lodestone.workflow", function()
  describe("duration_ms", function()
    it("reads seconds and unit strings", function()
      assert.equal(0, workflow.duration_ms(0))
      assert.equal(1500, workflow.duration_ms(1.5))
      assert.equal(250, workflow.duration_ms("250ms"))
      assert.equal(10000, workflow.duration_ms("10s"))
      assert.equal(1500, workflow.duration_ms("1.5s"))
      assert.equal(90000, workflow.duration_ms("1m30s"))
      assert.equal(7200000, workflow.duration_ms("2h"))
      assert.equal(86400000, workflow.duration_ms("1d"))
      assert.equal(0, workflow.duration_ms("0s"))
    end)

    it("names the value and what it was for", function()
      assert.equal('duration: duration "soon": expected a number', err_of(workflow.duration_ms, "soon"))
      assert.equal('ctx:sleep: duration "10" needs a unit (ms, s, m, h or d), or pass seconds as a number',
        err_of(workflow.duration_ms, "10", "ctx:sleep"))
      local why = {
        ["10x"] = "unknown unit (use ms, s, m, h or d)", ["1sec"] = "unknown unit (use ms, s, m, h or d)",
        ["10 s"] = "expected a unit (ms, s, m, h or d)", [" 10s"] = "expected a number",
        ["-1s"] = "must not be negative", ["1.5.5s"] = "expected a unit (ms, s, m, h or d)",
        ["s"] = "expected a number", ["10S"] = "unknown unit (use ms, s, m, h or d)",
        ["30m1h"] = "units must go from largest to smallest, each once",
      }
      for bad, reason in pairs(why) do
        assert.equal(string.format('t: duration %q: %s', bad, reason), err_of(workflow.duration_ms, bad, "t"))
      end
      assert.equal('t: duration "": empty (write e.g. "10s", "250ms", "5m")', err_of(workflow.duration_ms, "", "t"))
      assert.equal("t: must be a non-negative number of seconds, got -1", err_of(workflow.duration_ms, -1, "t"))
      assert.matches("^t: must be a non%-negative number of seconds, got %-?n", err_of(workflow.duration_ms, 0 / 0, "t"))
      assert.matches("^t: must be a non%-negative number of seconds, got inf", err_of(workflow.duration_ms, math.huge, "t"))
      -- seconds are bounded as strings are: a century
      assert.equal(3153600000000, workflow.duration_ms(3153600000))
      -- and longer is taken as a century ("for ever")
      assert.equal(3153600000000, workflow.duration_ms(1e300))
      assert.equal(3153600000000, workflow.duration_ms(4e9))
      assert.equal('t: must be seconds (a number) or a string like "10s", got a table',
        err_of(workflow.duration_ms, {}, "t"))
      assert.equal('t: must be seconds (a number) or a string like "10s", got a nil',
        err_of(workflow.duration_ms, nil, "t"))
    end)

    it("points at its caller", function()
      local e = err_of(function()
        local ms = workflow.duration_ms("x")
        return ms
      end)
      assert.matches('07%-workflow_spec%.lua:%d+: duration: duration "x": expected a number', e)
    end)
  end)

  describe("define", function()
    it("returns a definition with defaults", function()
      local run = function() end
      local def = workflow.define { name = "order-v2.1:x_y", run = run }
      assert.equal("order-v2.1:x_y", def.name)
      assert.equal(run, def.run)
      assert.equal(30000, def.step_timeout_ms)
      assert.is_nil(def.retry_json)
      assert.is_nil(def.description)
      assert.is_true(workflow.is_workflow(def))
    end)

    it("keeps the retry policy as JSON for the engine", function()
      local retry = { initial_interval = "1s", backoff = 2.0, max_interval = "1m", max_attempts = 5,
                      jitter = 0.1, non_retryable = { "declined", "invalid" } }
      local def = workflow.define { name = "w", run = noop, retry = retry, step_timeout = 2.5,
                                    description = "a test" }
      assert.same(retry, json.decode(def.retry_json))
      assert.equal(2500, def.step_timeout_ms)
      assert.equal("a test", def.description)
      assert.equal(60000, workflow.define { name = "w", run = noop, step_timeout = "1m" }.step_timeout_ms)
      assert.equal("{}", workflow.define { name = "w", run = noop, retry = {} }.retry_json)
      assert.is_string(workflow.define { name = "w", run = noop, retry = { non_retryable = {} } }.retry_json)
    end)

    it("refuses what is not a table, and unknown fields", function()
      assert.equal("workflow.define: expects a table", err_of(workflow.define, "order"))
      assert.equal("workflow.define: expects a table", err_of(workflow.define))
      assert.equal("workflow.define: unknown field retries (known: name, run, retry, step_timeout, description, on_exhausted, schedule, concurrency, retention)",
        err_of(defines { retries = {} }))
      assert.equal("workflow.define: unknown field 1 (known: name, run, retry, step_timeout, description, on_exhausted, schedule, concurrency, retention)",
        err_of(defines { [1] = "x" }))
    end)

    it("reads retention (a duration or \"forever\") for the engine, and checks it", function()
      assert.is_nil(workflow.define { name = "w", run = noop }.retention_ms)
      assert.equal(30 * 86400000, workflow.define { name = "w", run = noop, retention = "30d" }.retention_ms)
      assert.equal(90000, workflow.define { name = "w", run = noop, retention = 90 }.retention_ms)
      assert.equal(-1, workflow.define { name = "w", run = noop, retention = "forever" }.retention_ms)
      assert.equal('workflow.define: retention: must be a duration like "30d" or "forever", got a table',
        err_of(defines { retention = {} }))
      assert.equal("workflow.define: retention: must be more than 0, got 0s", err_of(defines { retention = "0s" }))
      -- lodestoned --retention 0 keeps runs for ever: here a 0 says how to
      assert.equal('workflow.define: retention: must be more than 0 (write "forever" to keep finished runs), got 0',
        err_of(defines { retention = 0 }))
      assert.equal('workflow.define: retention: must be more than 0 (write "forever" to keep finished runs), got 0',
        err_of(defines { retention = "0" }))
      assert.matches("^workflow.define: retention: ", err_of(defines { retention = "always" }))
      assert.matches("^workflow.define: retention: duration \"7\" needs a unit", err_of(defines { retention = "7" }))
    end)

    it("checks name, run and description", function()
      local rule = "is not allowed; use letters, digits and - _ . :"
      for _, case in ipairs {
        { "", "must be 1 to 200 characters, got 0" },
        { string.rep("x", 201), "must be 1 to 200 characters, got 201" },
        { string.rep("x", 1e5), "must be 1 to 200 characters, got 100000" },
        { ".", '"." is not allowed: a URL reads it as a path step' },
        { "..", '".." is not allowed: a URL reads it as a path step' },
        { "has space", "character 4 (0x20) " .. rule },
        { "a/b", "character 2 (0x2f) " .. rule },
        { "a\0b", "character 2 (0x00) " .. rule },
        { "a\nb", "character 2 (0x0a) " .. rule },
        { "a\127", "character 2 (0x7f) " .. rule },
        { "\194\133", "character 1 (0xc2) " .. rule }, -- U+0085
        { "\195\169", "character 1 (0xc3) " .. rule }, -- é
        { "a\255", "character 2 (0xff) " .. rule },
        { "a@b", "character 2 (0x40) " .. rule },
        { 42, "must be a string of letters, digits and - _ . :, got a number" },
        { false, "must be a string of letters, digits and - _ . :, got a boolean" },
      } do
        assert.equal("workflow.define: name: " .. case[2], err_of(defines { name = case[1] }))
      end
      assert.equal("workflow.define: name: must be a string of letters, digits and - _ . :, got nothing",
        err_of(workflow.define, { run = noop }))
      -- the names of the examples, and every character the rule takes
      for _, good in ipairs({ "order", "github-push", "nightly_cleanup", "a:b.c", "...", ".x",
                              string.rep("aZ09-_.:", 25) }) do
        assert.equal(good, workflow.define { name = good, run = noop }.name)
      end
      -- A schedule is named after its workflow, and a schedule's name is at
      -- most 100 characters: the fire's run id is NAME@TIME.
      assert.equal("workflow.define: schedule: a schedule is named after its workflow, and is at " ..
        "most 100 characters long: name has 101",
        err_of(defines { name = string.rep("s", 101), schedule = { cron = "@daily" } }))
      assert.equal(string.rep("s", 100),
        workflow.define { name = string.rep("s", 100), run = noop, schedule = { cron = "@daily" } }.schedule.name)
      assert.equal("workflow.define: run must be a function(ctx, input)", err_of(workflow.define, { name = "w" }))
      assert.equal("workflow.define: run must be a function(ctx, input)", err_of(defines { run = "main" }))
      assert.equal("workflow.define: description must be a string", err_of(defines { description = 5 }))
    end)

    it("takes the type name of the run whose stored source lodestoned loads (_pinned_type)", function()
      -- a run an older lodestoned started under a name the rule refuses
      -- now goes on with the source it started with
      local long = string.rep("L", 250)
      workflow._pinned_type = long
      local ok, def = pcall(workflow.define, { name = long, run = noop, schedule = { cron = "@daily" } })
      local other = err_of(defines { name = string.rep("M", 250) })
      workflow._pinned_type = nil
      assert.is_true(ok, def)
      assert.equal(long, def.name)
      assert.is_nil(def.schedule) -- (it only runs its run's code)
      assert.equal("workflow.define: name: must be 1 to 200 characters, got 250", other)
      assert.equal("workflow.define: name: must be 1 to 200 characters, got 250",
        err_of(defines { name = long }))
      -- a name the rule takes, with a schedule an older version took though
      -- it could not install it (a schedule's name is at most 100 long)
      local mid = string.rep("S", 150)
      workflow._pinned_type = mid
      ok, def = pcall(workflow.define, { name = mid, run = noop, schedule = { cron = "@yearly" } })
      workflow._pinned_type = nil
      assert.is_true(ok, def)
      assert.is_nil(def.schedule)
      assert.matches("at most 100 characters long: name has 150$",
        err_of(defines { name = mid, schedule = { cron = "@yearly" } }))
    end)

    it("checks concurrency and keeps it as JSON for the engine", function()
      local def = workflow.define { name = "w", run = noop, concurrency = { limit = 5, key = "tenant", total = 20 } }
      assert.same({ limit = 5, key = "tenant", total = 20 }, json.decode(def.concurrency_json))
      assert.same({ total = 3 }, json.decode(workflow.define { name = "w", run = noop, concurrency = { total = 3 } }.concurrency_json))
      local p = "workflow.define: concurrency"
      assert.equal(p .. ": must be a table, got a number", err_of(defines { concurrency = 5 }))
      assert.equal(p .. ".limit: must be a whole number from 1 to 1000000, got 0", err_of(defines { concurrency = { limit = 0 } }))
      assert.equal(p .. ".total: must be a whole number from 1 to 1000000, got 2.5", err_of(defines { concurrency = { total = 2.5 } }))
      assert.equal(p .. '.key: must name an input field such as "tenant" or "customer.id", got a b',
        err_of(defines { concurrency = { limit = 1, key = "a b" } }))
      assert.equal(p .. ": unknown field max (known: limit, key, total)", err_of(defines { concurrency = { max = 1 } }))
      assert.equal(p .. ": needs limit (or total)", err_of(defines { concurrency = {} }))
      assert.equal(p .. ": key goes with limit (runs per key)", err_of(defines { concurrency = { key = "t", total = 2 } }))
    end)

    it("checks step_timeout", function()
      assert.equal('workflow.define: step_timeout: duration "forever": expected a number',
        err_of(defines { step_timeout = "forever" }))
      assert.equal("workflow.define: step_timeout: must be more than 0, got 0", err_of(defines { step_timeout = 0 }))
      assert.equal("workflow.define: step_timeout: must be more than 0, got 0ms", err_of(defines { step_timeout = "0ms" }))
      assert.equal("workflow.define: step_timeout: must be a non-negative number of seconds, got -5",
        err_of(defines { step_timeout = -5 }))
      assert.equal('workflow.define: step_timeout: must be seconds (a number) or a string like "10s", got a table',
        err_of(defines { step_timeout = {} }))
    end)

    it("checks every field of the retry policy", function()
      local function retry_err(r) return err_of(defines { retry = r }) end
      local p = "workflow.define: retry"
      assert.equal(p .. ": must be a table, got a string", retry_err("fast"))
      assert.equal(p .. ".max_tries: unknown field (known: initial_interval, backoff, max_interval, "
        .. "max_attempts, jitter, non_retryable)", retry_err({ max_tries = 3 }))
      assert.equal(p .. '.initial_interval: duration "soon": expected a number',
        retry_err({ initial_interval = "soon" }))
      assert.equal(p .. ".initial_interval: must be more than 0, got 0", retry_err({ initial_interval = 0 }))
      assert.equal(p .. ".max_interval: must be a non-negative number of seconds, got -1",
        retry_err({ max_interval = -1 }))
      assert.equal(p .. ".max_interval: must be at least initial_interval (60000 ms)",
        retry_err({ initial_interval = "1m", max_interval = "10s" }))
      assert.equal(p .. ".max_interval: must be at least initial_interval (1000 ms)",
        retry_err({ max_interval = "500ms" })) -- the engine's default initial_interval
      for _, bad in ipairs({ 0.5, "2", 0 / 0, math.huge }) do
        assert.equal(p .. ".backoff: must be a number of at least 1, got " .. tostring(bad),
          retry_err({ backoff = bad }))
      end
      for _, bad in ipairs({ 2.5, -1, "3", true }) do
        assert.equal(p .. ".max_attempts: must be a whole number, 0 (no limit) or more, got " .. tostring(bad),
          retry_err({ max_attempts = bad }))
      end
      for _, bad in ipairs({ -0.1, 1.5, "0.1" }) do
        assert.equal(p .. ".jitter: must be a number from 0 to 1, got " .. tostring(bad),
          retry_err({ jitter = bad }))
      end
      assert.equal(p .. ".non_retryable: must be a list of error codes (strings), got a string",
        retry_err({ non_retryable = "declined" }))
      assert.equal(p .. ".non_retryable[2]: must be an error code of 1 to 64 characters, got 5",
        retry_err({ non_retryable = { "declined", 5 } }))
      assert.equal(p .. '.non_retryable[1]: must be an error code of 1 to 64 characters, got ""',
        retry_err({ non_retryable = { "" } }))
      assert.equal(p .. ".non_retryable[1]: must be an error code of 1 to 64 characters, got nil",
        retry_err({ non_retryable = { [2] = "x" } }))
    end)

    it("points its errors at the file that calls it", function()
      local e = err_of(function()
        local def = workflow.define { name = "w", run = noop, retry = { backoff = 0 } }
        return def
      end)
      assert.matches("^[^:]*07%-workflow_spec%.lua:%d+: workflow%.define: retry%.backoff", e)
      e = err_of(function()
        local def = workflow.define { name = "w", run = noop, step_timeout = "x" }
        return def
      end)
      assert.matches("^[^:]*07%-workflow_spec%.lua:%d+: workflow%.define: step_timeout", e)
      -- A workflow file ends in `return workflow.define {...}`, a tail call
      -- that leaves no position to point at: the message is bare (and
      -- lodestoned names the file beside it).
      local chunk = assert(load('local workflow = require "lodestone.workflow"\n'
        .. 'return workflow.define { name = "w", run = function() end, retry = { max_attempts = -1 } }\n',
        "=bad_workflow.lua"))
      assert.equal("workflow.define: retry.max_attempts: must be a whole number, 0 (no limit) or more, got -1",
        err_of(chunk))
    end)
  end)

  describe("fatal and error", function()
    it("makes values that carry a message, a code and whether to retry", function()
      local f = workflow.fatal("card declined")
      assert.equal("card declined", f.message)
      assert.is_true(f.fatal)
      assert.is_nil(f.code)
      assert.equal("card declined", tostring(f))
      assert.equal("declined", workflow.fatal("no", "declined").code)
      assert.equal("42", workflow.fatal(42).message)

      local e = workflow.error("rate_limited", "try later")
      assert.equal("rate_limited", e.code)
      assert.equal("try later", e.message)
      assert.is_false(e.fatal)
      assert.equal("try later", tostring(e))
      assert.equal("busy", workflow.error("busy").message)
    end)

    it("travel through error() unchanged", function()
      local f = workflow.fatal("card declined")
      local ok, got = pcall(error, f)
      assert.is_false(ok)
      assert.equal(f, got)
      assert.equal(getmetatable(workflow.error("x")), getmetatable(got))
    end)
  end)

  describe("is_workflow", function()
    it("is true for definitions only", function()
      assert.is_true(workflow.is_workflow(workflow.define { name = "w", run = noop }))
      assert.is_false(workflow.is_workflow({ name = "w", run = noop }))
      assert.is_false(workflow.is_workflow(nil))
      assert.is_false(workflow.is_workflow("w"))
      assert.is_false(workflow.is_workflow(workflow.fatal("x")))
    end)
  end)
end)

-- ---------------------------------------------------------------------
-- The driver, against a stand-in for lodestoned's lodestone.flowrt that
-- answers from a script and records every call.

local function fake_rt(script)
  script = script or {}
  local rt = { INFO = 1, calls = {}, done = {}, failed = {}, slept = {}, logs = {} }
  local function note(...) rt.calls[#rt.calls + 1] = table.concat({ ... }, " ") end
  rt.name = function() return "run-1" end
  rt.input = function() return script.input or "null" end
  rt.step = function(_, name)
    note("step", rt.scope .. name)
    if script.raises and script.raises[name] then error(script.raises[name], 0) end
    local r = script.steps and script.steps[name]
    if r then return (table.unpack or unpack)(r) end
    return "run", 1, "key-" .. name
  end
  rt.step_done = function(_, name, attempt, text)
    note("step_done", name, attempt)
    rt.done[name] = text
  end
  rt.step_failed = function(_, name, attempt, msg, code, fatal, wf_retry, step_retry, pause)
    note("step_failed", name, attempt)
    rt.failed[name] = { msg = msg, code = code, fatal = fatal, wf_retry = wf_retry, step_retry = step_retry,
                        pause = pause }
    if script.retry then return "wait" end
    return "failed", string.format('step "%s" failed on attempt %d: %s', name, attempt, msg)
  end
  rt.sleep = function(_, ms)
    rt.slept[#rt.slept + 1] = ms
    return script.sleep or "wait"
  end
  rt.side_effect = function(_, kind, value)
    note("side_effect", kind)
    return script[kind] or value
  end
  rt.wait_signal = function(_, name, ms)
    note("wait_signal", name, ms)
    if script.raises and script.raises[name] then error(script.raises[name], 0) end
    local r = script.signals and script.signals[name]
    if r then return (table.unpack or unpack)(r) end
    return "wait"
  end
  rt.set_status = function(_, text) rt.status = text end
  rt.scope = ""
  rt.branch = function(_, scope) rt.scope = scope end
  rt.flush = function() note("flush") end
  rt.branch_start = function(_, scope)
    note("branch_start", scope)
    return "run-1-b" .. scope:gsub("%]%[", "_"):gsub("[%[%]]", "")
  end
  rt.branch_of = function() return script.branch_of end
  rt.child_wait = function(_, id)
    note("child_wait", id)
    local r = script.children and script.children[id]
    if r then return (table.unpack or unpack)(r) end
    return "wait"
  end
  rt.cancelled = function() rt.was_cancelled = true end
  rt.complete = function(_, text)
    if script.complete_error then error(script.complete_error, 0) end
    rt.output = text
  end
  rt.fail = function(_, msg, trace)
    rt.error, rt.traceback = msg, trace
  end
  rt.abandon = function() rt.abandoned = true end
  -- script.park: every write parks the activation until _resume
  rt.parks = 0
  rt.parked = function()
    if script.park and not rt.is_parked then
      rt.is_parked = true
      rt.parks = rt.parks + 1
      return true
    end
    return false
  end
  rt.check = function()
    rt.is_parked = false
    if script.write_error then error(script.write_error, 0) end
  end
  rt.interrupted = function() return false end
  rt.deadline = noop
  rt.deadline_left = function() return nil end
  rt.deadline_save = function() return 0, 0 end
  rt.deadline_restore = noop
  rt.wall_ms = function() return 1700000000000 end
  rt.random = function() return 0.25 end
  rt.uuid = function() return "00000000-0000-4000-8000-000000000000" end
  rt.secret = function(_, name) return "secret-" .. name end
  rt.log = function(_, _, msg) rt.logs[#rt.logs + 1] = msg end
  return rt
end

local function activate(def, script)
  local rt = fake_rt(script)
  package.loaded["lodestone.flowrt"] = rt
  local act = {}
  workflow._activate(def, act)
  -- a parked activation comes back once its write is durable
  for _ = 1, 100 do
    if not rt.is_parked then break end
    workflow._resume(act)
  end
  package.loaded["lodestone.flowrt"] = nil
  return rt
end

describe("lodestone.workflow driver", function()
  it("runs steps, records their results and completes", function()
    local seen
    local def = workflow.define { name = "w", run = function(ctx, input)
      local a = ctx:step("a", function(s)
        seen = { attempt = s.attempt, key = s.idempotency_key, id = s.id, secret = s:secret("tok") }
        return { n = input.n + 1 }
      end)
      return { a = a.n, id = ctx.id }
    end }
    local rt = activate(def, { input = '{"n":41}' })
    assert.same({ attempt = 1, key = "key-a", id = "run-1", secret = "secret-tok" }, seen)
    assert.equal('{"n":42}', rt.done.a)
    assert.same({ a = 42, id = "run-1" }, json.decode(rt.output))
    assert.is_nil(rt.error)
  end)

  it("passes no input (JSON null) as nil", function()
    local got = "unset"
    local def = workflow.define { name = "w", run = function(_, input) got = input end }
    activate(def, { input = "null" })
    assert.is_nil(got)
    activate(def, { input = "[null]" })
    assert.same({ json.null }, got)
  end)

  it("returns a recorded result without running the step again", function()
    local ran = false
    local def = workflow.define { name = "w", run = function(ctx)
      return ctx:step("a", function() ran = true end)
    end }
    local rt = activate(def, { steps = { a = { "done", '{"recorded":true}' } } })
    assert.is_false(ran)
    assert.same({ recorded = true }, json.decode(rt.output))
  end)

  it("suspends on a pending sleep or retry, with no outcome", function()
    local after = false
    local def = workflow.define { name = "w", run = function(ctx)
      ctx:sleep("1.5s")
      after = true
    end }
    local rt = activate(def)
    assert.same({ 1500 }, rt.slept)
    assert.is_false(after)
    assert.is_nil(rt.output)
    assert.is_nil(rt.error)

    rt = activate(def, { sleep = "done" })
    assert.is_true(after)
    assert.equal("null", rt.output)

    def = workflow.define { name = "w", run = function(ctx) ctx:step("a", function() error("down") end) end }
    rt = activate(def, { retry = true })
    assert.equal("down", rt.failed.a.msg:match("down$"))
    assert.is_nil(rt.output)
    assert.is_nil(rt.error)
  end)

  it("hands a step's error, code, fatality and policies to the engine", function()
    local def = workflow.define { name = "w", retry = { max_attempts = 3 }, run = function(ctx)
      ctx:step("charge", function() error(workflow.fatal("card declined", "declined")) end,
        { retry = { max_attempts = 10 } })
    end }
    local rt = activate(def)
    local f = rt.failed.charge
    assert.equal("card declined", f.msg)
    assert.equal("declined", f.code)
    assert.is_true(f.fatal)
    assert.same({ max_attempts = 3 }, json.decode(f.wf_retry))
    assert.same({ max_attempts = 10 }, json.decode(f.step_retry))
    assert.equal('step "charge" failed on attempt 1: card declined', rt.error)
    assert.is_string(rt.traceback)

    def = workflow.define { name = "w", run = function(ctx)
      ctx:step("a", function() error("plain") end)
    end }
    f = activate(def).failed.a
    assert.matches("plain$", f.msg)
    assert.is_nil(f.code)
    assert.is_false(f.fatal)

    def = workflow.define { name = "w", run = function(ctx)
      ctx:step("a", function() return function() end end)
    end }
    f = activate(def).failed.a
    assert.matches("^step result is not JSON", f.msg)
    -- the code's mistake: a retry would only repeat it
    assert.is_true(f.fatal)
    assert.equal("not_json", f.code)
  end)

  it("names where the call was when the engine refuses a step's or a signal's name", function()
    local src = debug.getinfo(1, "S").short_src
    local line
    local raises = {
      long = "ctx:step: step name: must be 1 to 200 bytes, got 201",
      ["a\255"] = "ctx:wait_signal: signal name: byte 2 (0xff) is not valid UTF-8",
      other = "run run-1: history reached the limit of 20 events (lodestoned --max-events)",
    }
    for _, case in ipairs {
      { function(ctx)
          line = debug.getinfo(1, "l").currentline + 1
          local v = ctx:step("long", function() end)
          return v
        end, raises.long },
      { function(ctx)
          line = debug.getinfo(1, "l").currentline + 1
          local v = ctx:wait_signal("a\255")
          return v
        end, raises["a\255"] },
    } do
      local rt = activate(workflow.define { name = "w", run = case[1] }, { raises = raises })
      assert.is_nil(rt.output)
      assert.equal(src .. ":" .. line .. ": " .. case[2], rt.error)
    end
    -- Other errors of the engine are raised as they are.
    local def = workflow.define { name = "w", run = function(ctx)
      local v = ctx:step("other", function() end)
      return v
    end }
    assert.equal(raises.other, activate(def, { raises = raises }).error)
  end)

  it("refuses a step context used after its step ended", function()
    for what, use in pairs {
      ["s:secret"] = function(s) return s:secret("db") end,
      ["s.http"] = function(s) return s.http.get("http://127.0.0.1:1/") end,
      ["s:log"] = function(s) s:log("late") end,
    } do
      local saved, inside
      local def = workflow.define { name = "w", run = function(ctx)
        inside = ctx:step("a", function(s) saved = s; return s:secret("db") end)
        use(saved)
      end }
      local rt = activate(def)
      assert.equal("secret-db", inside) -- within the step it works
      assert.matches(what .. ": the step context of step 'a' is used after that step ended", rt.error, 1, true)
    end
  end)

  it("waits for signals: payload, timeout, suspension", function()
    local got = {}
    local def = workflow.define { name = "w", run = function(ctx)
      got.a = ctx:wait_signal("a")
      got.b, got.why = ctx:wait_signal("b", { timeout = "2s" })
      return "done"
    end }
    local rt = activate(def, { signals = { a = { "done", '{"x":1}' }, b = { "timeout" } } })
    assert.same({ x = 1 }, got.a)
    assert.is_nil(got.b)
    assert.equal("timeout", got.why)
    assert.same({ "wait_signal a -1", "wait_signal b 2000" }, rt.calls)
    assert.equal('"done"', rt.output)

    got = {}
    rt = activate(def, { signals = { a = { "done", "null" } } })
    assert.is_nil(got.a) -- a null payload is nil
    assert.is_nil(rt.output) -- suspended on b
    assert.is_nil(rt.error)
  end)

  it("checks wait_signal's arguments", function()
    local function run_with(...)
      local args = { ... }
      return activate(workflow.define { name = "w", run = function(ctx)
        ctx:wait_signal((table.unpack or unpack)(args))
      end }).error
    end
    assert.matches("ctx:wait_signal: name must be a non%-empty string$", run_with(""))
    assert.matches("ctx:wait_signal: unknown option time %(known: timeout%)$", run_with("a", { time = 1 }))
    assert.matches('ctx:wait_signal: timeout: duration "soon": expected a number$', run_with("a", { timeout = "soon" }))
  end)

  it("raises the cancellation at a wait point; cleanup runs; the run ends cancelled", function()
    local caught
    local def = workflow.define { name = "w", run = function(ctx)
      local ok, err = pcall(function() ctx:sleep("1h") end)
      caught = { ok = ok, cancelled = workflow.is_cancelled(err), msg = tostring(err) }
      ctx:step("cleanup", function() return 1 end)
      error(err, 0)
    end }
    local rt = activate(def, { sleep = "cancelled" })
    assert.same({ ok = false, cancelled = true, msg = "cancelled" }, caught)
    assert.equal("1", rt.done.cleanup)
    assert.is_true(rt.was_cancelled)
    assert.is_nil(rt.error)

    -- a step and a signal wait deliver it too, with the reason
    def = workflow.define { name = "w", run = function(ctx) ctx:step("a", noop) end }
    rt = activate(def, { steps = { a = { "cancelled", "no longer needed" } } })
    assert.is_true(rt.was_cancelled)
    local err
    def = workflow.define { name = "w", run = function(ctx)
      local ok, e = pcall(ctx.wait_signal, ctx, "go")
      err = e
      return ok
    end }
    rt = activate(def, { signals = { go = { "cancelled", "dup" } } })
    assert.equal("cancelled: dup", tostring(err))
    assert.equal("dup", err.reason)
    assert.equal("false", rt.output) -- returned: the engine ends it cancelled
  end)

  it("records a custom status as JSON", function()
    local def = workflow.define { name = "w", run = function(ctx)
      ctx:set_status { stage = "one" }
    end }
    assert.same({ stage = "one" }, json.decode(activate(def).status))
    def = workflow.define { name = "w", run = function(ctx) ctx:set_status(function() end) end }
    assert.matches("ctx:set_status: value is not JSON", activate(def).error)
  end)

  it("passes on_exhausted (workflow or step) to the engine, and checks it", function()
    local def = workflow.define { name = "w", on_exhausted = "pause", run = function(ctx)
      ctx:step("a", function() error("down") end)
    end }
    assert.is_true(activate(def).failed.a.pause)
    def = workflow.define { name = "w", on_exhausted = "pause", run = function(ctx)
      ctx:step("a", function() error("down") end, { on_exhausted = "fail" })
    end }
    assert.is_false(activate(def).failed.a.pause)
    def = workflow.define { name = "w", run = function(ctx)
      ctx:step("a", function() error("down") end, { on_exhausted = "pause" })
    end }
    assert.is_true(activate(def).failed.a.pause)
    assert.equal('workflow.define: on_exhausted: must be "fail" or "pause", got sometimes',
      err_of(defines { on_exhausted = "sometimes" }))
    def = workflow.define { name = "w", run = function(ctx) ctx:step("a", noop, { on_exhausted = 1 }) end }
    assert.matches('ctx:step: on_exhausted: must be "fail" or "pause", got 1$', activate(def).error)
  end)

  it("starts each ctx:all branch as a branch run and returns their results in order", function()
    local def = workflow.define { name = "w", run = function(ctx)
      return ctx:all { noop, noop, function(c) return c:all { noop } end }
    end }
    local rt = activate(def, { children = { ["run-1-b1.1"] = { "done", "1" },
                                            ["run-1-b1.2"] = { "done", "null" },
                                            ["run-1-b1.3"] = { "done", '["x"]' } } })
    assert.equal('[1,null,["x"]]', rt.output)
    assert.same({ "flush", "branch_start [1.1]", "branch_start [1.2]", "branch_start [1.3]",
                  "child_wait run-1-b1.1", "child_wait run-1-b1.2", "child_wait run-1-b1.3" }, rt.calls)
    assert.equal("[]", activate(workflow.define { name = "w", run = function(ctx) return ctx:all {} end }).output)
  end)

  it("waits for every branch run, then raises the first failure", function()
    local def = workflow.define { name = "w", run = function(ctx) return ctx:all { noop, noop, noop } end }
    local rt = activate(def, { children = { ["run-1-b1.1"] = { "done", "1" } } })
    assert.is_nil(rt.output) -- suspended on branch 2
    assert.is_nil(rt.error)
    assert.equal("child_wait run-1-b1.2", rt.calls[#rt.calls])
    rt = activate(def, { children = {
      ["run-1-b1.1"] = { "done", "1" },
      ["run-1-b1.2"] = { "failed", "child workflow run-1-b1.2 failed: first" },
      ["run-1-b1.3"] = { "failed", "child workflow run-1-b1.3 failed: second" } } })
    assert.equal("ctx:all: branch 2 failed: first", rt.error)
    assert.equal("child_wait run-1-b1.3", rt.calls[#rt.calls]) -- after all settled
  end)

  it("in a branch run, runs only that branch, in place, and ends with its result", function()
    local ran = {}
    local def = workflow.define { name = "w", run = function(ctx)
      ctx:step("before", noop)
      local ok = pcall(ctx.all, ctx, {
        function(c) ran[#ran + 1] = "1"; return c:step("a", noop) end,
        function(c)
          ran[#ran + 1] = "2"
          return c:all { function(g) return g:step("n", function() return "N1" end) end,
                         function(g) ran[#ran + 1] = "2.2"; return "N2" end }
        end,
      })
      ran[#ran + 1] = "after " .. tostring(ok) -- never in a branch run
      ctx:step("after", noop)
    end }
    local rt = activate(def, { branch_of = "[1.2][1.1]" })
    assert.equal('"N1"', rt.output)
    assert.same({ "2" }, ran)
    assert.same({ "step before", "step_done before 1", "step [1.2][1.1]n", "step_done n 1" }, rt.calls)
    assert.equal("[1.2][1.1]", rt.scope)

    ran = {}
    rt = activate(workflow.define { name = "w", run = function(ctx)
      pcall(ctx.all, ctx, { noop, function() error("branch broke") end })
      ran[#ran + 1] = "after"
    end }, { branch_of = "[1.2]" })
    assert.matches("branch broke", rt.error)
    assert.same({}, ran) -- the failure ends the branch run; the code around it does not go on
    rt = activate(workflow.define { name = "w", run = function(ctx)
      pcall(ctx.all, ctx, { noop, function() return "big" end })
      ran[#ran + 1] = "after"
    end }, { branch_of = "[1.2]", complete_error = "the output is over the payload limit" })
    assert.equal("the output is over the payload limit", rt.error) -- an end refused fails it
    assert.same({}, ran)
    rt = activate(workflow.define { name = "w", run = function(ctx) ctx:all { noop } end },
      { branch_of = "[1.2]" })
    assert.equal("ctx:all: branch run of [1.2] finds 1 branches here (non-determinism)", rt.error)
  end)

  it("checks ctx:all's argument", function()
    local function run_with(v)
      return activate(workflow.define { name = "w", run = function(ctx) ctx:all(v) end }).error
    end
    assert.matches("ctx:all: expects a list of functions$", run_with("x"))
    assert.matches("ctx:all: item 2 is a string, not a function$", run_with({ noop, "f" }))
    assert.matches("ctx:all: expects a list of functions %(1..n%), got key k$", run_with({ k = noop }))
  end)

  it("runs a saga's compensations newest first, all of them", function()
    local order = {}
    local def = workflow.define { name = "w", run = function(ctx)
      local saga = ctx:saga()
      saga:add(function() order[#order + 1] = "refund" end)
      saga:add(function() error("restock failed") end)
      saga:add(function() order[#order + 1] = "unreserve" end)
      saga:compensate()
    end }
    local rt = activate(def)
    assert.same({ "unreserve", "refund" }, order)
    assert.matches("restock failed$", rt.error)
    def = workflow.define { name = "w", run = function(ctx) ctx:saga():add("x") end }
    assert.matches("saga:add: expects a function$", activate(def).error)
  end)

  it("fails the run on bad step options, naming them", function()
    local rt
    local function run_with(opts)
      return activate(workflow.define { name = "w", run = function(ctx)
        ctx:step("a", noop, opts)
      end })
    end
    rt = run_with({ retries = 3 })
    assert.matches("07%-workflow_spec%.lua:%d+: ctx:step: unknown option retries %(known: retry, timeout, on_exhausted%)$", rt.error)
    assert.same({}, rt.calls) -- checked before the engine is asked
    assert.matches("ctx:step: opts must be a table$", run_with("fast").error)
    assert.matches("ctx:step: timeout: must be more than 0, got 0$", run_with({ timeout = 0 }).error)
    assert.matches('ctx:step: timeout: duration "a while": expected a number', run_with({ timeout = "a while" }).error)
    assert.matches("ctx:step: retry%.backoff: must be a number of at least 1, got 0$",
      run_with({ retry = { backoff = 0 } }).error)
    assert.matches("ctx:step: retry%.max_interval: must be at least initial_interval %(1000 ms%)$",
      run_with({ retry = { max_interval = 0.5 } }).error)
    rt = activate(workflow.define { name = "w", retry = { initial_interval = "5s" }, run = function(ctx)
      ctx:step("a", noop, { retry = { max_interval = "2s" } })
    end })
    assert.matches("ctx:step: retry%.max_interval: must be at least initial_interval %(5000 ms%)$", rt.error)
    -- and the other way round: the step's initial_interval over the workflow's max_interval
    rt = activate(workflow.define { name = "w", retry = { max_interval = "5s" }, run = function(ctx)
      ctx:step("a", noop, { retry = { initial_interval = "10s" } })
    end })
    assert.matches("ctx:step: retry%.initial_interval: must be at most the workflow's max_interval %(5000 ms%)$",
      rt.error)
    assert.same({}, rt.calls)
    rt = activate(workflow.define { name = "w", retry = { max_interval = "5s" }, run = function(ctx)
      ctx:step("a", noop, { retry = { initial_interval = "5s" } })
    end })
    assert.is_nil(rt.error)
    rt = activate(workflow.define { name = "w", retry = { initial_interval = "50ms" }, run = function(ctx)
      ctx:step("a", noop, { retry = { max_interval = "100ms" } })
    end })
    assert.equal("null", rt.output)
    assert.matches("ctx:sleep: duration \"later\": expected a number", activate(workflow.define { name = "w",
      run = function(ctx) ctx:sleep("later") end }).error)
  end)

  it("parks after each write and resumes where it left off", function()
    local def = workflow.define { name = "w", run = function(ctx, input)
      local a = ctx:step("a", function() return { n = 1 } end)
      local b = ctx:step("b", function() return { n = a.n + 1 } end)
      return { total = b.n }
    end }
    local rt = activate(def, { park = true })
    -- The stand-in parks wherever the driver asks: after each step's start,
    -- which may write (the previous result); step_done only queues.
    assert.equals(2, rt.parks)
    assert.equals('{"total":2}', rt.output)
  end)

  it("fails the run when a parked write did not reach the store", function()
    local def = workflow.define { name = "w", run = function(ctx)
      ctx:step("a", function() return 1 end)
      return "unreachable"
    end }
    local rt = activate(def, { park = true, write_error = "run run-1: cannot write: disk full" })
    assert.is_nil(rt.output)
    assert.matches("cannot write: disk full", rt.error)
  end)

  it("refuses orchestration calls inside a step", function()
    for _, call in ipairs({
      function(ctx) ctx:step("inner", noop) end,
      function(ctx) ctx:sleep(1) end,
      function(ctx) ctx:now() end,
    }) do
      local def = workflow.define { name = "w", run = function(ctx)
        ctx:step("outer", function() call(ctx) end)
      end }
      local f = activate(def).failed.outer
      assert.matches("^tests/lua/07%-workflow_spec%.lua:%d+: ctx:%a+ inside a step: call it in run and pass the value to the step",
        f.msg)
      -- a mistake in the code: never retried (it would fail the same way forever)
      assert.is_true(f.fatal)
      assert.equal("ctx_in_step", f.code)
    end
  end)

  it("records now, random and uuid as side effects", function()
    local def = workflow.define { name = "w", run = function(ctx)
      return { now = ctx:now(), r = ctx:random(), u = ctx:uuid() }
    end }
    local rt = activate(def)
    assert.same({ now = 1700000000, r = 0.25, u = "00000000-0000-4000-8000-000000000000" },
      json.decode(rt.output))
    assert.same({ "side_effect now", "side_effect random", "side_effect uuid" }, rt.calls)
    rt = activate(def, { now = "1600000000.5" }) -- the recorded value wins
    assert.equal(1600000000.5, json.decode(rt.output).now)
  end)

  it("fails the run with the message and a traceback", function()
    local rt = activate(workflow.define { name = "w", run = function() error("boom") end })
    assert.matches("boom$", rt.error)
    assert.matches("stack traceback", rt.traceback)
    rt = activate(workflow.define { name = "w", run = function() error(workflow.fatal("no")) end })
    assert.equal("no", rt.error)
    rt = activate(workflow.define { name = "w", run = function() return noop end })
    assert.matches("^the workflow's result is not JSON", rt.error)
    rt = activate(workflow.define { name = "w", run = function() coroutine.yield(1) end })
    assert.matches("yielded outside ctx:sleep/ctx:step", rt.error)
  end)
end)

-- ---------------------------------------------------------------------
-- The examples users copy: each file loads as lodestoned loads it, and its
-- run does what its comments say against a fake ctx and fake HTTP.

local function example_files()
  local p = assert(io.popen("ls workflows/*.lua"))
  local files = {}
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

local function load_example(name)
  return assert(loadfile("workflows/" .. name .. ".lua"))()
end

-- A ctx whose steps run at once (attempt 1); a step error becomes the
-- engine's final message, and the raw error is kept in ctx.errors.
-- http(method, url, opts) answers the steps' requests.
local function fake_ctx(http, now)
  local ctx = { id = "run-1", steps = {}, errors = {}, slept = {}, logs = {}, requests = {} }
  local function request(method, url, opts)
    ctx.requests[#ctx.requests + 1] = { method = method, url = url, opts = opts or {} }
    return http(method, url, opts or {})
  end
  local s_http = {}
  for _, m in ipairs({ "get", "post", "put", "patch", "delete" }) do
    s_http[m] = function(url, opts) return request(m:upper(), url, opts) end
  end
  function ctx:step(name, fn, opts)
    self.steps[#self.steps + 1] = name
    local s = { attempt = 1, idempotency_key = "key-" .. name, id = self.id, http = s_http,
                secret = function(_, n) return "secret-" .. n end,
                log = function(_, msg) self.logs[#self.logs + 1] = msg end }
    local ok, res = pcall(fn, s)
    if ok then return res end
    self.errors[name] = res
    error(string.format('step "%s" failed on attempt 1: %s', name, tostring(res)), 0)
  end
  function ctx:sleep(d) self.slept[#self.slept + 1] = d end
  -- ctx.signals[name]: a payload, or workflow's cancellation error to raise
  ctx.signals, ctx.statuses, ctx.waits = {}, {}, {}
  function ctx:wait_signal(name, opts)
    self.waits[#self.waits + 1] = { name = name, timeout = opts and opts.timeout }
    local v = self.signals[name]
    if workflow.is_cancelled(v) then error(v, 0) end
    if v == nil then return nil, "timeout" end
    return v
  end
  function ctx:set_status(v) self.statuses[#self.statuses + 1] = v end
  function ctx:now() return now or 1700000000 end
  function ctx:log(msg) self.logs[#self.logs + 1] = msg end
  return ctx
end

local function status_of(code, body)
  return function() return { status = code, json = body, body = body and json.encode(body) or "" } end
end

describe("example workflows", function()
  it("every file in workflows/ defines a workflow named after it", function()
    local files = example_files()
    assert.is_true(#files >= 3)
    for _, path in ipairs(files) do
      local chunk, err = loadfile(path)
      assert.is_nil(err)
      local def = chunk()
      assert.is_true(workflow.is_workflow(def), path)
      assert.equal(path:match("([^/]+)%.lua$"), def.name)
    end
  end)

  describe("approval", function()
    local approval = load_example("approval")

    it("waits for approval with the given timeout, then orders", function()
      local ctx = fake_ctx(noop)
      ctx.signals.approved = { by = "alice" }
      local out = approval.run(ctx, { item = "laptop", timeout = "1d" })
      assert.same({ "reserve", "order" }, ctx.steps)
      assert.same({ { name = "approved", timeout = "1d" } }, ctx.waits)
      assert.same({ item = "laptop", approved_by = "alice", order = "key-order" }, out)
      assert.same({ { stage = "waiting for approval", item = "laptop" }, { stage = "approved", by = "alice" } },
        ctx.statuses)
    end)

    it("releases the reservation and fails when the approval does not come", function()
      local ctx = fake_ctx(noop)
      local e = err_of(approval.run, ctx, {})
      assert.equal("no approval within 3d (timeout)", tostring(e))
      assert.is_true(e.fatal)
      assert.same({ "reserve", "release" }, ctx.steps)
      assert.same({ stage = "expired" }, ctx.statuses[#ctx.statuses])
    end)

    it("releases the reservation and lets a cancellation through", function()
      local ctx = fake_ctx(noop)
      -- the error ctx raises on cancellation, as the driver makes it
      local rt = fake_rt({ sleep = "cancelled" })
      local cancel_err
      rt.cancelled = function() end
      package.loaded["lodestone.flowrt"] = rt
      local ok, e = pcall(function()
        workflow._activate(workflow.define { name = "c", run = function(c)
          local okk, ee = pcall(c.sleep, c, 1)
          cancel_err = ee
          return okk
        end }, {})
      end)
      package.loaded["lodestone.flowrt"] = nil
      assert.is_true(ok, tostring(e))
      assert.is_true(workflow.is_cancelled(cancel_err))
      ctx.signals.approved = cancel_err
      local got = err_of(approval.run, ctx, { item = "desk" })
      assert.is_true(workflow.is_cancelled(got))
      assert.same({ "reserve", "release" }, ctx.steps)
    end)
  end)

  describe("order", function()
    local order = load_example("order")

    it("keeps the issue's retry policy", function()
      assert.same({ initial_interval = "1s", backoff = 2.0, max_interval = "1m", max_attempts = 5 },
        json.decode(order.retry_json))
    end)

    it("charges with the idempotency key and the secret, sleeps, ships", function()
      local ctx = fake_ctx(status_of(201, { id = "ch_1", amount = 4200 }))
      local out = order.run(ctx, { id = "1001", amount = 4200, payments_url = "http://pay" })
      assert.same({ charge = "ch_1", tracking = "T-1001" }, out)
      assert.same({ "charge", "ship" }, ctx.steps)
      assert.same({ "10s" }, ctx.slept)
      local req = ctx.requests[1]
      assert.equal("POST", req.method)
      assert.equal("http://pay/charges", req.url)
      assert.same({ amount = 4200 }, req.opts.json)
      assert.same({ ["Idempotency-Key"] = "key-charge", Authorization = "Bearer secret-payments_token" },
        req.opts.headers)
      ctx = fake_ctx(status_of(201, { id = "ch_2" }))
      order.run(ctx, { id = "7", amount = 1, ship_delay = "1s" })
      assert.equal("http://127.0.0.1:9000/charges", ctx.requests[1].url)
      assert.same({ "1s" }, ctx.slept)
    end)

    it("retries a 5xx and gives up at once on a 4xx", function()
      local ctx = fake_ctx(status_of(503, { error = "unavailable" }))
      local e = err_of(order.run, ctx, { id = "1", amount = 1 })
      assert.matches('^step "charge" failed on attempt 1: .*payments unavailable$', e)
      assert.is_string(ctx.errors.charge) -- a plain error: the engine retries it
      ctx = fake_ctx(status_of(402, { error = "card declined" }))
      e = err_of(order.run, ctx, { id = "1", amount = 1 })
      assert.equal('step "charge" failed on attempt 1: card declined', e)
      assert.is_true(ctx.errors.charge.fatal)
      assert.same({}, ctx.slept)
    end)
  end)

  describe("webhook_fanout", function()
    local fanout = load_example("webhook_fanout")

    it("delivers to each URL in its own step and reports each outcome", function()
      local codes = { ["http://a"] = 204, ["http://b"] = 410, ["http://c"] = 503 }
      local ctx = fake_ctx(function(_, url) return { status = codes[url], body = "" } end)
      local out = fanout.run(ctx, { event = { type = "order.paid" }, urls = { "http://a", "http://b", "http://c" } })
      assert.same({ "deliver 1", "deliver 2", "deliver 3", "summary" }, ctx.steps)
      assert.equal(1, out.delivered)
      assert.equal(2, out.failed)
      assert.same({ url = "http://a", status = 204, delivered = true }, out.deliveries[1])
      assert.same({ url = "http://b", status = 410, delivered = false }, out.deliveries[2])
      assert.is_false(out.deliveries[3].delivered)
      assert.matches('^step "deliver 3" failed on attempt 1: .*http://c answered 503$', out.deliveries[3].error)
      assert.same({ type = "order.paid" }, ctx.requests[1].opts.json)
      assert.equal("key-deliver 1", ctx.requests[1].opts.headers["Idempotency-Key"])
      assert.same({ "event delivered to 1 of 3 subscribers" }, ctx.logs)
    end)

    it("needs a list of URLs", function()
      assert.matches("input.urls: expected a list of URLs$", err_of(fanout.run, fake_ctx(noop), { event = {} }))
    end)
  end)

  describe("nightly_cleanup", function()
    local cleanup = load_example("nightly_cleanup")

    it("purges in batches before a cutoff taken from ctx:now()", function()
      local left = 1200
      local ctx = fake_ctx(function(_, _, opts)
        local n = math.min(left, opts.json.limit)
        left = left - n
        return { status = 200, json = { deleted = n }, body = "" }
      end, 1700000000) -- 2023-11-14T22:13:20Z
      local out = cleanup.run(ctx, { purge_url = "http://svc/purge", keep = "1d" })
      assert.same({ before = "2023-11-13T22:13:20Z", deleted = 1200, batches = 3 }, out)
      assert.same({ "purge 1", "purge 2", "purge 3" }, ctx.steps)
      assert.same({ before = "2023-11-13T22:13:20Z", limit = 500 }, ctx.requests[1].opts.json)
      assert.same({ "deleting items older than 2023-11-13T22:13:20Z", "deleted 1200 items in 3 batches" }, ctx.logs)
    end)

    it("keeps 30 days by default and refuses a bad input", function()
      local ctx = fake_ctx(status_of(200, {}), 1700000000)
      assert.same({ before = "2023-10-15T22:13:20Z", deleted = 0, batches = 1 },
        cleanup.run(ctx, { purge_url = "http://svc/purge" }))
      assert.matches("input.purge_url: expected a URL$", err_of(cleanup.run, fake_ctx(noop), {}))
      assert.matches('input.keep: duration "a month": expected a number',
        err_of(cleanup.run, fake_ctx(noop), { purge_url = "http://x", keep = "a month" }))
      ctx = fake_ctx(status_of(403, { error = "no" }))
      local e = err_of(cleanup.run, ctx, { purge_url = "http://x" })
      assert.matches('^step "purge 1" failed on attempt 1: purge refused %(403%)', e)
      assert.is_true(ctx.errors["purge 1"].fatal)
    end)
  end)
end)
