-- SPDX-License-Identifier: MIT
-- A mod_magnet gate serving both example routes (examples.lua): POST
-- /hooks/github and POST /orders start workflows; every other request gets
-- ../orders-api.lua's decision.
--
--   magnet.attract-raw-url-to = ( "/etc/lodestone/routes/gate.lua" )
local route = require "lodestone.route"
local here = route.here()
local routes = route.load(here .. "/examples.lua")
return route.dispatch(lighty, { routes.github, routes.orders }, here .. "/../orders-api.lua")
