-- SPDX-License-Identifier: MIT
-- `lodestone policy ...`: offline decisions with the same C engine that
-- runs in lighttpd, a case runner like `opa test`, and key file tools.
-- Run by the lodestone CLI (LuaJIT with lodestone.core built in).
local core = require("lodestone.core")
local policy = require("lodestone.policy")
local json = core.json
local unpack = table.unpack or unpack -- luacheck: ignore

local M = {}

local HELP = [[
usage: lodestone policy check FILE --request JSON [--now EPOCH]
       lodestone policy test FILE CASES.json
       lodestone policy hash-key KEYFILE --subject NAME [--roles a,b] [--scopes x,y]
       lodestone policy hash-password PWFILE USER      (the password on stdin)

Offline, with the same C engine lighttpd runs: a decision printed here is
the one lighttpd makes. Nothing goes to the policy's audit log, and the
rate-limit state is the command's own: lighttpd's is not touched.

check: decides one request and prints the decision as JSON: allow, status,
  reason, detail, subject, rule, headers (the identity headers it would
  send to the backend), response_headers, and body when denied. The request:
    {"method": "GET", "path": "/orders/7", "query": "a=1", "host": "api",
     "remote_addr": "10.0.0.5", "headers": {"Authorization": "Bearer ..."},
     "body": "..."}
  Only path is required (method GET, remote_addr 127.0.0.1 by default; a
  query may also follow "?" in path); every field but headers is a string.
  --now freezes the clock at EPOCH seconds (0 to 253402300799, the end of
  year 9999), for tokens with fixed expiry times. An option may be given once.

test: runs a table of cases, prints ok or FAIL with what differed for each,
  and exits 1 when one fails. CASES.json:
    {"now": 1800000000,
     "cases": [{"name": "admins get in", "request": {"path": "/admin/x", ...},
                "expect": {"allow": true, "subject": "alice"}}]}
  expect lists only the fields to compare (at least one); a case's own "now"
  overrides the file's. A cases file not of this shape (an unknown field, a
  case without request or expect, a bad request) exits 2 before any case
  runs, naming the case and the field.

hash-key: makes a new random API key, appends its keyed hash (never the
  key) to KEYFILE (created with mode 0600) and prints the key once. NAME,
  roles and scopes are printable ASCII without spaces; a,b not "a, b".
hash-password: adds or replaces USER in PWFILE with an Argon2id hash of the
  password read from standard input.

Exit codes: 0 ok, 1 a case failed (test), 2 usage or bad input (the
message names the field). See docs/policies.md.
]]

local function die(msg, code)
  io.stderr:write("lodestone policy: ", msg, "\n")
  return code or 2
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("*a")
  f:close()
  return text
end

-- Parses "--name value" and "--name=value" options among the positional
-- arguments; any other argument starting with "--" is an unknown option.
local function parse_args(args, first, known)
  local pos, opts = {}, {}
  local i = first
  while args[i] do
    local a = args[i]
    local name, value = a:match("^%-%-([^=]+)=(.*)$")
    if not name then name = a:match("^%-%-(.+)$") end
    if name then
      if not known[name] then return nil, "unknown option --" .. name end
      if value == nil then
        value = args[i + 1]
        if value == nil then return nil, "--" .. name .. " needs a value" end
        -- "--request --now 5" is a forgotten value, not a request of "--now".
        local other = value:match("^%-%-([^=]+)")
        if value == "-h" or value == "--help" or (other and known[other]) then
          return nil, "--" .. name .. " needs a value, got the option " .. value ..
            " (write --" .. name .. "=" .. value .. " if that is the value)"
        end
        i = i + 1
      end
      if opts[name] ~= nil then return nil, "--" .. name .. " given twice" end
      opts[name] = value
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return pos, opts
end

-- A usage error that says what was wrong, then the command's usage.
local function usage(problem, line)
  return die(problem .. " (usage: lodestone policy " .. line .. ")")
end

-- The clock can be frozen from the epoch to the end of year 9999.
local MAX_EPOCH = 253402300799
local EPOCH_RANGE = "seconds since the epoch, 0 to " .. MAX_EPOCH .. " (the end of year 9999)"

-- Seconds since the epoch from text or JSON: a number in that range, else nil.
local function epoch(v)
  local n = tonumber(v)
  if type(v) ~= "number" and type(v) ~= "string" then n = nil end
  if n == nil or not (n >= 0 and n <= MAX_EPOCH) then return nil end
  return n
end

-- JSON's name for the type of a decoded value, for messages.
local function json_type(v)
  if v == json.null then return "null" end
  if type(v) == "table" then return getmetatable(v) == json.array_mt and "array" or "object" end
  return type(v)
