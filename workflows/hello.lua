-- SPDX-License-Identifier: MIT
-- The smallest durable workflow: two steps around a durable timer. Needs
-- no other service, so it is the one to try first:
--
--   lodestone start hello --input '{"name": "Ada"}' --wait
--
-- Kill lodestoned while it sleeps and start it again: the run resumes
-- after the timer and "greet" does not run a second time.
local workflow = require "lodestone.workflow"

return workflow.define {
  name = "hello",
  run = function(ctx, input)
    local name = (input and input.name) or "world"
    local greeting = ctx:step("greet", function(s)
      return { text = "hello, " .. name, attempt = s.attempt }
    end)
    ctx:sleep((input and input.pause) or "2s")
    local at = ctx:now() -- recorded: a replay sees the same time
    return ctx:step("finish", function()
      return { greeting = greeting.text, finished_at = at }
    end)
  end,
}
