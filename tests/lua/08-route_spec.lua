-- SPDX-License-Identifier: MIT
-- lodestone.client and lodestone.route without a daemon: argument checks,
-- an absent daemon and one that never answers (tests/tools/stallsock), and
-- the route's answers driven with a fake mod_magnet `lighty` table (policy
-- first, 413, 400 naming the problem, 503 with an audit line, fall-through
-- to the policy's decision), route files. tests/e2e/client_routes.sh runs
-- the same code against a real lodestoned inside lighttpd. Also the
-- github-push example workflow with a fake ctx.
local lodestone = require("lodestone")
local client = require("lodestone.client")
local route = require("lodestone.route")
local policy = require("lodestone.policy")
local json = lodestone.json

local files = require("files")
local tmpdir = files.tmpdir
local write = files.write
local function read(path) return files.read(path, "") end

-- A fake of what mod_magnet gives a script for one request.
local function request(spec)
  local body = spec.body or ""
  local r = {
    req_header = {},
    resp_header = {},
    req_attr = {
      ["request.method"] = spec.method or "POST",
      ["uri.path"] = spec.path,
      ["uri.path-raw"] = spec.path,
      ["request.remote-addr"] = "127.0.0.1",
    },
    req_body = { len = #body, collect = spec.collect ~= false, get = body },
    resp_body = { set = function(self, parts) self.text = table.concat(parts) end },
  }
  for k, v in pairs(spec.headers or {}) do r.req_header[k] = v end
  return { r = r }
end

describe("lodestone.client", function()
  after_each(function() client.reset() end)

  it("names the field of a bad setting", function()
    assert.has_error(function() client.configure { sockett = "x" } end,
      "client.configure: unknown option 'sockett' (expected socket, timeout_ms)")
    assert.has_error(function() client.configure { timeout_ms = 0 } end,
      "client.configure: timeout_ms must be a whole number of milliseconds from 1 to 3600000")
    assert.has_error(function() client.configure { socket = "" } end,
      "client.configure: socket must be a non-empty path string")
    assert.has_error(function() client.start("t", nil, { timeout_ms = 1.5 }) end,
      "client.start: timeout_ms must be a whole number of milliseconds from 1 to 3600000")
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() client.start(nil) end,
      "bad argument #1 to 'client.start' (workflow type: non-empty string expected, got nil)")
    assert.has_error(function() client.start("t", nil, { id = "" }) end,
      "client.start: id must be a non-empty string (leave it out for a fresh id)")
    assert.has_error(function() client.signal("r", 5) end,
      "bad argument #2 to 'client.signal' (signal name: non-empty string expected, got number)")
    assert.has_error(function() client.get("") end,
      "bad argument #1 to 'client.get' (run id: non-empty string expected, got an empty string)")
    -- a misspelt option never falls back to the default unnoticed
    assert.has_error(function() client.start("t", nil, { timout_ms = 5 }) end,
      "client.start: unknown option 'timout_ms' (expected id, socket, timeout_ms)")
    assert.has_error(function() client.start("t", nil, 5) end, "client.start: options must be a table")
    assert.has_error(function() client.get("r", { id = "x" }) end,
      "client.get: unknown option 'id' (expected socket, timeout_ms)")
    assert.has_error(function() client.signal("r", "go", nil, { sokcet = "x" }) end,
      "client.signal: unknown option 'sokcet' (expected socket, timeout_ms)")
    assert.has_error(function() client.configure { socket = "/run/x\0.sock" } end,
      "client.configure: socket must be a non-empty path string")
    -- the native handle: a NUL byte would cut a method or path short
    local h = assert(require("lodestone.core").client_open("/nonexistent.sock"))
    local ok, err = pcall(h.request, h, "GET", "/v1/\0x")
    assert.is_false(ok)
    assert.matches("contains a NUL byte", err)
    h:close()
  end)

  it("makes ids like the daemon's", function()
    local a, b = client.new_id(), client.new_id()
    assert.matches("^[0-9A-HJKMNP-TV-Z]+$", a)
    assert.equal(26, #a)
    assert.is_true(a < b)
  end)

  it("fails without raising when the daemon is absent, with a transport code", function()
    local sock = tmpdir() .. "/absent.sock"
    for _, call in ipairs({
      function() return client.start("hello", { x = 1 }, { socket = sock }) end,
      function() return client.get("r-1", { socket = sock }) end,
      function() return client.signal("r-1", "go", nil, { socket = sock }) end,
    }) do
      local v, msg, code, status = call()
      assert.is_nil(v)
      assert.equal("lodestone.client: lodestoned at " .. sock .. ": connect: No such file or directory", msg)
      assert.equal("EIO", code)
      assert.is_nil(status)
    end
    assert.same({ requests = 3, connects = 0, reconnects = 0, connected = false }, client.stats(sock))
    -- a dot segment would be removed from the path: refused without a request
    for _, name in ipairs { ".", ".." } do
      local v, msg, code = client.signal("r-1", name, nil, { socket = sock })
      assert.is_nil(v)
      assert.equal('client.signal: signal name: "' .. name .. '" is not a name: HTTP clients remove such ' ..
        "segments from the API's path", msg)
      assert.equal("EINVAL", code)
    end
    assert.equal(3, client.stats(sock).requests)
    os.execute("rmdir '" .. sock:match("^(.*)/") .. "'")
  end)

  it("refuses an input JSON cannot hold, before any request", function()
    local run, msg, code = client.start("t", { f = print }, { socket = "/nonexistent.sock" })
    assert.is_nil(run)
    assert.matches("^client.start: input: json.encode: ", msg)
    assert.equal("EINVAL", code)
    assert.is_nil(client.stats("/nonexistent.sock"))
  end)
end)

describe("lodestone.route", function()
  local dir, sock, printed, saved_print

  before_each(function()
    dir = tmpdir()
    sock = dir .. "/d.sock"
    write(dir .. "/hs.key", "0123456789abcdef0123456789abcdef")
    write(dir .. "/policy.lua", [[
      local policy = require "lodestone.policy"
      return policy.define {
        name = "route-spec",
        authenticate = { policy.jwt { secret_file = "hs.key", algorithms = { "HS256" } } },
        rules = {
          { path = "/open", allow = "anyone" },
          { path = "/start", methods = { "POST" }, allow = "anyone" },
          { path = "/secure" },
          { path = "/orders/*/approve", methods = { "POST" }, allow = "anyone" },
        },
        audit = { path = "audit.log", log = "deny" },
      }
    ]])
    policy.reset()
    route.reset()
    client.reset()
    printed = {}
    saved_print = _G.print
    _G.print = function(...) printed[#printed + 1] = table.concat({ ... }, " ") end
  end)

  after_each(function()
    _G.print = saved_print
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function spec(extra)
    local s = { policy = dir .. "/policy.lua", path = "/start", workflow = "hello", socket = sock,
      timeout_ms = 200 }
    for k, v in pairs(extra or {}) do s[k] = v end
    return s
  end

  local function answer(lt)
    return json.decode(lt.r.resp_body.text)
  end

  it("checks the route table, naming the field", function()
    local lt = request { path = "/x" }
    assert.has_error(function() route.workflow(lt, { path = "/x", workflow = "w" }) end,
      "route.workflow: policy is required (the policy file's path)")
    assert.has_error(function() route.workflow(lt, spec { paht = "/x" }) end,
      "route.workflow: unknown field 'paht'")
    assert.has_error(function() route.workflow(lt, spec { input = "x" }) end,
      "route.workflow: input must be a function(req)")
    assert.has_error(function() route.workflow(lt, spec { body = "xml" }) end,
      'route.workflow: body must be "json" (the default) or "raw"')
    assert.has_error(function() route.dispatch(lt, {}) end,
      "route.dispatch: a fallback is required (a policy file, or a function(lighty) -> status)")
  end)

  it("gives requests it does not serve the policy's decision", function()
    assert.equal(0, route.workflow(request { method = "GET", path = "/open" }, spec()))
    local lt = request { method = "GET", path = "/start" }
    assert.equal(403, route.workflow(lt, spec()))
    assert.equal('{"error":"forbidden"}', lt.r.resp_body.text)
    lt = request { method = "GET", path = "/secure" }
    assert.equal(401, route.dispatch(lt, { spec() }, dir .. "/policy.lua"))
    local seen
    assert.equal(418, route.dispatch(lt, { spec() }, function(l) seen = l; return 418 end))
    assert.equal(lt, seen)
  end)

  it("runs the policy first: a denied request starts nothing", function()
    local lt = request { path = "/secure", body = '{"a":1}' }
    assert.equal(401, route.workflow(lt, spec { path = "/secure" }))
    assert.is_nil(client.stats(sock)) -- the daemon was never asked
  end)

  it("answers 413 over max_body and waits for a body still arriving", function()
    local lt = request { path = "/start", body = string.rep("a", 11) }
    assert.equal(413, route.workflow(lt, spec { max_body = 10 }))
    assert.same({ error = "payload_too_large", message = "the body exceeds 10 bytes" }, answer(lt))
    lt = request { path = "/start", body = "{}", collect = false }
    assert.equal(0, route.workflow(lt, spec()))
    assert.is_nil(lt.r.resp_body.text)
  end)

  it("answers 400 naming the problem: bad JSON, or what id/input say", function()
    local lt = request { path = "/start", body = '{"a": }' }
    assert.equal(400, route.workflow(lt, spec()))
    assert.equal("bad_request", answer(lt).error)
    assert.matches("^body: invalid JSON: line 1 column 7", answer(lt).message)
    lt = request { path = "/start", body = '{"a": 1}' }
    assert.equal(400, route.workflow(lt, spec { id = function() return nil, "X-Key: too long" end }))
    assert.same({ error = "bad_request", message = "X-Key: too long" }, answer(lt))
    lt = request { path = "/start", body = '{"a": 1}' }
    assert.equal(400, route.workflow(lt, spec { input = function() return nil, "a: must be 2" end }))
    assert.same({ error = "bad_request", message = "a: must be 2" }, answer(lt))
    assert.is_nil(client.stats(sock))
  end)

  it("answers 500 without internals when input raises, and logs why", function()
    local lt = request { path = "/start", body = '{"a": 1}' }
    assert.equal(500, route.workflow(lt, spec { input = function() error("boom") end }))
    assert.same({ error = "internal_error" }, answer(lt))
    assert.matches("input%(req%) failed: .*boom", printed[1])
  end)

  it("answers 500, not 503, when the input it would send cannot be encoded", function()
    local lt = request { path = "/start", body = '{"a": 1}' }
    assert.equal(500, route.workflow(lt, spec { input = function() return { f = print } end }))
    assert.same({ error = "internal_error" }, answer(lt))
    assert.is_nil(lt.r.resp_header["Retry-After"])
    local line = json.decode(read(dir .. "/audit.log"):match("[^\n]+"))
    assert.equal("internal_error", line.reason)
    assert.matches("cannot encode a function", line.error)
  end)

  it("answers 503 with an audit line when the daemon is absent", function()
    local seen
    -- X-User is no identity header of this policy: the audit line must not believe it
    local lt = request { path = "/start", body = '{"a": 1}', headers = { ["X-User"] = "mallory" } }
    assert.equal(503, route.workflow(lt, spec {
      id = function() return "run-1" end,
      input = function(req) seen = req; return { a = req.json.a, id = req.id } end,
    }))
    assert.same({ error = "workflows_unavailable" }, answer(lt))
    assert.equal("1", lt.r.resp_header["Retry-After"])
    assert.equal("no-store", lt.r.resp_header["Cache-Control"])
    assert.equal("run-1", seen.id)
    assert.equal('{"a": 1}', seen.body)
    local line = json.decode(read(dir .. "/audit.log"):match("[^\n]+"))
    assert.equal("workflows_unavailable", line.reason)
    assert.equal("route-spec", line.policy)
    assert.equal("hello", line.workflow)
    assert.equal("run-1", line.id)
    assert.equal(503, line.status)
    assert.is_nil(line.subject)
    assert.matches("connect: No such file or directory", line.error)
    assert.matches('^lodestone: route /start: {', printed[1])
    -- only denials are the policy's to log: the route's line has a new
    -- request id, and the answer names it
    assert.matches("^%x+$", line.request_id)
    assert.equal(32, #line.request_id)
    assert.equal(line.request_id, lt.r.resp_header["X-Request-Id"])
  end)

  it("names the request by the policy's id when the policy logs every decision", function()
    write(dir .. "/all.lua", [[
      local policy = require "lodestone.policy"
      return policy.define {
        name = "route-all",
        rules = { { path = "/start", methods = { "POST" }, allow = "anyone" } },
        audit = { path = "all.log", log = "all", request_id = "X-Trace" },
      }
    ]])
    local lt = request { path = "/start", body = "{}", headers = { ["X-Trace"] = "forged" } }
    assert.equal(503, route.workflow(lt, spec { policy = dir .. "/all.lua" }))
    policy._state(dir .. "/all.lua").pol:flush() -- the engine buffers its records
    local by = {}
    for l in read(dir .. "/all.log"):gmatch("[^\n]+") do
      local rec = json.decode(l)
      by[rec.decision] = rec
    end
    local allowed, line = by.allow, by.error
    assert.is_table(allowed)
    assert.equal("workflows_unavailable", line.reason)
    assert.equal(32, #line.request_id)
    assert.equal(allowed.request_id, line.request_id)
    assert.equal(line.request_id, lt.r.req_header["X-Trace"])
    assert.equal(line.request_id, lt.r.resp_header["X-Trace"])
  end)

  it("answers 503 after the timeout when the daemon never answers", function()
    local stall = os.getenv("LS_BUILD_DIR") .. "/tests/stallsock"
    os.execute(stall .. " '" .. sock .. "' >/dev/null 2>&1 & echo $! > '" .. dir .. "/stall.pid'")
    for _ = 1, 50 do
      local there = os.execute("test -S '" .. sock .. "'")
      if there == true or there == 0 then break end
      os.execute("sleep 0.1")
    end
    local lt = request { path = "/start", body = '{"a": 1}' }
    local ok, status = pcall(route.workflow, lt, spec())
    os.execute("kill " .. read(dir .. "/stall.pid"))
    assert.is_true(ok)
    assert.equal(503, status)
    assert.matches("no answer within the timeout of 200 ms %(waiting for the answer%)",
      json.decode(read(dir .. "/audit.log"):match("[^\n]+")).error)
  end)

  describe("against a fake daemon with a canned answer", function()
    local pidfile, log

    local function canned(status, body)
      pidfile, log = dir .. "/canned.pid", dir .. "/canned.log"
      os.execute(os.getenv("LS_BUILD_DIR") .. "/tests/cannedsock '" .. sock .. "' " .. status .. " '"
        .. body .. "' '" .. log .. "' >/dev/null 2>&1 & echo $! > '" .. pidfile .. "'")
      for _ = 1, 50 do
        local there = os.execute("test -S '" .. sock .. "'")
        if there == true or there == 0 then return end
        os.execute("sleep 0.1")
      end
      error("cannedsock did not start")
    end

    after_each(function()
      client.reset()
      os.execute("kill " .. read(pidfile) .. " 2>/dev/null")
      os.execute("rm -f '" .. sock .. "'")
    end)

    local function signal_spec(extra)
      local s = spec { path = "/orders/:id/approve", signal = "approve", workflow = false }
      s.workflow = nil
      for k, v in pairs(extra or {}) do s[k] = v end
      return s
    end

    it("starts a run: 202, Location, and what the daemon was sent", function()
      canned(201, '{"id":"w-1","status":"running","type":"hello"}')
      local lt = request { path = "/start", body = '{"n": 1}' }
      assert.equal(202, route.workflow(lt, spec {
        id = function() return "w-1" end,
        input = function(req) return { n = req.json.n, id = req.id } end,
      }))
      assert.same({ id = "w-1", status = "running" }, answer(lt))
      assert.equal("/v1/workflows/w-1", lt.r.resp_header.Location)
      assert.equal('POST /v1/workflows/hello HTTP/1.1\n{"id":"w-1","input":{"id":"w-1","n":1}}\n', read(log))
    end)

    it("answers 502 when the daemon's 2xx names no run", function()
      for _, body in ipairs({ "", "{}", '"text"' }) do
        canned(201, body)
        local lt = request { path = "/start", body = '{"n": 1}' }
        assert.equal(502, route.workflow(lt, spec()))
        assert.same({ error = "workflow_start_failed" }, answer(lt))
        assert.is_nil(lt.r.resp_header.Location)
        client.reset()
        os.execute("kill " .. read(pidfile) .. " 2>/dev/null; rm -f '" .. sock .. "'")
      end
      local lines = {}
      for l in read(dir .. "/audit.log"):gmatch("[^\n]+") do lines[#lines + 1] = json.decode(l) end
      assert.equal(3, #lines)
      assert.equal("bad_answer", lines[1].reason)
      assert.equal(502, lines[1].status)
    end)

    it("sends a signal to the run named by the path: 202", function()
      canned(202, '{"id":"o-1","signal":"approve"}')
      assert.has_error(function() route.signal(request { path = "/x" }, spec()) end,
        'route.signal: signal is required (a signal name such as "approve")')
      local lt = request { path = "/orders/o-1/approve", body = '{"by": "ann"}' }
      assert.equal(202, route.signal(lt, signal_spec()))
      assert.same({ id = "o-1", signal = "approve" }, answer(lt))
      assert.equal("/v1/workflows/o-1", lt.r.resp_header.Location)
      lt = request { path = "/orders/o-2/approve" }
      assert.equal(202, route.signal(lt, signal_spec { payload = function(req) return { run = req.id } end }))
      assert.equal('POST /v1/workflows/o-1/signals/approve HTTP/1.1\n{"by":"ann"}\n'
        .. 'POST /v1/workflows/o-2/signals/approve HTTP/1.1\n{"run":"o-2"}\n', read(log))
      -- paths that do not match get the policy's decision (403: no rule)
      for _, p in ipairs({ "/orders//approve", "/orders/o-1/approve/x", "/orders/o-1" }) do
        assert.equal(403, route.signal(request { path = p }, signal_spec()))
      end
    end)

    it("passes on 404 for a signal to an unknown run", function()
      canned(404, '{"error":{"code":"not_found","message":"no run o-9"}}')
      local lt = request { path = "/orders/o-9/approve" }
      assert.equal(404, route.signal(lt, signal_spec()))
      assert.same({ error = "not_found", message = "no run o-9" }, answer(lt))
    end)

    it("passes on 409 for a signal to a finished run", function()
      canned(409, '{"error":{"code":"run_finished","message":"run o-1 has completed"}}')
      local lt = request { path = "/orders/o-1/approve" }
      assert.equal(409, route.signal(lt, signal_spec()))
      assert.same({ error = "run_finished", message = "run o-1 has completed" }, answer(lt))
    end)

    it("answers 502 with an audit line when the daemon refuses otherwise", function()
      canned(501, '{"error":{"code":"not_implemented","message":"signals arrive later"}}')
      local lt = request { path = "/orders/o-1/approve" }
      assert.equal(502, route.signal(lt, signal_spec()))
      assert.same({ error = "signal_failed" }, answer(lt))
      local line = json.decode(read(dir .. "/audit.log"):match("[^\n]+"))
      assert.equal("not_implemented", line.reason)
      assert.equal("approve", line.signal)
      assert.equal("o-1", line.id)
    end)
  end)

  it("loads route files, resolving policies against their folder", function()
    write(dir .. "/routes.lua", [[
      return { one = { policy = "policy.lua", path = "/start", workflow = "w" } }
    ]])
    local routes = route.load(dir .. "/routes.lua")
    assert.equal(dir .. "/policy.lua", routes.one.policy)
    os.execute("mkdir '" .. dir .. "/sub'")
    write(dir .. "/sub/r.lua", [[
      return { two = { policy = "./../policy.lua", path = "/x", workflow = "w", socket = "/own.sock" } }
    ]])
    local two = route.load(dir .. "/sub/r.lua", { policy_opts = { rl_dir = dir }, socket = "/d.sock" }).two
    assert.equal(dir .. "/policy.lua", two.policy) -- one text per file
    assert.same({ rl_dir = dir }, two.policy_opts) -- defaults fill what a route leaves out
    assert.equal("/own.sock", two.socket)
    assert.equal(routes, route.load(dir .. "/routes.lua")) -- once per state
    write(dir .. "/bad.lua", "return { one = { path = '/x' } }")
    assert.has_error(function() route.load(dir .. "/bad.lua") end,
      "route.load: " .. dir .. "/bad.lua: route one: policy is required (the policy file's path)")
    assert.has_error(function() route.load(dir .. "/none.lua") end)
  end)

  it("gives a fallback policy named through .. the state its routes use", function()
    os.execute("mkdir '" .. dir .. "/routes'")
    local lt = request { method = "GET", path = "/open" }
    assert.equal(0, route.dispatch(lt, {}, dir .. "/routes/../policy.lua"))
    assert.truthy(policy._state(dir .. "/policy.lua"))
    assert.is_nil(policy._state(dir .. "/routes/../policy.lua"))
  end)

  it("here() is the calling file's folder, relative names too", function()
    os.execute("mkdir '" .. dir .. "/g'")
    write(dir .. "/g/here.lua", "local d = require('lodestone.route').here() return d")
    assert.equal(dir .. "/g", dofile(dir .. "/g/here.lua"))
    -- as mod_magnet names a gate: its path, without "@"
    assert.equal(dir .. "/g", load("local d = require('lodestone.route').here() return d", dir .. "/g/gate.lua")())
    assert.equal("sub", load("local d = require('lodestone.route').here() return d", "@sub/gate.lua")())
    assert.equal(".", load("local d = require('lodestone.route').here() return d", "@gate.lua")())
    assert.equal(".", load("local d = require('lodestone.route').here() return d", "=stdin")())
  end)
end)

describe("the example routes (policies/routes/examples.lua)", function()
  local routes = assert(loadfile("policies/routes/examples.lua"))()

  it("start a github-push run for push events only, X-GitHub-Event required", function()
    local push = { headers = { ["X-GitHub-Event"] = "push", ["X-GitHub-Delivery"] = "d-1" }, json = { commits = {} } }
    assert.same({ event = "push", delivery = "d-1", push = { commits = {} } }, routes.github.input(push))
    local v, msg = routes.github.input({ headers = { ["X-GitHub-Event"] = "issues" }, json = {} })
    assert.is_nil(v)
    assert.equal("X-GitHub-Event: only push events start a run, got issues", msg)
    v, msg = routes.github.input({ headers = {}, json = {} })
    assert.is_nil(v)
    assert.equal("X-GitHub-Event: only push events start a run, got none", msg)
  end)
end)

describe("the github-push example workflow", function()
  local def = assert(loadfile("workflows/github-push.lua"))()

  -- steps run at once; s:log lines are kept
  local function fake_ctx()
    local ctx = { steps = {}, logs = {} }
    function ctx:step(name, fn)
      self.steps[#self.steps + 1] = name
      return fn({ idempotency_key = "key-" .. name, log = function(_, m) self.logs[#self.logs + 1] = m end })
    end
    return ctx
  end

  it("summarises the commits and records the delivery", function()
    local ctx = fake_ctx()
    local out = def.run(ctx, { event = "push", delivery = "d-1", push = {
      ref = "refs/heads/main", repository = { full_name = "acme/shop" },
      commits = {
        { message = "Fix the cart\n\ndetails", author = { username = "bob" } },
        { message = string.rep("x", 80), author = { name = "Ada" } },
        { message = "More", author = { username = "bob" } },
      } } })
    assert.same({ "summarise", "record" }, ctx.steps)
    assert.same({ repository = "acme/shop", ref = "refs/heads/main", commits = 3, authors = "Ada, bob",
      titles = "Fix the cart | " .. string.rep("x", 69) .. "... | More" }, out.summary)
    assert.equal("d-1", out.delivery)
    assert.equal("push", out.event)
    assert.same({ "push to acme/shop refs/heads/main: 3 commit(s) by Ada, bob" }, ctx.logs)
  end)

  it("copes with a push without commits", function()
    local out = def.run(fake_ctx(), nil)
    assert.equal(0, out.summary.commits)
    assert.equal("", out.summary.authors)
    assert.equal("push", out.event)
  end)
end)