end

local function is_object(v) return type(v) == "table" and getmetatable(v) ~= json.array_mt end
local function is_array(v) return type(v) == "table" and getmetatable(v) == json.array_mt end

-- ---- deciding one request ----

local FIELDS = { method = true, path = true, query = true, headers = true, remote_addr = true,
  body = true, host = true }
local STRING_FIELDS = { "method", "query", "host", "remote_addr", "body" }

-- Checks a decoded request object: nil, msg naming the field when it is
-- not one, else its headers keyed by lower-case name.
local function check_request(req)
  if not is_object(req) then return nil, "request: expected a JSON object" end
  for k in pairs(req) do
    if not FIELDS[k] then
      return nil, "request: unknown field '" .. tostring(k) .. "' (method, path, query, headers, remote_addr, body, host)"
    end
  end
  if type(req.path) ~= "string" then return nil, "request.path: required, a string such as \"/orders/7\"" end
  for _, f in ipairs(STRING_FIELDS) do
    if req[f] ~= nil and type(req[f]) ~= "string" then
      return nil, "request." .. f .. ": expected a string, got " .. json_type(req[f])
    end
  end
  local headers = {}
  if req.headers ~= nil then
    if not is_object(req.headers) then
      return nil, "request.headers: expected an object of names and values, got " .. json_type(req.headers)
    end
    for k, v in pairs(req.headers) do
      if type(v) ~= "string" then return nil, "request.headers." .. tostring(k) .. ": expected a string" end
      local lk = tostring(k):lower()
      if headers[lk] ~= nil then
        return nil, "request.headers: " .. lk .. " given twice (names are case-insensitive; "
          .. "join the values with a comma, as a proxy would)"
      end
      headers[lk] = v
    end
  end
  return headers
end

