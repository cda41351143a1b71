-- SPDX-License-Identifier: MIT
-- Lodestone's policy gate for an installed lighttpd: conf/lodestone.conf
-- has lighttpd run it (mod_magnet) for every request, before anything else.
-- Install it as /etc/lodestone/gate.lua. It returns 0 to let the request go
-- on, or the status that ends it. The Lua modules must be where Debian's
-- Lua 5.4 finds them (make install puts them there).
--
-- mod_magnet keeps package.loaded between requests: compiled policies live
-- in lodestone.policy and are reloaded when their file changes. This top
-- level runs on every request, so keep it to a few comparisons.
local policy = require "lodestone.policy"

local policies = "/etc/lodestone/policies/"
local path = lighty.r.req_attr["uri.path"]

-- ---- routes: the first that matches picks the policy for the request ----

-- Lodestone's own surface: lodestoned's API (admins) and the web UI.
if path == "/ui" or path:find("^/ui/") or path:find("^/v1/") then
  return policy.enforce(lighty, policies .. "lodestone-api.lua")
end

-- Add your routes here, above the last line, e.g.
--   if path:find("^/hooks/") then
--     return policy.enforce(lighty, policies .. "github-webhook.lua")
--   end

-- Everything else. Until default.lua exists, these requests are denied
-- with 503: policies fail closed.
return policy.enforce(lighty, policies .. "default.lua")
