-- SPDX-License-Identifier: MIT
-- lodestone.testing: the harness's own behaviour (replay on every
-- activation, non-determinism, retries with backoff in virtual time, fatal
-- errors, signal waits and their timeouts, cancel and terminate, history
-- shape, stubs, secrets, HTTP, replay checks, child runs and parallel
-- branch scopes through the runtime calls lodestone.workflow makes for
-- them, options), then every example workflow in workflows/ run through it.
local testing = require("lodestone.testing")
local workflow = require("lodestone.workflow")
local json = require("lodestone.core").json

local T0 = 1700000000 -- the harness's default start: 2023-11-14T22:13:20Z

local function at(seconds) return testing.iso(T0 + seconds) end

-- The message of the error fn(...) raises (fails the test when none).
local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return e
end

local function types(t)
  local out = {}
  for _, e in ipairs(t.history) do out[#out + 1] = e.type end
  return out
end

local function define(run, fields)
  local spec = { name = "w", run = run }
  for k, v in pairs(fields or {}) do spec[k] = v end
  return workflow.define(spec)
end

describe("lodestone.testing", function()
  describe("a run", function()
    it("runs until a wait, fires the timer on advance, and ends with its output", function()
      local def = define(function(ctx, input)
        local a = ctx:step("a", function(s) return { n = input.n + 1, attempt = s.attempt } end)
        ctx:sleep("30d")
        local b = ctx:step("b", function() return a.n * 2 end)
        return { a = a, b = b }
      end)
      local t = testing.run(def, { input = { n = 1 }, id = "job-7" })
      assert.equal("job-7", t.id)
      assert.equal("w", t.type)
      assert.equal("running", t.status)
      assert.same({ kind = "sleep", name = "", due_at = at(30 * 86400) }, t.waiting)
      assert.is_nil(t.output)
      t:advance("30d")
      assert.equal("completed", t.status)
      assert.is_nil(t.waiting)
      assert.same({ a = { n = 2, attempt = 1 }, b = 4 }, t.output)
      assert.same({ "a", "b" }, t:steps())
      assert.equal(T0 + 30 * 86400, t.now)
      assert.equal(2, t.steps_completed)
      t:replay()
    end)

    it("replays from the start on every activation without running a completed step again", function()
      local ran = {}
      local def = define(function(ctx)
        for i = 1, 3 do
          ctx:step("s" .. i, function() ran[#ran + 1] = i; return i end)
          ctx:sleep(1)
        end
        return "done"
      end)
      local t = testing.run(def)
      assert.equal(1, t.activations)
      t:advance(1)
      t:advance(1)
      assert.equal(3, t.activations)
      t:advance(1)
      assert.equal("completed", t.status)
      assert.equal(4, t.activations) -- the start and three timers
      assert.same({ 1, 2, 3 }, ran)
      for i = 1, 3 do assert.equal(1, t:calls("s" .. i)) end
      assert.equal(0, t:calls("nope"))
      t:replay()
      assert.same({ 1, 2, 3 }, ran) -- the replay ran none of them
    end)

    it("records events shaped as GET /v1/workflows/{id}/history", function()
      local def = define(function(ctx)
        ctx:step("a", function() return { ok = true } end)
        ctx:sleep("10s")
        ctx:log("after the sleep")
        return { at = ctx:now() }
      end)
      local t = testing.run(def, { input = { x = 1 } })
      t:advance("10s")
      assert.same({
        { seq = 1, type = "workflow_started", time = at(0), input = { x = 1 } },
        { seq = 2, type = "step_started", time = at(0), name = "a", attempt = 1 },
        { seq = 3, type = "step_completed", time = at(0), name = "a", attempt = 1, result = { ok = true } },
        { seq = 4, type = "timer_started", time = at(0), name = "", due_at = at(10) },
        { seq = 5, type = "timer_fired", time = at(10), name = "" },
        { seq = 6, type = "side_effect_recorded", time = at(10), name = "now", value = T0 + 10 },
        { seq = 7, type = "workflow_completed", time = at(10), output = { at = T0 + 10 } },
      }, t.history)
      assert.same({ "after the sleep" }, t.logs) -- logged once, not again on replay
      assert.same({ t.history[5] }, t:events("timer_fired"))
      assert.equal(json.null, testing.run(define(function() end)).history[1].input)
    end)

    it("puts its runtime in place only while the run is activated", function()
      local mine = { mine = true }
      package.loaded["lodestone.flowrt"] = mine
      local seen
      local t = testing.run(define(function(ctx)
        seen = package.loaded["lodestone.flowrt"]
        ctx:sleep(1)
      end))
      assert.equal(testing._flowrt, seen)
      assert.equal(mine, package.loaded["lodestone.flowrt"])
      t:advance(1)
      assert.equal(mine, package.loaded["lodestone.flowrt"])
      package.loaded["lodestone.flowrt"] = nil
    end)
  end)

  describe("non-determinism", function()
    it("fails the run naming both the recorded and the requested step", function()
      local name = "charge"
      local def = define(function(ctx)
        ctx:step(name, function() return 1 end)
        ctx:sleep(5)
        return "shipped"
      end)
      local t = testing.run(def, { id = "o-1" })
      name = "refund" -- the code changed while the run slept
      t:advance(5)
      assert.equal("failed", t.status)
      assert.equal('run o-1: non-determinism at command 1: history has step "charge", ' ..
        'the workflow asked for step "refund"', t.error)
      assert.equal(0, t:calls("refund"))
      assert.same("workflow_failed", t.history[#t.history].type)
      assert.equal(t.error, t.history[#t.history].error)
    end)

    it("is reported even when the code catches the error", function()
      local first = true
      local def = define(function(ctx)
        pcall(ctx.step, ctx, first and "a" or "b", function() return 1 end)
        ctx:sleep(1)
        return "done"
      end)
      local t = testing.run(def)
      first = false
      t:advance(1)
      assert.equal("failed", t.status)
      assert.matches('history has step "a", the workflow asked for step "b"$', t.error)
    end)

    it("names a command that history holds and the code no longer issues", function()
      local extra = true
      local def = define(function(ctx)
        ctx:step("a", function() return 1 end)
        if extra then ctx:step("b", function() return 2 end) end
        ctx:sleep(1)
      end)
      local t = testing.run(def)
      extra = false
      t:advance(1)
      assert.equal('run run-1: non-determinism at command 2: history has step "b", the workflow asked for timer ""',
        t.error)
    end)
  end)

  describe("t:replay", function()
    it("passes for a waiting run and for every way a run ends", function()
      local def = define(function(ctx, input)
        ctx:step("a", function() return 1 end)
        if input.mode == "fail" then error(workflow.fatal("no")) end
        local v = ctx:wait_signal("go", { timeout = "1h" })
        return { v = v, r = ctx:random() }
      end)
      local t = testing.run(def, { input = { mode = "ok" } })
      t:replay()
      t:signal("go", 5)
      assert.equal("completed", t.status)
      t:replay()
      t = testing.run(def, { input = { mode = "fail" } })
      assert.equal("failed", t.status)
      t:replay()
      t = testing.run(def, { input = {} })
      t:cancel("x")
      assert.equal("cancelled", t.status)
      t:replay()
      t = testing.run(def, { input = {} })
      t:terminate("y")
      assert.equal("terminated", t.status)
      t:replay()
    end)

    it("raises when the code changed under a finished run", function()
      local more = false
      local def = define(function(ctx)
        ctx:step("a", function() return 1 end)
        if more then ctx:step("b", function() return 2 end) end
        return "ok"
      end)
      local t = testing.run(def)
      more = true
      assert.matches('^[^:]*09%-testing_spec%.lua:%d+: testing: replay of run run%-1: run run%-1: non%-determinism ' ..
        'at command 2: history ends with workflow_completed, the workflow asked for step "b"$',
        err_of(function() t:replay() end))
      assert.equal(0, t:calls("b"))
    end)

    it("raises when the replay would write what history does not hold", function()
      local peek = false
      local def = define(function(ctx)
        if peek then ctx:now() end
        return ctx:wait_signal("go")
      end)
      local t = testing.run(def)
      assert.same({ kind = "signal", name = "go" }, t.waiting)
      peek = true
      assert.matches('testing: replay of run run%-1: it would write side_effect_recorded "now", ' ..
        'which history does not hold$', err_of(t.replay, t))
    end)

    it("raises when the replay returns something else", function()
      local out = 1
      local t = testing.run(define(function() return out end))
      out = 2
      assert.matches("the replay returned 2, the run returned 1$", err_of(t.replay, t))
    end)
  end)

  describe("retries", function()
    local function flaky(until_attempt, retry, opts)
      local attempts = {}
      local def = define(function(ctx)
        return ctx:step("call", function(s)
          attempts[#attempts + 1] = s.attempt
          if s.attempt < until_attempt then error("down " .. s.attempt) end
          return { attempt = s.attempt, key = s.idempotency_key }
        end, opts)
      end, { retry = retry })
      return def, attempts
    end

    it("waits the backoff in virtual time, attempt after attempt, with the same key", function()
      local def, attempts = flaky(4, { initial_interval = "1s", backoff = 2.0 })
      local t = testing.run(def)
      assert.same({ kind = "retry", name = "call", due_at = at(1) }, t.waiting)
      t:advance("999ms")
      assert.same({ 1 }, attempts)
      t:advance("1ms")
      assert.same({ 1, 2 }, attempts)
      assert.same({ kind = "retry", name = "call", due_at = at(3) }, t.waiting)
      t:advance("10s") -- fires attempt 3 at +3s and attempt 4 at +7s on the way
      assert.same({ 1, 2, 3, 4 }, attempts)
      assert.equal("completed", t.status)
      assert.same({ attempt = 4, key = "run-1-1" }, t.output)
      assert.equal(T0 + 11, t.now)
      local failed = t:events("step_failed")
      assert.equal(3, #failed)
      assert.equal(3, t.attempts_failed)
      assert.matches("down 1$", failed[1].error)
      assert.same({ at(1), at(3), at(7) }, { failed[1].retry_at, failed[2].retry_at, failed[3].retry_at })
      assert.same({ 1, 2, 3 }, { failed[1].attempt, failed[2].attempt, failed[3].attempt })
      assert.equal(4, t:calls("call"))
      t:replay()
    end)

    it("caps the delay at max_interval, 100 x initial by default, without jitter", function()
      local def = flaky(11, { initial_interval = "1s" })
      local t = testing.run(def, { auto_advance = true })
      assert.equal("completed", t.status)
      local due, prev = {}, T0
      for _, e in ipairs(t:events("step_failed")) do
        local y, mo, d, h, mi, s = e.retry_at:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
        local secs = os.time({ year = y, month = mo, day = d, hour = h, min = mi, sec = s }) -
          os.time({ year = 2023, month = 11, day = 14, hour = 22, min = 13, sec = 20 }) + T0
        due[#due + 1] = secs - prev
        prev = secs
      end
      assert.same({ 1, 2, 4, 8, 16, 32, 64, 100, 100, 100 }, due)
      def = flaky(3, { initial_interval = "1s", max_interval = "1500ms" })
      t = testing.run(def, { auto_advance = true })
      assert.equal(T0 + 2.5, t.now)
    end)

    it("fails the run when the attempts are used up, naming the step and the attempt", function()
      local def = flaky(99, { initial_interval = "1s", max_attempts = 3 })
      local t = testing.run(def, { auto_advance = true })
      assert.equal("failed", t.status)
      assert.matches('^step "call" failed on attempt 3: .*down 3$', t.error)
      assert.matches("stack traceback", t.traceback)
      local last = t:events("step_failed")[3]
      assert.is_true(last.final)
      assert.is_nil(last.retry_at)
      t:replay()
    end)

    it("lets a step's retry override the workflow's field by field", function()
      local def, attempts = flaky(99, { initial_interval = "2s", max_attempts = 2 }, { retry = { max_attempts = 4 } })
      local t = testing.run(def, { auto_advance = true })
      assert.same({ 1, 2, 3, 4 }, attempts)
      assert.equal(T0 + 2 + 4 + 8, t.now)
    end)

    it("never retries workflow.fatal or a non_retryable code", function()
      local def = define(function(ctx)
        ctx:step("pay", function() error(workflow.fatal("card declined", "declined")) end)
      end)
      local t = testing.run(def)
      assert.equal("failed", t.status)
      assert.equal('step "pay" failed on attempt 1: card declined', t.error)
      def = define(function(ctx)
        ctx:step("pay", function() error(workflow.error("invalid", "bad card number")) end)
      end, { retry = { non_retryable = { "invalid" } } })
      t = testing.run(def)
      assert.equal('step "pay" failed on attempt 1: bad card number', t.error)
      assert.equal(1, t:calls("pay"))
      def = define(function(ctx)
        ctx:step("pay", function() error(workflow.error("busy", "try later")) end)
      end, { retry = { non_retryable = { "invalid" } } })
      t = testing.run(def)
      assert.equal("running", t.status)
      assert.same({ kind = "retry", name = "pay", due_at = at(1) }, t.waiting)
    end)

    it("stops an endless retry under auto_advance with an error", function()
      local def = flaky(math.huge, { initial_interval = "1ms", max_interval = "1ms" })
      assert.matches("^testing: more than 1000 activations in one call",
        err_of(testing.run, def, { auto_advance = true }))
    end)
  end)

  describe("signals", function()
    it("delivers a payload to a waiting run, and nil for a null one", function()
      local def = define(function(ctx)
        local a = ctx:wait_signal("a")
        local b = ctx:wait_signal("b")
        return { a = a, b_is_nil = b == nil }
      end)
      local t = testing.run(def)
      assert.same({ kind = "signal", name = "a" }, t.waiting)
      t:signal("a", { x = 1 })
      assert.same({ kind = "signal", name = "b" }, t.waiting)
      t:signal("b")
      assert.same({ a = { x = 1 }, b_is_nil = true }, t.output)
      assert.same({ name = "b", payload = json.null },
        { name = t:events("signal_received")[2].name, payload = t:events("signal_received")[2].payload })
    end)

    it("keeps signals sent before the wait, in order", function()
      local def = define(function(ctx)
        ctx:sleep("1m")
        return { ctx:wait_signal("x"), ctx:wait_signal("x", { timeout = "1s" }), ctx:wait_signal("x") }
      end)
      local t = testing.run(def)
      t:signal("x", 1)
      t:signal("y", "other")
      t:signal("x", 2)
      assert.equal("running", t.status)
      assert.same({ kind = "sleep", name = "", due_at = at(60) }, t.waiting)
      t:advance("1m")
      assert.same({ kind = "signal", name = "x" }, t.waiting)
      t:signal("x", 3)
      assert.same({ 1, 2, 3 }, t.output)
      t:replay()
    end)

    it("times out a wait, at its due time and not before", function()
      local def = define(function(ctx)
        local v, why = ctx:wait_signal("approved", { timeout = "1h" })
        return { v = v, why = why }
      end)
      local t = testing.run(def)
      assert.same({ kind = "signal", name = "approved", due_at = at(3600) }, t.waiting)
      t:advance("59m59s")
      assert.equal("running", t.status)
      t:advance("1s")
      assert.equal("completed", t.status)
      assert.same({ why = "timeout" }, t.output)
      assert.same({ "workflow_started", "timer_started", "timer_fired", "workflow_completed" }, types(t))
      assert.equal("signal:approved", t.history[3].name)
      t:replay()
    end)

    it("is never timed out by auto_advance", function()
      local def = define(function(ctx)
        ctx:sleep("1d")
        return ctx:wait_signal("go", { timeout = "1h" })
      end)
      local t = testing.run(def, { auto_advance = true })
      assert.same({ kind = "signal", name = "go", due_at = at(86400 + 3600) }, t.waiting)
      t:signal("go", "now")
      assert.equal("now", t.output)
      assert.same({ "workflow_started", "timer_started", "timer_fired", "timer_started", "signal_received",
                    "timer_cancelled", "workflow_completed" }, types(t))
    end)

    it("refuses a signal to a finished run, saying how it finished", function()
      local t = testing.run(define(function() return 1 end), { id = "r-9" })
      assert.matches("09%-testing_spec%.lua:%d+: t:signal: run r%-9 has finished %(completed%)$",
        err_of(function() t:signal("x") end))
      assert.matches("t:signal: name: must be a string of 1 to 200 bytes, got \"\"$", err_of(t.signal, t, ""))
      assert.matches("t:signal: payload is not JSON", err_of(t.signal, t, "x", function() end))
    end)

    it("refuses signal names the API refuses (control characters, \"/\", dots), and such reasons", function()
      -- (DEL and C1 controls, U+0080 to U+009F, passed: only bytes below
      -- 0x20 were refused)
      local t = testing.run(define(function(ctx) return ctx:wait_signal("go") end))
      assert.matches("t:signal: signal name: control character at byte 2$", err_of(t.signal, t, "g\127o"))
      assert.matches("t:signal: signal name: control character at byte 2$", err_of(t.signal, t, "g\194\133o"))
      assert.matches("t:signal: signal name: byte 2 %(0xff%) is not valid UTF%-8$", err_of(t.signal, t, "g\255o"))
      assert.matches("t:cancel: reason: control characters are not allowed$", err_of(t.cancel, t, "a\194\159"))
      assert.matches("t:cancel: by: control characters are not allowed$", err_of(t.cancel, t, "why", "a\127"))
      assert.matches('t:signal: signal name: "/" at byte 2: a name is one segment of the API\'s path',
        err_of(t.signal, t, "a/b"))
      assert.matches('t:signal: signal name: "%.%." is not a name', err_of(t.signal, t, ".."))
      t:signal("g\194\160o") -- U+00A0 is text
      assert.equal("running", t.status)
      t:signal("go", 1)
      assert.equal(1, t.output)
    end)
  end)

  describe("cancel and terminate", function()
    it("delivers a cancellation at the next wait point; cleanup runs; the run ends cancelled", function()
      local def = define(function(ctx)
        ctx:step("reserve", function() return 1 end)
        local ok, err = pcall(ctx.sleep, ctx, "1h")
        if not ok then
          assert(workflow.is_cancelled(err))
          ctx:step("release", function() return 1 end)
          error(err, 0)
        end
        ctx:step("ship", function() return 1 end)
      end)
      local t = testing.run(def)
      t:cancel("no longer needed", "alice")
      assert.equal("cancelled", t.status)
      assert.equal("no longer needed", t.reason)
      assert.equal("alice", t.by)
      assert.same({ "reserve", "release" }, t:steps())
      assert.equal(0, t:calls("ship"))
      assert.same({ "workflow_started", "step_started", "step_completed", "timer_started", "cancel_requested",
                    "timer_cancelled", "step_started", "step_completed", "workflow_cancelled" }, types(t))
      assert.same({ seq = 5, type = "cancel_requested", time = at(0), reason = "no longer needed", by = "alice" },
        t.history[5])
      assert.equal("test", testing.run(def):cancel().by)
      t:replay()
      assert.matches("t:cancel: run run%-1 has finished %(cancelled%)$", err_of(t.cancel, t))
    end)

    it("gives the reason to a step or a signal wait, and ends a pending retry for good", function()
      local reason
      local def = define(function(ctx)
        local ok, e = pcall(ctx.step, ctx, "call", function() error("down") end)
        reason = not ok and e.reason
        error(e, 0)
      end)
      local t = testing.run(def)
      assert.same({ kind = "retry", name = "call", due_at = at(1) }, t.waiting)
      t:cancel("stop")
      assert.equal("stop", reason)
      assert.equal("cancelled", t.status)
      local failed = t:events("step_failed")
      assert.same({ "down", "cancelled" }, { failed[1].error:match("down$"), failed[2].error })
      assert.is_true(failed[2].final)

      def = define(function(ctx)
        local ok, e = pcall(ctx.wait_signal, ctx, "go", { timeout = "1d" })
        return { ok = ok, msg = tostring(e) }
      end)
      t = testing.run(def)
      t:cancel("dup")
      assert.equal("cancelled", t.status) -- returned, but cancelled all the same
    end)

    it("terminates at once, with no more of the code run", function()
      local def = define(function(ctx)
        ctx:wait_signal("never")
        ctx:step("after", function() return 1 end)
      end)
      local t = testing.run(def)
      t:signal("other", 1)
      t:terminate("stuck", "ops")
      assert.equal("terminated", t.status)
      assert.same({ "stuck", "ops" }, { t.reason, t.by })
      assert.equal(0, t:calls("after"))
      assert.same({ "workflow_started", "signal_received", "workflow_terminated" }, types(t))
      assert.matches("t:terminate: run run%-1 has finished %(terminated%)$", err_of(t.terminate, t))
      t:replay()
    end)
  end)

  describe("steps", function()
    it("runs stubs instead of the real function, by name, and counts them", function()
      local real = 0
      local def = define(function(ctx)
        local a = ctx:step("a", function() real = real + 1; return "real" end)
        local b = ctx:step("b", function() real = real + 1; return "real" end)
        local c = ctx:step("c", function() real = real + 1; return "real" end)
        return { a, b, c }
      end)
      local t = testing.run(def, { stubs = { a = function(s) return "stub " .. s.idempotency_key end,
                                             b = { fixed = true } } })
      assert.same({ "stub run-1-1", { fixed = true }, "real" }, t.output)
      assert.equal(1, real)
      assert.same({ 1, 1, 1 }, { t:calls("a"), t:calls("b"), t:calls("c") })
    end)

    it("takes a new stub with t:stub for the attempts to come", function()
      local def = define(function(ctx)
        return ctx:step("call", function() error("down") end)
      end)
      local t = testing.run(def)
      assert.same({ kind = "retry", name = "call", due_at = at(1) }, t.waiting)
      t:stub("call", function(s) return { fixed_on = s.attempt } end)
      t:advance(1)
      assert.same({ fixed_on = 2 }, t.output)
      assert.equal(2, t:calls("call"))
      assert.matches("t:stub: name: must be a string", err_of(t.stub, t, 5))
    end)

    it("hands secrets, the run id and a log to steps; a missing secret fails the step", function()
      local def = define(function(ctx)
        return ctx:step("a", function(s)
          s:log("using", "token")
          return { tok = s:secret("tok"), id = s.id }
        end, { retry = { max_attempts = 1 } })
      end)
      local t = testing.run(def, { secrets = { tok = "sekret" }, id = "x-1" })
      assert.same({ tok = "sekret", id = "x-1" }, t.output)
      assert.same({ "using token" }, t.logs)
      t = testing.run(def)
      assert.matches('^step "a" failed on attempt 1: secret "tok" is not set %(lodestone secret set tok%)$', t.error)
    end)

    it("gives s.http only through a stub, recording every request", function()
      local def = define(function(ctx)
        return ctx:step("fetch", function(s)
          local r = s.http.post("http://svc/x", { json = { a = 1 }, headers = { ["X-K"] = s.idempotency_key } })
          return { status = r.status, json = r.json, body = r.body }
        end)
      end)
      local t = testing.run(def)
      assert.equal("failed", t.status)
      assert.matches('^step "fetch" failed on attempt 1: http POST http://svc/x: HTTP is not available in tests',
        t.error)
      -- as lodestone.httpc names a URL: without its credentials
      local leaky = define(function(ctx)
        return ctx:step("fetch", function(s) return s.http.get("https://u:pw-s3cret@svc/x?key=k-s3cret").status end)
      end)
      t = testing.run(leaky)
      assert.matches('^step "fetch" failed on attempt 1: http GET https://svc/x%?%.%.%.: HTTP is not available', t.error)
      assert.is_nil(t.error:find("s3cret", 1, true))
      t = testing.run(def, { http = function(req)
        return { status = 201, json = { echo = req.json.a, step = req.step } }
      end })
      assert.same({ status = 201, json = { echo = 1, step = "fetch" }, body = '{"echo":1,"step":"fetch"}' }, t.output)
      assert.same({ step = "fetch", method = "POST", url = "http://svc/x", headers = { ["X-K"] = "run-1-1" },
                    json = { a = 1 } }, t.requests[1])
      t = testing.run(def, { http = { other = function() return {} end } })
      assert.matches("HTTP is not available in tests", t.error)
      t = testing.run(def, { http = { fetch = function() return { body = "plain" } end } })
      assert.same({ status = 200, body = "plain" }, t.output)
    end)

    it("records now, random and uuid once, deterministically", function()
      local def = define(function(ctx)
        local v = { now = ctx:now(), r = ctx:random(), u = ctx:uuid() }
        ctx:sleep(60)
        v.later, v.r2, v.u2 = ctx:now(), ctx:random(), ctx:uuid()
        return v
      end)
      local t = testing.run(def, { now = 1600000000.25 })
      t:advance(60)
      local o = t.output
      assert.same({ 1600000000.25, 1600000060.25 }, { o.now, o.later })
      assert.is_true(o.r >= 0 and o.r < 1 and o.r2 ~= o.r)
      assert.same({ "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002" }, { o.u, o.u2 })
      assert.same(o, testing.run(def, { now = 1600000000.25 }):advance(60).output) -- the same again
      local seq = { 0.5, 0.25 }
      t = testing.run(def, { random = function() return table.remove(seq, 1) end, auto_advance = true })
      assert.same({ 0.5, 0.25 }, { t.output.r, t.output.r2 })
      t:replay()
    end)

    it("keeps the custom status and runs a saga's compensations as steps", function()
      local def = define(function(ctx)
        local saga = ctx:saga()
        ctx:step("charge", function() return 1 end)
        saga:add(function() ctx:step("refund", function() return 1 end) end)
        ctx:set_status { stage = "shipping" }
        local ok, e = pcall(ctx.step, ctx, "ship", function() error(workflow.fatal("no stock")) end)
        if not ok then
          ctx:set_status { stage = "compensating" }
          saga:compensate()
          error(e, 0)
        end
      end)
      local t = testing.run(def)
      assert.equal("failed", t.status)
      assert.equal('step "ship" failed on attempt 1: no stock', t.error)
      assert.same({ "charge", "refund" }, t:steps())
      assert.same({ stage = "compensating" }, t.custom_status)
      t:replay()
    end)
  end)

  -- Child runs through the calls ctx:start_child and ctx:child make in
  -- lodestone.workflow (rt.child_start, rt.child_wait); a parent here
  -- collects a child's end after a signal, so that no test needs the
  -- driver's suspension for children.
  describe("child workflows", function()
    local function start_child(ctx, wtype, input, opts)
      opts = opts or {}
      return ctx._rt.child_start(ctx._act, wtype, json.encode(input == nil and json.null or input), opts.id,
        opts.detached or false)
    end

    local kid = workflow.define { name = "kid", run = function(ctx, input)
      ctx:sleep(input.pause or "1h")
      if input.fail then error(workflow.fatal("kid broke")) end
      return { double = input.n * 2 }
    end }

    -- Starts one child with input, waits for the signal "go", then returns
    -- what rt.child_wait says about the child.
    local function parent_of(input, opts)
      return define(function(ctx)
        local id = start_child(ctx, "kid", input, opts)
        ctx:wait_signal("go")
        local st, v = ctx._rt.child_wait(ctx._act, id)
        return { id = id, st = st, v = st == "done" and json.decode(v) or v }
      end)
    end

    it("runs a child on the same clock; the parent hears of its end", function()
      local t = testing.run(parent_of({ n = 2, pause = "10s" }), { workflows = { kid } })
      local c = t:child("run-1-c1")
      assert.same({ "running", "kid", "run-1" }, { c.status, c.type, c.parent })
      assert.same({ kind = "sleep", name = "", due_at = at(10) }, c.waiting)
      assert.same({ kind = "signal", name = "go" }, t.waiting)
      t:advance("10s")
      assert.same({ double = 4 }, c.output)
      assert.same({ "workflow_started", "child_started", "child_completed" }, types(t))
      assert.same({ seq = 2, type = "child_started", time = at(0), name = "run-1-c1", workflow = "kid" }, t.history[2])
      assert.same({ double = 4 }, t.history[3].output)
      t:signal("go")
      assert.same({ id = "run-1-c1", st = "done", v = { double = 4 } }, t.output)
      t:replay()
      c:replay()
      assert.matches('t:child: run run%-1 has no child "nope"$', err_of(function() t:child("nope") end))
    end)

    it("hands a child's failure to the parent with the engine's message", function()
      local t = testing.run(parent_of({ n = 1, fail = true, pause = "1s" }, { id = "k-1" }), { workflows = { kid } })
      t:advance(1)
      assert.equal("failed", t:child("k-1").status)
      assert.same({ name = "k-1", error = "failed: kid broke" },
        { name = t.history[3].name, error = t.history[3].error })
      t:signal("go")
      assert.same({ id = "k-1", st = "failed", v = "child workflow k-1 failed: kid broke" }, t.output)
    end)

    it("cancels the children that are not detached when the parent ends", function()
      local def = define(function(ctx)
        start_child(ctx, "kid", { n = 1 }, { id = "bg" })
        start_child(ctx, "kid", { n = 2, pause = "2h" }, { id = "det", detached = true })
        return "parent done"
      end)
      local t = testing.run(def, { workflows = { kid } })
      assert.equal("completed", t.status)
      local bg, det = t:child("bg"), t:child("det")
      assert.same({ "cancelled", "its parent run ended", "run-1" }, { bg.status, bg.reason, bg.by })
      assert.equal("running", det.status)
      assert.is_true(det.detached)
      assert.is_true(t.history[3].detached)
      t:advance("2h")
      assert.same({ double = 4 }, det.output)
    end)

    it("cancels the children when the parent is cancelled or terminated", function()
      for _, stop in ipairs({ "cancel", "terminate" }) do
        local t = testing.run(parent_of({ n = 1 }), { workflows = { kid } })
        t[stop](t, "stop")
        assert.equal(stop == "cancel" and "cancelled" or "terminated", t.status)
        assert.equal("cancelled", t:child("run-1-c1").status)
      end
    end)

    it("fails the run for an unknown type, or an id taken by another run", function()
      local t = testing.run(parent_of({ n = 1 }))
      assert.equal('child workflow: unknown workflow type "kid"; known types: w', t.error)
      t = testing.run(parent_of({ n = 1 }, { id = "run-1" }), { workflows = { kid } })
      assert.equal('child workflow: a run with id "run-1" exists and is not a child of this run', t.error)
    end)

    it("takes the types from a directory, files, definitions or functions", function()
      local t = testing.run(define(function(ctx)
        start_child(ctx, "hello", { name = "kid", pause = 1 })
        start_child(ctx, "square", 3)
        return ctx:wait_signal("go")
      end), { workflows = "workflows", auto_advance = true })
      -- every workflow in workflows/ and the test's own "w"
      assert.matches('^child workflow: unknown workflow type "square"; known types: approval, batch_approval, ' ..
        'github%-push, hello, .*, w, webhook_fanout$', t.error)
      -- the parent failed before its first child ran: the child was cancelled at its first step
      assert.same({ "cancelled", {} }, { t:child("run-1-c1").status, t:child("run-1-c1"):steps() })
      t = testing.run(define(function(ctx)
        start_child(ctx, "hello", { pause = 1 })
        start_child(ctx, "square", 3)
        return ctx:wait_signal("go")
      end), { workflows = { "workflows/hello.lua", square = function(_, n) return n * n end } })
      assert.same({ "running", "completed" }, { t:child("run-1-c1").status, t:child("run-1-c2").status })
      assert.equal(9, t:child("run-1-c2").output)
      assert.matches('testing.run: workflows.sq: defines workflow "kid"$',
        err_of(testing.run, define(function() end), { workflows = { sq = kid } }))
      assert.matches("testing.run: workflows: no %*.lua files in docs$",
        err_of(testing.run, define(function() end), { workflows = "docs" }))
      assert.matches("testing.run: workflows: must be a directory or a table, got a number$",
        err_of(testing.run, define(function() end), { workflows = 5 }))
    end)
  end)

  -- Branch scopes through rt.branch, the call a branch run makes to run its
  -- branch: commands are recorded and replayed per scope.
  describe("parallel branch scopes", function()
    local function in_branch(ctx, scope, fn)
      ctx._rt.branch(ctx._act, scope)
      local ok, v = pcall(fn)
      ctx._rt.branch(ctx._act, "")
      if not ok then error(v, 0) end
      return v
    end

    local function two_branches()
      return define(function(ctx)
        local a = in_branch(ctx, "[1.1]", function()
          return { key = ctx:step("a", function(s) return s.idempotency_key end), now = ctx:now() }
        end)
        local b = in_branch(ctx, "[1.2]", function()
          return ctx:step("a", function(s) return s.idempotency_key end)
        end)
        ctx:sleep(1)
        return { a = a, b = b }
      end)
    end

    it("records each branch's commands under its scope, with keys that carry it", function()
      local t = testing.run(two_branches())
      assert.same({ "workflow_started", "step_started", "step_completed", "side_effect_recorded", "step_started",
                    "step_completed", "timer_started" }, types(t))
      assert.same({ "[1.1]a", "[1.1]a", "[1.1]now", "[1.2]a", "[1.2]a", "" },
        { t.history[2].name, t.history[3].name, t.history[4].name, t.history[5].name, t.history[6].name,
          t.history[7].name })
      t:advance(1)
      assert.same({ a = { key = "run-1-1.1-1", now = T0 }, b = "run-1-1.2-1" }, t.output)
      assert.same({ "[1.1]a", "[1.2]a" }, t:steps())
      assert.equal(2, t:calls("a")) -- stubs and calls go by the name the code gives
      t:replay()
    end)

    it("fails a branch run when its branch no longer issues what it recorded", function()
      local second = "a"
      local def = define(function(ctx)
        return ctx:all {
          function(c) return c:step("a", function() return 1 end) end,
          function(c) -- its step fails once: the branch run waits for the retry
            if second then
              return c:step(second, function(s)
                if s.attempt < 2 then error("not yet") end
                return 2
              end)
            end
          end,
        }
      end, { retry = { initial_interval = "1s", jitter = 0 } })
      local t = testing.run(def)
      assert.equal("retry", t:child("run-1-b1.2").waiting.kind)
      second = nil -- the code changed under the run
      t:advance(1)
      assert.equal('run run-1-b1.2: non-determinism at command 1: history has step "[1.2]a", the workflow ' ..
        "ended without it", t:child("run-1-b1.2").error)
      assert.matches("^ctx:all: branch 2 failed: ", t.error)
      second = "a"
      t = testing.run(def)
      second = "b"
      t:advance(1)
      assert.equal('run run-1-b1.2: non-determinism at command 1: history has step "[1.2]a", the workflow ' ..
        'asked for step "[1.2]b"', t:child("run-1-b1.2").error)
    end)

    it("refuses signal waits in a branch, reserved step names and bad scopes", function()
      local t = testing.run(define(function(ctx)
        return in_branch(ctx, "[1.1]", function() return ctx:wait_signal("go") end)
      end))
      assert.matches("ctx:wait_signal cannot be used in a ctx:all branch %(which branch takes a signal " ..
        "would depend on timing%): wait before or after it$", t.error)
      t = testing.run(define(function(ctx) ctx:step("[2.1]x", function() end) end))
      -- named where the call was, as the other refusals of a step name are
      assert.matches('09%-testing_spec%.lua:%d+: ctx:step: step name "%[2%.1%]x": names starting with %[N%.N%] ' ..
        'are reserved for parallel branches$', t.error)
      t = testing.run(define(function(ctx) ctx._rt.branch(ctx._act, "[1]") end))
      assert.equal('branch scope "[1]": expected [N.N] tokens', t.error)
    end)
  end)

  describe("ctx:all", function()
    it("runs each branch as a branch run of its own, as lodestoned does", function()
      local t = testing.run(define(function(ctx)
        local first = ctx:step("before", function() return 0 end)
        local r = ctx:all {
          function(c) c:sleep("1h"); return c:step("a", function() return "A" end) end,
          function(c) return c:all { function(g) return g:step("n", function() return "N" end) end } end,
        }
        return { first = first, r = r }
      end))
      assert.equal("running", t.status)
      assert.same({ kind = "child", name = "run-1-b1.1" }, t.waiting)
      t:advance("1h")
      assert.same({ first = 0, r = { "A", { "N" } } }, t.output)
      assert.same({ "before" }, t:steps())
      assert.same({ "workflow_started", "step_started", "step_completed", "child_started", "child_started",
                    "child_completed", "child_completed", "workflow_completed" }, types(t))
      local b1, b2 = t:child("run-1-b1.1"), t:child("run-1-b1.2")
      assert.same({ "[1.1]a" }, b1:steps())
      assert.equal("[1.1]", b1.branch)
      assert.same({ "timer_started", "timer_fired", "step_started", "step_completed", "workflow_completed" },
        types(b1)) -- its own events: the parent's, which it replays, are not listed
      assert.same({}, b2:steps())
      assert.same({ "[1.2][1.1]n" }, b2:child("run-1-b1.2-b1.2_1.1"):steps())
      assert.equal(1, t:calls("before"))
      t:replay()
      b1:replay()
    end)

    it("fails the run with the first failed branch once all have settled", function()
      local t = testing.run(define(function(ctx)
        ctx:all {
          function(c) c:sleep(5); return c:step("slow", function() return 1 end) end,
          function(c) return c:step("bad", function() error(workflow.fatal("no stock")) end) end,
        }
      end))
      assert.equal("running", t.status)
      t:advance(5)
      assert.equal("failed", t.status)
      assert.equal('ctx:all: branch 2 failed: step "[1.2]bad" failed on attempt 1: no stock', t.error)
      assert.same({ "[1.1]slow" }, t:child("run-1-b1.1"):steps())
    end)
  end)

  describe("limits on names and nesting", function()
    local src = debug.getinfo(1, "S").short_src

    it("refuses a new step whose name is over 200 bytes, not UTF-8 or holds a control character (C0, DEL, C1)", function()
      for _, case in ipairs {
        { string.rep("x", 201), "ctx:step: step name: must be 1 to 200 bytes, got 201" },
        { string.rep("x", 1e7), "ctx:step: step name: must be 1 to 200 bytes, got 10000000" },
        { "a\255b", "ctx:step: step name: byte 2 (0xff) is not valid UTF-8" },
        { "caf\195", "ctx:step: step name: byte 4 (0xc3) is not valid UTF-8" },
        { "\237\160\128", "ctx:step: step name: byte 1 (0xed) is not valid UTF-8" }, -- a surrogate
        { "a\0b", "ctx:step: step name: control character at byte 2" },
        { "a\nb", "ctx:step: step name: control character at byte 2" },
        { "a\127b", "ctx:step: step name: control character at byte 2" }, -- DEL
        { "a\194\133b", "ctx:step: step name: control character at byte 2" }, -- U+0085 (C1)
      } do
        local line
        local t = testing.run(define(function(ctx)
          ctx:step("before", function() return 1 end)
          line = debug.getinfo(1, "l").currentline + 1
          local v = ctx:step(case[1], function() return 2 end)
          return v
        end))
        assert.equal("failed", t.status)
        assert.equal(src .. ":" .. line .. ": " .. case[2], t.error)
        -- refused before anything was recorded
        assert.same({ "before" }, t:steps())
        assert.equal(1, #t:events("step_started"))
        t:replay()
      end
      local t = testing.run(define(function(ctx)
        local a = ctx:step(string.rep("x", 200), function() return 1 end)
        local b = ctx:step("caf\195\169 \226\130\172 [x]", function() return 2 end)
        return a + b
      end))
      assert.equal(3, t.output)
    end)

    it("refuses a new signal wait on a name no signal can have", function()
      for _, case in ipairs {
        { "g\192\175o", nil, "ctx:wait_signal: signal name: byte 2 (0xc0) is not valid UTF-8" },
        { "g\1o", "1h", "ctx:wait_signal: signal name: control character at byte 2" },
        { "g\127o", "1h", "ctx:wait_signal: signal name: control character at byte 2" },
        { "go\194\159", nil, "ctx:wait_signal: signal name: control character at byte 3" },
        { "a/b", nil, 'ctx:wait_signal: signal name: "/" at byte 2: a name is one segment of the API\'s path ' ..
          "(/v1/workflows/ID/signals/NAME)" },
        { ".", "1h", 'ctx:wait_signal: signal name: "." is not a name: HTTP clients remove such segments ' ..
          "from the API's path" },
        { "..", nil, 'ctx:wait_signal: signal name: ".." is not a name: HTTP clients remove such segments ' ..
          "from the API's path" },
        { string.rep("s", 201), nil, "ctx:wait_signal: signal name: must be 1 to 200 bytes, got 201" },
      } do
        local line
        local t = testing.run(define(function(ctx)
          line = debug.getinfo(1, "l").currentline + 1
          local v = ctx:wait_signal(case[1], { timeout = case[2] })
          return v
        end))
        assert.equal(src .. ":" .. line .. ": " .. case[3], t.error)
        assert.equal(0, #t:events("timer_started"))
      end
    end)

    it("replays names recorded before they had limits, and refuses them in new steps", function()
      local long = string.rep("n", 300)
      local name, sig, again, line
      local def = define(function(ctx)
        local a = ctx:step(name, function() return "recorded" end)
        local _, why = ctx:wait_signal(sig, { timeout = "1h" })
        if again then
          line = debug.getinfo(1, "l").currentline + 1
          ctx:step(long, function() return "new" end)
        end
        return { a, why }
      end)
      for _, more in ipairs { false, true } do
        name, sig, again = "a", "go", more
        local t = testing.run(def)
        assert.equal("signal", t.waiting.kind)
        -- the history as an engine without the checks wrote it
        for _, e in ipairs(t._events) do
          if e.name == "a" then e.name = long end
          if e.name == "signal:go" then e.name = "signal:g\255o" end
        end
        name, sig = long, "g\255o"
        t:advance("1h")
        if more then
          assert.equal(src .. ":" .. line .. ": ctx:step: step name: must be 1 to 200 bytes, got 300", t.error)
        else
          assert.equal("completed", t.status)
          assert.same({ "recorded", "timeout" }, t.output)
        end
        assert.equal(0, t:calls(long)) -- the recorded step replayed, the new one was refused
        assert.equal(1, #t:events("step_started"))
        t:replay()
      end
    end)

    it("refuses a long step name in a branch before copying it, and checks names only where they are recorded", function()
      -- (a 10 MB name was copied under the branch's scope before the
      -- length check refused it)
      local big = string.rep("x", 1e7)
      local def = define(function(ctx)
        return ctx:all { function() return 1 end, function(c) return c:step(big, function() return 2 end) end }
      end)
      collectgarbage("collect")
      collectgarbage("stop")
      local before = collectgarbage("count")
      local t = testing.run(def)
      local grown = collectgarbage("count") - before
      collectgarbage("restart")
      assert.equal("failed", t.status)
      assert.equal("ctx:step: step name: must be 1 to 200 bytes, got 10000000", t:child("run-1-b1.2").error)
      assert.is_true(grown < 1024, string.format("%.0f KiB allocated", grown))
      -- a name that differs from the one history holds: non-determinism
      local name = "a"
      local t2 = testing.run(define(function(ctx)
        ctx:step(name, function() return 1 end)
        ctx:sleep("1h")
      end))
      name = "a\255"
      t2:advance("1h")
      assert.equal('run run-1: non-determinism at command 1: history has step "a", the workflow asked for step ' ..
        '"a\\xff"', t2.error)
    end)

    it("replays a wait without a timeout on a name refused now whose signal history holds", function()
      local sig, again, line = "go", false, nil
      local def = define(function(ctx)
        local v = ctx:wait_signal(sig)
        ctx:sleep("1h")
        if again then
          line = debug.getinfo(1, "l").currentline + 1
          ctx:wait_signal(sig)
        end
        return v
      end)
      for _, more in ipairs { false, true } do
        sig, again = "go", more
        local t = testing.run(def)
        t:signal("go", 7)
        assert.equal("sleep", t.waiting.kind)
        -- the history as an engine without the checks wrote it
        for _, e in ipairs(t._events) do
          if e.type == "signal_received" then e.name = "g\255o" end
        end
        sig = "g\255o"
        t:advance("1h")
        if more then
          assert.equal(src .. ":" .. line .. ": ctx:wait_signal: signal name: byte 2 (0xff) is not valid UTF-8", t.error)
        else
          assert.equal("completed", t.status)
          assert.equal(7, t.output)
        end
        t:replay()
      end
    end)

    it("stops a workflow that starts itself at 32 runs deep (lodestoned --max-depth's default)", function()
      local rec = workflow.define { name = "rec", run = function(ctx, n)
        n = n or 0
        local v = ctx:child("rec", n + 1)
        return v
      end }
      local t = testing.run(rec)
      assert.equal("failed", t.status)
      local deepest, chain = t, { t.id }
      while #deepest:events("child_started") > 0 do
        deepest = deepest:child(deepest:events("child_started")[1].name)
        chain[#chain + 1] = deepest.id
      end
      assert.equal(33, #chain) -- the first run and 32 below it
      assert.equal("run " .. deepest.id .. ' cannot start child workflow "rec": it is nested 32 deep, the ' ..
        "limit of nested runs (lodestoned --max-depth); does a workflow start itself without end?",
        deepest.error)
      assert.equal("failed", deepest.status)
      assert.matches("^child workflow run%-1%-c1 failed: child workflow run%-1%-c1%-c1 failed: ", t.error)
      t:replay()
    end)

    it("fails the run at the depth limit even when its code catches the error, with the message alone", function()
      -- (as lodestoned records it: it added the driver's frames, "[C]: in
      -- function 'complete' ... in function 'drive'")
      local deep = workflow.define { name = "deep", run = function(ctx, n)
        n = n or 0
        local ok, e = pcall(ctx.child, ctx, "deep", n + 1)
        return { n = n, ok = ok, e = not ok and tostring(e) or nil }
      end }
      local t = testing.run(deep)
      assert.equal("completed", t.status)
      local deepest = t
      while #deepest:events("child_started") > 0 do
        deepest = deepest:child(deepest:events("child_started")[1].name)
      end
      assert.equal("failed", deepest.status)
      assert.equal("run " .. deepest.id .. ' cannot start child workflow "deep": it is nested 32 deep, the ' ..
        "limit of nested runs (lodestoned --max-depth); does a workflow start itself without end?",
        deepest.error)
      assert.is_nil(deepest.traceback)
      assert.same({ "workflow_started", "workflow_failed" },
        (function() local ty = {} for _, e in ipairs(deepest.history) do ty[#ty + 1] = e.type end return ty end)())
      -- the run above it caught its child's failure
      local above = t
      for _ = 1, 31 do above = above:child(above:events("child_started")[1].name) end
      assert.equal("completed", above.status)
      assert.equal(false, above.output.ok)
      assert.matches("^child workflow " .. deepest.id:gsub("%-", "%%-") .. " failed: run ", above.output.e)
      t:replay()
    end)
  end)

  describe("workflow type names", function()
    local rule = "is not allowed; use letters, digits and - _ . :"

    it("refuses a definition whose name was changed after workflow.define, as lodestoned does", function()
      local def = define(function() end)
      def.name = "a/b"
      assert.equal("testing.run: workflow.define: name: character 2 (0x2f) " .. rule, err_of(testing.run, def))
      def.name = string.rep("x", 201)
      assert.equal("testing.run: workflow.define: name: must be 1 to 200 characters, got 201",
        err_of(testing.run, def))
      def.name = {}
      assert.equal("testing.run: workflow.define: name: must be a string of letters, digits and - _ . :, " ..
        "got a table", err_of(testing.run, def))
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write('local d = require("lodestone.workflow").define { name = "w", run = function() end }\n' ..
        'd.name = ".."\nreturn d\n')
      f:close()
      local e = err_of(testing.run, path)
      os.remove(path)
      assert.equal("testing.run: " .. path .. ': workflow.define: name: ".." is not allowed: a URL reads it ' ..
        "as a path step", e)
      e = err_of(testing.run, define(function() end), { workflows = { ["a b"] = function() end } })
      assert.equal("workflow.define: name: character 2 (0x20) " .. rule, (e:gsub("^.-: workflow", "workflow")))
    end)

    it("refuses a child of a type no file can declare, before looking the type up", function()
      for _, case in ipairs {
        { "a/b", "character 2 (0x2f) " .. rule },
        { "..", '".." is not allowed: a URL reads it as a path step' },
        { string.rep("k", 201), "must be 1 to 200 characters, got 201" },
      } do
        local t = testing.run(define(function(ctx) return ctx:child(case[1]) end))
        assert.equal("failed", t.status)
        assert.equal("child workflow: workflow type: " .. case[2], t.error)
        assert.equal(0, #t:events("child_started"))
      end
    end)
  end)

  describe("log lines", function()
    it("cuts a line past 8 KiB where a character starts, as lodestoned's log does", function()
      local big = "a" .. string.rep("\195\169", 5e6) -- 10 MB: "a", then 2-byte characters
      local t = testing.run(define(function(ctx)
        ctx:log(big)
        ctx:step("s", function(s) s:log("x\0y", big) end)
        ctx:log(string.rep("z", 8192))
        ctx:log(string.rep("z", 8193))
        ctx:log("bytes \255 and \192\128 are not UTF-8, \226\130\172 is")
      end))
      assert.equal("completed", t.status)
      local function same(want, got) -- (without printing megabytes when they differ)
        assert.equal(#want, #got)
        assert.equal(want:sub(-60), got:sub(-60))
        assert.is_true(want == got)
      end
      -- byte 8193, the first past the limit, is the second byte of a
      -- character: that character goes whole
      same("a" .. string.rep("\195\169", 4095) .. " [cut: 9991810 bytes dropped]", t.logs[1])
      same("x\239\191\189y a" .. string.rep("\195\169", 4093) .. " [cut: 9991814 bytes dropped]", t.logs[2])
      same(string.rep("z", 8192), t.logs[3])
      same(string.rep("z", 8192) .. " [cut: 1 byte dropped]", t.logs[4])
      -- as lodestoned's log writes them
      assert.equal("bytes \239\191\189 and \239\191\189\239\191\189 are not UTF-8, \226\130\172 is", t.logs[5])
      assert.equal(5, #t.logs)
    end)
  end)

  describe("secrets masked", function()
    local TOKEN = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
    local function lacks(t, value)
      local function walk(v)
        if type(v) == "string" then
          assert.is_nil(v:find(value, 1, true), "holds the value: " .. v)
        elseif type(v) == "table" then
          for _, x in pairs(v) do walk(x) end
        end
      end
      walk({ t.error, t.traceback, t.history, t.logs })
    end

    it("names the secret instead of its value in step errors, the run's error and log lines", function()
      local def = define(function(ctx)
        ctx:log("calling with " .. ctx:step("tok", function(s) return s:secret("stripe/key") end))
        ctx:step("charge", function(s)
          s:log("Authorization: Bearer " .. s:secret("stripe/key"))
          error("charge refused: Bearer " .. s:secret("stripe/key") .. " (HTTP 401)", 0)
        end, { retry = { max_attempts = 2, initial_interval = "1s" } })
      end)
      local t = testing.run(def, { secrets = { ["stripe/key"] = TOKEN }, auto_advance = true })
      assert.equal("failed", t.status)
      local failed = t:events("step_failed")
      assert.equal(2, #failed)
      for _, e in ipairs(failed) do
        assert.equal("charge refused: Bearer [secret stripe/key] (HTTP 401)", e.error)
      end
      assert.equal('step "charge" failed on attempt 2: charge refused: Bearer [secret stripe/key] (HTTP 401)',
        t.error)
      assert.same({ "calling with [secret stripe/key]", "Authorization: Bearer [secret stripe/key]",
                    "Authorization: Bearer [secret stripe/key]" }, t.logs)
      -- payloads are not masked: the step's result holds the value, sealed
      assert.equal(TOKEN, t:events("step_completed")[1].result)
      lacks({ error = t.error, traceback = t.traceback, history = t:events("step_failed"), logs = t.logs }, TOKEN)
    end)

    it("masks a run's error and traceback, and a parent's error that quotes its child's", function()
      local child = define(function(ctx)
        local tok = ctx:step("tok", function(s) return s:secret("k") end)
        error("near 'Bearer " .. tok .. "'")
      end, { name = "child" })
      local parent = define(function(ctx) return ctx:child("child", nil, { id = "c-1" }) end, { name = "parent" })
      local t = testing.run(parent, { secrets = { k = TOKEN }, workflows = { child } })
      assert.equal("failed", t.status)
      local c = t:child("c-1")
      assert.matches("near 'Bearer %[secret k%]'$", c.error)
      assert.matches("near 'Bearer %[secret k%]'", c.traceback)
      assert.matches("^child workflow c%-1 failed: .*near 'Bearer %[secret k%]'$", t.error)
      assert.matches("near 'Bearer %[secret k%]'$", t:events("child_failed")[1].error)
      lacks({ error = c.error, traceback = c.traceback, logs = c.logs }, TOKEN)
      lacks({ error = t.error, history = t:events("child_failed") }, TOKEN)
    end)

    it("masks every secret the harness holds, from 4 bytes, the longest first", function()
      local def = define(function(ctx)
        ctx:log("pin=7391 region=eu key=AKIAIOSFODNN7 pair=AKIAIOSFODNN7:wJalrXUtnF")
        ctx:log("xxabcdef12ghijyy abcdef12gh.")
        ctx:log("sk%5Flive Sk_live_4eC39 prefix sk_live_4eC3")
      end)
      local t = testing.run(def, { secrets = { pin = "7391", region = "eu", ["aws/id"] = "AKIAIOSFODNN7",
        ["aws/pair"] = "AKIAIOSFODNN7:wJalrXUtnF", a = "abcdef12", b = "ef12ghij", c = "12gh", tok = TOKEN } })
      assert.same({ "pin=[secret pin] region=eu key=[secret aws/id] pair=[secret aws/pair]",
                    "xx[secret a][secret b]yy [secret a][secret c].",
                    "sk%5Flive Sk_live_4eC39 prefix sk_live_4eC3" }, t.logs)
    end)

    it("names, of two values as long at one place, the first name in byte order", function()
      -- as the vault (strcmp), whatever the locale: "Z" (0x5A) before "a" (0x61)
      local def = define(function(ctx) ctx:log("x=k3y-v4lue") end)
      local t = testing.run(def, { secrets = { alpha = "k3y-v4lue", Zulu = "k3y-v4lue" } })
      assert.same({ "x=[secret Zulu]" }, t.logs)
    end)

    it("cuts a long line before a value it cannot keep whole", function()
      local line = string.rep("l", 8182) .. TOKEN .. string.rep("l", 786)
      -- "[secret stripe/key]" would end past byte 8192: left out whole
      local t = testing.run(define(function(ctx) ctx:log(line) end), { secrets = { ["stripe/key"] = TOKEN } })
      assert.is_true(string.rep("l", 8182) .. " [cut: 818 bytes dropped]" == t.logs[1])
      -- "[secret k]" ends at byte 8192: kept
      t = testing.run(define(function(ctx) ctx:log(line) end), { secrets = { k = TOKEN } })
      assert.is_true(string.rep("l", 8182) .. "[secret k] [cut: 786 bytes dropped]" == t.logs[1])
    end)
  end)

  describe("testing.run", function()
    it("takes a file or a definition, and the table form", function()
      local t = testing.run { workflow = "workflows/hello.lua", input = { name = "Ada", pause = "1s" } }
      assert.equal("hello", t.type)
      t:advance(1)
      assert.equal("hello, Ada", t.output.greeting)
    end)

    it("names what is wrong with its arguments", function()
      assert.matches("testing.run: unknown option inputs %(known: auto_advance, http, id, input, now, random, " ..
        "secrets, stubs, workflow, workflows%)$", err_of(testing.run, "workflows/hello.lua", { inputs = {} }))
      assert.matches("testing.run: expects the path of a workflow file or a workflow.define{...} result, got a number$",
        err_of(testing.run, 5))
      assert.matches("testing.run: cannot open workflows/nope.lua", err_of(testing.run, "workflows/nope.lua"))
      local dir = os.tmpname()
      local f = assert(io.open(dir, "w"))
      f:write("return { name = 'x' }\n")
      f:close()
      assert.matches("testing.run: .*: does not return workflow.define{...}$", err_of(testing.run, dir))
      os.remove(dir)
      local def = define(function() end)
      assert.matches('testing.run: id: only letters, digits and . _ : @ %- are allowed, got "a b"$',
        err_of(testing.run, def, { id = "a b" }))
      assert.matches("testing.run: id: must be a string of 1 to 200 bytes", err_of(testing.run, def, { id = 5 }))
      assert.matches("testing.run: now: must be seconds since the epoch", err_of(testing.run, def, { now = "today" }))
      assert.matches("testing.run: secrets.tok: must be a string, got a number$",
        err_of(testing.run, def, { secrets = { tok = 1 } }))
      assert.matches("testing.run: http.a: must be a function%(req%), got a string$",
        err_of(testing.run, def, { http = { a = "x" } }))
      assert.matches("testing.run: input is not JSON", err_of(testing.run, def, { input = { f = print } }))
      assert.matches("09%-testing_spec%.lua:%d+: testing.run: stubs: must be a table, got a string$",
        err_of(function() testing.run(def, { stubs = "x" }) end))
      assert.matches('t:advance: duration "soon": expected a number$',
        err_of(function() testing.run(def):advance("soon") end))
    end)

    it("pauses a run whose step used up its attempts, and resumes it", function()
      local up = false
      local def = workflow.define { name = "w", on_exhausted = "pause",
        retry = { initial_interval = "1s", max_attempts = 2 },
        run = function(ctx)
          return ctx:step("push", function() if not up then error("down") end return "ok" end)
        end }
      local t = testing.run(def, { auto_advance = true })
      assert.equal("running", t.status)
      assert.same({ kind = "paused", name = "push" }, t.waiting)
      assert.equal(2, t:calls("push"))
      assert.is_true(t.history[#t.history].paused)
      t:resume() -- still down: a new round of two attempts, paused again
      assert.equal(4, t:calls("push"))
      assert.same({ kind = "paused", name = "push" }, t.waiting)
      up = true
      t:resume("ops")
      assert.equal("completed", t.status)
      assert.equal("ok", t.output)
      assert.equal(5, t:calls("push"))
      assert.equal("ops", t:events("resumed")[2].by)
      t:replay()
      assert.matches("t:resume: run run%-1 is not paused", err_of(function()
        testing.run(workflow.define { name = "v", run = function(ctx) ctx:sleep(5) end }):resume()
      end))
    end)

    it("keeps the workflow's own error positions", function()
      local t = testing.run(define(function(ctx) ctx:step("a", function() end, { retries = 1 }) end))
      assert.matches("09%-testing_spec%.lua:%d+: ctx:step: unknown option retries %(known: retry, timeout, on_exhausted%)$", t.error)
    end)
  end)
end)

-- ---------------------------------------------------------------------
-- The examples users copy, each run through the harness.

describe("example workflows through lodestone.testing", function()
  local tested = { "approval", "batch_approval", "github-push", "hello", "nightly_cleanup", "order",
                   "trip_booking", "webhook_fanout" }

  it("covers every file in workflows/", function()
    local p = assert(io.popen("ls workflows/*.lua"))
    local names = {}
    for line in p:lines() do names[#names + 1] = line:match("([^/]+)%.lua$") end
    p:close()
    table.sort(names)
    assert.same(tested, names)
  end)

  describe("hello", function()
    it("greets, sleeps durably and finishes at the virtual time", function()
      local t = testing.run("workflows/hello.lua", { input = { name = "Ada" } })
      assert.same({ kind = "sleep", name = "", due_at = at(2) }, t.waiting)
      assert.same({ "greet" }, t:steps())
      t:replay() -- a restart during the sleep would not greet again
      t:advance("2s")
      assert.equal("completed", t.status)
      assert.same({ greeting = "hello, Ada", finished_at = T0 + 2 }, t.output)
      assert.same({ 1, 1 }, { t:calls("greet"), t:calls("finish") })
      t:replay()
      t = testing.run("workflows/hello.lua", { input = { pause = "30d" }, auto_advance = true })
      assert.same({ greeting = "hello, world", finished_at = T0 + 30 * 86400 }, t.output)
    end)
  end)

  describe("order", function()
    local input = { id = "1001", amount = 4200, payments_url = "http://pay" }

    local function payments(...)
      local answers = { ... }
      return function(req)
        local a = table.remove(answers, 1)
        return { status = a[1], json = a[2] }
      end
    end

    it("charges once with the idempotency key and the secret, sleeps, ships", function()
      local t = testing.run("workflows/order.lua", { input = input, id = "o-1001",
        secrets = { payments_token = "tok" }, http = payments({ 201, { id = "ch_1", amount = 4200 } }) })
      assert.same({ kind = "sleep", name = "", due_at = at(10) }, t.waiting)
      t:advance("10s")
      assert.equal("completed", t.status)
      assert.same({ charge = "ch_1", tracking = "T-1001" }, t.output)
      assert.equal(1, #t.requests)
      local req = t.requests[1]
      assert.same({ "POST", "http://pay/charges", { amount = 4200 } }, { req.method, req.url, req.json })
      assert.same({ ["Idempotency-Key"] = "o-1001-1", Authorization = "Bearer tok" }, req.headers)
      t:replay()
    end)

    it("retries a 5xx with the workflow's backoff and the same key", function()
      local t = testing.run("workflows/order.lua", { input = input, secrets = { payments_token = "tok" },
        http = payments({ 503 }, { 502 }, { 201, { id = "ch_2" } }) })
      assert.same({ kind = "retry", name = "charge", due_at = at(1) }, t.waiting)
      t:advance("1s")
      assert.same({ kind = "retry", name = "charge", due_at = at(3) }, t.waiting)
      t:advance("2s")
      assert.same({ kind = "sleep", name = "", due_at = at(13) }, t.waiting)
      assert.equal(3, t:calls("charge"))
      assert.same({ "run-1-1", "run-1-1", "run-1-1" }, { t.requests[1].headers["Idempotency-Key"],
        t.requests[2].headers["Idempotency-Key"], t.requests[3].headers["Idempotency-Key"] })
      t:advance("10s")
      assert.equal("ch_2", t.output.charge)
    end)

    it("fails at once on a declined card, and after 5 attempts on an outage", function()
      local t = testing.run("workflows/order.lua", { input = input, secrets = { payments_token = "tok" },
        http = payments({ 402, { error = "declined" } }) })
      assert.equal("failed", t.status)
      assert.equal('step "charge" failed on attempt 1: card declined', t.error)
      assert.same({}, t:events("timer_started"))
      t = testing.run("workflows/order.lua", { input = input, secrets = { payments_token = "tok" },
        http = function() return { status = 503 } end, auto_advance = true })
      assert.equal("failed", t.status)
      assert.matches('^step "charge" failed on attempt 5: .*payments unavailable$', t.error)
      assert.equal(T0 + 1 + 2 + 4 + 8, t.now)
    end)

    it("fails the charge without the secret, and can stub the charge step itself", function()
      local t = testing.run("workflows/order.lua", { input = input, http = payments({ 201, {} }),
        auto_advance = true })
      assert.equal("failed", t.status)
      assert.matches('secret "payments_token" is not set', t.error)
      t = testing.run("workflows/order.lua", { input = { id = "7" }, auto_advance = true,
        stubs = { charge = { id = "ch_stub" } } })
      assert.same({ charge = "ch_stub", tracking = "T-7" }, t.output)
      assert.same({}, t.requests)
    end)
  end)

  describe("approval", function()
    it("waits for approval with a custom status, then orders", function()
      local t = testing.run("workflows/approval.lua", { input = { item = "laptop" }, id = "req-1" })
      assert.equal("running", t.status)
      assert.same({ kind = "signal", name = "approved", due_at = at(3 * 86400) }, t.waiting)
      assert.same({ stage = "waiting for approval", item = "laptop" }, t.custom_status)
      t:replay()
      t:advance("1d")
      assert.equal("running", t.status)
      t:signal("approved", { by = "alice" })
      assert.equal("completed", t.status)
      assert.same({ item = "laptop", approved_by = "alice", order = "req-1-3" }, t.output)
      assert.same({ stage = "approved", by = "alice" }, t.custom_status)
      assert.same({ "reserve", "order" }, t:steps())
      t:replay()
    end)

    it("is approved by a signal without a payload too, as the UI sends one", function()
      local t = testing.run("workflows/approval.lua", { input = { item = "pen" }, id = "req-2" })
      t:signal("approved")
      assert.equal("completed", t.status)
      assert.same({ item = "pen", order = "req-2-3" }, t.output)
      assert.same({ stage = "approved" }, t.custom_status)
      t:replay()
    end)

    it("releases the reservation and fails when no approval comes in time", function()
      local t = testing.run("workflows/approval.lua", { input = { item = "desk", timeout = "2h" } })
      t:advance("2h")
      assert.equal("failed", t.status)
      assert.equal("no approval within 2h (timeout)", t.error)
      assert.same({ "reserve", "release" }, t:steps())
      assert.same({ stage = "expired" }, t.custom_status)
      t:replay()
    end)

    it("releases the reservation when cancelled, and ends cancelled", function()
      local t = testing.run("workflows/approval.lua", { input = { item = "desk" } })
      t:cancel("no longer needed")
      assert.equal("cancelled", t.status)
      assert.equal("no longer needed", t.reason)
      assert.same({ "reserve", "release" }, t:steps())
      assert.equal(1, t:calls("reserve"))
      t:replay()
    end)
  end)

  describe("batch_approval", function()
    it("starts one approval child per item and collects their outcomes", function()
      local t = testing.run("workflows/batch_approval.lua", { id = "b-1",
        input = { items = { "laptop", "desk", "chair" } }, workflows = "workflows" })
      assert.same({ kind = "child", name = "b-1-1" }, t.waiting)
      assert.same({ stage = "waiting for approvals", open = 3 }, t.custom_status)
      t:child("b-1-1"):signal("approved", { by = "alice" })
      t:child("b-1-2"):signal("approved", { by = "bob" })
      t:child("b-1-3"):cancel("out of stock")
      assert.equal("completed", t.status)
      assert.same({ { item = "laptop", approved_by = "alice" }, { item = "desk", approved_by = "bob" },
                    { item = "chair", error = "child workflow b-1-3 cancelled: out of stock" } }, t.output)
      assert.same({ "release", "reserve" }, { t:child("b-1-3"):steps()[2], t:child("b-1-3"):steps()[1] })
      t:replay()
    end)

    it("cancels its open children when it is terminated", function()
      local t = testing.run("workflows/batch_approval.lua", { id = "b-2",
        input = { items = { "lamp" } }, workflows = "workflows" })
      t:terminate("stop")
      assert.equal("terminated", t.status)
      local kid = t:child("b-2-1")
      assert.equal("cancelled", kid.status)
      assert.same({ "reserve", "release" }, kid:steps())
    end)

    it("refuses an empty batch", function()
      local t = testing.run("workflows/batch_approval.lua", { input = { items = {} } })
      assert.equal("failed", t.status)
      assert.equal("input.items: expected a non-empty list of items", t.error)
    end)
  end)

  describe("trip_booking", function()
    it("books all three, or undoes the earlier bookings newest first", function()
      local t = testing.run("workflows/trip_booking.lua", { id = "t-1", input = { trip = "lisbon" } })
      assert.equal("completed", t.status)
      assert.same({ "book flight", "book hotel", "book car" }, t:steps())
      t = testing.run("workflows/trip_booking.lua", { id = "t-2",
        input = { trip = "porto", car = "none left", cool_off = "1h" }, auto_advance = true })
      assert.equal("failed", t.status)
      assert.equal('step "book car" failed on attempt 1: car: none left', t.error)
      assert.same({ "book flight", "book hotel", "cancel hotel", "cancel flight" }, t:steps())
      assert.same({ stage = "compensating", error = t.error }, t.custom_status)
      t:replay()
    end)
  end)

  describe("github-push", function()
    it("summarises the commits and records the delivery", function()
      local t = testing.run("workflows/github-push.lua", { id = "gh-1", input = { event = "push", delivery = "d-1",
        push = { ref = "refs/heads/main", repository = { full_name = "acme/api" },
                 commits = { { message = "Fix login\n\nlong text", author = { username = "ada" } },
                             { message = "Add tests", author = { username = "bo" } } } } } })
      assert.equal("completed", t.status)
      assert.same({ repository = "acme/api", ref = "refs/heads/main", commits = 2, authors = "ada, bo",
                    titles = "Fix login | Add tests" }, t.output.summary)
      assert.same({ "d-1", "push" }, { t.output.delivery, t.output.event })
      assert.same({ "summarise", "record" }, t:steps())
      t:replay()
    end)
  end)

  describe("webhook_fanout", function()
    it("delivers to each URL in its own step, retries 5xx, reports the failures", function()
      local codes = { ["http://a"] = { 204 }, ["http://b"] = { 410 }, ["http://c"] = { 503, 503, 503, 503 },
                      ["http://d"] = { 500, 200 } }
      local t = testing.run("workflows/webhook_fanout.lua", { id = "fan-1", auto_advance = true,
        input = { event = { type = "order.paid" }, urls = { "http://a", "http://b", "http://c", "http://d" } },
        http = function(req) return { status = table.remove(codes[req.url], 1) } end })
      assert.equal("completed", t.status)
      local out = t.output
      assert.same({ 2, 2 }, { out.delivered, out.failed })
      assert.same({ url = "http://a", status = 204, delivered = true }, out.deliveries[1])
      assert.same({ url = "http://b", status = 410, delivered = false }, out.deliveries[2])
      assert.matches('^step "deliver 3" failed on attempt 4: .*http://c answered 503$', out.deliveries[3].error)
      assert.same({ url = "http://d", status = 200, delivered = true }, out.deliveries[4])
      assert.same({ 1, 1, 4, 2, 1 }, { t:calls("deliver 1"), t:calls("deliver 2"), t:calls("deliver 3"),
        t:calls("deliver 4"), t:calls("summary") })
      assert.equal(T0 + 0.5 + 1 + 2 + 0.5, t.now) -- c's three backoffs, then d's one
      assert.same({ "event delivered to 2 of 4 subscribers" }, t.logs)
      assert.equal("fan-1", t.requests[1].headers["X-Workflow-Run"])
      assert.same({ type = "order.paid" }, t.requests[1].json)
      t:replay()
    end)

    it("fails without a list of URLs", function()
      local t = testing.run("workflows/webhook_fanout.lua", { input = { event = {} } })
      assert.matches("input.urls: expected a list of URLs$", t.error)
    end)
  end)

  describe("nightly_cleanup", function()
    it("purges in batches before a cutoff from the virtual clock", function()
      local left = 1200
      local t = testing.run("workflows/nightly_cleanup.lua", {
        input = { purge_url = "http://svc/purge", keep = "1d" },
        http = function(req)
          local n = math.min(left, req.json.limit)
          left = left - n
          return { status = 200, json = { deleted = n } }
        end })
      assert.same({ before = "2023-11-13T22:13:20Z", deleted = 1200, batches = 3 }, t.output)
      assert.same({ "purge 1", "purge 2", "purge 3" }, t:steps())
      assert.same({ before = "2023-11-13T22:13:20Z", limit = 500 }, t.requests[1].json)
      assert.same({ "deleting items older than 2023-11-13T22:13:20Z", "deleted 1200 items in 3 batches" }, t.logs)
      t:replay()
    end)

    it("keeps its cutoff across a retry, and gives up at once when refused", function()
      local answers = { 500, 200 }
      local t = testing.run("workflows/nightly_cleanup.lua", { input = { purge_url = "http://svc/purge" },
        now = 1700000000,
        http = function() return { status = table.remove(answers, 1), json = { deleted = 3 } } end })
      assert.same({ kind = "retry", name = "purge 1", due_at = at(5) }, t.waiting)
      t:advance("5s")
      assert.same({ before = "2023-10-15T22:13:20Z", deleted = 3, batches = 1 }, t.output)
      assert.equal(1, #t:events("side_effect_recorded")) -- ctx:now() recorded once, replayed after
      t = testing.run("workflows/nightly_cleanup.lua", { input = { purge_url = "http://x" },
        http = function() return { status = 403, body = "no" } end })
      assert.matches('^step "purge 1" failed on attempt 1: purge refused %(403%): no$', t.error)
    end)
  end)
end)
