-- SPDX-License-Identifier: MIT
-- lodestone.core loads under the runtime tests/lua/run.sh chose, from the
-- build for that runtime's ABI, through both require paths; version() is the
-- project's version; module state lives in the registry, so a reload in the
-- same lua_State (as mod_magnet does) shares it.
local abi = os.getenv("LS_LUA_ABI")
local build = os.getenv("LS_BUILD_DIR")
local is_jit = abi == "5.1"

-- The project version, from the source of truth (the tests run from the root).
local function project_version()
  local f = assert(io.open("CMakeLists.txt"))
  local text = f:read("*a")
  f:close()
  local version = text:match("project%(lodestone VERSION (%d+%.%d+%.%d+)")
  assert.is_string(version)
  return version
end

local function pack(...) return { n = select("#", ...), ... } end

describe("lodestone.core", function()
  describe("runtime", function()
    it("is the one run.sh chose", function()
      if is_jit then
        assert.equal("Lua 5.1", _VERSION)
        assert.is_table(rawget(_G, "jit"))
        assert.matches("^LuaJIT 2%.1", jit.version)
      else
        assert.equal("5.4", abi)
        assert.equal("Lua 5.4", _VERSION)
        assert.is_nil(rawget(_G, "jit"))
      end
    end)

    it("finds core.so in the build for this ABI", function()
      local path, err = package.searchpath("lodestone.core", package.cpath)
      assert.is_nil(err)
      assert.equal(build .. "/lib/lua/" .. abi .. "/lodestone/core.so", path)
    end)

    it("finds the facade in lua/lodestone/init.lua", function()
      local path, err = package.searchpath("lodestone", package.path)
      assert.is_nil(err)
      assert.equal("lua/lodestone/init.lua", path)
    end)

    it("refuses the other ABI's core.so at load time instead of crashing", function()
      local other = build .. "/lib/lua/" .. (is_jit and "5.4" or "5.1") .. "/lodestone/core.so"
      local f = assert(io.open(other), "both ABIs are always built: " .. other)
      f:close()
      local fn, msg, where = package.loadlib(other, "luaopen_lodestone_core")
      assert.is_nil(fn)
      assert.matches("undefined symbol: lua", msg)
      assert.equal("open", where)
    end)
  end)

  describe("require", function()
    it("'lodestone' gives the facade with version()", function()
      local lodestone = require("lodestone")
      assert.equal(project_version(), lodestone.version())
      assert.equal("0.1.0", lodestone.version())
    end)

    it("'lodestone.core' works directly", function()
      local core = require("lodestone.core")
      assert.same(pack(project_version()), pack(core.version()))
      assert.is_function(core.json.encode)
      assert.is_function(core.json.decode)
    end)

    it("the facade re-exports the native functions and json table themselves", function()
      local lodestone, core = require("lodestone"), require("lodestone.core")
      assert.equal(core.version, lodestone.version)
      assert.equal(core.json, lodestone.json)
    end)

    it("the native module has exactly its documented functions", function()
      local keys = {}
      for k in pairs(require("lodestone.core")) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({ "apikey_generate", "base64url_decode", "base64url_encode", "cidr_client_addr",
        "cidr_new", "client_open", "cron_next", "duration_ms", "file_stamp", "hash_password", "hmac_sha256", "hmac_verify", "id_new", "json",
        "jwt_cache", "jwt_keyset", "jwt_keyset_file", "jwt_verify", "load_file", "monotonic_ms", "policy_load",
        "policy_metrics",
        "ratelimit_open", "version" }, keys)
    end)

    it("duration_ms reads the project's durations and says what is wrong", function()
      local core = require("lodestone.core")
      assert.equal(250, core.duration_ms("250ms"))
      assert.equal(5400000, core.duration_ms("1h30m"))
      assert.equal(1500, core.duration_ms("1.5s"))
      assert.equal(30000, core.duration_ms("30")) -- plain seconds
      local ms, err = core.duration_ms("30m1h")
      assert.is_nil(ms)
      assert.equal('duration "30m1h": units must go from largest to smallest, each once', err)
      ms, err = core.duration_ms("soon")
      assert.is_nil(ms)
      assert.equal('duration "soon": expected a number', err)
      assert.has_error(function() core.duration_ms({}) end)
    end)

    it("the json table has exactly its documented fields", function()
      local json = require("lodestone.core").json
      local keys = {}
      for k, v in pairs(json) do keys[#keys + 1] = k .. ":" .. type(v) end
      table.sort(keys)
      assert.same({ "array:function", "array_mt:table", "decode:function", "encode:function",
                    "null:userdata", "object:function", "object_mt:table" }, keys)
    end)

    it("a reload in the same state shares json.null and the marker metatables", function()
      local json1 = require("lodestone.core").json
      local decoded = json1.decode("[1]")
      package.loaded["lodestone.core"] = nil
      local core2 = require("lodestone.core")
      assert.are_not.equal(json1, core2.json)
      assert.equal(json1.null, core2.json.null)
      assert.equal(json1.array_mt, core2.json.array_mt)
      assert.equal(json1.object_mt, core2.json.object_mt)
      assert.equal("[1]", core2.json.encode(decoded))
      assert.equal("[]", core2.json.encode(json1.array({})))
    end)
  end)

  describe("the command from the issue", function()
    -- A fresh interpreter of this runtime, from the project root.
    local function run(cpath_dir)
      local rt = is_jit and "luajit" or "lua5.4"
      local code = 'package.path="lua/?.lua;lua/?/init.lua;"..package.path; '
        .. 'package.cpath="' .. cpath_dir .. '/?.so;"..package.cpath; '
        .. 'print(require("lodestone").version())'
      local p = assert(io.popen(rt .. " -e '" .. code .. "' 2>&1"))
      local out = p:read("*a")
      p:close()
      return out
    end

    it("prints the version", function()
      assert.equal(project_version() .. "\n", run(build .. "/lib/lua/" .. abi))
    end)

    it("fails with lua's own message when the module is not built", function()
      assert.matches("module 'lodestone.core' not found", run(build .. "/no/such/dir"))
    end)
  end)

  describe("exports", function()
    local function exported(so)
      local p = io.popen("nm -D --defined-only '" .. so .. "' 2>/dev/null")
      local names = {}
      for line in p:lines() do
        local kind, name = line:match("^%x+ (%u) ([%w_]+)$")
        if kind == "T" or kind == "D" or kind == "B" then names[#names + 1] = name end
      end
      p:close()
      table.sort(names)
      return names
    end
    local so = build .. "/lib/lua/" .. abi .. "/lodestone/core.so"

    it("include luaopen_lodestone_core", function()
      local found = false
      for _, name in ipairs(exported(so)) do
        if name == "luaopen_lodestone_core" then found = true end
      end
      assert.is_true(found)
    end)

    it("are only luaopen_lodestone_core", function()
      -- The static ls_* libraries are linked with -Wl,--exclude-libs,ALL so
      -- that a host that also links them (lodestoned) keeps one copy.
      assert.same({ "luaopen_lodestone_core" }, exported(so))
    end)
  end)
end)
