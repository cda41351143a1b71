-- SPDX-License-Identifier: MIT
-- lodestone.policy: declarations, compilation, and enforce() driven with a
-- fake mod_magnet `lighty` table, as lighttpd would call it.
local lodestone = require("lodestone")
local policy = require("lodestone.policy")
local json = lodestone.json
local unpack = table.unpack or unpack -- luacheck: ignore

local SECRET = "0123456789abcdef0123456789abcdef"

local files = require("files")
local tmpdir = files.tmpdir
local write = files.write

local function mint(claims, key)
  local b64 = lodestone.base64url.encode
  local input = b64('{"alg":"HS256","typ":"JWT"}') .. "." .. b64(json.encode(claims))
  return input .. "." .. b64(lodestone.hmac.sha256(key or SECRET, input))
end

-- A fake of what mod_magnet gives a script for one request.
local function request(spec)
  local r = {
    req_header = {},
    resp_header = {},
    req_attr = {
      ["request.method"] = spec.method or "GET",
      ["uri.path"] = spec.path,
      ["uri.path-raw"] = spec.path,
      ["uri.query"] = spec.query,
      ["uri.authority"] = "api.example.com",
      ["request.remote-addr"] = spec.addr or "127.0.0.1",
    },
    resp_body = { set = function(self, parts) self.text = table.concat(parts) end },
  }
  for k, v in pairs(spec.headers or {}) do r.req_header[k] = v end
  _G.lighty = { r = r }
  return r
end

