-- SPDX-License-Identifier: MIT
-- lodestone.http over lodestone.httpc against tests/tools/mocksvc: requests
-- and responses (headers, bodies, JSON both ways, any status), transport
-- failures (timeout, refused, body too large) as errors that name the
-- request, and argument errors that name the field. LuaJIT only: run.sh does
-- not run this spec under Lua 5.4, where httpc is not built.
local http = require("lodestone.http")
local httpc = require("lodestone.httpc")
local json = require("lodestone.core").json
local mocksvc = require("mocksvc")

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

describe("lodestone.http", function()
  local svc

  lazy_setup(function()
    svc = mocksvc.start { unix = true }
  end)

  lazy_teardown(function()
    if svc then svc.stop() end
  end)

  describe("requests", function()
    it("GET sends headers and decodes a JSON response", function()
      local res = http.get(svc.url .. "/echo", { headers = { ["X-Trace"] = "t-1", ["X-Num"] = 7 } })
      assert.equal(200, res.status)
      assert.equal("application/json", res.headers["content-type"])
      assert.is_nil(res.json_error)
      assert.equal("GET", res.json.method)
      assert.equal("/echo", res.json.path)
      assert.equal("t-1", res.json.headers["x-trace"])
      assert.equal("7", res.json.headers["x-num"])
      assert.equal("lodestone/" .. require("lodestone.core").version(), res.json.headers["user-agent"])
      assert.equal("", res.json.body)
      assert.is_nil(res.json.headers["expect"])
    end)

    it("POST sends a raw body with the caller's content type, and no form type otherwise", function()
      local res = http.post(svc.url .. "/echo", { body = "hello\0world", headers = { ["Content-Type"] = "text/plain" } })
      assert.equal(200, res.status)
      assert.equal("POST", res.json.method)
      assert.equal("hello\0world", res.json.body)
      assert.equal("text/plain", res.json.headers["content-type"])
      assert.equal("11", res.json.headers["content-length"])
      res = http.post(svc.url .. "/echo", { body = "a=1" })
      assert.equal("a=1", res.json.body)
      assert.is_nil(res.json.headers["content-type"])
    end)

    it("sends json encoded, as application/json unless a content type is given", function()
      local res = http.post(svc.url .. "/echo", { json = { amount = 5, tags = json.array { "a" } } })
      assert.equal('{"amount":5,"tags":["a"]}', res.json.body)
      assert.equal("application/json", res.json.headers["content-type"])
      res = http.request { method = "put", url = svc.url .. "/status/200", json = {},
        headers = { ["content-type"] = "application/merge-patch+json" } }
      assert.equal(200, res.status)
      res = http.post(svc.url .. "/echo", { json = {}, headers = { ["content-type"] = "application/merge-patch+json" } })
      assert.equal("application/merge-patch+json", res.json.headers["content-type"])
      assert.equal("{}", res.json.body)
    end)

    it("POST without a body sends Content-Length: 0", function()
      local res = http.post(svc.url .. "/echo")
      assert.equal("0", res.json.headers["content-length"])
    end)

    it("upper-cases the method", function()
      local res = http.request { method = "post", url = svc.url .. "/echo", body = "x" }
      assert.equal("POST", res.json.method)
    end)

    it("passes the charge service's idempotency through", function()
      local h = { ["Idempotency-Key"] = "order-7/charge" }
      local a = http.post(svc.url .. "/charges", { json = { amount = 42 }, headers = h })
      local b = http.post(svc.url .. "/charges", { json = { amount = 42 }, headers = h })
      local c = http.post(svc.url .. "/charges", { json = { amount = 1 } })
      assert.equal(201, a.status)
      assert.equal(200, b.status)
      assert.equal(201, c.status)
      assert.equal(a.json.id, b.json.id)
      assert.not_equal(a.json.id, c.json.id)
      assert.equal(42, b.json.amount)
      assert.matches("POST /charges 201 order%-7/charge\nPOST /charges 200 order%-7/charge\nPOST /charges 201 %-\n",
        svc.log())
    end)
  end)

  describe("responses", function()
    it("passes every status through, with its JSON body", function()
      for _, code in ipairs { 404, 503, 201, 299 } do
        local res = http.get(svc.url .. "/status/" .. code)
        assert.equal(code, res.status)
        assert.same({}, res.json)
      end
      local res = http.post(svc.url .. "/decline", { json = { amount = 1 } })
      assert.equal(402, res.status)
      assert.equal("card declined", res.json.error)
      res = http.get(svc.url .. "/nowhere")
      assert.equal(404, res.status)
      assert.equal("no route", res.json.error)
    end)

    it("an empty body is \"\" with json nil and no json_error", function()
      local res = http.delete(svc.url .. "/status/204")
      assert.equal(204, res.status)
      assert.equal("", res.body)
      assert.is_nil(res.json)
      assert.is_nil(res.json_error)
    end)

    it("a non-JSON body leaves json nil", function()
      local res = http.get(svc.url .. "/raw?type=text/plain&body=%7B%7D")
      assert.equal(200, res.status)
      assert.equal("{}", res.body)
      assert.equal("text/plain", res.headers["content-type"])
      assert.is_nil(res.json)
      assert.is_nil(res.json_error)
    end)

    it("a JSON type with an unparsable body leaves json nil and says why in json_error", function()
      local res = http.get(svc.url .. "/raw?type=application/json&body=%7Boops")
      assert.equal("{oops", res.body)
      assert.is_nil(res.json)
      assert.matches("^json.decode: line 1", res.json_error)
    end)

    it("decodes +json types and ignores content-type parameters", function()
      local res = http.get(svc.url .. "/raw?type=application/problem%2Bjson;%20charset=utf-8&body=%5B1%5D")
      assert.same({ 1 }, res.json)
      res = http.get(svc.url .. "/raw?type=Application/JSON&body=null")
      assert.equal(json.null, res.json)
    end)

    it("joins repeated response headers with \", \" under lowercased names", function()
      local res = http.get(svc.url .. "/raw?body=x")
      assert.equal("1, 2", res.headers["x-twice"])
      assert.equal("1", res.headers["content-length"])
    end)

    it("a body larger than max_body is an error naming the request", function()
      local err = err_of(http.get, svc.url .. "/raw?body=0123456789", { max_body = 9 })
      assert.equal("http GET " .. svc.url .. "/raw?...: response body larger than max_body (9 bytes)", err)
      assert.equal("0123456789", http.get(svc.url .. "/raw?body=0123456789", { max_body = 10 }).body)
    end)
  end)

  describe("transport failures", function()
    it("a timeout raises 'timed out after N ms'", function()
      local err = err_of(http.get, svc.url .. "/slow?ms=2000", { timeout = "200ms" })
      assert.equal("http GET " .. svc.url .. "/slow?...: timed out after 200 ms", err)
      err = err_of(http.get, svc.url .. "/slow?ms=2000", { timeout = 0.25 })
      assert.matches("timed out after 250 ms$", err)
    end)

    it("a connect that times out says so: nothing was sent", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -m 700 '" .. dir .. "'"))
      local bin = os.getenv("LS_BUILD_DIR") .. "/tests/fullqueue"
      assert(os.execute("'" .. bin .. "' '" .. dir .. "/port' 2>/dev/null & echo $! > '" .. dir .. "/pid'"))
      local f = assert(io.open(dir .. "/pid"))
      local pid = assert(tonumber(f:read("*a")))
      f:close()
      finally(function() os.execute("kill " .. pid .. "; rm -rf '" .. dir .. "'") end)
      local port
      for _ = 1, 100 do
        f = io.open(dir .. "/port")
        port = f and tonumber(f:read("*a"))
        if f then f:close() end
        if port then break end
        os.execute("sleep 0.05")
      end
      assert(port, "fullqueue wrote no port")
      local url = "http://127.0.0.1:" .. port .. "/x"
      assert.equal("http GET " .. url .. ": timed out after 300 ms while connecting",
        err_of(http.get, url, { timeout = "300ms" }))
    end)

    it("a refused connection raises the method, URL and reason", function()
      local err = err_of(http.post, "http://127.0.0.1:1/charges", { json = { amount = 1 }, timeout = "2s" })
      assert.matches("^http POST http://127%.0%.0%.1:1/charges: .*[Cc]ouldn't connect", err)
    end)

    it("names the URL without its credentials: no user information, no query, no fragment", function()
      -- A transport error goes into a run's history, lodestoned's log and the API.
      local err = err_of(http.get, "http://alice:pw-s3cret@127.0.0.1:1/v1/x?api_key=k-s3cret#f", { timeout = "2s" })
      assert.matches("^http GET http://127%.0%.0%.1:1/v1/x%?%.%.%.: ", err)
      assert.is_nil(err:find("s3cret", 1, true))
      err = err_of(http.get, "https://user@127.0.0.1:1#frag-s3cret", { timeout = "2s" })
      assert.matches("^http GET https://127%.0%.0%.1:1%?%.%.%.: ", err)
      assert.is_nil(err:find("s3cret", 1, true))
      err = err_of(http.get, "ftp://user:pw-s3cret@host/x")
      assert.equal('http.request: url must start with http:// or https:// (got "ftp...")', err:match("http%.request:.*$"))
    end)

    it("talks to a unix socket when given one", function()
      local res = http.get("http://localhost/echo", { unix_socket = svc.socket })
      assert.equal(200, res.status)
      assert.equal("localhost", res.json.headers.host)
      local err = err_of(http.get, "http://localhost/echo", { unix_socket = svc.dir .. "/none.sock", timeout = "2s" })
      assert.matches("^http GET http://localhost/echo: ", err)
    end)

    it("follows no redirects", function()
      local res = http.get(svc.url .. "/status/302")
      assert.equal(302, res.status)
    end)
  end)

  describe("arguments", function()
    local cases = {
      { "url", {}, "http.request: url must be a string" },
      { "method", { url = "http://x/", method = 1 }, "http.request: method must be a string" },
      { "body and json", { url = "http://x/", body = "a", json = {} }, "http.request: give body or json, not both" },
      { "body", { url = "http://x/", body = {} }, "http.request: body must be a string" },
      { "headers", { url = "http://x/", headers = "a" }, "http.request: headers must be a table" },
      { "header value", { url = "http://x/", headers = { a = {} } }, "http.request: header a: value must be a string" },
      { "unknown field", { url = "http://x/", timeout_ms = 5 },
        "http.request: unknown field 'timeout_ms' (method, url, headers, body, json, timeout, unix_socket, max_body)" },
      { "timeout string", { url = "http://x/", timeout = "soon" },
        'http.request: timeout expected seconds or a duration: duration "soon": expected a number' },
      { "timeout plain seconds in a string", { url = "http://x/", timeout = "10" },
        'http.request: timeout expected seconds or a duration such as "250ms", "10s", "5m" (units ms, s, m, h, d), got "10"' },
      { "timeout zero", { url = "http://x/", timeout = 0 }, "http.request: timeout must be more than 0, got 0" },
      { "json", { url = "http://x/", json = { f = print } }, "^http%.request: json: json%.encode: at %$%.f" },
      { "scheme", { url = "ftp://x/" }, 'http.request: url must start with http:// or https:// (got "ftp...")' },
      { "bad method", { url = "http://x/", method = "GE T" }, 'http.request: method must be an HTTP method such as "POST" (got "GE T")' },
      { "header name", { url = "http://x/", headers = { ["a b"] = "1" } }, "http.request: header name 'a b' is not a valid HTTP token" },
      { "header break", { url = "http://x/", headers = { a = "1\r\nX-Evil: 1" } },
        "http.request: header a: value contains a line break or NUL" },
      { "max_body", { url = "http://x/", max_body = -1 }, "http.request: max_body must be a whole number from 0 to 1099511627776" },
      { "unix_socket", { url = "http://x/", unix_socket = ("s"):rep(108) }, "http.request: unix_socket must be a path of 1 to 107 bytes" },
      { "unix_socket type", { url = "http://x/", unix_socket = 1 }, "http.request: unix_socket must be a string" },
    }
    for _, c in ipairs(cases) do
      it("names the field: " .. c[1], function()
        local err = err_of(http.request, c[2])
        if c[3]:sub(1, 1) == "^" then assert.matches(c[3], err) else assert.equal(c[3], err) end
      end)
    end

    it("httpc.request wants timeout_ms and knows only its fields", function()
      assert.equal("http.request: timeout_ms must be a whole number from 1 to 2147483647",
        err_of(httpc.request, { url = "http://x/" }))
      assert.equal("http.request: timeout_ms must be a whole number from 1 to 2147483647",
        err_of(httpc.request, { url = "http://x/", timeout_ms = 1.5 }))
      assert.matches("^http.request: unknown field 'json'", err_of(httpc.request, { url = "http://x/", timeout_ms = 1, json = 1 }))
      assert.matches("^bad argument #1 to '.-' %(table expected",
        err_of(httpc.request, "http://x/"))
    end)
  end)

  describe("duration_ms", function()
    it("reads seconds and unit strings", function()
      assert.equal(250, http.duration_ms("250ms"))
      assert.equal(10000, http.duration_ms("10s"))
      assert.equal(300000, http.duration_ms("5m"))
      assert.equal(90000, http.duration_ms("1.5m"))
      assert.equal(7200000, http.duration_ms("2h"))
      assert.equal(86400000, http.duration_ms("1d"))
      assert.equal(500, http.duration_ms(".5s"))
      assert.equal(1500, http.duration_ms(1.5))
      assert.equal(1, http.duration_ms(0.0001))
    end)

    it("refuses anything else with a message", function()
      for _, v in ipairs { "10", "5 minutes", "-1s", "1e3ms", "", {}, true } do
        local ms, err = http.duration_ms(v)
        assert.is_nil(ms)
        assert.matches("^expected seconds or a duration", err)
      end
      local ms, err = http.duration_ms(-2)
      assert.is_nil(ms)
      assert.equal("must be more than 0, got -2", err)
    end)
  end)
end)
