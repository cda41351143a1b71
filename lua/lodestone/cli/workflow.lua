-- SPDX-License-Identifier: MIT
-- `lodestone start|list|show|history|types|secret ...`: the workflow
-- commands, as clients of lodestoned's HTTP API (DESIGN.md) over its unix
-- socket, or over TCP with a bearer token. Run by the lodestone CLI (LuaJIT
-- with lodestone.core, lodestone.httpc and lodestone.cli.sys built in).
-- Exit codes: 0 done, 1 the daemon refused or the run failed, 2 usage,
-- 3 lodestoned unreachable, 4 a --timeout ran out (start --wait, key rotate).
local core = require("lodestone.core")
local http = require("lodestone.http")
local fmt = require("lodestone.cli.format")
local sys = require("lodestone.cli.sys")
local json = core.json

local M = {}

local DEFAULT_SOCKET = "./var/lodestone/lodestoned.sock"
local REQUEST_TIMEOUT = 10 -- seconds, for every call but the long poll
local LONG_POLL = 30       -- seconds the daemon may hold a result request
local POLL_MS = 200        -- progress refresh on a terminal

-- ---- failing: an error object that main turns into an exit code ----

local EXIT = {}
EXIT.__index = EXIT

local function fail(code, msg) error(setmetatable({ code = code, msg = msg }, EXIT), 0) end

local verb_name = "?"
local function say(msg) io.stderr:write("lodestone ", verb_name, ": ", msg, "\n") end
local function usage_error(msg)
  fail(2, "lodestone " .. verb_name .. ": " .. msg .. " (see lodestone " .. verb_name .. " --help)")
end

-- ---- help ----

local CONNECTION_HELP = [[

Connection (any command):
  --socket PATH      lodestoned's unix socket (else $LODESTONE_SOCKET, else
                     ]] .. DEFAULT_SOCKET .. [[)
  --url URL          lodestoned over TCP, e.g. http://127.0.0.1:8765 (else
                     $LODESTONE_URL), with the token from --token-file FILE or
                     $LODESTONE_TOKEN
Exit codes: 0 ok, 1 refused by lodestoned or the run failed, 2 usage,
3 lodestoned unreachable, 4 a --timeout ran out (start --wait, key rotate).
Times are UTC.
]]

local HELP = {
  start = [[
usage: lodestone start TYPE [--id ID] [--input JSON|@FILE|@-] [--wait] [--timeout SECONDS]

Starts a run of workflow TYPE and prints its id. With --id, a run with that
id that already exists is returned instead (never a second run). --input is
the run's input as JSON, or @FILE to read it from a file (@- from stdin).
--wait follows the run to its end and prints its result as JSON: on a
terminal with a live status line, otherwise by long-polling. Exits 0 when it
completed, 1 when it failed (the error goes to stderr), and 4 when --timeout
SECONDS pass first (the run goes on in lodestoned).
]],
  list = [[
usage: lodestone list [--status S] [--type T] [--limit N] [--json]

Lists runs, newest first: ID, TYPE, STATUS, STEPS, CREATED. --status is one
of running, completed, failed, cancelled, terminated, or paused (running
runs whose step used up its attempts: lodestone resume ID). At most --limit runs
(default 50). --json prints the run objects as a JSON array.
]],
  show = [[
usage: lodestone show ID [--json]

Shows one run: status, times, steps done, failed attempts, what it waits
for, its input and its output or error. --json prints the API's object.
]],
  history = [[
usage: lodestone history ID [--json]

Prints a run's event history, one line per event:
  #3  11:44:46.123  step_failed      charge (attempt 1): unavailable; retry at 11:44:47.123
--json prints the events as a JSON array.
]],
  signal = [[
usage: lodestone signal ID NAME [JSON|@FILE|@-]

Sends signal NAME to a running run, with a JSON payload (default null).
The run's ctx:wait_signal(NAME) returns it; signals sent before the run
waits are kept, in order. A finished run refuses signals (exit 1).
]],
  cancel = [[
usage: lodestone cancel ID [--reason TEXT]

Asks a running run to cancel: at its next ctx:step, ctx:sleep or
ctx:wait_signal it gets a cancellation error, which it may catch to run
cleanup steps; it then ends `cancelled`. The reason is kept in its history.
]],
  resume = [[
usage: lodestone resume ID

Resumes a run that a step paused (on_exhausted = "pause": its attempts were
used up): the step gets a new round of attempts. Fix what it calls first.
]],
  terminate = [[
usage: lodestone terminate ID [--reason TEXT]

Ends a running run at once, `terminated`, without running any more of its
code (a step running now is interrupted). Prefer cancel, which lets the
run clean up.
]],
  types = [[
usage: lodestone types   (or: lodestone workflows)

Lists the workflow types lodestoned has loaded: TYPE, VERSION (a hash of the
file's source), RUNS (its unfinished runs of this version), OLDER (unfinished
runs still pinned to older versions: VERSION=N,...), FILE; and
the files that failed to load (exit 1 when there are any). Each run is
pinned to the version that started it: editing a file never breaks runs in
flight, new runs use the new version.
]],
  secret = [[
usage: lodestone secret set NAME      the value is read from stdin
       lodestone secret list           names and update times, never values
       lodestone secret rm NAME

`secret set` reads ALL of stdin and strips exactly one trailing newline, so
both `printf %s "$VALUE" | lodestone secret set NAME` and
`echo "$VALUE" | lodestone secret set NAME` store $VALUE. An empty value is
refused. The value is never taken from the command line, where shell history
and ps would see it.
]],
}

