-- SPDX-License-Identifier: MIT
-- Shared by every spec: puts the project's Lua modules and the native module
-- built for this runtime's ABI on the search paths.
local build = assert(os.getenv("LS_BUILD_DIR"), "LS_BUILD_DIR not set: run specs through tests/lua/run.sh")
local abi = assert(os.getenv("LS_LUA_ABI"), "LS_LUA_ABI not set")
package.path = "lua/?.lua;lua/?/init.lua;tests/lua/?.lua;" .. package.path
package.cpath = build .. "/lib/lua/" .. abi .. "/?.so;" .. package.cpath
