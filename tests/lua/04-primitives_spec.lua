-- SPDX-License-Identifier: MIT
-- The primitives custom scripts use: lodestone.jwt (keysets, verify,
-- cache), lodestone.ratelimit (shared tables, take) and lodestone.cidr
-- (sets, client_addr). Every case checks the value and the error.
local lodestone = require("lodestone")
local json = lodestone.json
local jwt, ratelimit, cidr = lodestone.jwt, lodestone.ratelimit, lodestone.cidr

local is_jit = os.getenv("LS_LUA_ABI") == "5.1"
local VECTORS = "tests/c/vectors/jwt/"
local SECRET = "0123456789abcdef0123456789abcdef"
local NOW = 1700000000 -- every token below is checked at this time

local function pack(...) return { n = select("#", ...), ... } end

local files = require("files")
local read = files.read
local write = files.write
local function tmpdir() return files.tmpdir("prim") end

local function b64(s) return lodestone.base64url.encode(s) end

-- An HS256 token (or another header) signed with key (default SECRET).
local function mint(claims, opts)
  opts = opts or {}
  local header = opts.header or { alg = "HS256", typ = "JWT" }
  local input = b64(json.encode(header)) .. "." .. b64(opts.payload or json.encode(claims))
  return input .. "." .. b64(lodestone.hmac.sha256(opts.key or SECRET, input))
end

local HS = { algorithms = { "HS256" }, now = NOW }

local function with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

local function secret_keyset(...)
  return assert(assert(jwt.keyset()):add_secret(SECRET, ...))
end

-- The first key of a vector file (a single JWK) as a JWK Set.
local function jwks_of(file)
  return '{"keys":[' .. read(VECTORS .. file) .. "]}"
end

