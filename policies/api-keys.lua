-- SPDX-License-Identifier: MIT
-- Service-to-service API keys. The key file holds keyed hashes only; add a
-- key with `lodestone policy hash-key demo-keys/api-keys --subject NAME
-- --roles billing`, which prints the new key once.
local policy = require "lodestone.policy"

return policy.define {
  name = "api-keys",
  authenticate = {
    policy.api_key { header = "X-API-Key", keys = "demo-keys/api-keys" },
  },
  rules = {
    { path = "/invoices/**", methods = { "GET" }, scopes = { "invoices:read" } },
    { path = "/billing/**", roles = { "billing" } },
  },
  identity_headers = { ["X-User"] = "sub" },
}
