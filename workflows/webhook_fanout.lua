-- SPDX-License-Identifier: MIT
-- Webhook fan-out: deliver one event to every subscriber, each in its own
-- step, so that a slow or failing subscriber is retried on its own and the
-- ones already delivered are never sent twice (even across restarts).
-- A subscriber that still fails after its retries, or refuses the event
-- (4xx), is reported in the result rather than failing the whole run.
--
--   lodestone start webhook_fanout --wait --input '{"event": {"type": "order.paid",
--     "id": "evt_1"}, "urls": ["http://127.0.0.1:9000/hooks/a", "http://127.0.0.1:9000/hooks/b"]}'
local workflow = require "lodestone.workflow"

return workflow.define {
  name = "webhook_fanout",
  description = "deliver one event to several subscriber URLs",
  -- 0.5s, 1s, 2s between 4 attempts per subscriber.
  retry = { initial_interval = "500ms", backoff = 2.0, max_interval = "30s", max_attempts = 4 },
  step_timeout = "10s", -- each delivery attempt, the HTTP call included

  run = function(ctx, input)
    if type(input.urls) ~= "table" then error("input.urls: expected a list of URLs") end
    local deliveries = {}
    for i, url in ipairs(input.urls) do
      -- pcall keeps one subscriber's final failure from ending the run; a
      -- replay raises the same recorded failure again, so it stays
      -- deterministic.
      local ok, res = pcall(ctx.step, ctx, "deliver " .. i, function(s)
        local r = s.http.post(url, {
          json = input.event,
          headers = {
            ["Idempotency-Key"] = s.idempotency_key, -- lets subscribers drop duplicates
            ["X-Workflow-Run"] = ctx.id,
          },
        })
        if r.status >= 500 or r.status == 429 then
          error(url .. " answered " .. r.status) -- retried with backoff
        end
        return { url = url, status = r.status, delivered = r.status < 300 }
      end)
      deliveries[i] = ok and res or { url = url, delivered = false, error = tostring(res) }
    end

    -- The summary is a step of its own: it shows in the history, and a
    -- report sent from here (a chat message, a metric) is not sent again
    -- once the step is recorded.
    return ctx:step("summary", function(s)
      local delivered = 0
      for _, d in ipairs(deliveries) do
        if d.delivered then delivered = delivered + 1 end
      end
      s:log(string.format("event delivered to %d of %d subscribers", delivered, #deliveries))
      return { delivered = delivered, failed = #deliveries - delivered, deliveries = deliveries }
    end)
  end,
}
