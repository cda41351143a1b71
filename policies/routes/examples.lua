-- SPDX-License-Identifier: MIT
-- The example routes, loaded by the gates next to this file through
-- route.load (once, and again when this file changes); a relative policy
-- path resolves against this folder.
--
--   github: POST /hooks/github with a valid X-Hub-Signature-256 (checked by
--     ../github-webhook.lua) starts a `github-push` run
--     (workflows/github-push.lua) named after the delivery, so a
--     redelivery answers with the same run.
--   orders: POST /orders with a JWT that has the scope orders:write and
--     tenant acme (../orders-api.lua) starts an `order` run
--     (workflows/order.lua). An Idempotency-Key header names the run: a
--     retried POST with the same key from the same caller answers with the
--     same run; without the header every POST starts a new one.
local core = require "lodestone.core"

local function hex(bytes)
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local routes = {}

routes.github = {
  policy = "../github-webhook.lua",
  method = "POST",
  path = "/hooks/github",
  workflow = "github-push",
  id = function(req)
    local delivery = req.headers["X-GitHub-Delivery"]
    if delivery == nil then return nil end -- a fresh id
    if #delivery > 100 or not delivery:match("^[%w%-]+$") then
      return nil, "X-GitHub-Delivery: expected a delivery id (letters, digits and -)"
    end
    return "gh-" .. delivery
  end,
  input = function(req)
    local event = req.headers["X-GitHub-Event"]
    if event ~= "push" then
      return nil, "X-GitHub-Event: only push events start a run, got " .. (event or "none")
    end
    if type(req.json) ~= "table" then return nil, "body: expected a push event object" end
    return { event = event, delivery = req.headers["X-GitHub-Delivery"], push = req.json }
  end,
}

routes.orders = {
  policy = "../orders-api.lua",
  method = "POST",
  path = "/orders",
  workflow = "order",
  -- The same key from two callers must not name one run: the id is a hash
  -- of the caller (X-User, set by the policy) and the key.
  id = function(req)
    local key = req.headers["Idempotency-Key"]
    if key == nil then return nil end
    if #key == 0 or #key > 200 then return nil, "Idempotency-Key: 1 to 200 characters" end
    return "order-" .. hex(core.hmac_sha256(req.headers["X-User"] or "", key)):sub(1, 32)
  end,
  -- Only the fields an order has: the caller never picks the payments URL.
  input = function(req)
    local o = req.json
    if type(o) ~= "table" then
      return nil, "body: expected an order object such as {\"amount\": 4200}"
    end
    local amount = o.amount
    if type(amount) ~= "number" or amount <= 0 or amount ~= math.floor(amount) then
      return nil, "amount: expected a positive whole number of cents"
    end
    return { id = req.id, amount = amount, customer = req.headers["X-User"] }
  end,
}

return routes
