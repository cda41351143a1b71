-- SPDX-License-Identifier: MIT
-- README.md's reference tables against the code, in both directions: every
-- field of the Policy DSL and Workflow DSL tables is accepted by
-- lodestone.policy (the C engine) and lodestone.workflow, and every field
-- they accept is listed; every ctx method and field, step-context field,
-- child handle and saga method in the Workflow DSL tables exists on the
-- objects the driver builds, and every public one is listed; every command
-- of the CLI table is in `lodestone --help` and every command there is in
-- the table; the same for lodestoned's options; every route lodestoned's
-- router names is in the HTTP API table (tests/e2e/readme_api.sh checks
-- the other way against a real daemon).
local policy = require("lodestone.policy")
local workflow = require("lodestone.workflow")

local build = os.getenv("LS_BUILD_DIR")

local files = require("files")
local read = files.read

local README = read("README.md")

-- The lines of the section under heading `title` (any level), up to the
-- next heading of the same or a higher level.
local function section(title)
  local out, level = {}, nil
  for line in (README .. "\n"):gmatch("([^\n]*)\n") do
    local hashes, text = line:match("^(#+) (.*)$")
    if level then
      if hashes and #hashes <= level then break end
      out[#out + 1] = line
    elseif hashes and text == title then
      level = #hashes
    end
  end
  assert(level, "README.md has no section " .. title)
  return out
end

-- Table rows of a section: a list of rows, each a list of cells (header
-- and separator rows left out; "\|" is a pipe inside a cell).
local function rows(lines)
  local out, in_table = {}, false
  for _, line in ipairs(lines) do
    if line:match("^|") then
      local cells = {}
      local s = line:gsub("\\|", "\1"):sub(2)
      for cell in s:gmatch("([^|]*)|") do
        cells[#cells + 1] = (cell:gsub("\1", "|"):match("^%s*(.-)%s*$"))
      end
      if not in_table then
        in_table = true -- the header row
      elseif not cells[1]:match("^%-%-%-") then
        out[#out + 1] = cells
      end
    else
      in_table = false
    end
  end
  return out
end

-- The backticked plain names of a cell: `name`, `rate_limit` ...
local function names(cell)
  local out = {}
  for n in cell:gmatch("`([%a_][%w_]*)`") do out[#out + 1] = n end
  return out
end

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function sorted(s)
  local out = {}
  for k in pairs(s) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Names in `a` that are not in `b`, sorted (a and b are sets).
local function missing(a, b)
  local out = {}
  for k in pairs(a) do
    if not b[k] then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

-- The names in "(known: a, b, c)" or "(a, b, c)" at the end of a message.
local function listed_in(msg)
  local inner = msg:match("%(known: ([^)]*)%)") or msg:match("%(([%w_, ]+)%)$")
  assert(inner, "no list of fields in: " .. msg)
  local out = {}
  for n in inner:gmatch("[%w_]+") do out[n] = true end
  return out
end

-- The row of a table whose first cell is `first`.
local function row(tbl, first)
  for _, r in ipairs(tbl) do
    if r[1] == first then return r end
  end
  error("README.md: no table row " .. first)
end

-- ---------------------------------------------------------------------
-- Policy DSL

local function compile_msg(decl)
  local p, msg = policy.compile(policy.define(decl), { no_audit = true, private_rl = true })
  if p then return nil end
  return msg
end

-- Each README row: a declaration with field k = v in the right place.
local POLICY_ROWS = {
  ["`policy.define{}`"] = function(k, v)
    local d = { name = "t" }
    if k ~= "name" then d[k] = v end
    return d
  end,
  ["`policy.jwt{}`"] = function(k, v) return { name = "t", authenticate = { policy.jwt { [k] = v } } } end,
  ["`policy.api_key{}`"] = function(k, v) return { name = "t", authenticate = { policy.api_key { [k] = v } } } end,
  ["`policy.basic{}`"] = function(k, v) return { name = "t", authenticate = { policy.basic { [k] = v } } } end,
  ["`policy.webhook{}`"] = function(k, v) return { name = "t", authenticate = { policy.webhook { [k] = v } } } end,
  ["a rule (`rules = { {...}, ... }`)"] = function(k, v) return { name = "t", rules = { { [k] = v } } } end,
  ["`rate_limit` (one or a list)"] = function(k, v) return { name = "t", rate_limit = { [k] = v } } end,
  ["`ip`"] = function(k, v) return { name = "t", ip = { [k] = v } } end,
  ["`audit`"] = function(k, v) return { name = "t", audit = { [k] = v } } end,
  ["`assertion`"] = function(k, v) return { name = "t", assertion = { [k] = v } } end,
}

-- The names in a C array `static const char *const NAME[] = { ... }`.
local function c_array(file, name)
  local body = read(file):match("static const char %*const " .. name .. "%[%] = (%b{})")
  assert(body, file .. ": no array " .. name)
  local out = {}
  for n in body:gmatch('"([%w_]+)"') do out[n] = true end
  return out
end

-- What the engine accepts for each row: from its messages where they list
-- the fields, else from its source (an authenticator's own fields and
-- those all have). `type` is set by the constructors.
local function policy_known(first)
  local build_decl = POLICY_ROWS[first]
  local msg = compile_msg(build_decl("zz_made_up", 1))
  if first == "`policy.define{}`" or first:match("^`rate_limit`") or first == "`ip`"
    or first == "`audit`" or first == "`assertion`" then
    return listed_in(msg)
  end
  local known
  if first == "`policy.jwt{}`" then known = c_array("native/policy/authn.c", "jwt_fields")
  elseif first == "`policy.api_key{}`" then known = c_array("native/policy/authn.c", "apikey_fields")
  elseif first == "`policy.basic{}`" then known = c_array("native/policy/authn.c", "basic_fields")
  elseif first == "`policy.webhook{}`" then known = c_array("native/policy/authn.c", "hook_fields")
  else known = c_array("native/policy/rules.c", "fields") end
  if first:match("^`policy%.") then -- the fields every authenticator has
    for n in pairs(c_array("native/policy/authn.c", "common_fields")) do known[n] = true end
  end
  known.type = nil
  return known
end

describe("README: Policy DSL", function()
  local tbl = rows(section("Policy DSL"))

  it("has a row for each declaration the engine takes", function()
    local firsts = {}
    for _, r in ipairs(tbl) do firsts[r[1]] = true end
    assert.same(sorted(set((function()
      local l = {}
      for k in pairs(POLICY_ROWS) do l[#l + 1] = k end
      return l
    end)())), sorted(firsts))
  end)

  for first, build_decl in pairs(POLICY_ROWS) do
    describe(first, function()
      it("refuses a made-up field, naming it", function()
        local msg = compile_msg(build_decl("zz_made_up", 1))
        assert.is_string(msg)
        assert.matches("unknown field 'zz_made_up'", msg, 1, true)
      end)

      it("accepts every field the README lists", function()
        local listed = names(row(tbl, first)[2])
        assert.is_true(#listed > 0)
        for _, f in ipairs(listed) do
          local msg = compile_msg(build_decl(f, true)) or ""
          assert.is_nil(msg:find("unknown field '" .. f .. "'", 1, true), first .. " " .. f .. ": " .. msg)
        end
      end)

      it("lists every field the engine accepts", function()
        local listed = set(names(row(tbl, first)[2]))
        local known = policy_known(first)
        assert.same({}, missing(known, listed))
        assert.same({}, missing(listed, known))
      end)
    end)
  end
end)

-- ---------------------------------------------------------------------
-- Workflow DSL

local function noop() end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- A stand-in for lodestoned's lodestone.flowrt: every step runs, every
-- wait suspends, a child start returns an id.
local function fake_rt()
  local rt = { INFO = 1 }
  rt.name = function() return "run-1" end
  rt.input = function() return "null" end
  rt.step = function(_, name) return "run", 1, "key-" .. name end
  rt.step_done = noop
  rt.step_failed = function(_, name, attempt, msg) return "failed", name .. " " .. attempt .. ": " .. msg end
  rt.sleep = function() return "wait" end
  rt.wait_signal = function() return "wait" end
  rt.side_effect = function(_, _, value) return value end
  rt.set_status = noop
  rt.branch = noop
  rt.child_start = function(_, _, _, id) return id or "child-1" end
  rt.child_wait = function() return "wait" end
  rt.cancelled = noop
  rt.complete = function(_, text) rt.output = text end
  rt.fail = function(_, msg) rt.error = msg end
  rt.abandon = noop
  rt.parked = function() return false end
  rt.check = noop
  rt.interrupted = function() return false end
  rt.deadline = noop
  rt.deadline_left = function() return nil end
  rt.wall_ms = function() return 1700000000000 end
  rt.random = function() return 0.25 end
  rt.uuid = function() return "00000000-0000-4000-8000-000000000000" end
  rt.secret = function() return "s" end
  rt.log = noop
  return rt
end

-- Runs `run` in the driver (as lodestoned does); returns the fake rt.
local function activate(run)
  local rt = fake_rt()
  package.loaded["lodestone.flowrt"] = rt
  local ok, e = pcall(workflow._activate, workflow.define { name = "w", run = run }, {})
  package.loaded["lodestone.flowrt"] = nil
  assert(ok, e)
  return rt
end

-- The public names of an object: its own keys and its metatable's
-- __index methods, without those starting with "_".
local function public(obj)
  local out = {}
  for k in pairs(obj) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then out[k] = true end
  end
  local mt = getmetatable(obj)
  if mt and type(mt.__index) == "table" then
    for k, v in pairs(mt.__index) do
      if type(v) == "function" and k:sub(1, 1) ~= "_" then out[k] = true end
    end
  end
  return out
end

-- The objects a run sees: ctx, a step's s, a child handle, a saga.
local function captured()
  local got = {}
  activate(function(ctx)
    got.ctx = ctx
    ctx:step("a", function(s) got.s = s end)
    got.handle = ctx:start_child("other", nil, { id = "c-1" })
    got.saga = ctx:saga()
    return 1
  end)
  return got
end

-- The message a run's driver reports when `run` raises.
local function run_error(run)
  return activate(run).error or ""
end

describe("README: Workflow DSL", function()
  local lines = section("Workflow DSL")
  local tbl = rows(lines)
  local text = table.concat(lines, "\n")

  -- first cell -> the names the code accepts there, and a function that
  -- tries one field (returns the error message, "" when none)
  local FIELD_ROWS = {
    ["`workflow.define{}`"] = {
      known = function() return listed_in(err_of(workflow.define, { name = "w", run = noop, zz_made_up = 1 })) end,
      try = function(f)
        local spec = { name = "w", run = noop }
        if f ~= "name" and f ~= "run" then spec[f] = true end
        local ok, e = pcall(workflow.define, spec)
        return ok and "" or tostring(e)
      end,
    },
    ["`retry`"] = {
      known = function() return listed_in(err_of(workflow.define, { name = "w", run = noop, retry = { zz_made_up = 1 } })) end,
      try = function(f)
        local ok, e = pcall(workflow.define, { name = "w", run = noop, retry = { [f] = true } })
        return ok and "" or tostring(e)
      end,
    },
    ["`schedule`"] = {
      known = function()
        return listed_in(err_of(workflow.define, { name = "w", run = noop, schedule = { zz_made_up = 1 } }))
      end,
      try = function(f)
        local ok, e = pcall(workflow.define, { name = "w", run = noop, schedule = { [f] = true } })
        return ok and "" or tostring(e)
      end,
    },
    ["`concurrency`"] = {
      known = function()
        return listed_in(err_of(workflow.define, { name = "w", run = noop, concurrency = { zz_made_up = 1 } }))
      end,
      try = function(f)
        local ok, e = pcall(workflow.define, { name = "w", run = noop, concurrency = { [f] = true } })
        return ok and "" or tostring(e)
      end,
    },
    ["`ctx:step` options"] = {
      known = function()
        return listed_in(run_error(function(ctx) ctx:step("a", noop, { zz_made_up = 1 }) end))
      end,
      try = function(f) return run_error(function(ctx) ctx:step("a", noop, { [f] = true }) end) end,
    },
    ["`ctx:wait_signal` options"] = {
      known = function()
        return listed_in(run_error(function(ctx) ctx:wait_signal("go", { zz_made_up = 1 }) end))
      end,
      try = function(f) return run_error(function(ctx) ctx:wait_signal("go", { [f] = true }) end) end,
    },
    ["`ctx:start_child` options"] = {
      known = function()
        return listed_in(run_error(function(ctx) ctx:start_child("x", nil, { zz_made_up = 1 }) end))
      end,
      try = function(f) return run_error(function(ctx) ctx:start_child("x", nil, { [f] = true }) end) end,
    },
  }

  for first, spec in pairs(FIELD_ROWS) do
    describe(first, function()
      it("refuses a made-up field, naming it", function()
        local msg = spec.try("zz_made_up")
        assert.matches("zz_made_up", msg, 1, true)
        assert.matches("unknown", msg, 1, true)
      end)

      it("accepts every field the README lists", function()
        local listed = names(row(tbl, first)[2])
        assert.is_true(#listed > 0)
        for _, f in ipairs(listed) do
          local msg = spec.try(f)
          assert.is_nil(msg:find("unknown", 1, true), first .. " " .. f .. ": " .. msg)
        end
      end)

      it("lists every field the code accepts", function()
        local listed = set(names(row(tbl, first)[2]))
        local known = spec.known()
        assert.same({}, missing(known, listed))
        assert.same({}, missing(listed, known))
      end)
    end)
  end

  -- The README's names for object `prefix` ("ctx", "s", "handle",
  -- "saga"): `prefix:name(` and `prefix.name` anywhere in the section.
  local function mentioned(prefix)
    local out = {}
    for n in text:gmatch(prefix .. "[:.]([%a_][%w_]*)") do out[n] = true end
    return out
  end

  it("lists exactly the ctx methods and fields of the driver's ctx", function()
    local got = captured()
    local listed = mentioned("`ctx")
    assert.is_true(listed.step and listed.sleep and listed.id)
    assert.same({}, missing(listed, public(got.ctx)))
    assert.same({}, missing(public(got.ctx), listed))
  end)

  it("lists exactly the step context's fields and methods", function()
    local got = captured()
    local listed = mentioned("`s")
    assert.same({}, missing(listed, public(got.s)))
    assert.same({}, missing(public(got.s), listed))
    -- s.http's functions
    local http_cell = row(tbl, "`s.http`")[2]
    local fns = {}
    for n in http_cell:gmatch("`(%l+)[{`]") do fns[n] = true end
    assert.same({}, missing(fns, public(got.s.http)))
    assert.same({}, missing(public(got.s.http), fns))
  end)

  it("lists exactly a child handle's and a saga's names", function()
    local got = captured()
    local h, sg = mentioned("`?handle"), mentioned("`?saga")
    assert.same({}, missing(h, public(got.handle)))
    assert.same({}, missing(public(got.handle), h))
    assert.same({}, missing(sg, public(got.saga)))
    assert.same({}, missing(public(got.saga), sg))
  end)

  it("names every public function of lodestone.workflow, and only those", function()
    local listed = mentioned("`workflow")
    local fns = {}
    for k, v in pairs(workflow) do
      if type(v) == "function" and k:sub(1, 1) ~= "_" then fns[k] = true end
    end
    assert.same({}, missing(listed, fns))
    assert.same({}, missing(fns, listed))
  end)
end)

-- ---------------------------------------------------------------------
-- CLI and lodestoned's options

local function run_cmd(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

-- Leading lowercase words of a command text: "policy check FILE" ->
-- "policy check".
local function command_words(s)
  local words = {}
  for w in s:gmatch("%S+") do
    if not w:match("^[a-z][a-z-]*$") then break end
    words[#words + 1] = w
  end
  return table.concat(words, " ")
end

-- The commands `lodestone --help` names: lines with two leading spaces and
-- a lowercase word; "a x | y" alternatives share a's first word.
local function help_commands(help)
  local out = {}
  for line in help:gmatch("[^\n]+") do
    local body = line:match("^  ([a-z].*)$")
    if body then
      body = body:match("^(.-)%s%s%s") or body -- drop the description column
      local first
      for chunk in (body .. " |"):gmatch("%s*(.-)%s*|") do
        local c = command_words(chunk)
        if c ~= "" then
          if first and first:find(" ") and not c:find("^" .. first:match("^(%S+)") .. " ") and c ~= first then
            c = first:match("^(%S+)") .. " " .. c
          end
          first = first or c
          out[c] = true
        end
      end
    end
  end
  return out
end

describe("README: CLI", function()
  local tbl = rows(section("CLI"))

  it("lists exactly the commands of lodestone --help", function()
    local help = run_cmd(build .. "/bin/lodestone --help")
    assert.matches("usage: lodestone", help, 1, true)
    local listed, options = {}, {}
    for _, r in ipairs(tbl) do
      if r[1]:match("^`lodestone ") then
        for chunk in r[1]:gmatch("`([^`]+)`") do
          chunk = chunk:gsub("^lodestone ", "")
          if chunk:match("^%-%-") then
            options[#options + 1] = chunk
          else
            local c = command_words(chunk)
            if c ~= "" then listed[c] = true end
          end
        end
      end
    end
    local known = help_commands(help)
    assert.is_true(known["policy check"] and known["dev token"] and known.up and known.start)
    assert.same({}, missing(listed, known))
    assert.same({}, missing(known, listed))
    for _, o in ipairs(options) do assert.matches(o, help, 1, true) end
  end)

  it("lists exactly the options of lodestoned --help", function()
    local help = run_cmd(build .. "/bin/lodestoned --help")
    assert.matches("usage: lodestoned", help, 1, true)
    local known, listed = {}, {}
    for line in help:gmatch("[^\n]+") do
      local opts = line:match("^  (%-%-.-)%s%s") or line:match("^  (%-%-.*)$")
      if opts then
        for o in opts:gmatch("%-%-[a-z-]+") do known[o] = true end
      end
    end
    for _, r in ipairs(tbl) do
      for o in r[1]:gmatch("`(%-%-[a-z-]+)") do listed[o] = true end
    end
    assert.is_true(known["--data"] and known["--max-steps"] and known["--help"])
    assert.same({}, missing(known, listed))
    assert.same({}, missing(listed, known))
  end)
end)

-- ---------------------------------------------------------------------
-- HTTP API: every route lodestoned's router names is in the table.

describe("README: HTTP API", function()
  local tbl = rows(section("HTTP API"))
  local requests = {}
  for _, r in ipairs(tbl) do
    local m, p = r[1]:match("^`(%u+) ([^`]+)`")
    if m then requests[#requests + 1] = m .. " " .. p end
  end
  local all = table.concat(requests, "\n")

  it("lists every path of native/daemon/api.c's router", function()
    local src = read("native/daemon/api.c")
    local router = src:match("static MHD_RESULT route%(.-\n}\n")
    assert.is_string(router)
    local n = 0
    for p in router:gmatch('strn?cmp%(url, "(/[^"]*)"') do
      n = n + 1
      p = p:gsub("/$", "")
      assert.matches(" " .. p, all, 1, true)
    end
    for sub in router:gmatch('strcmp%(seg%[1%], "([%w_-]+)"%)') do
      n = n + 1
      assert.matches("/{id}/" .. sub, all, 1, true)
    end
    assert.is_true(n >= 10)
  end)
end)

-- ---------------------------------------------------------------------
-- Links: every relative link of README.md names a file of the tree, and
-- every #anchor a heading of its target (GitHub's slugs) or an <a id> in it.

local function slug(heading)
  local s = heading:lower():gsub("[^%w%s_-]", ""):gsub("%s", "-")
  return s
end

local function anchors(text)
  local out = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local h = line:match("^#+ (.*)$")
    if h then out[slug(h)] = true end
    for id in line:gmatch('<a id="([^"]+)"></a>') do out[id] = true end -- explicit anchors
  end
  return out
end

describe("README: links", function()
  it("point at files and headings that exist", function()
    local n = 0
    for target in README:gmatch("%]%(([^)%s]+)%)") do
      if not target:match("^%a+:") then
        n = n + 1
        local file, anchor = target:match("^([^#]*)#?(.*)$")
        local text = README
        if file ~= "" then
          local f = io.open(file, "rb")
          assert.is_not_nil(f, "README.md links to a missing file: " .. target)
          text = f:read("*a") or "" -- (nil for a directory)
          f:close()
        end
        if anchor ~= "" then
          assert.is_true(anchors(text)[anchor] == true, "README.md: no heading for " .. target)
        end
      end
    end
    assert.is_true(n >= 20)
  end)
end)
