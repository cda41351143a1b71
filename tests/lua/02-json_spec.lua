-- SPDX-License-Identifier: MIT
-- lodestone.core.json on Lua 5.4 and LuaJIT: decode/encode round trips,
-- json.null and the array/object markers, exact integers (int64 on 5.4,
-- +-2^53 on LuaJIT), floats, UTF-8 and NUL bytes, positioned decode errors,
-- encode errors naming the path, and nesting limits. Every failure is
-- checked as the whole triple nil, message, code.
local json = require("lodestone").json
local is_jit = os.getenv("LS_LUA_ABI") == "5.1"
local MAX_DEPTH = 2048 -- jansson's JSON_PARSER_MAX_DEPTH, used both ways

local function pack(...) return { n = select("#", ...), ... } end

-- The failure triple, as a packed table for assert.same.
local function fail(msg) return { n = 3, nil, msg, "EINVAL" } end

-- Asserts that fn raises an error whose message contains text (plain).
local function raises(text, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_string(err)
  assert.is_truthy(err:find(text, 1, true), "error was: " .. tostring(err))
end

-- depth arrays nested in each other, the innermost empty: [[[...]]]
local function nested_arrays(depth)
  local root = json.array()
  local t = root
  for _ = 2, depth do
    t[1] = json.array()
    t = t[1]
  end
  return root
end

describe("json.decode", function()
  describe("values", function()
    it("decodes scalars", function()
      assert.same(pack(true), pack(json.decode("true")))
      assert.same(pack(false), pack(json.decode("false")))
      assert.same(pack(1), pack(json.decode("1")))
      assert.same(pack(-17), pack(json.decode("-17")))
      assert.same(pack(1.5), pack(json.decode("1.5")))
      assert.same(pack("s"), pack(json.decode('"s"')))
      assert.same(pack(""), pack(json.decode('""')))
    end)

    it("decodes null as json.null, the same light userdata every time", function()
      assert.equal("userdata", type(json.null))
      assert.is_true(rawequal(json.null, json.decode("null")))
      assert.is_true(rawequal(json.decode("null"), json.decode(" null ")))
      assert.are_not.equal(nil, json.null)
      assert.equal(json.null, json.decode('{"a":null}').a)
      local t = json.decode("[null,1,null]")
      assert.equal(3, #t)
      assert.equal(json.null, t[1])
      assert.equal(json.null, t[3])
    end)

    it("decodes arrays to sequences marked with json.array_mt", function()
      local t = json.decode('[1,"two",[3],{"four":4}]')
      assert.same({ 1, "two", { 3 }, { four = 4 } }, t)
      assert.equal(json.array_mt, getmetatable(t))
      assert.equal(json.array_mt, getmetatable(t[3]))
      assert.is_nil(getmetatable(t[4]))
    end)

    it("decodes objects to plain tables with string keys", function()
      local t = json.decode('{"a":1,"b":{"c":[true]},"1":"one"}')
      assert.same({ a = 1, b = { c = { true } }, ["1"] = "one" }, t)
      assert.is_nil(getmetatable(t))
      assert.is_nil(getmetatable(t.b))
      assert.is_nil(t[1])
    end)

    it("tells the empty array from the empty object", function()
      local a, o = json.decode("[]"), json.decode("{}")
      assert.is_nil(next(a))
      assert.is_nil(next(o))
      assert.equal(json.array_mt, getmetatable(a))
      assert.is_nil(getmetatable(o))
    end)

    it("keeps NUL bytes and decodes \\u escapes to UTF-8", function()
      local s = json.decode('"a\\u0000b"')
      assert.equal(3, #s)
      assert.equal("a\0b", s)
      assert.equal("\195\169", json.decode('"\\u00e9"'))
      assert.equal("\240\159\152\128", json.decode('"\\ud83d\\ude00"'))
      assert.equal("é😀", json.decode('"é😀"'))
      assert.equal('q"b\\s/\n\t', json.decode('"q\\"b\\\\s\\/\\n\\t"'))
    end)
  end)

  describe("numbers", function()
    it("keeps integers exact up to 2^53 on every runtime", function()
      local n = json.decode("9007199254740992")
      assert.equal(2 ^ 53, n)
      assert.equal(-(2 ^ 53), json.decode("-9007199254740992"))
      assert.equal(2 ^ 53 - 1, json.decode("9007199254740991"))
      if not is_jit then
        assert.equal("integer", math.type(n))
      end
    end)

    if is_jit then
      it("refuses integers beyond +-2^53 on LuaJIT rather than rounding them", function()
        local why = " cannot be represented exactly (this Lua has no integers; the limit is +-2^53)"
        assert.same(fail("json.decode: at $: integer 9007199254740993" .. why),
                    pack(json.decode("9007199254740993")))
        assert.same(fail("json.decode: at $: integer -9007199254740993" .. why),
                    pack(json.decode("-9007199254740993")))
        assert.same(fail("json.decode: at $.id[2]: integer 9223372036854775807" .. why),
                    pack(json.decode('{"id":[1,9223372036854775807]}')))
      end)

      it("still decodes big numbers written as reals", function()
        assert.equal(9007199254740994, json.decode("9007199254740994.0"))
        assert.equal(1e20, json.decode("1e20"))
      end)
    else
      it("keeps the whole int64 range exact on Lua 5.4", function()
        assert.equal(9007199254740993, json.decode("9007199254740993"))
        assert.equal(math.maxinteger, json.decode("9223372036854775807"))
        assert.equal(math.mininteger, json.decode("-9223372036854775808"))
        assert.equal("integer", math.type(json.decode("9223372036854775807")))
      end)

      it("decodes reals as floats", function()
        assert.equal("float", math.type(json.decode("1.0")))
        assert.equal("float", math.type(json.decode("1e3")))
      end)
    end

    it("rejects integers beyond int64 with a position", function()
      assert.same(fail("json.decode: line 1 column 19 (byte 19): too big integer near '9223372036854775808'"),
                  pack(json.decode("9223372036854775808")))
      assert.same(fail("json.decode: line 1 column 20 (byte 20): too big negative integer near '-9223372036854775809'"),
                  pack(json.decode("-9223372036854775809")))
    end)

    it("decodes reals", function()
      assert.equal(0.1, json.decode("0.1"))
      assert.equal(1000, json.decode("1e3"))
      assert.equal(-2.25, json.decode("-2.25"))
      assert.equal(-math.huge, 1 / json.decode("-0.0"))
      assert.same(fail("json.decode: line 1 column 5 (byte 5): real number overflow near '1e400'"),
                  pack(json.decode("1e400")))
    end)
  end)

  describe("bad JSON", function()
    local cases = {
      { "[1,2", "line 1 column 4 (byte 4): ']' expected near end of file" },
      { "[1,]", "line 1 column 4 (byte 4): unexpected token near ']'" },
      { '{\n  "a": 1,\n  "b": }', "line 3 column 8 (byte 20): unexpected token near '}'" },
      { "", "line 1 column 0 (byte 0): unexpected token near end of file" },
      { "{} x", "line 1 column 4 (byte 4): end of file expected near 'x'" },
      { "nul", "line 1 column 3 (byte 3): invalid token near 'nul'" },
      { "{'a':1}", "line 1 column 2 (byte 2): string or '}' expected near '''" },
      { '{"a":1,"a":2}', "line 1 column 10 (byte 10): duplicate object key near '\"a\"'" },
      { '{"a\\u0000b":1}',
        "line 1 column 11 (byte 11): NUL byte in object key not supported near '\"a\\u0000b\"'" },
      { '"\255"', "line 1 column 1 (byte 1): unable to decode byte 0xff near '\"'" },
      { '"\\ud800"', "line 1 column 8 (byte 8): invalid Unicode '\\uD800' near '\"\\ud800\"'" },
    }
    for _, case in ipairs(cases) do
      it(("reports %q with its position"):format(case[1]), function()
        assert.same(fail("json.decode: " .. case[2]), pack(json.decode(case[1])))
      end)
    end
  end)

  describe("arguments", function()
    it("raise on anything but a string, numbers included", function()
      raises("bad argument #1 to 'decode' (string expected, got nil)", function() json.decode(nil) end)
      raises("bad argument #1 to 'decode' (string expected, got no value)", function() json.decode() end)
      raises("bad argument #1 to 'decode' (string expected, got number)", function() json.decode(12) end)
      raises("bad argument #1 to 'decode' (string expected, got table)", function() json.decode({}) end)
    end)
  end)

  describe("nesting", function()
    it("decodes 2048 levels", function()
      local t = json.decode(("["):rep(MAX_DEPTH) .. ("]"):rep(MAX_DEPTH))
      local depth = 0
      while t do
        depth = depth + 1
        t = t[1]
      end
      assert.equal(MAX_DEPTH, depth)
    end)

    it("rejects 2049 and 10000 levels cleanly", function()
      local msg = "json.decode: line 1 column 2049 (byte 2049): maximum parsing depth reached near '['"
      assert.same(fail(msg), pack(json.decode(("["):rep(MAX_DEPTH + 1) .. ("]"):rep(MAX_DEPTH + 1))))
      assert.same(fail(msg), pack(json.decode(("["):rep(10000) .. ("]"):rep(10000))))
      assert.same(fail("json.decode: line 1 column 10241 (byte 10241): maximum parsing depth reached near '{'"),
                  pack(json.decode(('{"a":'):rep(10000))))
    end)
  end)
end)

describe("json.encode", function()
  describe("values", function()
    it("encodes scalars", function()
      assert.same(pack("true"), pack(json.encode(true)))
      assert.equal("false", json.encode(false))
      assert.equal("1", json.encode(1))
      assert.equal("-17", json.encode(-17))
      assert.equal("1.5", json.encode(1.5))
      assert.equal('"s"', json.encode("s"))
      assert.equal('""', json.encode(""))
    end)

    it("encodes json.null and a top-level nil as null", function()
      assert.equal("null", json.encode(json.null))
      assert.equal("null", json.encode(nil))
      assert.equal("[1,null,3]", json.encode({ 1, json.null, 3 }))
      assert.equal('{"a":null}', json.encode({ a = json.null }))
    end)

    it("escapes strings, keeps UTF-8 as is and NUL bytes as \\u0000", function()
      assert.equal('"q\\"b\\\\s/\\n\\t\\u0001"', json.encode('q"b\\s/\n\t\1'))
      assert.equal('"é😀"', json.encode("é😀"))
      assert.equal('"a\\u0000b"', json.encode("a\0b"))
    end)

    it("sorts object keys by bytes", function()
      assert.equal('{"a":2,"b":1,"c":{"y":2,"z":1}}', json.encode({ b = 1, a = 2, c = { z = 1, y = 2 } }))
      assert.equal('{"B":1,"a":2,"aa":3,"b":4}', json.encode({ b = 4, aa = 3, a = 2, B = 1 }))
      local t, want = {}, {}
      for i = 26, 1, -1 do t[string.char(96 + i)] = i end
      for i = 1, 26 do want[#want + 1] = ('"%s":%d'):format(string.char(96 + i), i) end
      for _ = 1, 3 do assert.equal("{" .. table.concat(want, ",") .. "}", json.encode(t)) end
    end)

    it("encodes sequences as arrays and string-keyed tables as objects", function()
      assert.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
      assert.equal('["a",[true],{"k":"v"}]', json.encode({ "a", { true }, { k = "v" } }))
      assert.equal('{"1":"one"}', json.encode({ ["1"] = "one" }))
    end)

    it("encodes an empty plain table as {} and a marked one as []", function()
      assert.equal("{}", json.encode({}))
      assert.equal("[]", json.encode(json.array({})))
      assert.equal("[]", json.encode(json.array()))
      assert.equal("{}", json.encode(json.object({})))
      assert.equal("{}", json.encode(json.object()))
      assert.equal('{"a":[],"b":{}}', json.encode({ a = json.array(), b = {} }))
    end)

    it("ignores metatables other than the markers", function()
      local mt = { __index = function() return 1 end, __len = function() return 5 end }
      assert.equal('{"a":1}', json.encode(setmetatable({ a = 1 }, mt)))
      assert.equal("{}", json.encode(setmetatable({}, mt)))
      assert.equal("[1]", json.encode(setmetatable({ 1 }, mt)))
    end)

    it("encodes a table reached twice (not a cycle) twice", function()
      local x = { 1 }
      assert.equal("[[1],[1]]", json.encode({ x, x }))
      assert.equal('{"a":[1],"b":[1]}', json.encode({ a = x, b = x }))
    end)
  end)

  describe("json.array and json.object", function()
    it("set the marker on the table and return it", function()
      local t = {}
      assert.same(pack(t), pack(json.array(t)))
      assert.equal(json.array_mt, getmetatable(t))
      assert.equal(t, json.object(t))
      assert.equal(json.object_mt, getmetatable(t))
      assert.equal(json.array_mt, getmetatable(json.array()))
      assert.equal(json.array_mt, getmetatable(json.array(nil)))
      assert.are_not.equal(json.array(), json.array())
    end)

    it("raise on a non-table", function()
      raises("bad argument #1 to 'array' (table expected, got number)", function() json.array(42) end)
      raises("bad argument #1 to 'object' (table expected, got string)", function() json.object("x") end)
    end)

    it("make encode check that the keys fit the marker", function()
      assert.same(fail("json.encode: at $: table marked as array has string keys"),
                  pack(json.encode(json.array({ 1, a = 2 }))))
      assert.same(fail("json.encode: at $.o: table marked as object has array index keys"),
                  pack(json.encode({ o = json.object({ 1 }) })))
    end)
  end)

  describe("numbers", function()
    it("encodes integral numbers up to 2^53 as integers on every runtime", function()
      assert.equal("9007199254740992", json.encode(2 ^ 53))
      assert.equal("-9007199254740992", json.encode(-(2 ^ 53)))
      assert.equal("2", json.encode(2.0))
      assert.equal("[1,2,3]", json.encode({ 1.0, 2.0, 3.0 }))
    end)

    if is_jit then
      it("encodes integral doubles beyond 2^53 as reals on LuaJIT", function()
        assert.equal("9007199254740994.0", json.encode(2 ^ 53 + 2))
        assert.equal(2 ^ 53 + 2, json.decode(json.encode(2 ^ 53 + 2)))
      end)
    else
      it("keeps the whole int64 range exact on Lua 5.4", function()
        assert.equal("9007199254740993", json.encode(9007199254740993))
        assert.equal("9223372036854775807", json.encode(math.maxinteger))
        assert.equal("-9223372036854775808", json.encode(math.mininteger))
        assert.equal(math.maxinteger, json.decode(json.encode(math.maxinteger)))
      end)

      it("encodes floats beyond 2^53 as reals on Lua 5.4", function()
        assert.equal("9.2233720368547758e18", json.encode(2.0 ^ 63))
        assert.equal("float", math.type(json.decode(json.encode(2.0 ^ 63))))
      end)
    end

    it("encodes reals that decode to the same number", function()
      assert.equal("1.5", json.encode(1.5))
      assert.equal("-2.25", json.encode(-2.25))
      assert.equal("1e20", json.encode(1e20))
      assert.equal("-0.0", json.encode(-0.0))
      for _, x in ipairs({ 0.1, 1 / 3, math.pi, 1e300, -1e-300, 4.9406564584124654e-324, 2 ^ 60, 2 ^ 53 + 2 }) do
        local s = json.encode(x)
        assert.equal(x, json.decode(s), s)
      end
    end)

    it("refuses NaN and infinities", function()
      assert.same(fail("json.encode: at $: cannot encode NaN"), pack(json.encode(0 / 0)))
      assert.same(fail("json.encode: at $: cannot encode inf"), pack(json.encode(math.huge)))
      assert.same(fail("json.encode: at $: cannot encode -inf"), pack(json.encode(-math.huge)))
      assert.same(fail("json.encode: at $.a[2]: cannot encode NaN"), pack(json.encode({ a = { 1, 0 / 0 } })))
    end)
  end)

  describe("strings", function()
    it("must be valid UTF-8, and the error names the path", function()
      local doc = { items = { { name = "ok" }, { name = "é" }, { name = "bad\255" } } }
      assert.same(fail("json.encode: at $.items[3].name: string is not valid UTF-8"), pack(json.encode(doc)))
      assert.same(fail("json.encode: at $: string is not valid UTF-8"), pack(json.encode("\192\175")))
      assert.same(fail("json.encode: at $[1]: string is not valid UTF-8"), pack(json.encode({ "\237\160\128" })))
    end)

    it("as object keys must be valid UTF-8 without NUL bytes", function()
      assert.same(fail('json.encode: at $["\\xFF"]: object key is not valid UTF-8'),
                  pack(json.encode({ ["\255"] = 1 })))
      assert.same(fail('json.encode: at $["a\\x00b"]: object key contains a NUL byte'),
                  pack(json.encode({ ["a\0b"] = 1 })))
    end)
  end)

  describe("values JSON cannot hold", function()
    it("are refused with their path", function()
      assert.same(fail("json.encode: at $: cannot encode a function"), pack(json.encode(print)))
      assert.same(fail("json.encode: at $.handler: cannot encode a function"),
                  pack(json.encode({ handler = print })))
      assert.same(fail("json.encode: at $[2]: cannot encode a userdata"), pack(json.encode({ 1, io.stdout })))
      assert.same(fail("json.encode: at $: cannot encode a thread"), pack(json.encode(coroutine.create(print))))
    end)

    it("raise only when the argument is missing", function()
      raises("bad argument #1 to 'encode' (value expected)", function() json.encode() end)
    end)
  end)

  describe("tables JSON cannot hold", function()
    it("sparse arrays", function()
      assert.same(fail("json.encode: at $: sparse array: 1 of indices 1..3 missing (use json.null for holes)"),
                  pack(json.encode({ 1, nil, 3 })))
      assert.same(fail("json.encode: at $.a: sparse array: 1 of indices 1..2 missing (use json.null for holes)"),
                  pack(json.encode({ a = { [2] = true } })))
      assert.same(fail("json.encode: at $: sparse array: 2 of indices 1..3 missing (use json.null for holes)"),
                  pack(json.encode(json.array({ [3] = 1 }))))
    end)

    it("mixed keys", function()
      assert.same(fail("json.encode: at $: table mixes string keys and array indices"),
                  pack(json.encode({ 1, 2, a = 3 })))
    end)

    it("keys that are neither strings nor array indices", function()
      local why = " is neither a string nor an array index"
      assert.same(fail("json.encode: at $: table key true" .. why), pack(json.encode({ [true] = 1 })))
      assert.same(fail("json.encode: at $: table key 1.5" .. why), pack(json.encode({ [1.5] = 1 })))
      assert.same(fail("json.encode: at $: table key 0" .. why), pack(json.encode({ [0] = 1, 1 })))
      assert.same(fail("json.encode: at $: table key -1" .. why), pack(json.encode({ [-1] = 1 })))
      assert.same(fail("json.encode: at $.a: table key of type table" .. why),
                  pack(json.encode({ a = { [{}] = 1 } })))
    end)

    it("cycles", function()
      local t = {}
      t.self = t
      assert.same(fail("json.encode: at $.self: cycle: a table contains itself"), pack(json.encode(t)))
      local a, b = {}, {}
      a[1], b[1] = b, a
      assert.same(fail("json.encode: at $[1][1]: cycle: a table contains itself"), pack(json.encode(a)))
    end)
  end)

  describe("paths", function()
    it("quote keys that are not identifiers and cut long ones", function()
      assert.same(fail('json.encode: at $["a b"]["q\\"x"]._k9: cannot encode a function'),
                  pack(json.encode({ ["a b"] = { ['q"x'] = { _k9 = print } } })))
      local long = ("k"):rep(40)
      assert.same(fail('json.encode: at $["' .. ("k"):rep(32) .. '..."]: cannot encode a function'),
                  pack(json.encode({ [long] = print })))
    end)

    it("keep their end when they are long", function()
      local root = {}
      local t = root
      for _ = 1, 60 do
        t.level = {}
        t = t.level
      end
      t.bad = print
      local _, msg = json.encode(root)
      assert.equal("json.encode: at $..." .. (".level"):rep(16) .. ".bad: cannot encode a function", msg)
    end)
  end)

  describe("nesting", function()
    it("encodes 2048 levels", function()
      local s = json.encode(nested_arrays(MAX_DEPTH))
      assert.equal(("["):rep(MAX_DEPTH) .. ("]"):rep(MAX_DEPTH), s)
      assert.equal(s, json.encode(json.decode(s)))
    end)

    it("refuses 2049 and 10000 levels cleanly", function()
      local path = "$..." .. ("[1]"):rep(33)
      local msg = "json.encode: at " .. path .. ": nesting deeper than 2048 levels"
      assert.same(fail(msg), pack(json.encode(nested_arrays(MAX_DEPTH + 1))))
      assert.same(fail(msg), pack(json.encode(nested_arrays(10000))))
      local root = {}
      local t = root
      for _ = 1, 10000 do
        t.a = {}
        t = t.a
      end
      assert.same(fail("json.encode: at $..." .. (".a"):rep(50) .. ": nesting deeper than 2048 levels"),
                  pack(json.encode(root)))
    end)
  end)
end)

describe("round trips", function()
  it("reproduce canonical text exactly", function()
    local texts = {
      "null", "true", "[]", "{}", "[[]]", '[{}]', '{"a":[]}', '{"a":{}}', "[null]",
      '{"a":[1,2.5,"x",null,true,false,{},[]],"b":{"c":{"d":[[]]}},"e":"\\u0000"}',
      '[9007199254740992,-9007199254740992,0.5,-0.0,1e-300]',
      '{"":"empty key","\\"":"quote","é":"\\u001F"}',
    }
    for _, text in ipairs(texts) do
      assert.equal(text, json.encode(json.decode(text)))
    end
  end)

  it("keep values, null and the array/object distinction", function()
    local v = { list = json.array(), obj = {}, n = json.null, s = "a\0b", seq = { 1, { 2 }, { x = 3 } } }
    local back = json.decode(json.encode(v))
    assert.same(v, back)
    assert.equal(json.array_mt, getmetatable(back.list))
    assert.is_nil(getmetatable(back.obj))
    assert.equal(json.null, back.n)
    assert.equal(json.array_mt, getmetatable(back.seq))
  end)

  if is_jit then
    -- LuaJIT propagates errors raised by __gc finalizers, and its collector
    -- runs them during allocations: here, in the middle of a conversion. The
    -- half-converted tree is owned by a userdata that frees it (ASan with
    -- detect_leaks=1 reports 30 MB leaked here without that).
    it("recover from a Lua error raised in the middle of a call", function()
      local doc = "[" .. ('[1,2,3,{"a":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}],'):rep(20000) .. "0]"
      local value = json.decode(doc)
      local armed = false
      local function raised_inside(fn, arg)
        for _ = 1, 50 do
          for _ = 1, 100 do
            getmetatable(newproxy(true)).__gc = function() if armed then error("boom in __gc") end end
          end
          armed = true
          local ok, err = pcall(fn, arg)
          armed = false
          if not ok then return err end
        end
        return "never raised"
      end
      assert.matches("boom in __gc", raised_inside(json.decode, doc))
      collectgarbage()
      assert.equal(20001, #json.decode(doc))
      assert.equal(#doc, #json.encode(value))
    end)
  end

  it("survive many calls, including failing ones, with collections in between", function()
    local doc = { a = { 1, 2, 3 }, b = { c = "d" } }
    for i = 1, 2000 do
      assert.equal('{"a":[1,2,3],"b":{"c":"d"}}', json.encode(doc))
      assert.is_nil((json.encode({ 1, print })))
      assert.is_nil((json.decode("[1,2")))
      if not is_jit then
        assert.equal(3, #json.decode("[1,2,3]"))
      else
        assert.is_nil((json.decode("[1,9007199254740993]")))
      end
      if i % 500 == 0 then collectgarbage() end
    end
  end)
end)
