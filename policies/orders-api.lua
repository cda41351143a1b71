-- SPDX-License-Identifier: MIT
-- An OIDC-protected API: tokens from an identity provider (RS256, keys in a
-- JWKS file), API keys for services, rules by path/method/scope/claim, a
-- rate limit per caller, identity headers for the backend, and an audit log.
-- Copy it, point `jwks` at your provider's keys, and list your routes.
local policy = require "lodestone.policy"

return policy.define {
  name = "orders-api",
  authenticate = {                        -- tried in order; the first whose credential is present decides
    policy.jwt {
      jwks = "demo-keys/jwks.json",       -- relative to this file; reloaded when it changes
      issuer = "https://id.example.com/",
      audience = "orders",
      algorithms = { "RS256", "EdDSA" },
      leeway = 30,
      roles_claim = "realm_access.roles", -- Keycloak puts roles here
    },
    policy.api_key { header = "X-API-Key", keys = "demo-keys/api-keys" },
  },
  rules = {                               -- first match wins; no match denies
    { path = "/healthz", allow = "anyone" },
    { path = "/me" },                     -- any authenticated caller
    { path = "/admin/**", roles = { "admin" } },
    { path = "/orders/**", methods = { "GET" }, scopes = { "orders:read" } },
    { path = "/orders/**", methods = { "POST" }, scopes = { "orders:write" }, claims = { tenant = "acme" } },
  },
  rate_limit = { by = "subject", rate = 100, per = "1s", burst = 200 },
  identity_headers = { ["X-User"] = "sub", ["X-Roles"] = "roles", ["X-Tenant"] = "tenant" },
  audit = { path = "/tmp/lodestone-orders-api-audit.log", log = "deny" },
}
