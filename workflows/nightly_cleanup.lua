-- SPDX-License-Identifier: MIT
-- A nightly cleanup: ask a service to delete what is older than a cutoff,
-- in batches, until nothing is left. The cutoff comes from ctx:now(), which
-- is recorded, so a run resumed after a restart keeps the same cutoff.
--
-- lodestoned starts it every night at 03:00 UTC (`schedule`): each fire is a
-- run with the id nightly_cleanup@YYYYMMDDT030000Z, never started twice; a
-- night missed while the daemon was down runs once when it comes back
-- (catchup "one"), and a night whose previous run still goes is skipped.
-- The service answers POST {before = ISO time, limit = N} with {deleted = n}.
local workflow = require "lodestone.workflow"

local BATCH = 500       -- items per call
local MAX_BATCHES = 200 -- leave the rest for tomorrow

return workflow.define {
  name = "nightly_cleanup",
  description = "delete items older than a cutoff, in batches",
  retry = { initial_interval = "5s", backoff = 2.0, max_interval = "5m", max_attempts = 6 },
  schedule = { cron = "0 3 * * *", overlap = "skip", catchup = "one",
               input = { purge_url = "http://127.0.0.1:9000/purge", keep = "30d" } },

  run = function(ctx, input)
    if type(input.purge_url) ~= "string" then error("input.purge_url: expected a URL") end
    local keep_ms = workflow.duration_ms(input.keep or "30d", "input.keep")
    -- Never os.time() in run: a replay would see another time.
    local cutoff = ctx:now() - keep_ms / 1000
    local before = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(cutoff))
    ctx:log("deleting items older than " .. before)

    local deleted, batch, n = 0, 0, 0
    repeat
      batch = batch + 1
      n = ctx:step("purge " .. batch, function(s)
        local res = s.http.post(input.purge_url, {
          json = { before = before, limit = BATCH },
          headers = { ["Idempotency-Key"] = s.idempotency_key },
        })
        if res.status >= 500 then error("purge service answered " .. res.status) end
        if res.status >= 400 then
          error(workflow.fatal("purge refused (" .. res.status .. "): " .. res.body))
        end
        return res.json and tonumber(res.json.deleted) or 0
      end)
      deleted = deleted + n
    until n < BATCH or batch == MAX_BATCHES

    ctx:log(string.format("deleted %d items in %d batches", deleted, batch))
    return { before = before, deleted = deleted, batches = batch }
  end,
}
