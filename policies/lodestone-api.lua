-- SPDX-License-Identifier: MIT
-- Lodestone's own HTTP surface behind lighttpd: lodestoned's API under /v1/
-- for admins only, the web UI's static files for anyone (the UI's own calls
-- to /v1/ still need an admin token). `lodestone up` and conf/lodestone.conf
-- guard /v1/ and /ui/ with it. Here it trusts the DEMO key (tokens from
-- `lodestone dev token --sub alice --roles admin`): for real use point `jwks`
-- (or `jwks_url`) at your identity provider's keys.
local policy = require "lodestone.policy"

return policy.define {
  name = "lodestone-api",
  authenticate = {
    policy.jwt {
      jwks = "demo-keys/jwks.json", -- relative to this file
      issuer = "https://id.example.com/",
      audience = "lodestone",
      algorithms = { "RS256" },
      leeway = 30,
    },
  },
  rules = {
    { path = "/", methods = { "GET", "HEAD" }, allow = "anyone" }, -- redirects to /ui/
    { path = "/ui/**", methods = { "GET", "HEAD" }, allow = "anyone" },
    { path = "/v1/**", roles = { "admin" } },
  },
  identity_headers = { ["X-User"] = "sub", ["X-Roles"] = "roles" },
}
