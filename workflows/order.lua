-- SPDX-License-Identifier: MIT
-- An order: charge the card, wait, ship. The charge survives crashes and
-- retries without charging twice (the payments service sees the same
-- Idempotency-Key on every attempt); a declined card fails the run at once;
-- the wait is a durable timer, so a restart of lodestoned does not reset it.
--
--   lodestone secret set payments_token          (the token on stdin)
--   lodestone start order --id o-1001 --wait \
--     --input '{"id": "1001", "amount": 4200, "payments_url": "http://127.0.0.1:9000"}'
local workflow = require "lodestone.workflow"

return workflow.define {
  name = "order",
  description = "charge the card, wait, ship",
  -- Every step's retry policy unless the step gives its own: 1s, 2s, 4s, 8s
  -- between the 5 attempts (never more than a minute).
  retry = { initial_interval = "1s", backoff = 2.0, max_interval = "1m", max_attempts = 5 },

  -- `order` is the run's input, e.g. {id = "1001", amount = 4200}.
  run = function(ctx, order)
    local payments = order.payments_url or "http://127.0.0.1:9000"

    -- Runs once: its result is recorded, and a replay after a restart gets
    -- the recorded charge back without calling the service again.
    local charge = ctx:step("charge", function(s)
      local res = s.http.post(payments .. "/charges", {
        json = { amount = order.amount },
        headers = {
          ["Idempotency-Key"] = s.idempotency_key, -- the same on every attempt
          -- Secrets are read at run time and never recorded or logged.
          Authorization = "Bearer " .. s:secret("payments_token"),
        },
      })
      if res.status >= 500 then error("payments unavailable") end           -- retried
      if res.status >= 400 then error(workflow.fatal("card declined")) end -- never retried
      return res.json -- {id = "ch_1", amount = 4200}: recorded
    end)

    ctx:sleep(order.ship_delay or "10s") -- durable: survives restarts

    local shipment = ctx:step("ship", function()
      return { tracking = "T-" .. order.id }
    end, { retry = { max_attempts = 10 } }) -- overrides the workflow's max_attempts only

    return { charge = charge.id, tracking = shipment.tracking }
  end,
}
