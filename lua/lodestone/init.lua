-- SPDX-License-Identifier: MIT
-- lodestone: the Lua face of Lodestone. Requires the native module
-- lodestone.core (built for this runtime's ABI) and re-exports it; sugar that
-- is easier to write in Lua goes here. Runs on Lua 5.1/LuaJIT and 5.4 alike.
--
-- json (jansson underneath):
--   json.decode(text) -> value | nil, "json.decode: line L column C (byte B): ...", "EINVAL"
--     null -> json.null; arrays -> sequences with metatable json.array_mt;
--     objects -> plain tables. Integers are exact: int64 on 5.4; on LuaJIT up
--     to +-2^53, beyond which decode fails rather than round. A non-string
--     argument raises.
--   json.encode(value) -> text | nil, "json.encode: at $.items[3].name: ...", "EINVAL"
--     Compact, object keys sorted. A table is an array when marked with
--     json.array or when its keys are exactly 1..n (n >= 1); otherwise its
--     keys must be strings (an empty plain table is {}). Integral numbers
--     within +-2^53 are written as integers. Paths count array items from 1,
--     as the Lua table does. Nesting is limited to 2048 levels both ways.
--   json.array([t]), json.object([t]) -> t, marked; json.null, json.array_mt,
--   json.object_mt.
local core = require("lodestone.core")

local M = {}

-- version() -> "MAJOR.MINOR.PATCH" of the native library.
M.version = core.version

-- The native json table itself, not a copy.
M.json = core.json

-- hmac.sha256(key, msg) -> 32 raw bytes
-- hmac.verify(key, msg, signature, [encoding]) -> true | false, reason
--   encoding "hex" (default), "base64" or "base64url"; constant-time.
M.hmac = { sha256 = core.hmac_sha256, verify = core.hmac_verify }

-- base64url.encode(bytes) -> unpadded text; base64url.decode(text) ->
-- bytes | nil, msg, "EINVAL" (strict: no padding, no other alphabet).
M.base64url = { encode = core.base64url_encode, decode = core.base64url_decode }

return M
