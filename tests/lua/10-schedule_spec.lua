-- SPDX-License-Identifier: MIT
-- Schedules in lodestone.workflow: define{schedule=...} with its defaults
-- and the JSON definition lodestoned takes, a message for every bad field
-- (the cron text's from the engine's own C parser, through
-- core.cron_next), and core.cron_next itself. Every case checks the value
-- and the error.
local workflow = require("lodestone.workflow")
local core = require("lodestone.core")
local json = core.json

local function noop() end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return e
end

local function with_schedule(s)
  return function() return workflow.define { name = "nightly", run = noop, schedule = s } end
end

describe("schedules", function()
  describe("core.cron_next", function()
    it("gives the first fire time after a time, in ms (UTC)", function()
      assert.equal(30000, core.cron_next("@every 30s"))
      assert.equal(1800000900000, core.cron_next("*/15 * * * *", 1800000000000)) -- 08:15 after 08:00
      assert.equal(68169600000, core.cron_next("0 0 29 2 *"))                      -- 1972-02-29
      assert.equal(1711843200000, core.cron_next("0 0 31 * *", 1706659200000))     -- 01-31 -> 03-31
    end)

    it("says what is wrong, as the engine does", function()
      local v, msg = core.cron_next("61 * * * *")
      assert.is_nil(v)
      assert.equal('cron "61 * * * *": minute: 61 is out of range 0-59', msg)
      v, msg = core.cron_next("0 0 30 2 *")
      assert.is_nil(v)
      assert.equal('cron "0 0 30 2 *": never fires', msg)
      v, msg = core.cron_next("* * * *")
      assert.is_nil(v)
      assert.equal('cron "* * * *": expected 5 fields (minute hour day-of-month month day-of-week), got 4', msg)
      assert.has_error(function() core.cron_next() end)
      -- a time a whole number of ms cannot hold raises, not a negative answer
      for _, bad in ipairs { 1e19, -1e19, 0 / 0, math.huge } do
        local ok, err = pcall(core.cron_next, "@hourly", bad)
        assert.is_false(ok)
        assert.matches("after_ms: milliseconds since the epoch, within %+%-2%^53 expected", err)
      end
    end)
  end)

  describe("workflow.define{schedule=...}", function()
    it("fills in the defaults and names the schedule after the workflow", function()
      local def = workflow.define { name = "nightly", run = noop, schedule = { cron = "0 3 * * *" } }
      assert.same({ name = "nightly", workflow = "nightly", cron = "0 3 * * *", timezone = "UTC",
                    overlap = "skip", catchup = "one" }, def.schedule)
      assert.same({ name = "nightly", workflow = "nightly", cron = "0 3 * * *", timezone = "UTC",
                    overlap = "skip", catchup = "one" }, json.decode(def.schedule_json))
    end)

    it("keeps every field given, with the input as JSON", function()
      local def = workflow.define { name = "sync", run = noop, schedule = {
        cron = "@every 30s", timezone = "UTC", overlap = "buffer_one", catchup = "none",
        input = { tenant = "acme", limit = 5 } } }
      local d = json.decode(def.schedule_json)
      assert.equal("@every 30s", d.cron)
      assert.equal("buffer_one", d.overlap)
      assert.equal("none", d.catchup)
      assert.same({ tenant = "acme", limit = 5 }, d.input)
      assert.equal("allow", workflow.define { name = "a", run = noop,
        schedule = { cron = "@hourly", overlap = "allow" } }.schedule.overlap)
    end)

    it("takes a named timezone (lodestoned checks the name)", function()
      local def = workflow.define { name = "berlin", run = noop,
        schedule = { cron = "0 9 * * 1-5", timezone = "Europe/Berlin" } }
      assert.equal("Europe/Berlin", def.schedule.timezone)
      assert.equal("Europe/Berlin", json.decode(def.schedule_json).timezone)
    end)

    it("is optional", function()
      local def = workflow.define { name = "w", run = noop }
      assert.is_nil(def.schedule)
      assert.is_nil(def.schedule_json)
    end)

    it("names the bad field", function()
      local cases = {
        { "@daily", "workflow.define: schedule: must be a table, got a string" },
        { { cron = "@daily", every = "1h" },
          "workflow.define: schedule: unknown field every (known: cron, timezone, overlap, catchup, input)" },
        { {}, 'workflow.define: schedule.cron: must be a string such as "*/15 * * * *", "@daily" or "@every 30s", got nothing' },
        { { cron = 15 }, 'workflow.define: schedule.cron: must be a string such as "*/15 * * * *", "@daily" or "@every 30s", got a number' },
        { { cron = "61 * * * *" }, 'workflow.define: schedule.cron: cron "61 * * * *": minute: 61 is out of range 0-59' },
        { { cron = "0 0 30 2 *" }, 'workflow.define: schedule.cron: cron "0 0 30 2 *": never fires' },
        { { cron = "@sometimes" }, 'workflow.define: schedule.cron: cron "@sometimes": unknown macro "@sometimes" '
          .. "(known: @yearly @annually @monthly @weekly @daily @midnight @hourly @every)" },
        { { cron = "@every 500ms" }, 'workflow.define: schedule.cron: ' .. select(2, core.cron_next("@every 500ms")) },
        { { cron = "@daily", timezone = "Europe/Paris; rm" },
          'workflow.define: schedule.timezone: must be an IANA zone name such as "Europe/Berlin" or "UTC", got "Europe/Paris; rm"' },
        { { cron = "@daily", timezone = 1 },
          'workflow.define: schedule.timezone: must be an IANA zone name such as "Europe/Berlin" or "UTC", got a number' },
        { { cron = "@daily", overlap = "queue" }, "workflow.define: schedule.overlap: must be skip, buffer_one or allow, got queue" },
        { { cron = "@daily", catchup = "all" }, "workflow.define: schedule.catchup: must be one or none, got all" },
        { { cron = "@daily", input = { f = noop } }, "workflow.define: schedule.input: cannot be encoded as JSON" },
      }
      for _, c in ipairs(cases) do
        assert.equal(c[2], err_of(with_schedule(c[1])))
      end
      -- The list of known fields names schedule (whatever else it names).
      assert.matches("^workflow%.define: unknown field schedules %(known: name, run, [^)]*schedule[,)]",
        err_of(function() return workflow.define { name = "w", run = noop, schedules = {} } end))
    end)
  end)

  describe("the example workflows/nightly_cleanup.lua", function()
    it("declares its nightly schedule", function()
      local def = dofile("workflows/nightly_cleanup.lua")
      assert.is_true(workflow.is_workflow(def))
      local d = json.decode(def.schedule_json)
      assert.equal("nightly_cleanup", d.name)
      assert.equal("0 3 * * *", d.cron)
      assert.equal("skip", d.overlap)
      assert.equal("one", d.catchup)
      assert.equal("string", type(d.input.purge_url))
    end)
  end)
end)