-- ---- arguments ----

local COMMON = { socket = "value", url = "value", ["token-file"] = "value", help = "flag" }

-- Splits args[first..] into positionals and options by spec (name ->
-- "value" | "flag"); "--name=value" works too, "--" ends options.
local function parse(args, first, spec)
  local pos, opts = {}, {}
  local i = first
  while args[i] ~= nil do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do pos[#pos + 1] = args[j] end
      break
    end
    local name, value = a:match("^%-%-([%w%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w%-]+)$") end
    if a == "-h" then name = "help" end
    if name then
      local kind = spec[name] or COMMON[name]
      if not kind then usage_error("unknown option --" .. name) end
      if kind == "flag" then
        if value then usage_error("--" .. name .. " takes no value") end
        opts[name] = true
      else
        if value == nil then
          i = i + 1
          value = args[i]
          if value == nil then usage_error("--" .. name .. " needs a value") end
          -- "--id --wait" is a forgotten value, not an id of "--wait".
          local other = value:match("^%-%-([%w%-]+)$") or value:match("^%-%-([%w%-]+)=")
          if value == "-h" or (other and (spec[other] or COMMON[other])) then
            usage_error("--" .. name .. " needs a value, got the option " .. value ..
              " (write --" .. name .. "=" .. value .. " if that is the value)")
          end
        end
        -- the last of two would win unseen: a script's default and the
        -- caller's choice, say
        if opts[name] ~= nil then usage_error("--" .. name .. " is given twice") end
        opts[name] = value
      end
    elseif a:match("^%-") and a ~= "-" then
      usage_error("unknown option " .. a)
    elseif a == "" then
      -- (no id, name or file is empty: "show ''" would ask for the list)
      usage_error("argument " .. (#pos + 1) .. " is empty")
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return pos, opts
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("*a")
  f:close()
  return text
end

-- The first line of a file (to "\n" or "\r"), read a block at a time and
-- at most max bytes of it: nil, "too long" past that, so that neither
-- /dev/zero nor a large file without a line break is read whole.
local function read_first_line(path, max)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local parts, len = {}, 0
  while true do
    local chunk, rerr = f:read(4096)
    if chunk == nil then
      f:close()
      if rerr then return nil, path .. ": " .. rerr end
      break
    end
    local stop = chunk:find("[\r\n]")
    if stop then chunk = chunk:sub(1, stop - 1) end
    parts[#parts + 1] = chunk
    len = len + #chunk
    if len > max then
      f:close()
      return nil, "too long"
    end
    if stop then
      f:close()
      break
    end
  end
  return table.concat(parts)
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function query(params)
  local parts = {}
  for _, p in ipairs(params) do
    if p[2] ~= nil then parts[#parts + 1] = p[1] .. "=" .. escape(p[2]) end
  end
  return #parts > 0 and "?" .. table.concat(parts, "&") or ""
end

-- ---- talking to lodestoned ----

local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end

-- Where lodestoned is, from the options and the environment.
local function connection(opts)
  if opts.socket and opts.url then usage_error("give --socket or --url, not both") end
  local c = {}
  local env_socket, env_url = os.getenv("LODESTONE_SOCKET"), os.getenv("LODESTONE_URL")
  if opts.socket then
    c.socket = opts.socket
  elseif opts.url then
    c.url = opts.url
  elseif env_socket and env_socket ~= "" then
    c.socket = env_socket
  elseif env_url and env_url ~= "" then
    c.url = env_url
  else
    c.socket = DEFAULT_SOCKET
  end
  if c.url then
    if not c.url:match("^https?://[^/]") then usage_error("--url: expected http://HOST:PORT, got " .. c.url) end
    c.base = c.url:gsub("/+$", "")
    c.where = c.base
  else
    c.base = "http://localhost"
    c.where = c.socket
  end
  if opts["token-file"] then
    -- Its first line, as lodestoned reads its own --token-file.
    local text, err = read_first_line(opts["token-file"], 2 * 4096)
    if err == "too long" then
      usage_error("--token-file: the token on the first line of " .. opts["token-file"] ..
        " is longer than 4096 characters")
    end
    if not text then usage_error("--token-file: " .. err) end
    c.token = text:match("^[ \t]*(.-)[ \t]*$")
    if #c.token > 4096 then
      usage_error("--token-file: the token on the first line of " .. opts["token-file"] ..
        " is longer than 4096 characters")
    end
    if c.token == "" then usage_error("--token-file: " .. opts["token-file"] .. " has no token on its first line") end
    if c.token:find("%c") then usage_error("--token-file: the token in " .. opts["token-file"] .. " has a control character") end
  else
    local t = os.getenv("LODESTONE_TOKEN")
    if t and t ~= "" then c.token = t end
    if c.token and c.token:find("%c") then usage_error("LODESTONE_TOKEN: has a line break or another control character") end
  end
  return c
end

-- "cannot reach" with the transport's reason, and how to start the daemon.
local function unreachable(c, err)
  local reason = tostring(err):gsub("^http %u+ %S+: ", "")
  reason = reason:gsub("^Failed to connect to .- after %d+ ms: ", "")
  if c.socket then
    local _, oerr = io.open(c.socket, "rb")
    if oerr and oerr:match("No such file or directory") then reason = "no socket at that path" end
  end
  local msg = "lodestone: cannot reach lodestoned at " .. c.where .. " (" .. reason .. "); is it running?"
  if c.socket and c.socket:match("lodestoned%.sock$") then
    msg = msg .. " Start it with: lodestoned --data " .. dirname(c.socket)
  end
  fail(3, msg)
end

-- One API call. Returns the response for 2xx statuses (res.json decoded);
-- fails with exit 1 and the daemon's message otherwise (after
-- opts.on_error(res), when given), 3 when unreachable.
local function call(c, method, path, opts)
  opts = opts or {}
  local headers = opts.headers or {}
  headers["Accept"] = "application/json"
  if c.token then headers["Authorization"] = "Bearer " .. c.token end
  local ok, res = pcall(http.request, {
    method = method, url = c.base .. path, headers = headers, body = opts.body,
    timeout = opts.timeout or REQUEST_TIMEOUT, unix_socket = c.socket,
  })
  if not ok then unreachable(c, res) end
  if res.status >= 200 and res.status < 300 then
    if res.json == nil and res.status ~= 204 then
      fail(1, "lodestone " .. verb_name .. ": unexpected response from lodestoned (HTTP " .. res.status .. "): "
        .. fmt.compact(res.body, 200))
    end
    return res
  end
  local e = type(res.json) == "table" and res.json.error
  local msg
  if type(e) == "table" and type(e.message) == "string" then
    msg = e.message
  elseif type(e) == "string" then
    msg = e
  else
    msg = "HTTP " .. res.status .. (res.body ~= "" and ": " .. res.body:sub(1, 200) or "")
  end
  if opts.on_error then opts.on_error(res) end
  fail(1, "lodestone " .. verb_name .. ": " .. msg)
end

local function print_lines(lines)
  for _, l in ipairs(lines) do io.stdout:write(l, "\n") end
end

local function print_json_text(text)
  io.stdout:write(fmt.pretty_json(text), "\n")
end

-- ---- start ----

-- start's --input, signal's PAYLOAD (what names it in errors): JSON text,
-- @FILE or @- (stdin); checked here, sent as given.
local function input_text(v, what)
  what = what or "--input"
  local text = v
  if v:sub(1, 1) == "@" then
    local err
    if v == "@-" then text = io.stdin:read("*a") else text, err = read_file(v:sub(2)) end
    if not text then usage_error(what .. ": " .. err) end
  end
  local value, msg = json.decode(text)
  if value == nil then usage_error(what .. ": " .. msg) end
  return text
end

-- Ends a waited-for run: prints the result JSON, the error on stderr.
local function finish(c, id, result_text, result)
  print_json_text(result_text)
  if result.status == "completed" then return 0 end
  if result.status == "failed" then
    say("run " .. id .. " failed: " .. tostring(result.error or "?"))
  else
    say("run " .. id .. " ended " .. tostring(result.status))
  end
  return 1
end

local function timed_out(id, seconds)
  say("run " .. id .. " still running after " .. seconds .. " s (--timeout); it goes on in lodestoned: lodestone show " .. id)
  return 4
end

-- Off a terminal: long-poll /result until the run ends or the deadline.
local function wait_poll(c, id, deadline, seconds)
  while true do
    local wait = LONG_POLL
    if deadline then
      local left = (deadline - sys.now_ms()) / 1000
      if left <= 0 then return timed_out(id, seconds) end
      wait = math.max(1, math.min(LONG_POLL, math.ceil(left)))
    end
    local res = call(c, "GET", "/v1/workflows/" .. escape(id) .. "/result" .. query { { "wait", wait } },
      { timeout = wait + 15 })
    if res.status == 200 then return finish(c, id, res.body, res.json) end
  end
end

-- On a terminal: a status line redrawn every POLL_MS, then the result.
local function wait_tty(c, id, run, deadline, seconds)
  local t0 = sys.now_ms()
  local path = "/v1/workflows/" .. escape(id)
  local width = math.max(20, (tonumber(os.getenv("COLUMNS") or "") or 80) - 1) -- no wrapping
  while true do
    io.stdout:write("\r\27[K", fmt.progress(run, sys.now_ms() - t0):sub(1, width))
    io.stdout:flush()
    if run.status ~= "running" then break end
    if deadline and sys.now_ms() >= deadline then
      io.stdout:write("\n")
      return timed_out(id, seconds)
    end
    sys.sleep_ms(POLL_MS)
    run = call(c, "GET", path).json
  end
  io.stdout:write("\n")
  local res = call(c, "GET", path .. "/result" .. query { { "wait", 0 } })
  return finish(c, id, res.body, res.json)
end

local function start(args)
  local pos, opts = parse(args, 2, { id = "value", input = "value", wait = "flag", timeout = "value" })
  if opts.help then io.stdout:write(HELP.start, CONNECTION_HELP) return 0 end
  if #pos ~= 1 then usage_error("expected one workflow TYPE") end
  if pos[1] == "." or pos[1] == ".." then
    -- as for a signal's name: curl would remove the segment, and
    -- lodestoned refuses such a type anyway
    fail(1, 'lodestone start: workflow type: "' .. pos[1] .. '" is not a name: HTTP clients remove such ' ..
      "segments from the API's path")
  end
  local seconds
  if opts.timeout then
    if not opts.wait then usage_error("--timeout goes with --wait") end
    seconds = tonumber(opts.timeout)
    if not seconds or seconds ~= seconds or seconds <= 0 or seconds == math.huge then
      usage_error("--timeout: expected seconds (more than 0), got " .. opts.timeout)
    end
  end
  local parts = {}
  if opts.id then
    if opts.id == "" then usage_error("--id: empty") end
    parts[#parts + 1] = '"id":' .. json.encode(opts.id)
  end
  if opts.input then parts[#parts + 1] = '"input":' .. input_text(opts.input) end
  local c = connection(opts)
  local t0 = sys.now_ms()
  local res = call(c, "POST", "/v1/workflows/" .. escape(pos[1]), {
    body = "{" .. table.concat(parts, ",") .. "}", headers = { ["Content-Type"] = "application/json" },
  })
  local run = res.json
  if type(run) ~= "table" or type(run.id) ~= "string" then
    fail(1, "lodestone start: unexpected response from lodestoned: " .. fmt.compact(res.body, 200))
  end
  if res.status == 201 then
    io.stderr:write("started ", tostring(run.type or pos[1]), " run ", run.id, "\n")
  else
    io.stderr:write("run ", run.id, " already exists (", tostring(run.status), "); not started again\n")
  end
  if not opts.wait then
    io.stdout:write(run.id, "\n")
    return 0
  end
  local deadline = seconds and t0 + seconds * 1000
  if sys.isatty(1) then return wait_tty(c, run.id, run, deadline, opts.timeout) end
  return wait_poll(c, run.id, deadline, opts.timeout)
end

-- ---- list, show, history, types ----

local LIST_PAGE = 100

local function list(args)
  local pos, opts = parse(args, 2, { status = "value", type = "value", limit = "value", json = "flag" })
  if opts.help then io.stdout:write(HELP.list, CONNECTION_HELP) return 0 end
  if #pos ~= 0 then usage_error("unexpected argument '" .. pos[1] .. "'") end
  local limit = 50
  if opts.limit then
    limit = tonumber(opts.limit)
    if not limit or limit < 1 or limit % 1 ~= 0 then usage_error("--limit: expected a whole number >= 1, got " .. opts.limit) end
  end
  local c = connection(opts)
  local runs, cursor = json.array {}, nil
  repeat
    local res = call(c, "GET", "/v1/workflows" .. query {
      { "status", opts.status }, { "type", opts.type }, { "limit", math.min(LIST_PAGE, limit - #runs) },
      { "cursor", cursor } })
    local page = type(res.json.runs) == "table" and res.json.runs or {}
    for _, r in ipairs(page) do
      if #runs < limit then runs[#runs + 1] = r end
    end
    cursor = type(res.json.next_cursor) == "string" and res.json.next_cursor or nil
  until cursor == nil or #runs >= limit or #page == 0
  if opts.json then
    print_json_text(json.encode(runs))
  elseif #runs == 0 then
    io.stderr:write("no runs\n")
  else
    print_lines(fmt.runs_table(runs))
  end
  return 0
end

local function one_id(args, spec)
  local pos, opts = parse(args, 2, spec)
  if opts.help then return nil, opts end
  if #pos ~= 1 then usage_error("expected one run ID") end
  return pos[1], opts
end

local function show(args)
  local id, opts = one_id(args, { json = "flag" })
  if opts.help then io.stdout:write(HELP.show, CONNECTION_HELP) return 0 end
  local res = call(connection(opts), "GET", "/v1/workflows/" .. escape(id))
  if opts.json then print_json_text(res.body) else print_lines(fmt.run_details(res.json)) end
  return 0
end

local function history(args)
  local id, opts = one_id(args, { json = "flag" })
  if opts.help then io.stdout:write(HELP.history, CONNECTION_HELP) return 0 end
  local res = call(connection(opts), "GET", "/v1/workflows/" .. escape(id) .. "/history")
  local events = type(res.json.events) == "table" and res.json.events or json.array {}
  if opts.json then print_json_text(json.encode(events)) else print_lines(fmt.timeline(events)) end
  return 0
end

local function types(args)
  local pos, opts = parse(args, 2, {})
  if opts.help then io.stdout:write(HELP.types, CONNECTION_HELP) return 0 end
  if #pos ~= 0 then usage_error("unexpected argument '" .. pos[1] .. "'") end
  local res = call(connection(opts), "GET", "/v1/workflow-types")
  local list_, errors = res.json.types or {}, res.json.errors or {}
  local rows = {}
  for i, t in ipairs(list_) do
    -- unfinished runs per version: the current one first, then older ones
    local runs, older = type(t.runs) == "table" and t.runs or {}, {}
    for v, n in pairs(runs) do
      if v ~= t.version then older[#older + 1] = v .. "=" .. n end
    end
    table.sort(older)
    rows[i] = { t.name or "?", t.version or "?", tostring(runs[t.version] or 0),
                #older > 0 and table.concat(older, ",") or "-", t.file or "" }
  end
  if #rows > 0 then
    print_lines(fmt.table({ "TYPE", "VERSION", "RUNS", "OLDER", "FILE" }, rows))
  else
    io.stderr:write("no workflow types loaded\n")
  end
  for _, e in ipairs(errors) do
    local file, msg = tostring(e.file or "?"), tostring(e.error or "?")
    -- A message that names the file already (Lua's "FILE:LINE: ...") is
    -- not prefixed with it again.
    if msg:sub(1, #file + 1) == file .. ":" then
      io.stderr:write("error: ", msg, "\n")
    else
      io.stderr:write("error: ", file, ": ", msg, "\n")
    end
  end
  return #errors > 0 and 1 or 0
end

-- ---- signals, cancel, terminate ----

local function signal(args)
  local pos, opts = parse(args, 2, {})
  if opts.help then io.stdout:write(HELP.signal, CONNECTION_HELP) return 0 end
  if #pos < 2 or #pos > 3 then usage_error("expected a run ID, a signal NAME and optionally a JSON payload") end
  if pos[2] == "." or pos[2] == ".." then
    -- curl removes such a segment before it sends: lodestoned would never
    -- see the name (it refuses it, as it refuses "/")
    fail(1, 'lodestone signal: signal name: "' .. pos[2] .. '" is not a name: HTTP clients remove such ' ..
      "segments from the API's path")
  end
  local body = pos[3] and input_text(pos[3], "PAYLOAD") or "null"
  local c = connection(opts)
  call(c, "POST", "/v1/workflows/" .. escape(pos[1]) .. "/signals/" .. escape(pos[2]), {
    body = body, headers = { ["Content-Type"] = "application/json" } })
  io.stderr:write("sent signal ", pos[2], " to ", pos[1], "\n")
  return 0
end

local function stop_run(args, verb)
  local id, opts = one_id(args, { reason = "value" })
  if opts.help then io.stdout:write(HELP[verb], CONNECTION_HELP) return 0 end
  local body = json.encode({ reason = opts.reason or "" })
  local res = call(connection(opts), "POST", "/v1/workflows/" .. escape(id) .. "/" .. verb, {
    body = body, headers = { ["Content-Type"] = "application/json" },
    timeout = verb == "terminate" and 15 or nil })
  local status = type(res.json) == "table" and res.json.status or "?"
  if verb == "cancel" then
    io.stderr:write("cancel requested for ", id, "; it ends at its next wait point\n")
  else
    io.stderr:write(id, " ", status == "terminated" and "terminated" or "is being terminated", "\n")
  end
  return 0
end

local function cancel(args) return stop_run(args, "cancel") end

local function resume(args)
  local id, opts = one_id(args, {})
  if opts.help then io.stdout:write(HELP.resume, CONNECTION_HELP) return 0 end
  call(connection(opts), "POST", "/v1/workflows/" .. escape(id) .. "/resume")
  io.stderr:write("resumed ", id, "; its paused step runs again\n")
  return 0
end
local function terminate(args) return stop_run(args, "terminate") end

-- ---- secrets ----

local function secret(args)
  local sub = args[2]
  local pos, opts = parse(args, 3, {})
  if opts.help or sub == "--help" or sub == "-h" then io.stdout:write(HELP.secret, CONNECTION_HELP) return 0 end
  if sub == "set" then
    if #pos == 0 then usage_error("expected a secret NAME") end
    if #pos > 1 then
      usage_error("the value is read from stdin, never from arguments (shell history and ps would show it): "
        .. "printf %s \"$VALUE\" | lodestone secret set " .. pos[1])
    end
    local c = connection(opts)
    if sys.isatty(0) then io.stderr:write("reading the value of ", pos[1], " from stdin; end it with Ctrl-D\n") end
    local value = io.stdin:read("*a") or ""
    if value:sub(-1) == "\n" then value = value:sub(1, -2) end
    if value == "" then usage_error("empty value on stdin; nothing stored") end
    call(c, "PUT", "/v1/secrets/" .. escape(pos[1]), {
      body = value, headers = { ["Content-Type"] = "application/octet-stream" } })
    io.stderr:write("stored secret ", pos[1], "\n")
    return 0
  elseif sub == "list" then
    if #pos ~= 0 then usage_error("unexpected argument '" .. pos[1] .. "'") end
    local res = call(connection(opts), "GET", "/v1/secrets")
    local rows = {}
    for i, s in ipairs(res.json.secrets or {}) do rows[i] = { s.name or "?", s.updated_at and fmt.datetime(s.updated_at) or "-" } end
    if #rows == 0 then io.stderr:write("no secrets\n") else print_lines(fmt.table({ "NAME", "UPDATED" }, rows)) end
    return 0
  elseif sub == "rm" then
    if #pos ~= 1 then usage_error("expected one secret NAME") end
    call(connection(opts), "DELETE", "/v1/secrets/" .. escape(pos[1]))
    io.stderr:write("deleted secret ", pos[1], "\n")
    return 0
  end
  usage_error(sub and ("unknown subcommand '" .. sub .. "' (set, list, rm)") or "expected set, list or rm")
end

local VERBS = { start = start, list = list, show = show, history = history, types = types, secret = secret,
                signal = signal, cancel = cancel, terminate = terminate, resume = resume,
                workflows = types }

-- Runs fn(...) as a command: its exit status, or the one an EXIT error
-- carries (with its message on stderr); other errors go on up.
local function run(fn, ...)
  local ok, res = pcall(fn, ...)
  io.stdout:flush()
  if ok then return res end
  if getmetatable(res) == EXIT then
    if res.msg then io.stderr:write(res.msg, "\n") end
    return res.code
  end
  error(res, 0)
end

-- ---- for other command modules (lodestone.cli.schedule, lodestone.cli.key) ----

-- `lodestone VERB SUB ...` for a verb of subcommands: verb, its help, subs
-- (name -> function(args)), names (for the error, in order) and spec (the
-- options of all its subcommands, so that --help is found among them).
-- No subcommand is a usage error (help on stderr, exit 2).
local function subcommands(args, verb, help, subs, names, spec)
  verb_name = verb
  local sub = args[2]
  return run(function()
    if sub == nil or sub == "--help" or sub == "-h" or sub == "help" then
      local out = sub == nil and io.stderr or io.stdout
      out:write(help, CONNECTION_HELP)
      return sub == nil and 2 or 0
    end
    local fn = subs[sub]
    if not fn then usage_error("unknown subcommand '" .. sub .. "' (" .. names .. ")") end
    local _, opts = parse(args, 3, spec)
    if opts.help then io.stdout:write(help, CONNECTION_HELP) return 0 end
    return fn(args)
  end)
end

M.lib = {
  run = run, subcommands = subcommands,
  fail = fail, parse = parse, connection = connection, call = call, escape = escape,
  input_text = input_text, print_lines = print_lines, print_json_text = print_json_text,
  CONNECTION_HELP = CONNECTION_HELP, usage_error = usage_error,
}

function M.main(args)
  verb_name = args[1] or "?"
  local verb = VERBS[verb_name]
  if not verb then
    io.stderr:write("lodestone: unknown command '", verb_name, "' (see lodestone --help)\n")
    return 2
  end
  return run(verb, args)
end

return M