-- Decides a request that check_request found right: the decision as a
-- table, or nil, msg.
local function eval_request(pol, req)
  local headers, herr = check_request(req)
  if not headers then return nil, herr end
  local names = pol:headers()
  local values = {}
  for i, name in ipairs(names) do values[i] = headers[name:lower()] end
  local path, query = req.path, req.query
  if query == nil then
    local p, q = path:match("^([^?]*)%?(.*)$")
    if p then path, query = p, q end
  end
  local status, reason, set, resp, body, subject, notice, rule, detail = pol:eval(
    req.method or "GET", path, query, req.host or headers.host or "localhost",
    req.remote_addr or "127.0.0.1", req.body, unpack(values, 1, #names))
  if status == nil then return nil, reason end
  local d = {
    allow = status == 0,
    status = status == 0 and 200 or status,
    reason = reason,
    detail = detail or json.null,
    subject = subject or json.null,
    rule = rule or json.null,
    headers = json.object({}),
    response_headers = json.object({}),
  }
  for k, v in pairs(set) do d.headers[k] = v end
  for k, v in pairs(resp) do d.response_headers[k] = v end
  if body then d.body = body end
  if notice then d.notice = notice end
  return d
end

local function load_policy(file, now)
  local home = os.getenv("HOME")
  return policy.load(file, { no_audit = true, private_rl = true, now = now,
    rl_dir = os.getenv("TMPDIR") or "/tmp",
    cache_dir = os.getenv("LODESTONE_CACHE_DIR") or (home and home .. "/.cache/lodestone") })
end

local function check(args)
  local pos, opts = parse_args(args, 3, { request = true, now = true })
  if not pos then return die(opts) end
  local line = "check FILE --request JSON [--now EPOCH]"
  if #pos == 0 then return usage("expected a policy FILE", line) end
  if #pos > 1 then return usage("unexpected argument '" .. pos[2] .. "'", line) end
  if not opts.request then return usage("--request JSON is required", line) end
  local now
  if opts.now then
    now = epoch(opts.now)
    if not now then return die("--now: expected " .. EPOCH_RANGE .. ", got " .. opts.now) end
  end
  local req, msg = json.decode(opts.request)
  if req == nil then return die("--request: " .. msg) end
  local _, rerr = check_request(req)
  if rerr then return die(rerr) end
  local pol, err = load_policy(pos[1], now)
  if not pol then return die(err) end
  local d, derr = eval_request(pol, req)
  if not d then return die(derr) end
  print(json.encode(d))
  return 0
end

-- ---- a table of cases ----

local function matches(want, got, path, problems)
  if type(want) == "table" and getmetatable(want) ~= json.array_mt then
    if type(got) ~= "table" then
      problems[#problems + 1] = path .. ": expected an object, got " .. json.encode(got)
      return
    end
    for k, v in pairs(want) do
      local g = got[k]
      if g == nil and type(k) == "string" then -- header names are case-insensitive
        for gk, gv in pairs(got) do
          if type(gk) == "string" and gk:lower() == k:lower() then g = gv end
        end
      end
      matches(v, g, path .. "." .. tostring(k), problems)
    end
  elseif want ~= got then
    problems[#problems + 1] = path .. ": expected " .. json.encode(want) .. ", got " .. (json.encode(got) or tostring(got))
  end
end

local CASE_FIELDS = { name = true, request = true, expect = true, now = true }
-- The decision's fields, which expect may name.
local DECISION_FIELDS = { allow = true, status = true, reason = true, detail = true, subject = true,
  rule = true, headers = true, response_headers = true, body = true, notice = true }
local DECISION_LIST = "allow, status, reason, detail, subject, rule, headers, response_headers, body, notice"

-- "now", for the file and per case: seconds since the epoch, or null.
local function now_of(v, where)
  if v == nil or v == json.null then return nil end
  local n = type(v) == "number" and epoch(v)
  if not n then return nil, where .. "now: expected " .. EPOCH_RANGE .. ", got " .. json.encode(v) end
  return n
end

-- The path of an empty object in v (it would match any decision), or nil.
local function empty_inside(v, path)
  if type(v) ~= "table" or getmetatable(v) == json.array_mt then return nil end
  if next(v) == nil then return path end
  for k, x in pairs(v) do
    local p = empty_inside(x, path .. "." .. tostring(k))
    if p then return p end
  end
  return nil
end

-- Checks one case before any runs: nil, msg naming the case and field.
local function check_case(c, i)
  local where = "case " .. i
  if not is_object(c) then
    return nil, where .. ": expected an object with request and expect, got " .. json_type(c)
  end
  if c.name == json.null then c.name = nil end -- as "now": null, no name
  if c.name ~= nil and type(c.name) ~= "string" then
    return nil, where .. ".name: expected a string, got " .. json_type(c.name)
  end
  if c.name then where = where .. " (" .. json.encode(c.name) .. ")" end
  for k in pairs(c) do
    if not CASE_FIELDS[k] then
      return nil, where .. ": unknown field '" .. tostring(k) .. "' (name, request, expect, now)"
    end
  end
  if c.request == nil then return nil, where .. ": request: required, an object with at least a path" end
  local _, rerr = check_request(c.request)
  if rerr then return nil, where .. ": " .. rerr end
  if c.expect == nil then return nil, where .. ": expect: required, the decision's fields to compare" end
  if not is_object(c.expect) then return nil, where .. ": expect: expected an object, got " .. json_type(c.expect) end
  local empty = empty_inside(c.expect, "expect")
  if empty then
    return nil, where .. ": " .. empty .. ": empty, so the case would pass whatever the decision"
      .. (empty == "expect" and " (name a field such as allow or status)" or "")
  end
  for k in pairs(c.expect) do
    if not DECISION_FIELDS[k] then
      return nil, where .. ": expect: unknown field '" .. tostring(k) .. "' (" .. DECISION_LIST .. ")"
    end
  end
  local _, nerr = now_of(c.now, where .. ": ")
  if nerr then return nil, nerr end
  return true
end

-- The list of cases and the file's now, checked whole before any case
-- runs, or nil, msg.
local function read_cases(doc)
  local cases = doc
  if is_object(doc) then
    for k in pairs(doc) do
      if k ~= "cases" and k ~= "now" then return nil, "unknown field '" .. tostring(k) .. "' (cases, now)" end
    end
    cases = doc.cases
  end
  if not is_array(cases) or #cases == 0 then return nil, "expected a list of cases, or {\"cases\": [...]}" end
  local file_now, nerr = now_of(is_object(doc) and doc.now or nil, "")
  if nerr then return nil, nerr end
  for i, c in ipairs(cases) do
    local ok, cerr = check_case(c, i)
    if not ok then return nil, cerr end
  end
  return cases, file_now
end

local function test(args)
  local pos, opts = parse_args(args, 3, {})
  if not pos then return die(opts) end
  if #pos ~= 2 then
    return usage(#pos < 2 and "expected a policy FILE and a CASES.json file"
      or "unexpected argument '" .. pos[3] .. "'", "test FILE CASES.json")
  end
  local text, rerr = read_file(pos[2])
  if not text then return die(rerr) end
  local doc, msg = json.decode(text)
  if doc == nil then return die(pos[2] .. ": " .. msg) end
  local cases, file_now = read_cases(doc)
  if not cases then return die(pos[2] .. ": " .. file_now) end
  local passed, failed = 0, 0
  for i, c in ipairs(cases) do
    local name = c.name or ("case " .. i)
    local now = now_of(c.now, "")
    if now == nil then now = file_now end
    local pol, err = load_policy(pos[1], now)
    if not pol then return die(err) end
    local problems = {}
    local d, derr = eval_request(pol, c.request)
    if not d then problems[1] = derr else matches(c.expect, d, "decision", problems) end
    pol:close()
    if #problems == 0 then
      passed = passed + 1
      print("ok   " .. name)
    else
      failed = failed + 1
      print("FAIL " .. name)
      for _, p in ipairs(problems) do print("       " .. p) end
    end
  end
  print(string.format("%d passed, %d failed", passed, failed))
  return failed == 0 and 0 or 1
end

-- ---- key files ----

local function hash_key(args)
  local pos, opts = parse_args(args, 3, { subject = true, roles = true, scopes = true })
  if not pos then return die(opts) end
  local line = "hash-key KEYFILE --subject NAME [--roles a,b] [--scopes x,y]"
  if #pos == 0 then return usage("expected a KEYFILE", line) end
  if #pos > 1 then return usage("unexpected argument '" .. pos[2] .. "'", line) end
  if not opts.subject then return usage("--subject NAME is required", line) end
  local file = pos[1]
  local text = read_file(file) or ""
  local key, line, code = core.apikey_generate(text, opts.subject, opts.roles, opts.scopes)
  if not key then
    -- "the roles list has a space (...)": said of the option that gave it
    local msg = line:gsub("^apikey_generate: ", "")
    for _, o in ipairs { { "subject", "the subject " }, { "roles", "the roles list " }, { "scopes", "the scopes list " } } do
      if msg:sub(1, #o[2]) == o[2] then return die("--" .. o[1] .. ": " .. msg) end
    end
    return die(file .. ": " .. msg, code == "EEXIST" and 1 or 2)
  end
  local f, err = io.open(file, "ab")
  if not f then return die(err) end
  if text == "" then os.execute("chmod 600 '" .. file:gsub("'", "'\\''") .. "' 2>/dev/null") end
  f:write(line)
  f:close()
  io.stderr:write("added a key for ", opts.subject, " to ", file, "; it is shown once:\n")
  print(key)
  return 0
end

local function hash_password(args)
  local pos, perr = parse_args(args, 3, {})
  if not pos then return die(perr) end
  if #pos ~= 2 then
    return usage(#pos < 2 and "expected a PWFILE and a USER" or "unexpected argument '" .. pos[3] .. "'",
      "hash-password PWFILE USER; the password on stdin")
  end
  local file, user = pos[1], pos[2]
  if user == "" then return die("USER: empty; a user name is needed") end
  if user:find("[:%c%s]") then return die("user names may not contain ':', spaces or control characters") end
  local pw = io.read("*l")
  if not pw or pw == "" then return die("no password on stdin") end
  local hash, msg = core.hash_password(pw)
  if not hash then return die(msg) end
  local lines, replaced = {}, false
  for l in ((read_file(file) or "") .. "\n"):gmatch("([^\n]*)\n") do
    if l:match("^" .. user:gsub("%p", "%%%0") .. ":") then
      lines[#lines + 1] = user .. ":" .. hash
      replaced = true
    elseif l ~= "" then
      lines[#lines + 1] = l
    end
  end
  if not replaced then lines[#lines + 1] = user .. ":" .. hash end
  local tmp = file .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return die(err) end
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  os.execute("chmod 600 '" .. tmp:gsub("'", "'\\''") .. "'")
  local ok, rerr = os.rename(tmp, file)
  if not ok then return die(rerr) end
  io.stderr:write((replaced and "replaced " or "added "), user, " in ", file, "\n")
  return 0
end

local COMMANDS = { check = check, test = test, ["hash-key"] = hash_key, ["hash-password"] = hash_password }

local function is_help(a) return a == "--help" or a == "-h" or a == "help" end

function M.main(args)
  for i = 2, #args do
    if is_help(args[i]) and (i == 2 or args[i] ~= "help") then
      io.stdout:write(HELP)
      return 0
    end
  end
  local cmd = COMMANDS[args[2] or ""]
  if not cmd then
    if args[2] == nil then
      io.stderr:write(HELP)
      return 2
    end
    return die("unknown command '" .. args[2] .. "' (check, test, hash-key, hash-password; lodestone policy --help)")
  end
  return cmd(args)
end

return M
