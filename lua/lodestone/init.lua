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
-- hmac.verify(key, msg, signature, [encoding]) -> true | false, reason, msg
--   encoding "hex" (default), "base64" or "base64url"; constant-time.
M.hmac = { sha256 = core.hmac_sha256, verify = core.hmac_verify }

-- base64url.encode(bytes) -> unpadded text; base64url.decode(text) ->
-- bytes | nil, msg, "EINVAL" (strict: no padding, no other alphabet).
M.base64url = { encode = core.base64url_encode, decode = core.base64url_decode }

-- jwt (docs/lua-api.md has examples):
--   jwt.keyset([jwks_text]) -> keyset | nil, msg, code   (no text: empty set)
--   jwt.keyset_file(path) -> keyset | nil, msg, code     (ENOTFOUND, EIO, EINVAL)
--   ks:add_pem(pem, [kid], [alg]), ks:add_secret(secret, [kid], [alg]),
--   ks:add_jwks(text) -> ks | nil, msg, code; ks:count() -> usable, skipped;
--   ks:close(). alg ("RS256") restricts the key; an unknown name raises.
--   jwt.verify(token, keyset, opts) -> claims | nil, reason, msg
--     claims as json.decode gives them (arrays marked, null is json.null).
--     reason is a stable name: "malformed", "too_large", "alg_none",
--     "alg_not_allowed", "crit_unsupported", "bad_type", "unknown_kid",
--     "no_key", "ambiguous_key", "key_alg_mismatch", "bad_signature",
--     "expired", "not_yet_valid", "issued_in_future", "bad_issuer",
--     "bad_audience", "missing_claim", "invalid_claim", or "error" (out of
--     memory, claims Lua cannot hold); msg starts with the reason.
--     opts: algorithms (list or "RS256, EdDSA"; required), issuer, audience
--     (string or list), leeway (seconds), required (claim names), now
--     (seconds since the epoch, for tests), max_token_len, allow_no_exp,
--     typ. A wrong or unknown option raises.
--   jwt.cache(opts, [{size = 1024, ttl = 300}]) -> cache, whose
--     cache:verify(token, keyset) answers like jwt.verify without crypto for
--     a token seen before; cache:stats(), cache:clear(), cache:close(). Keep
--     it in a module upvalue: package.loaded survives mod_magnet requests.
M.jwt = {
  keyset = core.jwt_keyset,
  keyset_file = core.jwt_keyset_file,
  verify = core.jwt_verify,
  cache = core.jwt_cache,
}

-- ratelimit (GCRA in a shared memory file; every process that opens the
-- same path, e.g. each lighttpd worker, shares one budget per key):
--   ratelimit.open(path, [{capacity = 65536, mode = 384}]) -> table | nil, msg, code
--     The file is created 0600 (mode) and refused (EPERM) when it is a
--     symlink, belongs to another user than us or root, or others may write it.
--   tbl:take(key, rate, per, [burst], [cost]) -> allowed, info
--     rate per `per` ("1s", "250ms", "1m", or seconds) with a bucket of
--     burst (default rate); cost defaults to 1 (0 only reads). info =
--     { limit, remaining, retry_after = seconds (fractional, 0 if allowed),
--       reset = whole seconds until the bucket is full }. Bad figures raise.
--   tbl:stats() -> { capacity, used, evictions, recovered }; tbl:close().
--   ratelimit.take(name, key, rate, burst, [per = "1s"]) -> allowed, info
--     on one table per Lua state, opened on first use at ratelimit.path
--     ($LODESTONE_RL_DIR or /dev/shm, then "/lodestone_lua.rl"), keyed by
--     name .. ":" .. key so limits of different names never share a budget
--     (so a name may not contain ':').
--     nil, msg, code when the table cannot be opened (treat as a denial).
local ratelimit = {
  open = core.ratelimit_open,
  path = (os.getenv("LODESTONE_RL_DIR") or "/dev/shm") .. "/lodestone_lua.rl",
}
local shared, shared_path -- this state's table for ratelimit.take

-- Raises for the caller of ratelimit.take when v (argument n) is not a
-- whole number >= 1 (the table's own check would name its arguments).
local function whole(v, n, what)
  if type(v) ~= "number" or not (v >= 1 and v <= 2 ^ 53) or v % 1 ~= 0 then
    error(("bad argument #%d to 'ratelimit.take' (%s must be a whole number >= 1, got %s)")
      :format(n, what, tostring(v)), 3)
  end
end

function ratelimit.take(name, key, rate, burst, per)
  if type(name) ~= "string" then
    error("bad argument #1 to 'ratelimit.take' (string expected, got " .. type(name) .. ")", 2)
  end
  if name:find(":", 1, true) then
    error("bad argument #1 to 'ratelimit.take' (a name must not contain ':')", 2)
  end
  if type(key) ~= "string" and type(key) ~= "number" then
    error("bad argument #2 to 'ratelimit.take' (string expected, got " .. type(key) .. ")", 2)
  end
  whole(rate, 3, "rate")
  if burst ~= nil then whole(burst, 4, "burst") end
  if per ~= nil and type(per) ~= "string" and type(per) ~= "number" then
    error("bad argument #5 to 'ratelimit.take' (a duration such as \"1s\" or seconds expected, got "
      .. type(per) .. ")", 2)
  end
  if shared_path ~= ratelimit.path then
    if shared then shared:close() end
    local msg, code
    shared, msg, code = core.ratelimit_open(ratelimit.path)
    if not shared then
      shared_path = nil
      return nil, msg, code
    end
    shared_path = ratelimit.path
  end
  -- A duration that does not parse raises in the table's take. Raised from
  -- here, it names the line that called ratelimit.take, as the argument
  -- errors above do (a tail call left Lua 5.4 naming this file's line).
  local ok, allowed, info = pcall(shared.take, shared, name .. ":" .. key, rate, per or "1s", burst)
  if not ok then error(allowed, 2) end
  return allowed, info
end

M.ratelimit = ratelimit

-- cidr:
--   cidr.new{ "10.0.0.0/8", "2001:db8::/32", "::1" } -> set | nil, msg, "EINVAL"
--     (a malformed entry; a non-string entry raises). IPv4 entries also
--     match IPv4-mapped IPv6 addresses (::ffff:10.1.2.3) and the reverse.
--   set:contains(ip) -> true | false | false, msg, "EINVAL" when ip is not
--     an address: a malformed address is in no set (mind this for deny
--     lists). set:ranges() -> merged ranges; set:close().
--   cidr.client_addr(peer, [xff], [trusted_set]) -> address | nil, msg, code
--     The peer unless it is a trusted proxy; then X-Forwarded-For is walked
--     from the right past trusted proxies. Canonical text either way.
M.cidr = { new = core.cidr_new, client_addr = core.cidr_client_addr }

return M