describe("lodestone.policy", function()
  local dir, file

  before_each(function()
    dir = tmpdir()
    file = dir .. "/api.lua"
    write(dir .. "/hs.key", SECRET)
    policy.reset()
    policy.reload_interval_ms = 0
  end)

  after_each(function()
    os.execute("rm -rf '" .. dir .. "'")
    _G.lighty = nil
  end)

  local function write_policy(extra)
    write(file, [[
      local policy = require "lodestone.policy"
      return policy.define {
        name = "lua-spec",
        authenticate = { policy.jwt { secret_file = "hs.key", algorithms = { "HS256" } } },
        rules = {
          { path = "/healthz", allow = "anyone" },
          { path = "/me" },
          { path = "/admin/**", roles = { "admin" } },
        },
        identity_headers = { ["X-User"] = "sub", ["X-Roles"] = "roles" },
        ]] .. (extra or "") .. [[
      }
    ]])
  end

  describe("define", function()
    it("needs a table with a name", function()
      assert.has_error(function() policy.define("x") end, "policy.define: expected a table")
      assert.has_error(function() policy.define({}) end,
        'policy.define: name is required (a string such as "orders-api")')
    end)

    it("encodes empty lists as JSON arrays", function()
      local text = assert(policy.to_json(policy.define { name = "n", rules = { { path = "/", roles = {} } } }))
      assert.truthy(text:find('"roles":[]', 1, true))
    end)

    it("refuses what is not a declaration", function()
      local text, msg, code = policy.to_json({ name = "n" })
      assert.is_nil(text)
      assert.equal("not a policy: the file must return policy.define{...}", msg)
      assert.equal("EINVAL", code)
    end)

    it("loads only regular files of Lua source", function()
      -- a device or a FIFO in the file's place is refused, never read (a
      -- FIFO would block the lighttpd worker until someone wrote to it)
      local pol, msg, code = policy.load("/dev/null")
      assert.is_nil(pol)
      assert.equal("/dev/null: not a regular file", msg)
      assert.equal("EPERM", code)
      pol, msg, code = policy.load(dir .. "/missing.lua")
      assert.is_nil(pol)
      assert.equal(dir .. "/missing.lua: cannot open: No such file or directory", msg)
      assert.equal("ENOTFOUND", code)
      write(file, "return policy.define {")
      pol, msg, code = policy.load(file)
      assert.is_nil(pol)
      assert.matches("^" .. file:gsub("%p", "%%%0") .. ":1: ", msg)
      assert.equal("EINVAL", code)
      -- as loadfile: a first line starting with '#' and a byte order mark
      -- are skipped, and line numbers stay those of the file
      write(file, "#!/usr/bin/env lua\nreturn require('lodestone.policy').define { name = 'x' }\n")
      assert.is_truthy(policy.load(file))
      write(file, "\239\187\191return require('lodestone.policy').define { name = 'x' }\n")
      assert.is_truthy(policy.load(file))
      write(file, "\239\187\191# a comment line\n\nreturn policy.define {")
      pol, msg = policy.load(file)
      assert.is_nil(pol)
      assert.matches("^" .. file:gsub("%p", "%%%0") .. ":3: ", msg)
      write(file, string.dump(function() return 1 end))
      pol, msg = policy.load(file)
      assert.is_nil(pol)
      assert.equal(file .. ": compiled Lua: policy and route files are Lua source", msg)
    end)

    it("sends an empty paths as a list, to be refused as one", function()
      local pol, msg = policy.compile(policy.define { name = "n", authenticate = {
        policy.jwt { secret_file = dir .. "/hs.key", algorithms = { "HS256" }, paths = {} } } })
      assert.is_nil(pol)
      assert.equal("policy: authenticate[1].paths: empty list (leave it out to mean every path)", msg)
    end)

    it("refuses an empty audience or required_claims, which would check nothing", function()
      for _, field in ipairs { "audience", "required_claims" } do
        local a = { secret_file = dir .. "/hs.key", algorithms = { "HS256" } }
        a[field] = {}
        local pol, msg = policy.compile(policy.define { name = "n", authenticate = { policy.jwt(a) } })
        assert.is_nil(pol)
        assert.matches("^policy: authenticate%[1%]%." .. field .. ": the list is empty %(leave it out", msg)
      end
    end)

    it("reports compile errors naming the field", function()
      local pol, msg, code = policy.compile(policy.define { name = "n", rules = { { path = "/", role = { "x" } } } })
      assert.is_nil(pol)
      assert.matches("rules%[1%]: unknown field 'role'", msg)
      assert.equal("EINVAL", code)
    end)
  end)

  describe("enforce", function()
    it("lets public routes through and strips forged identity headers", function()
      write_policy()
      local r = request { path = "/healthz", headers = { ["X-User"] = "root" } }
      assert.equal(0, policy.enforce(file))
      assert.is_nil(r.req_header["X-User"])
    end)

    it("sets identity headers for a valid token", function()
      write_policy()
      local tok = mint { sub = "alice", exp = os.time() + 60, roles = { "admin", "ops" } }
      local r = request { path = "/admin/x", headers = { Authorization = "Bearer " .. tok, ["X-Roles"] = "forged" } }
      assert.equal(0, policy.enforce(file))
      assert.equal("alice", r.req_header["X-User"])
      assert.equal("admin,ops", r.req_header["X-Roles"])
    end)

    it("removes lookalikes of the identity headers on its general path too", function()
      -- The metrics path, from an address that may not read the metrics,
      -- is decided by the policy on the path that also serves bodies.
      write_policy()
      local tok = mint { sub = "alice", exp = os.time() + 60 }
      local r = request { path = "/me", addr = "10.0.0.1",
        headers = { Authorization = "Bearer " .. tok, X_User = "root", ["X.Roles"] = "admin" } }
      local opts = { metrics = { path = "/me", file = dir .. "/m.metrics" } }
      assert.equal(0, policy.enforce(lighty, file, opts))
      assert.equal("alice", r.req_header["X-User"])
      assert.is_nil(r.req_header.X_User)
      assert.is_nil(r.req_header["X.Roles"])
    end)

    it("answers 401 with a challenge and a body naming no internals", function()
      write_policy()
      local r = request { path = "/me", headers = { Authorization = "Bearer " .. mint({ sub = "a", exp = os.time() + 60 }, "wrong-key-wrong-key-wrong-key-00") } }
      assert.equal(401, policy.enforce(file))
      assert.equal('Bearer realm="lua-spec", error="invalid_token"', r.resp_header["WWW-Authenticate"])
      assert.equal('{"error":"unauthorized"}', r.resp_body.text)
      assert.equal("application/json", r.resp_header["Content-Type"])
    end)

    it("answers 403 for a missing role", function()
      write_policy()
      local tok = mint { sub = "bob", exp = os.time() + 60, roles = { "user" } }
      local r = request { path = "/admin/x", headers = { Authorization = "Bearer " .. tok } }
      assert.equal(403, policy.enforce(file))
      assert.equal('{"error":"forbidden"}', r.resp_body.text)
    end)

    it("reloads a changed file and keeps the last good version when it breaks", function()
      write_policy()
      request { path = "/healthz" }
      assert.equal(0, policy.enforce(file))
      -- now /healthz needs a token
      write(file, [[return require("lodestone.policy").define { name = "lua-spec", rules = { { path = "/healthz" } } }]])
      request { path = "/healthz" }
      assert.equal(401, policy.enforce(file))
      -- a syntax error: the previous version keeps serving
      write(file, "return policy.define {")
      local printed = {}
      local old_print = _G.print
      _G.print = function(s) printed[#printed + 1] = s end
      request { path = "/healthz" }
      local status = policy.enforce(file)
      _G.print = old_print
      assert.equal(401, status)
      assert.matches("keeping the last good version", printed[1])
    end)

    -- As mod_magnet calls it: the same lighty (and lighty.r) on every
    -- request, the request's contents changing underneath.
    it("decides later requests to the same lighty, looking at the file again after the interval", function()
      policy.reload_interval_ms = 60000
      write_policy()
      local lt = { r = request { path = "/healthz", headers = { ["X-User"] = "root" } } }
      local r = lt.r
      assert.equal(0, policy.enforce(lt, file))
      assert.is_nil(r.req_header["X-User"])
      local st = policy._state(file)
      assert.is_true(st.next_check > require("lodestone.core").monotonic_ms())

      -- allowed, with the identity headers written over forged copies
      local tok = mint { sub = "alice", exp = os.time() + 60, roles = { "admin" } }
      r.req_attr["uri.path-raw"] = "/admin/x"
      r.req_header = { Authorization = "Bearer " .. tok, ["X-User"] = "root", ["X-Roles"] = "forged" }
      assert.equal(0, policy.enforce(lt, file))
      assert.equal("alice", r.req_header["X-User"])
      assert.equal("admin", r.req_header["X-Roles"])

      -- denied, with its answer
      r.req_header = { Authorization = "Bearer " .. mint { sub = "bob", exp = os.time() + 60 } }
      assert.equal(403, policy.enforce(lt, file))
      assert.equal('{"error":"forbidden"}', r.resp_body.text)

      -- a changed file waits for the interval, then is seen
      write(file, [[return require("lodestone.policy").define { name = "lua-spec", rules = { { path = "/healthz" } } }]])
      r.req_attr["uri.path-raw"] = "/healthz"
      r.req_header = {}
      assert.equal(0, policy.enforce(lt, file))
      st.next_check = 0
      assert.equal(401, policy.enforce(lt, file))
    end)

    it("reads the body only on the paths of the authenticators that need it", function()
      write(dir .. "/gh.secret", "It's a Secret to Everybody")
      write(file, [[
        local policy = require "lodestone.policy"
        return policy.define {
          name = "lua-spec",
          authenticate = {
            policy.webhook { provider = "github", secret_file = "gh.secret", roles = { "hook" },
                             paths = { "/hooks/**" } },
            policy.jwt { secret_file = "hs.key", algorithms = { "HS256" } },
          },
          rules = { { path = "/hooks/github", methods = { "POST" }, roles = { "hook" } }, { path = "/me" } },
          identity_headers = { ["X-User"] = "sub" },
        }
      ]])
      local body = "Hello, World!"
      local sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
      local read -- what of r.req_body the gate looked at
      local function with_body(r, complete)
        read = {}
        r.req_body = setmetatable({}, { __index = function(_, k)
          read[#read + 1] = k
          return ({ len = #body, collect = complete ~= false, get = body })[k]
        end })
        return r
      end
      local tok = mint { sub = "alice", exp = os.time() + 60 }
      local r = with_body(request { method = "POST", path = "/me",
        headers = { Authorization = "Bearer " .. tok, ["X-Hub-Signature-256"] = sig } })
      assert.equal(0, policy.enforce(file))
      assert.equal("alice", r.req_header["X-User"])
      assert.same({}, read)
      assert.is_function(policy._state(file).fast) -- such requests take the one-call gate

      -- the signed body is no credential off the hook's paths
      r = with_body(request { method = "POST", path = "/me", headers = { ["X-Hub-Signature-256"] = sig } })
      assert.equal(401, policy.enforce(file))
      assert.same({}, read)

      -- on the hook: while the body is on its way the request waits, its
      -- identity headers gone; once it is there, it is decided
      r = with_body(request { method = "POST", path = "/hooks/github",
        headers = { ["X-Hub-Signature-256"] = sig, ["X-User"] = "root" } }, false)
      assert.equal(0, policy.enforce(file))
      assert.is_nil(r.req_header["X-User"])
      assert.same({ "len", "collect" }, read)
      with_body(r)
      r.req_header["X-User"] = "root"
      assert.equal(0, policy.enforce(file))
      assert.equal("github", r.req_header["X-User"])
      assert.same({ "len", "collect", "get" }, read)

      -- a token on the hook, with no signature: the rule wants the hook's role
      r = with_body(request { method = "POST", path = "/hooks/github",
        headers = { Authorization = "Bearer " .. tok } })
      assert.equal(403, policy.enforce(file))

      -- the general path (here: the metrics path from a client that may
      -- not read the metrics) reads no body off the hook's paths either
      local opts = { metrics = { path = "/me", file = dir .. "/m.metrics" } }
      r = with_body(request { method = "POST", path = "/me", addr = "10.0.0.1",
        headers = { Authorization = "Bearer " .. tok } })
      assert.equal(0, policy.enforce(lighty, file, opts))
      assert.equal("alice", r.req_header["X-User"])
      assert.same({}, read)
    end)

    it("leaves a policy with a webhook on every path to the general path", function()
      write(dir .. "/gh.secret", "It's a Secret to Everybody")
      write(file, [[
        local policy = require "lodestone.policy"
        return policy.define {
          name = "lua-spec",
          authenticate = { policy.webhook { provider = "github", secret_file = "gh.secret" } },
          rules = { { path = "/hooks/github", methods = { "POST" } } },
        }
      ]])
      request { method = "POST", path = "/hooks/github" }
      assert.equal(401, policy.enforce(file))
      assert.is_nil(policy._state(file).fast)
      local pol = policy._state(file).pol
      assert.same({ true, true }, { pol:needs_body() })
      assert.is_true(pol:needs_body("/anything"))
      assert.is_false(pol:needs_body(nil))
    end)

    it("fails closed with 503 when no version ever loaded", function()
      write(file, "return 42")
      local old_print = _G.print
      _G.print = function() end
      local r = request { path = "/healthz" }
      local status = policy.enforce(file)
      _G.print = old_print
      assert.equal(503, status)
      assert.equal('{"error":"policy_unavailable"}', r.resp_body.text)
      -- as every denial: JSON, never cached
      assert.equal("application/json", r.resp_header["Content-Type"])
      assert.equal("no-store", r.resp_header["Cache-Control"])
    end)

    it("names its first argument when it is neither lighty nor a file name", function()
      local ok, err = pcall(policy.enforce, 42, file)
      assert.is_false(ok)
      assert.matches("policy.enforce: pass mod_magnet's lighty table first", err, 1, true)
    end)
  end)

  describe("decide", function()
    it("returns identity values aligned with strip(), and the response and reason of a denial", function()
      write_policy()
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local strip = pol:strip()
      assert.same({ "X-Roles", "X-User" }, (function() local t = { unpack(strip) }; table.sort(t); return t end)())
      local tok = mint { sub = "alice", exp = os.time() + 60, roles = { "admin" } }
      local auth = "Bearer " .. tok
      local status, vals, notice = pol:decide("GET", "/admin/x", nil, "h", "127.0.0.1", nil, auth)
      assert.equal(0, status)
      assert.is_nil(notice)
      for i, name in ipairs(strip) do
        assert.equal(name == "X-User" and "alice" or "admin", vals[i])
      end
      local reason, subject, rule = pol:explain()
      assert.equal("allowed", reason)
      assert.equal("alice", subject)
      assert.equal("rules[3]", rule)

      status, vals = pol:decide("GET", "/me", nil, "h", "127.0.0.1", nil, nil)
      assert.equal(401, status)
      for i = 1, #strip do assert.is_nil(vals[i]) end
      local hdrs, body = pol:response()
      assert.equal('{"error":"unauthorized"}', body)
      assert.equal('Bearer realm="lua-spec"', hdrs["WWW-Authenticate"])
      assert.equal("not_authenticated", (pol:explain()))
      pol:close()
      assert.has_error(function() pol:decide("GET", "/") end, "calling 'decide' on bad self (policy is closed)")
    end)
  end)

  describe("gate", function()
    -- mod_magnet's request objects answer reads, writes and walks through
    -- metamethods; a proxy of that kind records what the gate wrote.
    local function magnet_like(t, writes)
      return setmetatable({}, {
        __index = function(_, k) return t[k] end,
        __newindex = function(_, k, v) writes[#writes + 1] = k .. "=" .. tostring(v); t[k] = v end,
        __pairs = function() return next, t, nil end,
      })
    end

    local function gate_request(path, headers, attrs)
      local hdrs, writes = {}, {}
      for k, v in pairs(headers or {}) do hdrs[k] = v end
      local a = { ["request.method"] = "GET", ["uri.path-raw"] = path,
                  ["request.remote-addr"] = "127.0.0.1" }
      for k, v in pairs(attrs or {}) do a[k] = v end
      return { req_attr = magnet_like(a, {}), req_header = magnet_like(hdrs, writes) }, hdrs, writes
    end

    it("decides in one call and writes every identity header, set or removed", function()
      write_policy()
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local tok = mint { sub = "alice", exp = os.time() + 60 } -- no roles
      local r, hdrs, writes = gate_request("/me", { Authorization = "Bearer " .. tok,
        ["X-User"] = "root", ["X-Roles"] = "admin" })
      local status, notice = pol:gate(r)
      assert.equal(0, status)
      assert.is_nil(notice)
      assert.equal("alice", hdrs["X-User"])
      assert.is_nil(hdrs["X-Roles"])
      table.sort(writes)
      assert.same({ "X-Roles=nil", "X-User=alice" }, writes)
    end)

    it("removes headers that pass for identity headers with a CGI-style backend", function()
      write_policy()
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local tok = mint { sub = "alice", exp = os.time() + 60, roles = { "admin" } }
      local hdrs, writes, asked = { authorization = "Bearer " .. tok, X_User = "root", ["X.Roles"] = "a",
        ["x-user"] = "r2", ["X-Other"] = "kept" }, {}, 0
      -- as mod_magnet's r.req_header: reads, writes and a walk by __pairs
      local rh = setmetatable({}, {
        __index = function(_, k) asked = asked + 1; return hdrs[k] end,
        __newindex = function(_, k, v) writes[#writes + 1] = k .. "=" .. tostring(v); hdrs[k] = v end,
        __pairs = function() return next, hdrs, nil end,
      })
      local r = { req_attr = gate_request("/me").req_attr, req_header = rh }
      assert.equal(0, (pol:gate(r)))
      table.sort(writes)
      assert.same({ "X-Roles=admin", "X-User=alice", "X.Roles=nil", "X_User=nil" }, writes)
      assert.equal("kept", hdrs["X-Other"])
      -- the one walk also read the token (its name in any case): no header was asked for
      assert.equal(0, asked)
      -- however many there are: every spelling of X-User in 14 separators and 32 cases
      local many, n = {}, 0
      for sep in ("!#$%&'*+.^_`|~"):gmatch(".") do
        for bits = 0, 31 do
          local name = ("x" .. sep .. "user"):gsub("()(%a)", function(i, c)
            local k = i > 2 and i - 1 or i
            return math.floor(bits / 2 ^ (k - 1)) % 2 == 1 and c:upper() or c
          end)
          if not many[name] then many[name] = "root"; n = n + 1 end
        end
      end
      assert.is_true(n > 400)
      for k, v in pairs(many) do hdrs[k] = v end
      writes = {}
      assert.equal(0, (pol:gate(r)))
      for k in pairs(many) do assert.is_nil(hdrs[k], k) end
      assert.equal("alice", hdrs["X-User"])
      assert.equal(n + 2, #writes)
      -- a plain table, as the gate's slow path hands over
      local plain = { X_User = "root", ["X~Roles"] = "a", ["X-User"] = "alice", Host = "h" }
      pol:strip_lookalikes(plain)
      assert.same({ ["X-User"] = "alice", Host = "h" }, plain)
      -- a denial writes nothing, lookalikes included (the request goes nowhere)
      writes = {}
      hdrs.authorization = nil
      hdrs.X_User = "root"
      assert.equal(401, (pol:gate(r)))
      assert.same({}, writes)
      -- strip_lookalikes = false: exact names only, and no walk (the token
      -- is asked for by name)
      write_policy("strip_lookalikes = false,")
      local keep = assert(policy.load(file, { no_audit = true, private_rl = true }))
      hdrs, writes, asked = { Authorization = "Bearer " .. tok, X_User = "root" }, {}, 0
      local walked = false
      getmetatable(rh).__pairs = function() walked = true; return next, hdrs, nil end
      assert.equal(0, (keep:gate(r)))
      assert.is_false(walked)
      assert.is_true(asked > 0)
      assert.equal("root", hdrs.X_User)
      local t = { X_User = "root" }
      keep:strip_lookalikes(t)
      assert.same({ X_User = "root" }, t)
      keep:close()
    end)

    it("removes a header it reads when it passes for an identity header", function()
      -- X_User is the rate limit's key, and reads as X-User to a CGI-style backend
      write_policy('rate_limit = { by = "header:X_User", rate = 1000, per = "1s" },')
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local r, hdrs = gate_request("/healthz", { X_User = "root", ["X.User"] = "root2" })
      assert.equal(0, (pol:gate(r)))
      assert.is_nil(hdrs.X_User)
      assert.is_nil(hdrs["X.User"])
    end)

    it("takes a header with an empty value (one mod_magnet removed) for absent", function()
      -- Keyed by an empty X-Tenant, two clients would share one budget; absent,
      -- each falls back to its address.
      write_policy('rate_limit = { by = "header:X-Tenant", rate = 1, per = "1h", burst = 1 },')
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local r1 = gate_request("/healthz", { ["X-Tenant"] = "" }, { ["request.remote-addr"] = "10.0.0.1" })
      local r2 = gate_request("/healthz", { ["X-Tenant"] = "" }, { ["request.remote-addr"] = "10.0.0.2" })
      assert.equal(0, (pol:gate(r1)))
      assert.equal(0, (pol:gate(r2)))
      -- and each address's own budget of one is spent
      assert.equal(429, (pol:gate(r1)))
    end)

    it("refuses to decide when it cannot walk the headers for lookalikes", function()
      write_policy()
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local tok = mint { sub = "alice", exp = os.time() + 60 }
      local hdrs = { Authorization = "Bearer " .. tok, X_User = "root" }
      local rh = setmetatable({}, { __index = function(_, k) return hdrs[k] end,
        __newindex = function(_, k, v) hdrs[k] = v end }) -- no __pairs
      local r = { req_attr = gate_request("/me").req_attr, req_header = rh }
      assert.has_error(function() pol:gate(r) end,
        "policy gate: cannot walk the request headers (no __pairs) to remove lookalikes of the identity headers")
      assert.has_error(function() pol:strip_lookalikes(rh) end)
      assert.equal("root", hdrs.X_User)
      getmetatable(rh).__pairs = function() return nil end
      assert.has_error(function() pol:gate(r) end, "policy gate: the request headers' __pairs gave no iterator")
    end)

    it("walks nothing when no identity header has a lookalike (letters and digits only)", function()
      write(file, [[
        local policy = require "lodestone.policy"
        return policy.define {
          name = "lua-spec",
          authenticate = { policy.jwt { secret_file = "hs.key", algorithms = { "HS256" } } },
          rules = { { path = "/me" } },
          identity_headers = { XUser = "sub" },
        }
      ]])
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local tok = mint { sub = "alice", exp = os.time() + 60 }
      local hdrs, walked = { Authorization = "Bearer " .. tok }, false
      local rh = setmetatable({}, { __index = function(_, k) return hdrs[k] end,
        __newindex = function(_, k, v) hdrs[k] = v end,
        __pairs = function() walked = true; return next, hdrs, nil end })
      assert.equal(0, (pol:gate({ req_attr = gate_request("/me").req_attr, req_header = rh })))
      assert.equal("alice", hdrs.XUser)
      assert.is_false(walked)
    end)

    it("writes nothing on a denial, whose answer is in response()", function()
      write_policy()
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local r, hdrs, writes = gate_request("/me", { ["X-User"] = "root" })
      assert.equal(401, (pol:gate(r)))
      assert.same({}, writes)
      assert.equal("root", hdrs["X-User"]) -- the request goes nowhere
      local _, body = pol:response()
      assert.equal('{"error":"unauthorized"}', body)
      assert.equal("not_authenticated", (pol:explain()))
    end)

    it("leaves the metrics path to its caller", function()
      write_policy()
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local r, _, writes = gate_request("/_lodestone/metrics")
      assert.is_false(pol:gate(r, "/_lodestone/metrics"))
      assert.same({}, writes)
      assert.equal(0, (pol:gate(gate_request("/healthz"), "/_lodestone/metrics")))
    end)

    it("reads the query and the host only when asked", function()
      write_policy([[rate_limit = { by = "ip", rate = 100, per = "1s" },]])
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local asked = {}
      local attrs = setmetatable({}, { __index = function(_, k)
        asked[#asked + 1] = k
        return ({ ["request.method"] = "GET", ["uri.path-raw"] = "/healthz",
                  ["request.remote-addr"] = "127.0.0.1", ["uri.query"] = "a=1",
                  ["uri.authority"] = "h" })[k]
      end })
      local r = { req_attr = attrs, req_header = {} }
      assert.equal(0, (pol:gate(r)))
      table.sort(asked)
      assert.same({ "request.method", "request.remote-addr", "uri.path-raw" }, asked)
      asked = {}
      assert.equal(0, (pol:gate(r, nil, true, true)))
      table.sort(asked)
      assert.same({ "request.method", "request.remote-addr", "uri.authority", "uri.path-raw", "uri.query" }, asked)
      pol:close()
      assert.has_error(function() pol:gate(r) end, "calling 'gate' on bad self (policy is closed)")
    end)

    it("reads a header only when the decision needs it", function()
      write(file, [[
        local policy = require "lodestone.policy"
        return policy.define {
          name = "lazy-spec",
          authenticate = {
            policy.jwt { secret_file = "hs.key", algorithms = { "HS256" } },
            policy.jwt { header = "X-Token", secret_file = "hs.key", algorithms = { "HS256" } },
          },
          rules = { { path = "/healthz", allow = "anyone" }, { path = "/me" } },
        }
      ]])
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local tok = mint { sub = "alice", exp = os.time() + 60 }
      local function read_by(hdrs, path)
        local asked = {}
        local rh = setmetatable({}, { __index = function(_, k)
          asked[#asked + 1] = k
          return hdrs[k]
        end })
        local r = gate_request(path)
        r.req_header = rh
        local status = pol:gate(r)
        table.sort(asked)
        return status, asked
      end
      -- The first authenticator's credential decides: X-Token is not read.
      local status, asked = read_by({ Authorization = "Bearer " .. tok }, "/me")
      assert.equal(0, status)
      assert.same({ "Authorization" }, asked)
      status, asked = read_by({ ["X-Token"] = "Bearer " .. tok }, "/me")
      assert.equal(0, status)
      assert.same({ "Authorization", "X-Token" }, asked)
      status, asked = read_by({ Authorization = "Bearer " .. tok }, "/healthz")
      assert.equal(0, status)
      assert.same({}, asked)
    end)

    it("gate_fn binds the options and leaves the policy file's look to enforce", function()
      write_policy()
      local pol = assert(policy.load(file, { no_audit = true, private_rl = true }))
      local gate = pol:gate_fn("/_lodestone/metrics")
      local tok = mint { sub = "alice", exp = os.time() + 60 }
      local later = require("lodestone.core").monotonic_ms() + 60000
      local r, hdrs = gate_request("/me", { Authorization = "Bearer " .. tok })
      local status, notice = gate({ r = r }, later)
      assert.equal(0, status)
      assert.is_nil(notice)
      assert.equal("alice", hdrs["X-User"])
      assert.equal(401, (gate({ r = gate_request("/me") }, later)))
      assert.equal('{"error":"unauthorized"}', select(2, pol:response()))
      -- false, with nothing read or written: the metrics path, a look at
      -- the policy file that is due, no lighty table.
      assert.is_false(gate({ r = gate_request("/_lodestone/metrics") }, later))
      local untouched = setmetatable({}, { __index = function() error("read") end })
      assert.is_false(gate(untouched, 0))
      assert.is_false(gate(untouched, require("lodestone.core").monotonic_ms()))
      assert.is_false(gate("lighty", later))
      assert.has_error(function() pol:gate_fn(42) end)
      pol:close()
      assert.has_error(function() gate({ r = r }, later) end, "policy gate: the policy is closed")
    end)
  end)

  describe("primitives", function()
    it("hmac.verify checks in constant time with a reason", function()
      local sig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
      assert.is_true(lodestone.hmac.verify("It's a Secret to Everybody", "Hello, World!", sig))
      local ok, why = lodestone.hmac.verify("It's a Secret to Everybody", "Hello, World?", sig)
      assert.is_false(ok)
      assert.equal("bad_signature", why)
      -- the third value says what was wrong: "00" is hex of the wrong length
      local msg
      ok, why, msg = lodestone.hmac.verify("k", "m", "00")
      assert.same({ false, "malformed_header", "malformed_header: expected 64 hex characters of signature, got 2" },
        { ok, why, msg })
      ok, why, msg = lodestone.hmac.verify("k", "m", ("zz"):rep(32))
      assert.same({ false, "malformed_header", "malformed_header: the signature is not hex" }, { ok, why, msg })
      -- an empty key (an unset secret) is a mistake, not a mismatch
      local raised, err = pcall(lodestone.hmac.verify, "", "Hello, World!", sig)
      assert.is_false(raised)
      assert.matches("the key is empty", err)
    end)

    it("base64url is strict", function()
      assert.equal("aGk", lodestone.base64url.encode("hi"))
      assert.equal("hi", lodestone.base64url.decode("aGk"))
      local v, msg, code = lodestone.base64url.decode("aGk=")
      assert.is_nil(v)
      assert.matches("base64url_decode", msg)
      assert.equal("EINVAL", code)
    end)
  end)
end)
