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
  query may also follow "?" in path). --now freezes the clock at EPOCH
  seconds, for tokens with fixed expiry times.

test: runs a table of cases, prints ok or FAIL with what differed for each,
  and exits 1 when one fails. CASES.json:
    {"now": 1800000000,
     "cases": [{"name": "admins get in", "request": {"path": "/admin/x", ...},
                "expect": {"allow": true, "subject": "alice"}}]}
  expect lists only the fields to compare; a case's own "now" overrides the
  file's.

hash-key: makes a new random API key, appends its keyed hash (never the
  key) to KEYFILE (created with mode 0600) and prints the key once.
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

-- Seconds since the epoch from text or JSON: a finite number, else nil.
local function epoch(v)
  local n = tonumber(v)
  if type(v) ~= "number" and type(v) ~= "string" then n = nil end
  if n == nil or n ~= n or n == math.huge or n == -math.huge then return nil end
  return n
end

-- ---- deciding one request ----

local FIELDS = { method = true, path = true, query = true, headers = true, remote_addr = true,
  body = true, host = true }

-- Turns the request JSON into the arguments of pol:eval.
local function eval_request(pol, req)
  if type(req) ~= "table" or getmetatable(req) == json.array_mt then
    return nil, "request: expected a JSON object"
  end
  for k in pairs(req) do
    if not FIELDS[k] then
      return nil, "request: unknown field '" .. tostring(k) .. "' (method, path, query, headers, remote_addr, body, host)"
    end
  end
  if type(req.path) ~= "string" then return nil, "request.path: required, a string such as \"/orders/7\"" end
  local headers = {}
  if req.headers ~= nil then
    if type(req.headers) ~= "table" then return nil, "request.headers: expected an object" end
    for k, v in pairs(req.headers) do
      if type(v) ~= "string" then return nil, "request.headers." .. tostring(k) .. ": expected a string" end
      headers[tostring(k):lower()] = v
    end
  end
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
    if not now then return die("--now: expected seconds since the epoch, got " .. opts.now) end
  end
  local req, msg = json.decode(opts.request)
  if req == nil then return die("--request: " .. msg) end
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
  local cases = type(doc) == "table" and (doc.cases or doc) or nil
  if type(cases) ~= "table" or #cases == 0 then
    return die(pos[2] .. ": expected a list of cases, or {\"cases\": [...]}")
  end
  -- "now", for the file and per case: seconds since the epoch, or null.
  local function now_of(v, where)
    if v == nil or v == json.null then return nil end
    local n = type(v) == "number" and epoch(v)
    if not n then return nil, pos[2] .. ": " .. where .. "now: expected seconds since the epoch, got " .. json.encode(v) end
    return n
  end
  local file_now, nerr = now_of(doc.now, "")
  if nerr then return die(nerr) end
  local passed, failed = 0, 0
  for i, c in ipairs(cases) do
    if type(c) ~= "table" or getmetatable(c) == json.array_mt then c = {} end
    local name = type(c.name) == "string" and c.name or ("case " .. i)
    local now, cerr = now_of(c.now, "case " .. i .. ": ")
    if cerr then return die(cerr) end
    if now == nil then now = file_now end
    local pol, err = load_policy(pos[1], now)
    if not pol then return die(err) end
    local problems = {}
    if type(c.request) ~= "table" or type(c.expect) ~= "table" or getmetatable(c.expect) == json.array_mt then
      problems[1] = "each case needs request and expect objects"
    else
      local d, derr = eval_request(pol, c.request)
      if not d then problems[1] = derr else matches(c.expect, d, "decision", problems) end
    end
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
  if not key then return die(file .. ": " .. line, code == "EEXIST" and 1 or 2) end
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
