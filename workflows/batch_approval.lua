-- SPDX-License-Identifier: MIT
-- One approval per item, in parallel: each item is a child run of the
-- `approval` workflow (workflows/approval.lua) with a predictable id, so
-- that people can approve them one by one; the batch collects the
-- outcomes. Cancelling or terminating the batch cancels the approvals that
-- are still open (they release their reservations).
--
--   lodestone start batch_approval --id batch-7 --input '{"items":["laptop","desk"]}'
--   lodestone signal batch-7-1 approved '{"by":"alice"}'
--   lodestone signal batch-7-2 approved '{"by":"bob"}'
local workflow = require "lodestone.workflow"

return workflow.define {
  name = "batch_approval",
  description = "Starts one approval child run per item and collects the outcomes",
  run = function(ctx, input)
    local items = input and input.items
    if type(items) ~= "table" or #items == 0 then
      error(workflow.fatal("input.items: expected a non-empty list of items"))
    end
    local children = {}
    for i, item in ipairs(items) do
      children[i] = ctx:start_child("approval", { item = item, timeout = input.timeout },
        { id = ctx.id .. "-" .. i })
    end
    ctx:set_status { stage = "waiting for approvals", open = #children }
    local outcomes = {}
    for i, child in ipairs(children) do
      local ok, res = pcall(child.result, child)
      if not ok and workflow.is_cancelled(res) then error(res, 0) end
      outcomes[i] = ok and { item = items[i], approved_by = res.approved_by }
        or { item = items[i], error = tostring(res) }
      ctx:set_status { stage = "waiting for approvals", open = #children - i }
    end
    return outcomes
  end,
}
