-- SPDX-License-Identifier: MIT
-- lodestone.cli.format: what the workflow commands print, from decoded API
-- objects: times, tables without trailing spaces, run details, the progress
-- line, history timelines and re-indented JSON.
local fmt = require("lodestone.cli.format")
local json = require("lodestone.core").json

describe("lodestone.cli.format", function()
  describe("times and numbers", function()
    it("cuts RFC 3339 UTC times", function()
      assert.equal("11:44:46.123", fmt.time("2026-11-26T11:44:46.123Z"))
      assert.equal("11:44:46.100", fmt.time("2026-11-26T11:44:46.1Z"))
      assert.equal("11:44:46.000", fmt.time("2026-11-26T11:44:46Z"))
      assert.equal("11:44:46", fmt.time("2026-11-26T11:44:46.123Z", false))
      assert.equal("2026-11-26 11:44:46", fmt.datetime("2026-11-26T11:44:46.123Z"))
      assert.equal("2026-11-26 11:44:46.123 UTC", fmt.datetime("2026-11-26T11:44:46.123Z", true, true))
    end)

    it("passes other text through and marks missing values", function()
      assert.equal("yesterday", fmt.time("yesterday"))
      assert.equal("yesterday", fmt.datetime("yesterday"))
      assert.equal("?", fmt.time(nil))
      assert.equal("-", fmt.int(nil))
      assert.equal("-", fmt.int("3"))
      assert.equal("3", fmt.int(3))
      assert.equal("3", fmt.int(3.0))
    end)

    it("writes durations", function()
      assert.equal("0ms", fmt.duration(0))
      assert.equal("850ms", fmt.duration(850.4))
      assert.equal("12.3s", fmt.duration(12345))
      assert.equal("2m05s", fmt.duration(125000))
      assert.equal("1h02m", fmt.duration(3725000))
    end)

    it("cuts long JSON", function()
      assert.equal('{"a":1}', fmt.compact({ a = 1 }))
      assert.equal('"aaaa...', fmt.compact(("a"):rep(50), 8))
      assert.equal("null", fmt.compact(json.null))
    end)
  end)

  describe("table", function()
    it("aligns columns two spaces apart with no trailing spaces", function()
      local lines = fmt.table({ "ID", "TYPE", "NOTE" }, { { "a", "order", "" }, { "long-id", "x", "yes" } })
      assert.same({
        "ID       TYPE   NOTE",
        "a        order",
        "long-id  x      yes",
      }, lines)
    end)

    it("lists runs with ID, TYPE, VERSION, STATUS, STEPS, CREATED", function()
      local lines = fmt.runs_table {
        { id = "ord-10", type = "order", version = "4f1c09aa12be77d0", status = "running", steps_completed = 2,
          created_at = "2026-11-26T11:44:46.123Z", waiting = { kind = "paused", name = "charge" } },
        { id = "d-1", type = "deploy-service", status = "completed", steps_completed = 12, created_at = "2026-11-25T09:00:00.000Z" },
      }
      assert.same({
        "ID      TYPE            VERSION           STATUS            STEPS  CREATED",
        "ord-10  order           4f1c09aa12be77d0  running (paused)  2      2026-11-26 11:44:46",
        "d-1     deploy-service  -                 completed         12     2026-11-25 09:00:00",
      }, lines)
      for _, l in ipairs(lines) do assert.not_matches("%s$", l) end
    end)

    it("has just the header for no rows", function()
      assert.same({ "ID  TYPE  VERSION  STATUS  STEPS  CREATED" }, fmt.runs_table {})
    end)
  end)

  describe("a run", function()
    local run = {
      id = "ord-1", type = "order", status = "running",
      created_at = "2026-11-26T11:44:46.123Z", updated_at = "2026-11-26T11:44:47.500Z",
      steps_completed = 3, attempts_failed = 1, input = { amount = 42 },
      waiting = { kind = "retry", name = "charge", due_at = "2026-11-26T11:44:49.000Z" },
    }

    it("shows labelled fields, only those present", function()
      assert.same({
        "id:              ord-1",
        "type:            order",
        "status:          running",
        "created:         2026-11-26 11:44:46.123 UTC",
        "updated:         2026-11-26 11:44:47.500 UTC",
        "steps:           3",
        "failed attempts: 1",
        "waiting:         retrying charge at 2026-11-26 11:44:49.000 UTC",
        'input:           {"amount":42}',
      }, fmt.run_details(run))
      assert.same({ "id:              x", "status:          failed", "error:           boom" },
        fmt.run_details { id = "x", status = "failed", error = "boom" })
      assert.same({ "id:              x", "output:          null" }, fmt.run_details { id = "x", output = json.null })
      assert.same({ "id:              p-b1.2", "parent:          p", "branch:          [1.2]" },
        fmt.run_details { id = "p-b1.2", parent = "p", branch = "[1.2]" })
    end)

    it("says what a run waits for", function()
      assert.equal("sleeping (cool-off) until 11:45:00",
        fmt.waiting { kind = "sleep", name = "cool-off", due_at = "2026-11-26T11:45:00.000Z" })
      assert.equal("sleeping until 11:45:00", fmt.waiting { kind = "sleep", name = "", due_at = "2026-11-26T11:45:00.000Z" })
      assert.equal("retrying charge at 11:44:49", fmt.waiting(run.waiting))
      assert.is_nil(fmt.waiting(nil))
    end)

    it("sums up progress on one line", function()
      assert.equal("running for 1.5s: 3 steps done, 1 failed attempt; retrying charge at 11:44:49",
        fmt.progress(run, 1500))
      assert.equal("completed after 2m05s: 1 step done, 0 failed attempts",
        fmt.progress({ status = "completed", steps_completed = 1, attempts_failed = 0 }, 125000))
      assert.equal("running for 0ms: 0 steps done, 0 failed attempts", fmt.progress({ status = "running" }, 0))
    end)
  end)

  describe("timeline", function()
    local t = "2026-11-26T11:44:46.123Z"

    it("writes the documented line for a failed step", function()
      assert.same({
        "  #3  11:44:46.123  step_failed      charge (attempt 1): payments unavailable; retry at 11:44:47.123",
      }, fmt.timeline { { seq = 3, type = "step_failed", time = t, name = "charge", attempt = 1,
        error = "payments unavailable", retry_at = "2026-11-26T11:44:47.123Z" } })
    end)

    it("says a step's last attempt paused its run", function()
      assert.same({
        "  #7  11:44:46.123  step_failed      push (attempt 2): down; paused until resumed",
      }, fmt.timeline { { seq = 7, type = "step_failed", time = t, name = "push", attempt = 2,
        error = "down", paused = true } })
    end)

    it("has a line for every event type, aligned, without trailing spaces", function()
      local events = json.array {
        { seq = 1, type = "workflow_started", time = t, input = { amount = 42 } },
        { seq = 2, type = "step_started", time = t, name = "charge", attempt = 1 },
        { seq = 3, type = "step_failed", time = t, name = "charge", attempt = 1, error = "declined", final = true },
        { seq = 4, type = "step_completed", time = t, name = "ship", attempt = 2, result = { id = "s1" } },
        { seq = 5, type = "timer_started", time = t, name = "cool-off", due_at = "2026-11-26T12:44:46.123Z" },
        { seq = 6, type = "timer_fired", time = t, name = "cool-off" },
        { seq = 7, type = "side_effect_recorded", time = t, name = "uuid", value = "0b5e" },
        { seq = 8, type = "workflow_completed", time = t, output = json.null },
        { seq = 9, type = "workflow_failed", time = t, error = "boom" },
        { seq = 10, type = "signal_received", time = t, name = "approve" },
        { seq = 11, type = "workflow_started", time = t },
        { seq = 12, type = "timer_started", time = t, name = "", due_at = "2026-11-26T12:44:46.123Z" },
        { seq = 13, type = "timer_fired", time = t, name = "" },
        { seq = 14, type = "signal_received", time = t, name = "approved", payload = { by = "al" } },
        { seq = 15, type = "timer_cancelled", time = t, name = "signal:approved" },
        { seq = 16, type = "cancel_requested", time = t, by = "carol", reason = "duplicate" },
        { seq = 17, type = "workflow_cancelled", time = t, by = "carol", reason = "" },
        { seq = 18, type = "workflow_terminated", time = t, reason = "stuck" },
      }
      assert.same({
        "   #1  11:44:46.123  workflow_started     input {\"amount\":42}",
        "   #2  11:44:46.123  step_started         charge (attempt 1)",
        "   #3  11:44:46.123  step_failed          charge (attempt 1): declined; final",
        "   #4  11:44:46.123  step_completed       ship (attempt 2) -> {\"id\":\"s1\"}",
        "   #5  11:44:46.123  timer_started        cool-off until 12:44:46.123",
        "   #6  11:44:46.123  timer_fired          cool-off",
        "   #7  11:44:46.123  side_effect_recorded uuid = \"0b5e\"",
        "   #8  11:44:46.123  workflow_completed   output null",
        "   #9  11:44:46.123  workflow_failed      boom",
        "  #10  11:44:46.123  signal_received      approve",
        "  #11  11:44:46.123  workflow_started",
        "  #12  11:44:46.123  timer_started        until 12:44:46.123",
        "  #13  11:44:46.123  timer_fired",
        "  #14  11:44:46.123  signal_received      approved {\"by\":\"al\"}",
        "  #15  11:44:46.123  timer_cancelled      signal:approved",
        "  #16  11:44:46.123  cancel_requested     by carol: duplicate",
        "  #17  11:44:46.123  workflow_cancelled   by carol",
        "  #18  11:44:46.123  workflow_terminated  stuck",
      }, fmt.timeline(events))
    end)

    it("is empty for no events", function()
      assert.same({}, fmt.timeline {})
    end)
  end)

  describe("pretty_json", function()
    it("indents by two spaces and keeps the key order", function()
      assert.equal('{\n  "id": "r1",\n  "status": "completed",\n  "output": {\n    "b": [\n      1,\n      2\n    ],\n    "a": {}\n  }\n}',
        fmt.pretty_json('{"id":"r1","status":"completed","output":{"b":[1,2],"a":{}}}'))
    end)

    it("leaves strings alone, escapes included", function()
      assert.equal('{\n  "s": "a,b:{c} \\"[x]\\" \\\\"\n}', fmt.pretty_json('{"s":"a,b:{c} \\"[x]\\" \\\\"}'))
    end)

    it("re-indents already indented text and keeps scalars", function()
      assert.equal('[\n  true,\n  null,\n  -1.5e3\n]', fmt.pretty_json('[ true ,\n null, -1.5e3 ]'))
      assert.equal("[]", fmt.pretty_json("[ ]"))
      assert.equal('"x"', fmt.pretty_json('"x"'))
    end)

    it("round-trips through json.decode", function()
      local text = '{"a":[{"b":null,"c":"d\\u00e9"}],"e":{"f":[[],{}]}}'
      assert.same(json.decode(text), json.decode(fmt.pretty_json(text)))
    end)
  end)
end)
