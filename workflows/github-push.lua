-- SPDX-License-Identifier: MIT
-- A GitHub push, delivered by webhook: summarise the commits, then record
-- the delivery. Needs no other service. Started by the gate
-- policies/routes/github.lua (POST /hooks/github, the signature checked by
-- policies/github-webhook.lua) with the delivery id as the run id, so a
-- redelivery is the same run, never a second one:
--
--   input = { event = "push", delivery = "<X-GitHub-Delivery>", push = <the push payload> }
--
-- Try it without GitHub:
--   lodestone start github-push --input '{"event": "push", "push": {"ref": "refs/heads/main",
--     "commits": [{"id": "a1", "message": "fix", "author": {"username": "ada"}}]}}' --wait
local workflow = require "lodestone.workflow"

-- Lines of a commit message after the first are dropped; so is anything
-- past this many characters.
local TITLE_MAX = 72

local function title(message)
  if type(message) ~= "string" then return nil end
  local first = message:match("^[^\n]*")
  if #first > TITLE_MAX then first = first:sub(1, TITLE_MAX - 3) .. "..." end
  return first
end

return workflow.define {
  name = "github-push",
  description = "summarise a GitHub push and record the delivery",

  run = function(ctx, input)
    input = type(input) == "table" and input or {}
    local push = type(input.push) == "table" and input.push or {}

    -- Pure computation, but recorded: a replay gets the same summary.
    local summary = ctx:step("summarise", function()
      local commits = type(push.commits) == "table" and push.commits or {}
      local authors, seen, titles = {}, {}, {}
      for _, c in ipairs(commits) do
        local a = type(c.author) == "table" and (c.author.username or c.author.name)
        if type(a) == "string" and not seen[a] then
          seen[a] = true
          authors[#authors + 1] = a
        end
        titles[#titles + 1] = title(c.message)
      end
      table.sort(authors)
      local repo = type(push.repository) == "table" and push.repository.full_name or nil
      return {
        repository = repo,
        ref = push.ref,
        commits = #commits,
        authors = table.concat(authors, ", "),
        titles = table.concat(titles, " | "),
      }
    end)

    local record = ctx:step("record", function(s)
      s:log(string.format("push to %s %s: %d commit(s) by %s", tostring(summary.repository),
        tostring(summary.ref), summary.commits, summary.authors ~= "" and summary.authors or "nobody"))
      return { delivery = input.delivery, event = input.event or "push", key = s.idempotency_key }
    end)

    return { summary = summary, delivery = record.delivery, event = record.event }
  end,
}
