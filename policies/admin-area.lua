-- SPDX-License-Identifier: MIT
-- An admin area by role: everyone signed in may read the dashboard, only
-- admins may change settings, and the internal endpoints are blocked
-- outright, whoever asks.
local policy = require "lodestone.policy"

return policy.define {
  name = "admin-area",
  authenticate = {
    policy.jwt { jwks = "demo-keys/jwks.json", algorithms = { "RS256" }, audience = "admin" },
  },
  rules = {
    { path = "/admin/internal/**", deny = true },
    { path = "/admin/settings/**", methods = { "POST", "PUT", "DELETE" }, roles = { "admin" } },
    { path = "/admin/**", roles = { "admin", "viewer" } }, -- any one of these roles
  },
  identity_headers = { ["X-User"] = "sub", ["X-Roles"] = "roles" },
}
