-- SPDX-License-Identifier: MIT
-- A mod_magnet gate serving one route, examples.lua's `github`: POST
-- /hooks/github starts a github-push run; every other request gets
-- ../github-webhook.lua's decision (403: it allows nothing else).
--
--   magnet.attract-raw-url-to = ( "/etc/lodestone/routes/github.lua" )
--
-- lodestone's Lua modules must be on Lua's path (LUA_PATH and LUA_CPATH in
-- lighttpd's environment, or installed); lodestoned's socket comes from
-- $LODESTONE_SOCKET, else ./var/lodestone/lodestoned.sock.
local route = require "lodestone.route"
local here = route.here()
return route.workflow(lighty, route.load(here .. "/examples.lua").github)
