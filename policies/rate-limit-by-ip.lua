-- SPDX-License-Identifier: MIT
-- A public site with per-client-address rate limits, shared by all
-- lighttpd workers (a tighter one on the login form), behind a trusted
-- reverse proxy that sets X-Forwarded-For; one network is blocked.
local policy = require "lodestone.policy"

return policy.define {
  name = "rate-limit-by-ip",
  rules = {
    { path = "/**", allow = "anyone" },
  },
  rate_limit = {
    { by = "ip", rate = 5, per = "1s", burst = 10 },
    -- and a tighter budget for guessing passwords, on those paths only
    { by = "ip", rate = 10, per = "1h", burst = 5, paths = { "/login", "/password/**" } },
  },
  ip = { deny = { "203.0.113.0/24" }, trusted_proxies = { "127.0.0.1", "::1" } },
}
