-- SPDX-License-Identifier: MIT
-- A request that waits for a person: the run shows "waiting for approval"
-- until someone sends the `approved` signal (or the timeout passes), and
-- a cancelled request releases what it reserved.
--
--   lodestone start approval --id req-42 --input '{"item":"laptop","timeout":"3d"}'
--   lodestone signal req-42 approved '{"by":"alice"}'
--   lodestone cancel req-42 --reason "no longer needed"
local workflow = require "lodestone.workflow"

return workflow.define {
  name = "approval",
  description = "Reserves an item, waits for an `approved` signal, then orders it",
  run = function(ctx, input)
    input = input or {}
    local item = input.item or "item"
    local reservation = ctx:step("reserve", function(s)
      return { item = item, key = s.idempotency_key }
    end)
    local ok, res = pcall(function()
      ctx:set_status { stage = "waiting for approval", item = item }
      local decision, why = ctx:wait_signal("approved", { timeout = input.timeout or "3d" })
      if why == "timeout" then
        ctx:set_status { stage = "expired" }
        error(workflow.fatal("no approval within " .. tostring(input.timeout or "3d") .. " (" .. why .. ")"))
      end
      -- A signal without a payload (the UI sends null) approves too, by no one named.
      if type(decision) ~= "table" then decision = {} end
      ctx:set_status { stage = "approved", by = decision.by }
      return decision
    end)
    if not ok then
      -- Cancelled or expired: give the reservation back, then end as we were told.
      ctx:step("release", function() return { released = reservation.item } end)
      error(res, 0)
    end
    local order = ctx:step("order", function(s) return { ordered = item, key = s.idempotency_key } end)
    return { item = item, approved_by = res.by, order = order.key }
  end,
}