describe("lodestone.jwt", function()
  describe("verify", function()
    local ks
    before_each(function() ks = secret_keyset() end)

    it("returns the claims as a table, arrays marked as json.decode does", function()
      local tok = mint { sub = "alice", exp = NOW + 60, roles = { "admin", "ops" },
                         realm = { n = 3, ok = true, none = json.null } }
      local claims = jwt.verify(tok, ks, HS)
      assert.same({ sub = "alice", exp = NOW + 60, roles = { "admin", "ops" },
                    realm = { n = 3, ok = true, none = json.null } }, claims)
      assert.equal(json.array_mt, getmetatable(claims.roles))
      assert.is_nil(getmetatable(claims))
      assert.equal(json.encode(claims), json.encode(json.decode(json.encode(claims))))
    end)

    it("accepts the allow-list as a string and several audiences", function()
      local tok = mint { sub = "a", exp = NOW + 60, aud = { "x", "orders" }, iss = "https://id/" }
      local claims = jwt.verify(tok, ks, { algorithms = "RS256, HS256", now = NOW,
        audience = { "orders", "billing" }, issuer = "https://id/", required = { "sub" } })
      assert.equal("a", claims.sub)
      assert.equal("a", jwt.verify(tok, ks, with(HS, { audience = "x" })).sub)
    end)

    it("rejects an expired token with reason 'expired', honouring leeway", function()
      local tok = mint { sub = "a", exp = NOW - 10 }
      local res = pack(jwt.verify(tok, ks, HS))
      assert.equal(3, res.n)
      assert.is_nil(res[1])
      assert.equal("expired", res[2])
      assert.matches("^expired: ", res[3])
      assert.equal("a", jwt.verify(tok, ks, with(HS, { leeway = 30 })).sub)
    end)

    it("rejects a token that is not yet valid", function()
      local claims, reason = jwt.verify(mint { exp = NOW + 600, nbf = NOW + 300 }, ks, HS)
      assert.is_nil(claims)
      assert.equal("not_yet_valid", reason)
    end)

    it("rejects the wrong audience and issuer", function()
      local tok = mint { sub = "a", exp = NOW + 60, aud = "billing", iss = "https://evil/" }
      local claims, reason, msg = jwt.verify(tok, ks, with(HS, { audience = { "orders" } }))
      assert.is_nil(claims)
      assert.equal("bad_audience", reason)
      assert.matches("^bad_audience: ", msg)
      claims, reason = jwt.verify(tok, ks, with(HS, { issuer = "https://id/" }))
      assert.is_nil(claims)
      assert.equal("bad_issuer", reason)
    end)

    it("never accepts alg none, even when listed as allowed key-less", function()
      local input = b64('{"alg":"none","typ":"JWT"}') .. "." .. b64(json.encode { sub = "root", exp = NOW + 60 })
      local claims, reason, msg = jwt.verify(input .. ".", ks, HS)
      assert.is_nil(claims)
      assert.equal("alg_none", reason)
      assert.matches("^alg_none: ", msg)
      assert.has_error(function() jwt.verify(input .. ".", ks, { algorithms = { "none" } }) end)
    end)

    it("rejects an algorithm outside the allow-list", function()
      local claims, reason = jwt.verify(mint { exp = NOW + 60 }, ks, { algorithms = { "RS256" }, now = NOW })
      assert.is_nil(claims)
      assert.equal("alg_not_allowed", reason)
    end)

    it("rejects a bad signature, an unknown kid, a malformed or too large token", function()
      local claims, reason = jwt.verify(mint({ exp = NOW + 60 }, { key = string.rep("w", 32) }), ks, HS)
      assert.is_nil(claims)
      assert.equal("bad_signature", reason)
      local tok = mint({ exp = NOW + 60 }, { header = { alg = "HS256", kid = "nope" } })
      assert.equal("unknown_kid", select(2, jwt.verify(tok, ks, HS)))
      assert.equal("malformed", select(2, jwt.verify("not.a.token", ks, HS)))
      assert.equal("malformed", select(2, jwt.verify(mint(nil, { payload = "[1]" }), ks, HS)))
      assert.equal("too_large", select(2, jwt.verify(mint { exp = NOW + 60 }, ks, with(HS, { max_token_len = 20 }))))
    end)

    it("requires exp and the listed claims", function()
      local tok = mint { sub = "a" }
      local claims, reason = jwt.verify(tok, ks, HS)
      assert.is_nil(claims)
      assert.equal("missing_claim", reason)
      assert.equal("a", jwt.verify(tok, ks, with(HS, { allow_no_exp = true })).sub)
      claims, reason = jwt.verify(mint { exp = NOW + 60 }, ks, with(HS, { required = { "tenant" } }))
      assert.is_nil(claims)
      assert.equal("missing_claim", reason)
    end)

    it("keeps integers exact, failing rather than rounding where Lua cannot", function()
      local tok = mint(nil, { payload = '{"exp":' .. (NOW + 60) .. ',"big":1152921504606846977}' })
      local claims, reason, msg = jwt.verify(tok, ks, HS)
      if is_jit then
        assert.is_nil(claims)
        assert.equal("error", reason)
        assert.matches("^claims: at %$%.big: integer 1152921504606846977 cannot be represented", msg)
      else
        assert.equal(1152921504606846977, claims.big)
        assert.is_nil(reason)
      end
    end)

    it("raises on wrong options", function()
      local tok = mint { exp = NOW + 60 }
      assert.has_error(function() jwt.verify(tok, ks) end)
      assert.has_error(function() jwt.verify(tok, ks, { now = NOW }) end)
      assert.has_error(function() jwt.verify(tok, ks, { algorithms = {} }) end)
      assert.has_error(function() jwt.verify(tok, {}, HS) end)
      assert.has_error(function() jwt.verify(nil, ks, HS) end)
      local function message(opts)
        local ok, err = pcall(jwt.verify, tok, ks, opts)
        assert.is_false(ok)
        return err
      end
      assert.matches("opts%.algorithms: required", message { now = NOW })
      assert.matches("opts%.algorithms: the list is empty", message { algorithms = {} })
      assert.matches('opts%.algorithms: unknown algorithm "HS25"', message { algorithms = { "HS25" } })
      assert.matches("unknown option 'audiences'", message(with(HS, { audiences = { "x" } })))
      assert.matches("opts%.issuer: string expected, got number", message(with(HS, { issuer = 1 })))
      assert.matches("opts%.audience: item 2: string expected, got boolean",
        message(with(HS, { audience = { "a", true } })))
      assert.matches("opts%.audience: the list is empty", message(with(HS, { audience = {} })))
      assert.matches("opts%.leeway: must be 0 to 86400 seconds", message(with(HS, { leeway = -1 })))
      assert.matches("opts%.now: number expected, got string", message(with(HS, { now = "today" })))
      -- allow_no_exp relaxes a check: only true turns it on, "false" or 0 raise
      assert.matches("opts%.allow_no_exp: boolean expected, got string",
        message(with(HS, { allow_no_exp = "false" })))
      assert.matches("opts%.allow_no_exp: boolean expected, got number", message(with(HS, { allow_no_exp = 0 })))
      local nil_claims, why = jwt.verify(mint {}, ks, with(HS, { allow_no_exp = false }))
      assert.is_nil(nil_claims)
      assert.equal("missing_claim", why)
    end)
  end)

  describe("keysets", function()
    it("verify the RFC 7515 A.1 HS256 example from a JWKS with an oct key", function()
      local ks, msg, code = jwt.keyset(jwks_of("rfc7515-a1-key.json"))
      assert.is_nil(msg, code)
      assert.same(pack(1, 0), pack(ks:count()))
      local claims = jwt.verify(read(VECTORS .. "rfc7515-a1.jws"), ks,
        { algorithms = { "HS256" }, now = 1300819370 })
      assert.same({ iss = "joe", exp = 1300819380, ["http://example.com/is_root"] = true }, claims)
      local res = pack(jwt.verify(read(VECTORS .. "rfc7515-a1.jws"), ks, { algorithms = { "HS256" } }))
      assert.same({ n = 3, nil, "expired" }, { n = res.n, res[1], res[2] })
    end)

    it("verify the RFC 7515 A.2 RS256 example from JWKS text, a JWKS file and PEM", function()
      local tok = read(VECTORS .. "rfc7515-a2.jws")
      local opts = { algorithms = { "RS256" }, now = 1300819370, issuer = "joe" }
      local want = { iss = "joe", exp = 1300819380, ["http://example.com/is_root"] = true }
      assert.same(want, jwt.verify(tok, assert(jwt.keyset(jwks_of("rfc7515-a2-key.json"))), opts))

      local dir = tmpdir()
      write(dir .. "/jwks.json", jwks_of("rfc7515-a2-key.json"))
      local from_file = assert(jwt.keyset_file(dir .. "/jwks.json"))
      -- a file group or others may write is refused: anyone could add a key
      os.execute("chmod 664 '" .. dir .. "/jwks.json'")
      local none, msg, code = jwt.keyset_file(dir .. "/jwks.json")
      assert.is_nil(none)
      assert.matches("mode 0664 lets group or others write it", msg, 1, true)
      assert.equal("EPERM", code)
      os.execute("rm -rf '" .. dir .. "'")
      assert.same(want, jwt.verify(tok, from_file, opts))

      local pem = assert(assert(jwt.keyset()):add_pem(read(VECTORS .. "rfc7515-a2-public.pem"), nil, "RS256"))
      assert.same(want, jwt.verify(tok, pem, opts))
      -- one flipped signature byte
      local bad = tok:sub(1, -3) .. (tok:sub(-2, -2) == "A" and "B" or "A") .. tok:sub(-1)
      assert.equal("bad_signature", select(2, jwt.verify(bad, pem, opts)))
    end)

    it("never use an RSA key as an HMAC secret (key_alg_mismatch)", function()
      local pem = read(VECTORS .. "rfc7515-a2-public.pem")
      local ks = assert(assert(jwt.keyset()):add_pem(pem, "r1"))
      -- the classic attack: HS256 keyed with the public key's text
      local tok = mint({ sub = "root", exp = NOW + 60 }, { header = { alg = "HS256", kid = "r1" }, key = pem })
      local claims, reason, msg = jwt.verify(tok, ks, { algorithms = { "HS256", "RS256" }, now = NOW })
      assert.is_nil(claims)
      assert.equal("key_alg_mismatch", reason)
      assert.matches("^key_alg_mismatch: ", msg)
    end)

    it("honour a key's algorithm restriction", function()
      local long = string.rep("s", 48)
      local ks = assert(assert(jwt.keyset()):add_secret(long, "k1", "HS384"))
      local tok = mint({ exp = NOW + 60 }, { header = { alg = "HS256", kid = "k1" }, key = long })
      assert.equal("key_alg_mismatch", select(2, jwt.verify(tok, ks, { algorithms = { "HS256", "HS384" }, now = NOW })))
    end)

    it("select keys by kid", function()
      local ks = assert(jwt.keyset())
      assert.equal(ks, ks:add_secret(string.rep("a", 32), "a"))
      assert.equal(ks, ks:add_secret(SECRET, "b"))
      assert.same(pack(2, 0), pack(ks:count()))
      local tok = mint({ sub = "b", exp = NOW + 60 }, { header = { alg = "HS256", kid = "b" } })
      assert.equal("b", jwt.verify(tok, ks, HS).sub)
      -- without a kid, two candidate keys are ambiguous
      assert.equal("ambiguous_key", select(2, jwt.verify(mint { exp = NOW + 60 }, ks, HS)))
    end)

    it("report malformed input as nil, msg, code", function()
      local ks, msg, code = jwt.keyset("{")
      assert.is_nil(ks)
      assert.matches("^jwt%.keyset: ", msg)
      assert.equal("EINVAL", code)
      ks, msg, code = jwt.keyset('{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}')
      assert.is_nil(ks)
      assert.matches("^jwt%.keyset: keys%[1%]%.k: HMAC key of 5 bytes is too short", msg)
      assert.equal("EINVAL", code)
      ks, msg, code = jwt.keyset_file("/nonexistent/jwks.json")
      assert.is_nil(ks)
      assert.matches("^jwt%.keyset_file: /nonexistent/jwks%.json", msg)
      assert.equal("ENOTFOUND", code)
      -- a long path leaves room for the reason
      local long = "/nonexistent/" .. string.rep("d", 300) .. "/jwks.json"
      ks, msg = jwt.keyset_file(long)
      assert.is_nil(ks)
      assert.equal("jwt.keyset_file: " .. long .. ": cannot open: No such file or directory", msg)
      local empty = assert(jwt.keyset())
      local r = pack(empty:add_secret("short"))
      assert.equal(3, r.n)
      assert.is_nil(r[1])
      assert.matches("^jwt%.add_secret: ", r[2])
      assert.equal("EINVAL", r[3])
      r = pack(empty:add_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
      assert.is_nil(r[1])
      assert.matches("^jwt%.add_pem: ", r[2])
      assert.is_string(r[3])
      assert.same(pack(0, 0), pack(empty:count()))
    end)

    it("raise on wrong argument types, unknown algorithm names and use after close", function()
      local ks = assert(jwt.keyset())
      assert.has_error(function() ks:add_secret(nil) end)
      assert.has_error(function() ks:add_secret(SECRET, "kid", "HS999") end)
      assert.has_error(function() ks:add_secret(SECRET, nil, "none") end)
      assert.has_error(function() jwt.keyset({}) end)
      assert.matches("^lodestone%.jwt%.keyset: 0x", tostring(ks))
      assert.is_false(getmetatable(ks))
      ks:close()
      ks:close() -- twice is fine
      local ok, err = pcall(ks.count, ks)
      assert.is_false(ok)
      assert.matches("keyset is closed", err)
      assert.has_error(function() jwt.verify(mint { exp = NOW + 60 }, ks, HS) end)
    end)
  end)

  describe("cache", function()
    it("answers a repeated token without verifying it again", function()
      local ks = secret_keyset()
      local cache = assert(jwt.cache(HS, { size = 4, ttl = 60 }))
      local tok = mint { sub = "c", exp = NOW + 60, roles = { "r" } }
      local first = cache:verify(tok, ks)
      local second = cache:verify(tok, ks)
      assert.same(first, second)
      assert.are_not.equal(first, second) -- each call gets its own table
      assert.equal(json.array_mt, getmetatable(second.roles))
      local st = cache:stats()
      assert.equal(1, st.hits)
      assert.equal(1, st.misses)
      assert.equal(1, st.count)
      if math.type then -- Lua 5.4: counts are integers (1, not 1.0)
        for k, v in pairs(st) do assert.equal("integer", math.type(v), k) end
      end
      local claims, reason, msg = cache:verify(mint { exp = NOW - 1 }, ks)
      assert.is_nil(claims)
      assert.equal("expired", reason)
      assert.matches("^expired: ", msg)
      assert.equal(1, cache:stats().count) -- failures are not cached
      cache:clear()
      assert.equal(0, cache:stats().count)
    end)

    it("drops an entry when its key leaves the keyset", function()
      local cache = assert(jwt.cache({ algorithms = { "RS256" }, now = 1300819370 }))
      local tok = read(VECTORS .. "rfc7515-a2.jws")
      assert.equal("joe", cache:verify(tok, assert(jwt.keyset(jwks_of("rfc7515-a2-key.json")))).iss)
      local claims, reason = cache:verify(tok, secret_keyset())
      assert.is_nil(claims)
      assert.equal("no_key", reason)
    end)

    it("raises on bad options and after close", function()
      assert.has_error(function() jwt.cache({ algorithms = { "HS256" } }, { size = 0 }) end)
      assert.has_error(function() jwt.cache({ algorithms = { "HS256" } }, { ttl = "1m" }) end)
      assert.has_error(function() jwt.cache({}) end)
      local ok, err = pcall(jwt.cache, { algorithms = { "HS256" } }, { size = 5, tll = 60 })
      assert.is_false(ok)
      assert.matches("unknown option 'tll'", err) -- (the function's name differs by runtime)
      local cache = assert(jwt.cache(HS))
      cache:close()
      local ok, err = pcall(cache.verify, cache, mint { exp = NOW + 60 }, secret_keyset())
      assert.is_false(ok)
      assert.matches("cache is closed", err)
    end)
  end)
end)

describe("objects of the primitives", function()
  it("keep working when lodestone.core is loaded again in the same state", function()
    local core1 = require("lodestone.core")
    local ks = assert(core1.jwt_keyset()):add_secret(SECRET)
    local cache = assert(core1.jwt_cache(HS))
    local set = assert(core1.cidr_new { "10.0.0.0/8" })
    package.loaded["lodestone.core"] = nil
    local core2 = require("lodestone.core")
    assert.are_not.equal(core1, core2)
    local tok = mint { sub = "r", exp = NOW + 60 }
    assert.equal("r", core2.jwt_verify(tok, ks, HS).sub)
    assert.equal("r", cache:verify(tok, ks).sub)
    assert.is_true(set:contains("10.0.0.1"))
    assert.is_true(core2.cidr_new { "::1" }:contains("::1"))
  end)

  -- Called through pcall (or from C), Lua knows no name for a function and
  -- said '?': the errors name the public function instead.
  it("name the public function in argument errors, also through pcall", function()
    local ks = jwt.keyset()
    local function err(f, ...) return select(2, pcall(f, ...)) end
    -- a method counts its arguments after self, however it is called
    assert.equal([[bad argument #3 to 'ks:add_secret' (unknown algorithm "HS999")]],
      err(ks.add_secret, ks, SECRET, "k", "HS999"))
    assert.equal("bad argument #3 to 'jwt.verify' (unknown option 'bogus')",
      err(jwt.verify, "x", ks, { algorithms = "HS256", bogus = 1 }))
    local dir = tmpdir()
    local tbl = assert(ratelimit.open(dir .. "/names.rl"))
    assert.equal("bad argument #5 to 'tbl:take' (cost must be a whole number >= 0)",
      err(tbl.take, tbl, "k", 5, "1s", 2, -1))
    -- a tail call (LuaJIT loses the frame's "method" name there) and obj.m(obj)
    assert.matches("bad argument #5 to 'tbl:take' %(cost must be a whole number >= 0%)$",
      err(function() return tbl:take("k", 5, "1s", 2, -1) end))
    assert.matches("bad argument #5 to 'tbl:take' %(cost must be a whole number >= 0%)$",
      err(function() local r = tbl.take(tbl, "k", 5, "1s", 2, -1) return r end))
    tbl:close()
    local cache = assert(jwt.cache(HS))
    cache:close()
    assert.equal("calling 'cache:stats' on bad self (cache is closed)", err(cache.stats, cache))
    assert.equal("bad argument #1 to 'hmac.verify' (the key is empty)", err(lodestone.hmac.verify, "", "m", "00"))
    assert.equal("bad argument #1 to 'cidr.new' (entry 1: string expected, got number)", err(cidr.new, { 5 }))
    -- and a method call ((...) is no tail call)
    local ok, msg = pcall(function() return (ks:add_secret(SECRET, "k", "HS999")) end)
    assert.is_false(ok)
    assert.matches("bad argument #3 to 'ks:add_secret' %(unknown algorithm", msg)
    ok, msg = pcall(function() return (cache:stats()) end)
    assert.matches("calling 'cache:stats' on bad self %(cache is closed%)", msg)
  end)

  it("close with <close> on Lua 5.4", function()
    if is_jit then return end
    local chunk = assert(load([[
      local cidr = ...
      local set
      do
        local s <close> = assert(cidr.new { "::1" })
        set = s
      end
      return pcall(set.contains, set, "::1")
    ]]))
    local ok, err = chunk(cidr)
    assert.is_false(ok)
    assert.matches("cidr set is closed", err)
  end)
end)

describe("lodestone.ratelimit", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("allows the burst, then denies with retry_after", function()
    local rl = assert(ratelimit.open(dir .. "/t.rl", { capacity = 64 }))
    for i = 1, 3 do
      local ok, info = rl:take("k", 1, "1h", 3)
      assert.is_true(ok)
      assert.same({ limit = 3, remaining = 3 - i, retry_after = 0, reset = 3600 * i }, info)
    end
    local ok, info = rl:take("k", 1, "1h", 3)
    assert.is_false(ok)
    assert.equal(3, info.limit)
    assert.equal(0, info.remaining)
    assert.is_true(info.retry_after > 3590 and info.retry_after <= 3600, tostring(info.retry_after))
    assert.equal(10800, info.reset)
    rl:close()
  end)

  it("keeps keys independent and burst defaulting to rate", function()
    local rl = assert(ratelimit.open(dir .. "/t.rl", { capacity = 64 }))
    assert.is_true((rl:take("a", 2, 60)))
    assert.is_true((rl:take("a", 2, 60)))
    assert.is_false((rl:take("a", 2, 60)))
    assert.is_true((rl:take("b", 2, 60)))
    local ok, info = rl:take("a", 2, 60, nil, 0) -- cost 0 only reads
    assert.is_true(ok)
    assert.equal(0, info.remaining)
  end)

  it("shares state between handles on the same file, created 0600", function()
    local path = dir .. "/shared.rl"
    local one = assert(ratelimit.open(path, { capacity = 64 }))
    local two = assert(ratelimit.open(path, { capacity = 64 }))
    assert.is_true((one:take("k", 1, "1m", 1)))
    assert.is_false((two:take("k", 1, "1m", 1)))
    local p = io.popen("stat -c %a '" .. path .. "'")
    assert.equal("600", p:read("*l"))
    p:close()
    assert.same({ capacity = 64, used = 1, evictions = 0, recovered = 0 }, two:stats())
    one:close()
    two:close()
  end)

  it("reports files it cannot use as nil, msg, code", function()
    local rl, msg, code = ratelimit.open(dir .. "/missing/t.rl")
    assert.is_nil(rl)
    assert.matches("^ratelimit%.open: rate limit table .*/missing/t%.rl", msg)
    assert.equal("EIO", code)
    write(dir .. "/junk.rl", "not a table")
    rl, msg, code = ratelimit.open(dir .. "/junk.rl")
    assert.is_nil(rl)
    assert.matches("^ratelimit%.open: ", msg)
    assert.equal("EFORMAT", code)
    assert(ratelimit.open(dir .. "/small.rl", { capacity = 64 })):close()
    rl, msg, code = ratelimit.open(dir .. "/small.rl", { capacity = 128 })
    assert.is_nil(rl)
    assert.equal("EFORMAT", code)
  end)

  it("raises on bad figures and arguments", function()
    local rl = assert(ratelimit.open(dir .. "/t.rl", { capacity = 64 }))
    local function message(...)
      local ok, err = pcall(rl.take, rl, ...)
      assert.is_false(ok)
      return err
    end
    assert.matches("rate must be a whole number >= 1", message("k", 0, "1s"))
    assert.matches("rate must be a whole number >= 1", message("k", 1.5, "1s"))
    assert.matches("burst must be a whole number >= 1", message("k", 1, "1s", 0))
    assert.matches('duration expected %("1s", "250ms" or seconds%), got table', message("k", 1, {}))
    assert.matches("^ratelimit%.take: ", message("k", 1, "soon"))
    assert.matches("^ratelimit%.take: ", message("k", 1, "1s", 2, 3)) -- cost above burst
    assert.has_error(function() rl:take(nil, 1, "1s") end)
    assert.matches("number expected, got nil", message("k", nil, "1s"))
    assert.has_error(function() ratelimit.open(dir .. "/x.rl", { capacity = -1 }) end)
    assert.has_error(function() ratelimit.open(dir .. "/x.rl", { mode = 4096 }) end)
    local ok0, err0 = pcall(ratelimit.open, dir .. "/x.rl", { capcity = 10 })
    assert.is_false(ok0)
    assert.matches("unknown option 'capcity'", err0)
    assert.has_error(function() ratelimit.open(nil) end)
    rl:close()
    local ok, err = pcall(rl.take, rl, "k", 1, "1s")
    assert.is_false(ok)
    assert.matches("rate%-limit table is closed", err)
  end)

  describe("take (one shared table per state)", function()
    local saved
    before_each(function()
      saved = ratelimit.path
      ratelimit.path = dir .. "/lodestone_lua.rl"
    end)
    after_each(function() ratelimit.path = saved end)

    it("defaults to $LODESTONE_RL_DIR or /dev/shm", function()
      assert.equal((os.getenv("LODESTONE_RL_DIR") or "/dev/shm") .. "/lodestone_lua.rl", saved)
    end)

    it("limits per name and key, over a table other workers can open", function()
      assert.is_true((ratelimit.take("login", "1.2.3.4", 1, 2, "1m")))
      local ok, info = ratelimit.take("login", "1.2.3.4", 1, 2, "1m")
      assert.is_true(ok)
      assert.equal(0, info.remaining)
      ok, info = ratelimit.take("login", "1.2.3.4", 1, 2, "1m")
      assert.is_false(ok)
      assert.is_true(info.retry_after > 0)
      assert.is_true((ratelimit.take("login", "5.6.7.8", 1, 2, "1m")))
      assert.is_true((ratelimit.take("search", "1.2.3.4", 1, 2, "1m")))
      -- another process opening the same file sees the same budget
      local other = assert(ratelimit.open(ratelimit.path))
      assert.is_false((other:take("login:1.2.3.4", 1, "1m", 2)))
      other:close()
    end)

    it("per defaults to one second", function()
      local _, info = ratelimit.take("p", "k", 5, 5)
      assert.equal(5, info.limit)
      assert.equal(4, info.remaining)
      assert.equal(1, info.reset)
    end)

    it("returns nil, msg, code when the table cannot be opened, then recovers", function()
      ratelimit.path = dir .. "/missing/lodestone_lua.rl"
      local ok, msg, code = ratelimit.take("n", "k", 1, 1)
      assert.is_nil(ok)
      assert.matches("^ratelimit%.open: ", msg)
      assert.equal("EIO", code)
      ratelimit.path = dir .. "/lodestone_lua.rl"
      assert.is_true((ratelimit.take("n", "k", 1, 1)))
    end)

    it("raises on bad names and keys", function()
      assert.has_error(function() ratelimit.take(nil, "k", 1, 1) end,
        "bad argument #1 to 'ratelimit.take' (string expected, got nil)")
      assert.has_error(function() ratelimit.take("a:b", "k", 1, 1) end,
        "bad argument #1 to 'ratelimit.take' (a name must not contain ':')")
      assert.has_error(function() ratelimit.take("a", {}, 1, 1) end,
        "bad argument #2 to 'ratelimit.take' (string expected, got table)")
      assert.has_error(function() ratelimit.take("a", "k", 0, 1) end,
        "bad argument #3 to 'ratelimit.take' (rate must be a whole number >= 1, got 0)")
      assert.has_error(function() ratelimit.take("a", "k", 5, 1.5) end,
        "bad argument #4 to 'ratelimit.take' (burst must be a whole number >= 1, got 1.5)")
      assert.has_error(function() ratelimit.take("a", "k", 5, nil, {}) end,
        "bad argument #5 to 'ratelimit.take' (a duration such as \"1s\" or seconds expected, got table)")
    end)

    -- (has_error strips a "file:line: " prefix: these look at the text.)
    it("raises a bad duration as \"ratelimit.take: ...\", at its caller's line, never its own", function()
      local ok, err = pcall(ratelimit.take, "a", "k", 5, 10, "bogus")
      assert.is_false(ok)
      assert.equal('ratelimit.take: rate limit: per: duration "bogus": expected a number', err)
      ok, err = pcall(function() return (ratelimit.take("a", "k", 5, 10, "bogus")) end)
      assert.is_false(ok)
      assert.matches("^[^:]*04%-primitives_spec%.lua:%d+: ratelimit%.take: rate limit: per: ", err)
      ok, err = pcall(function() return (ratelimit.take("a", "k", 0, 10)) end)
      assert.matches("^[^:]*04%-primitives_spec%.lua:%d+: bad argument #3 to 'ratelimit%.take'", err)
    end)
  end)
end)

describe("lodestone.cidr", function()
  it("matches IPv4, IPv6 and IPv4-mapped addresses", function()
    local set = assert(cidr.new { "10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1" })
    assert.is_true(set:contains("10.200.3.4"))
    assert.is_true(set:contains("192.168.1.7"))
    assert.is_false(set:contains("192.168.1.8"))
    assert.is_false(set:contains("11.0.0.1"))
    assert.is_true(set:contains("2001:db8:ffff::1"))
    assert.is_true(set:contains("::1"))
    assert.is_false(set:contains("::2"))
    assert.is_true(set:contains("::ffff:10.1.2.3"))
    local mapped = assert(cidr.new { "::ffff:172.16.0.0/108" })
    assert.is_true(mapped:contains("172.16.5.5"))
    assert.same(pack(false), pack(mapped:contains("172.32.0.1")))
  end)

  it("merges ranges and allows an empty set", function()
    assert.equal(1, assert(cidr.new { "10.0.0.0/9", "10.128.0.0/9", "10.1.0.0/16" }):ranges())
    local empty = assert(cidr.new {})
    assert.equal(0, empty:ranges())
    assert.is_false(empty:contains("127.0.0.1"))
  end)

  it("says a malformed address is in no set: false, msg, EINVAL", function()
    local set = assert(cidr.new { "0.0.0.0/0", "::/0" })
    assert.same(pack(false, 'cidr.contains: address "10.0.0.1/8": not an IP address', "EINVAL"),
      pack(set:contains("10.0.0.1/8")))
    local r = pack(set:contains("010.0.0.1"))
    assert.equal(3, r.n)
    assert.is_false(r[1])
    assert.matches("^cidr%.contains: ", r[2])
    assert.equal("EINVAL", r[3])
    assert.has_error(function() set:contains(nil) end)
  end)

  it("rejects bad entries with a message naming them", function()
    assert.same(pack(nil, "cidr.new: entry 2: ip entry \"10.0.0.1/8\": host bits set, did you mean 10.0.0.0/8?", "EINVAL"),
      pack(cidr.new { "::1", "10.0.0.1/8" }))
    local set, msg, code = cidr.new { "10.0.0.0/33" }
    assert.is_nil(set)
    assert.matches("^cidr%.new: entry 1: .*10%.0%.0%.0/33", msg)
    assert.equal("EINVAL", code)
    set, msg, code = cidr.new { "localhost" }
    assert.is_nil(set)
    assert.matches("localhost", msg)
    assert.equal("EINVAL", code)
    assert.same(pack(nil, "cidr.new: entry 1 contains a NUL byte", "EINVAL"), pack(cidr.new { "10.0.0.0/8\0junk" }))
    local ok, err = pcall(cidr.new, { "10.0.0.0/8", 7 })
    assert.is_false(ok)
    assert.matches("entry 2: string expected, got number", err)
    assert.has_error(function() cidr.new("10.0.0.0/8") end)
  end)

  it("finds the client behind trusted proxies", function()
    local proxies = assert(cidr.new { "127.0.0.1", "10.0.0.0/8" })
    -- an untrusted peer: X-Forwarded-For is ignored
    assert.equal("203.0.113.9", cidr.client_addr("203.0.113.9", "1.1.1.1", proxies))
    -- a trusted peer: walk from the right past trusted proxies
    assert.equal("198.51.100.4", cidr.client_addr("127.0.0.1", "6.6.6.6, 198.51.100.4, 10.1.1.1", proxies))
    -- every entry trusted: the leftmost
    assert.equal("10.9.9.9", cidr.client_addr("127.0.0.1", "10.9.9.9, 10.1.1.1", proxies))
    -- garbage ends the walk at the last trusted hop
    assert.equal("10.1.1.1", cidr.client_addr("127.0.0.1", "6.6.6.6, unknown, 10.1.1.1", proxies))
    -- no header, or no trusted set
    assert.equal("127.0.0.1", cidr.client_addr("127.0.0.1", nil, proxies))
    assert.equal("127.0.0.1", cidr.client_addr("127.0.0.1", "6.6.6.6"))
    -- canonical text
    assert.equal("10.0.0.1", cidr.client_addr("::FFFF:10.0.0.1"))
    assert.equal("2001:db8::1", cidr.client_addr("2001:DB8:0::1"))
  end)

  it("reports a bad peer as nil, msg, code and raises on wrong types", function()
    local addr, msg, code = cidr.client_addr("nope", nil, nil)
    assert.is_nil(addr)
    assert.matches("^cidr%.client_addr: .*nope", msg)
    assert.equal("EINVAL", code)
    assert.has_error(function() cidr.client_addr(nil) end)
    assert.has_error(function() cidr.client_addr("127.0.0.1", nil, { "127.0.0.1" }) end)
  end)

  it("is a closable userdata", function()
    local set = assert(cidr.new { "::1" })
    assert.matches("^lodestone%.cidr: 0x", tostring(set))
    assert.is_false(getmetatable(set))
    set:close()
    set:close()
    local ok, err = pcall(set.contains, set, "::1")
    assert.is_false(ok)
    assert.matches("cidr set is closed", err)
  end)
end)
