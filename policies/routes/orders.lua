-- SPDX-License-Identifier: MIT
-- A mod_magnet gate serving one route, examples.lua's `orders`: POST
-- /orders starts an order run; every other request gets ../orders-api.lua's
-- decision (GET /orders/** with orders:read goes on to the backend).
--
--   magnet.attract-raw-url-to = ( "/etc/lodestone/routes/orders.lua" )
local route = require "lodestone.route"
local here = route.here()
return route.workflow(lighty, route.load(here .. "/examples.lua").orders)
