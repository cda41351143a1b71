-- SPDX-License-Identifier: MIT
-- `lodestone schedule list|show|create|rm`: schedules, as a client of
-- lodestoned's HTTP API (GET/POST /v1/schedules, GET/DELETE
-- /v1/schedules/{name}). Connection options, errors and exit codes are the
-- workflow commands' (lodestone.cli.workflow).
local core = require("lodestone.core")
local fmt = require("lodestone.cli.format")
local lib = require("lodestone.cli.workflow").lib
local json = core.json

local M = {}

local HELP = [[
usage: lodestone schedule list [--json]
       lodestone schedule show NAME [--json]
       lodestone schedule create NAME --workflow TYPE --cron EXPR [--overlap P]
                                 [--catchup C] [--input JSON|@FILE|@-] [--timezone ZONE]
       lodestone schedule rm NAME

A schedule starts a run of workflow TYPE at each fire time of EXPR: five
cron fields ("*/15 * * * *", "0 9 * * MON-FRI"), @hourly, @daily, @weekly,
@monthly, @yearly, or "@every 30s". Each fire is an ordinary run with the
id NAME@YYYYMMDDTHHMMSSZ (its fire time in UTC), never started twice.

--timezone: the clock the cron fields read: UTC (default) or an IANA zone
  such as Europe/Berlin (a time the clocks skip fires just after the jump;
  one they repeat fires once).

--overlap: what a fire does while the previous fire's run still runs:
  skip (default) does not start it; buffer_one starts it when that run ends
  (at most one waits); allow starts it anyway.
--catchup: fires missed while lodestoned was down: one (default) starts the
  latest of them at once; none starts none.

`create` is an upsert: the same NAME again replaces its definition. Schedules
declared in a workflow file (workflow.define{schedule=...}) are listed with
source "file"; change or remove them in the file, not here.
]]

local function one_name(pos)
  if #pos ~= 1 then lib.usage_error("expected one schedule NAME") end
  return pos[1]
end

local function list(args)
  local pos, opts = lib.parse(args, 3, { json = "flag" })
  if #pos ~= 0 then lib.usage_error("unexpected argument '" .. pos[1] .. "'") end
  local res = lib.call(lib.connection(opts), "GET", "/v1/schedules")
  local scheds = type(res.json.schedules) == "table" and res.json.schedules or json.array {}
  if opts.json then lib.print_json_text(json.encode(scheds)) return 0 end
  if #scheds == 0 then io.stderr:write("no schedules\n") return 0 end
  local rows = {}
  for i, s in ipairs(scheds) do
    rows[i] = { s.name or "?", s.workflow or "?", s.cron or "?", s.overlap or "?",
                s.next_fire and fmt.datetime(s.next_fire) or "-",
                s.last_fire and (fmt.datetime(s.last_fire) .. " " .. tostring(s.last_outcome or "")) or "-",
                s.source or "?" }
  end
  lib.print_lines(fmt.table({ "NAME", "WORKFLOW", "CRON", "OVERLAP", "NEXT FIRE", "LAST FIRE", "SOURCE" }, rows))
  return 0
end

-- The lines `schedule show` prints for a schedule object.
function M.details(s)
  local lines = {
    "schedule:      " .. tostring(s.name),
    "workflow:      " .. tostring(s.workflow),
    "cron:          " .. tostring(s.cron) .. " (" .. tostring(s.timezone or "UTC") .. ")",
    "overlap:       " .. tostring(s.overlap),
    "catchup:       " .. tostring(s.catchup),
    "source:        " .. tostring(s.source),
    "next fire:     " .. (s.next_fire and fmt.datetime(s.next_fire, false, true) or "never"),
  }
  if s.last_fire then
    lines[#lines + 1] = "last fire:     " .. fmt.datetime(s.last_fire, false, true) .. " (" ..
      tostring(s.last_outcome) .. ")"
  end
  if s.last_run then lines[#lines + 1] = "last run:      " .. s.last_run end
  if s.buffered_fire then
    lines[#lines + 1] = "buffered fire: " .. fmt.datetime(s.buffered_fire, false, true) ..
      " (starts when the last run ends)"
  end
  lines[#lines + 1] = string.format("fires:         %s started, %s skipped, %s missed, %s failed",
    fmt.int(s.fires_started), fmt.int(s.fires_skipped), fmt.int(s.fires_missed), fmt.int(s.fires_failed))
  if s.input ~= nil then lines[#lines + 1] = "input:         " .. fmt.compact(s.input, 200) end
  return lines
end

local function show(args)
  local pos, opts = lib.parse(args, 3, { json = "flag" })
  local name = one_name(pos)
  local res = lib.call(lib.connection(opts), "GET", "/v1/schedules/" .. lib.escape(name))
  if opts.json then lib.print_json_text(res.body) else lib.print_lines(M.details(res.json)) end
  return 0
end

local function create(args)
  local pos, opts = lib.parse(args, 3, { workflow = "value", cron = "value", overlap = "value",
                                         catchup = "value", input = "value", timezone = "value" })
  local name = one_name(pos)
  if not opts.workflow then lib.usage_error("--workflow TYPE is required") end
  if not opts.cron then lib.usage_error("--cron EXPR is required") end
  local parts = { '"name":' .. json.encode(name), '"workflow":' .. json.encode(opts.workflow),
                  '"cron":' .. json.encode(opts.cron) }
  for _, k in ipairs { "overlap", "catchup", "timezone" } do
    if opts[k] then parts[#parts + 1] = json.encode(k) .. ":" .. json.encode(opts[k]) end
  end
  if opts.input then parts[#parts + 1] = '"input":' .. lib.input_text(opts.input) end
  local res = lib.call(lib.connection(opts), "POST", "/v1/schedules", {
    body = "{" .. table.concat(parts, ",") .. "}", headers = { ["Content-Type"] = "application/json" } })
  local s = res.json
  io.stderr:write(res.status == 201 and "created" or "updated", " schedule ", tostring(s.name),
    "; next fire ", s.next_fire and fmt.datetime(s.next_fire, false, true) or "never", "\n")
  return 0
end

local function rm(args)
  local pos, opts = lib.parse(args, 3, {})
  local name = one_name(pos)
  lib.call(lib.connection(opts), "DELETE", "/v1/schedules/" .. lib.escape(name))
  io.stderr:write("deleted schedule ", name, " (its runs go on)\n")
  return 0
end

local SUB = { list = list, show = show, create = create, rm = rm }

function M.main(args)
  return lib.subcommands(args, "schedule", HELP, SUB, "list, show, create, rm",
    { json = "flag", workflow = "value", cron = "value", overlap = "value", catchup = "value",
      input = "value", timezone = "value" })
end

return M
