-- SPDX-License-Identifier: MIT
-- `lodestone dev token`: the tokens it prints verify against the demo JWKS
-- (lodestone.jwt, the engine lighttpd uses) and carry the claims asked
-- for; the example API policy admits them as the demo promises; bad flags
-- are refused with a message naming the flag and nothing on stdout.
local lodestone = require "lodestone"
local json, b64 = lodestone.json, lodestone.base64url

local CLI = os.getenv("LS_BUILD_DIR") .. "/bin/lodestone"
local JWKS = "policies/demo-keys/jwks.json"

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- run{args...} -> stdout, stderr, exit status
local function run(args)
  local parts = { CLI }
  for _, a in ipairs(args) do parts[#parts + 1] = shell_quote(a) end
  local errfile = os.tmpname()
  local p = io.popen(table.concat(parts, " ") .. " 2>" .. errfile .. "; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  local f = io.open(errfile)
  local err = f:read("*a")
  f:close()
  os.remove(errfile)
  local rc = tonumber(out:match("rc=(%d+)\n$"))
  return out:gsub("rc=%d+\n$", ""), err, rc
end

local function mint(args)
  local out, err, rc = run(args)
  assert(rc == 0, "dev token failed: " .. err)
  assert(err == "", "unexpected stderr: " .. err)
  return (out:gsub("\n$", ""))
end

local function part(token, i)
  local pieces = {}
  for p in token:gmatch("[^.]+") do pieces[#pieces + 1] = p end
  return assert(json.decode(assert(b64.decode(pieces[i]))))
end

local keys = assert(lodestone.jwt.keyset_file(JWKS))
local function verify(token, opts)
  opts = opts or {}
  opts.algorithms = { "RS256" }
  return lodestone.jwt.verify(token, keys, opts)
end

describe("lodestone dev token", function()
  it("signs RS256 with the demo key's kid, and verifies against the demo JWKS", function()
    local token = mint { "dev", "token", "--sub", "alice", "--roles", "admin" }
    local header = part(token, 1)
    assert.same({ alg = "RS256", typ = "JWT", kid = "demo-2026" }, header)
    local claims, reason = verify(token, { issuer = "https://id.example.com/", audience = "lodestone" })
    assert.is_nil(reason)
    assert.equal("alice", claims.sub)
    assert.same({ "admin" }, { claims.roles[1], claims.roles[2] })
    assert.equal(3600, claims.exp - claims.iat)
    assert.is_true(math.abs(claims.iat - os.time()) < 600)
  end)

  it("sets audience, issuer, lifetime, scopes and list roles as asked", function()
    local token = mint { "dev", "token", "--sub", "svc", "--aud", "orders", "--iss", "https://x.test/",
      "--ttl", "30m", "--scopes", "orders:read,orders:write", "--roles", "a,b" }
    local claims, reason = verify(token, { issuer = "https://x.test/", audience = "orders" })
    assert.is_nil(reason)
    assert.equal(1800, claims.exp - claims.iat)
    assert.equal("orders:read orders:write", claims.scope)
    assert.same({ "a", "b" }, { claims.roles[1], claims.roles[2] })
    local _, why = verify(token, { audience = "lodestone" })
    assert.equal("bad_audience", why)
    local spaced = part(mint { "dev", "token", "--sub", "s", "--scopes", "x y" }, 2)
    assert.equal("x y", spaced.scope)
  end)

  it("adds --claim values as JSON when they parse, else as strings; they override", function()
    local token = mint { "dev", "token", "--sub", "carol", "--claim", "tenant=acme", "--claim", "n=42",
      "--claim", "flag=true", "--claim", 'realm_access={"roles":["admin"]}', "--claim", "iss=https://y.test/" }
    local claims = part(token, 2)
    assert.equal("acme", claims.tenant)
    assert.equal(42, claims.n)
    assert.equal(true, claims.flag)
    assert.equal("admin", claims.realm_access.roles[1])
    assert.equal("https://y.test/", claims.iss)
    local expired = mint { "dev", "token", "--sub", "x", "--claim", "exp=1" }
    local c, why = verify(expired)
    assert.is_nil(c)
    assert.equal("expired", why)
  end)

  it("takes --name=VALUE, and a --scopes list of any length whole", function()
    local many = {}
    for i = 1, 400 do many[i] = "scope:" .. i end
    local claims = part(mint { "dev", "token", "--sub=dana", "--aud=orders", "--scopes", table.concat(many, " ") }, 2)
    assert.same({ "dana", "orders" }, { claims.sub, claims.aud })
    assert.equal(table.concat(many, " "), claims.scope)
  end)

  it("signs the claims: a changed payload no longer verifies", function()
    local token = mint { "dev", "token", "--sub", "alice", "--roles", "viewer" }
    local h, _, s = token:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    local forged = h .. "." .. b64.encode('{"aud":"lodestone","exp":9999999999,"roles":["admin"],"sub":"alice"}') .. "." .. s
    local c, why = verify(forged)
    assert.is_nil(c)
    assert.equal("bad_signature", why)
  end)

  it("gives tokens the example API policy admits (admin) and refuses (viewer)", function()
    local function decide(tok)
      local req = json.encode { path = "/v1/workflows", headers = { Authorization = "Bearer " .. tok } }
      local out, err, rc = run { "policy", "check", "policies/lodestone-api.lua", "--request", req }
      assert(rc == 0 or rc == 1, err)
      return assert(json.decode(out))
    end
    local d = decide(mint { "dev", "token", "--sub", "alice", "--roles", "admin" })
    assert.same({ true, "alice" }, { d.allow, d.subject })
    d = decide(mint { "dev", "token", "--sub", "bob", "--roles", "viewer" })
    assert.same({ false, 403, "missing_role" }, { d.allow, d.status, d.reason })
  end)

  local bad = {
    { {}, "--sub is required" },
    { { "--sub", "" }, "--sub is required" },
    { { "--sub" }, "--sub needs a value" },
    { { "--sub", "--roles", "admin" },
      "--sub needs a value, got the option --roles (write --sub=--roles if that is the value)" },
    { { "--sub", "a", "--ttl", "--aud=x" }, "--ttl needs a value, got the option --aud=x" },
    { { "--sub", "a", "--ttl", "5y" }, '--ttl: duration "5y": unknown unit' },
    { { "--sub", "a", "--ttl", "500ms" }, '--ttl: must be at least 1s, got "500ms"' },
    { { "--sub", "a", "--roles", "a,,b" }, '--roles: empty item in "a,,b"' },
    { { "--sub", "a", "--scopes", "" }, '--scopes: empty item in ""' },
    { { "--sub", "a", "--claim", "tenant" }, '--claim: expected KEY=VALUE, got "tenant"' },
    { { "--sub", "a", "--claim", "=x" }, '--claim: expected KEY=VALUE, got "=x"' },
    { { "--sub", "a", "--claim", "sub=7" }, "--claim sub: the subject must be a string" },
    { { "--sub", "a", "--aud", "" }, "--aud: must not be empty" },
    { { "--sub", "a", "--key", "k.pem" }, "unknown option --key" },
    { { "--sub", "a", "extra" }, 'unexpected argument "extra"' },
    { { "--sub", "a", "--bogus" }, "unknown option --bogus" },
    { { "--sub", "\255" }, "--sub: not valid UTF-8" },
    { { "--sub", "a", "--roles", "x,\255" }, "--roles: not valid UTF-8" },
    { { "--sub", "a", "--claim", "k\255=1" }, '--claim: the key in "k\255=1" is not valid UTF-8' },
  }
  for _, case in ipairs(bad) do
    local args, msg = case[1], case[2]
    it("refuses " .. (#args > 0 and table.concat(args, " ") or "no options") .. " (exit 2)", function()
      local full = { "dev", "token" }
      for _, a in ipairs(args) do full[#full + 1] = a end
      local out, err, rc = run(full)
      assert.equal(2, rc)
      assert.equal("", out)
      assert.truthy(err:find("lodestone dev token: " .. msg, 1, true), err)
    end)
  end

  it("says in --help that it is for the demo key only", function()
    local out, _, rc = run { "dev", "token", "--help" }
    assert.equal(0, rc)
    assert.truthy(out:find("DEMO key", 1, true))
    assert.truthy(out:find("never let a real policy trust", 1, true))
  end)

  it("knows no other dev command", function()
    local out, err, rc = run { "dev", "nope" }
    assert.equal(2, rc)
    assert.equal("", out)
    assert.truthy(err:find("lodestone dev: unknown command 'nope'", 1, true), err)
  end)
end)
