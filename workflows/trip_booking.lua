-- SPDX-License-Identifier: MIT
-- A saga: book a flight, a hotel and a car; if a later booking fails for
-- good, undo the earlier ones, newest first, each undo a durable step. The
-- run then fails with the original error (after compensating).
--
--   lodestone start trip_booking --input '{"trip":"t-1","car":"none left"}'
local workflow = require "lodestone.workflow"

-- A booking step: input.<what> = "none left" makes it fail for good.
local function book(ctx, input, what)
  return ctx:step("book " .. what, function(s)
    if input[what] == "none left" then error(workflow.fatal(what .. ": none left")) end
    return { what = what, ref = what .. "-" .. s.idempotency_key }
  end)
end

return workflow.define {
  name = "trip_booking",
  description = "Books a flight, a hotel and a car; undoes them in reverse order on failure",
  run = function(ctx, input)
    input = input or {}
    local saga = ctx:saga()
    local booked = {}
    local ok, err = pcall(function()
      for _, what in ipairs({ "flight", "hotel", "car" }) do
        local b = book(ctx, input, what)
        booked[#booked + 1] = b.ref
        saga:add(function()
          if input.cool_off then ctx:sleep(input.cool_off) end -- e.g. a provider's undo window
          ctx:step("cancel " .. what, function() return { cancelled = b.ref } end)
        end)
      end
    end)
    if not ok then
      ctx:set_status { stage = "compensating", error = tostring(err) }
      saga:compensate()
      error(err, 0)
    end
    return { trip = input.trip, booked = booked }
  end,
}
