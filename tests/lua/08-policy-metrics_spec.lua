-- SPDX-License-Identifier: MIT
-- The gate's decision metrics: enforce() counting decisions into a shared
-- table and answering GET /_lodestone/metrics for allowed clients, driven
-- with a fake mod_magnet `lighty` table; lodestone.core.policy_metrics.
local policy = require("lodestone.policy")
local core = require("lodestone.core")

local files = require("files")
local tmpdir = files.tmpdir
local write = files.write

-- A fake of what mod_magnet gives a script for one request.
local function request(path, addr, method)
  local r = {
    req_header = {},
    resp_header = {},
    req_attr = {
      ["request.method"] = method or "GET",
      ["uri.path"] = path,
      ["uri.path-raw"] = path,
      ["uri.authority"] = "api.example.com",
      ["request.remote-addr"] = addr or "127.0.0.1",
    },
    resp_body = { set = function(self, parts) self.text = table.concat(parts) end },
  }
  return { r = r }
end

-- The value of the sample line that starts with series, or nil.
local function value(text, series)
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, #series + 1) == series .. " " then return tonumber(line:sub(#series + 2)) end
  end
end

describe("policy metrics", function()
  local dir, file

  before_each(function()
    dir = tmpdir()
    file = dir .. "/api.lua"
    write(file, [[
      local policy = require "lodestone.policy"
      return policy.define {
        name = "spec-metrics",
        rules = { { path = "/open", allow = "anyone" }, { path = "/shut", deny = true } },
      }
    ]])
    policy.reset()
    policy.reload_interval_ms = 0
  end)

  after_each(function()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("counts decisions and serves them to loopback clients", function()
    local opts = { rl_dir = dir }
    for _ = 1, 3 do assert.equal(0, policy.enforce(request("/open"), file, opts)) end
    assert.equal(403, policy.enforce(request("/shut", "::1"), file, opts))
    assert.equal(403, policy.enforce(request("/else", "192.0.2.7"), file, opts))

    local lt = request("/_lodestone/metrics", "127.0.0.2")
    assert.equal(200, policy.enforce(lt, file, opts))
    assert.equal("text/plain; version=0.0.4; charset=utf-8", lt.r.resp_header["Content-Type"])
    local text = lt.r.resp_body.text
    local P = 'policy="spec-metrics"'
    assert.equal(3, value(text, "lodestone_policy_decisions_total{" .. P .. ',decision="allow",reason="allowed"}'))
    assert.equal(1, value(text, "lodestone_policy_decisions_total{" .. P .. ',decision="deny",reason="explicit_deny"}'))
    assert.equal(1, value(text, "lodestone_policy_decisions_total{" .. P .. ',decision="deny",reason="no_matching_rule"}'))
    assert.equal(5, value(text, "lodestone_policy_decision_seconds_count{" .. P .. "}"))
    assert.equal(5, value(text, "lodestone_policy_decision_seconds_bucket{" .. P .. ',le="+Inf"}'))

    -- The same numbers through the table's file, as another worker sees them.
    local t = assert(core.policy_metrics(dir .. "/lodestone-policy.metrics"))
    assert.equal(text, t:render())
    t:close()
    assert.has_error(function() t:render() end)
  end)

  it("leaves the path to the policy for other clients and other methods", function()
    local opts = { rl_dir = dir }
    local lt = request("/_lodestone/metrics", "192.0.2.7")
    assert.equal(403, policy.enforce(lt, file, opts))
    assert.is_nil((lt.r.resp_body.text or ""):find("lodestone_policy", 1, true))
    assert.equal(403, policy.enforce(request("/_lodestone/metrics", "127.0.0.1", "POST"), file, opts))
    local m = request("/_lodestone/metrics")
    assert.equal(200, policy.enforce(m, file, opts))
    assert.equal(2, value(m.r.resp_body.text,
      'lodestone_policy_decisions_total{policy="spec-metrics",decision="deny",reason="no_matching_rule"}'))
  end)

  it("takes allow, path and file options, and false turns it off", function()
    local opts = { metrics = { allow = { "192.0.2.0/24" }, path = "/m", file = dir .. "/own.metrics" } }
    assert.equal(403, policy.enforce(request("/m", "127.0.0.1"), file, opts))
    local lt = request("/m", "192.0.2.9")
    assert.equal(200, policy.enforce(lt, file, opts))
    assert.equal(1, value(lt.r.resp_body.text,
      'lodestone_policy_decisions_total{policy="spec-metrics",decision="deny",reason="no_matching_rule"}'))

    policy.reset()
    local off = { rl_dir = dir, metrics = false }
    assert.equal(0, policy.enforce(request("/open"), file, off))
    assert.equal(403, policy.enforce(request("/_lodestone/metrics"), file, off))
    local f = io.open(dir .. "/lodestone-policy.metrics")
    assert.is_nil(f) -- nothing opened, nothing counted
  end)

  it("names bad options", function()
    assert.has_error(function() policy.enforce(request("/open"), file, { metrics = "yes" }) end,
      "policy.enforce: opts.metrics: expected a table or false, got string")
    policy.reset()
    local ok, err = pcall(policy.enforce, request("/open"), file, { metrics = { allow = { "nope" } } })
    assert.is_false(ok)
    assert.matches("policy.enforce: opts.metrics.allow: cidr.new: ", err, 1, true)
    policy.reset()
    assert.has_error(function() policy.enforce(request("/open"), file, { metrics = { path = 7 } }) end,
      "policy.enforce: opts.metrics.path: expected a string, got number")
  end)

  it("a table that cannot be opened leaves decisions uncounted, not denied", function()
    write(dir .. "/bad.metrics", "not a metrics table")
    assert.equal(0, policy.enforce(request("/open"), file, { metrics = { file = dir .. "/bad.metrics" } }))
    assert.equal(403, policy.enforce(request("/_lodestone/metrics"), file, { metrics = { file = dir .. "/bad.metrics" } }))
  end)

  it("policy_metrics records and refuses what is not a table", function()
    local t = assert(core.policy_metrics(dir .. "/direct.metrics"))
    t:record("p", true, "allowed", 0.000002)
    t:record("p", false, "missing_role", 0.5)
    local text = t:render()
    assert.equal(1, value(text, 'lodestone_policy_decisions_total{policy="p",decision="allow",reason="allowed"}'))
    assert.equal(1, value(text, 'lodestone_policy_decision_seconds_bucket{policy="p",le="2.5e-06"}'))
    assert.equal(2, value(text, 'lodestone_policy_decision_seconds_bucket{policy="p",le="+Inf"}'))
    assert.matches("^lodestone.pmetrics: ", tostring(t))
    write(dir .. "/junk", "junk")
    local none, msg, code = core.policy_metrics(dir .. "/junk")
    assert.is_nil(none)
    assert.matches("not a Lodestone metrics table", msg, 1, true)
    assert.equal("EFORMAT", code)
    assert.has_error(function() core.policy_load('{"name":"x","rules":[]}', { metrics = {} }) end)
  end)
end)
