-- SPDX-License-Identifier: MIT
-- Text the workflow commands of the lodestone CLI print: aligned tables, a
-- run's details, history timelines, the one-line progress of `start --wait`,
-- and JSON re-indented for reading. Pure functions of decoded API objects
-- (see lodestone/cli/workflow.lua), so the specs test them without a daemon.
-- Times are shown in UTC, as the API gives them. Runs on LuaJIT and 5.4.
local json = require("lodestone.core").json

local M = {}

-- ---- small values ----

-- "2026-11-26T11:44:46.123Z" -> "11:44:46.123" (ms = false: "11:44:46").
-- Text that is not such a time is returned as is ("?" for nil).
function M.time(ts, ms)
  if type(ts) ~= "string" then return "?" end
  local hms, frac = ts:match("^%d%d%d%d%-%d%d%-%d%dT(%d%d:%d%d:%d%d)(%.?%d*)")
  if not hms then return ts end
  if ms == false then return hms end
  frac = (frac:sub(2) .. "000"):sub(1, 3)
  return hms .. "." .. frac
end

-- "2026-11-26T11:44:46.123Z" -> "2026-11-26 11:44:46" (with_ms: ".123"
-- added) and " UTC" when asked.
function M.datetime(ts, with_ms, utc)
  if type(ts) ~= "string" then return "?" end
  local day = ts:match("^(%d%d%d%d%-%d%d%-%d%d)T")
  if not day then return ts end
  return day .. " " .. M.time(ts, with_ms and true or false) .. (utc and " UTC" or "")
end

-- A whole number as text ("-" when absent).
function M.int(n)
  if type(n) ~= "number" or n ~= n or n == math.huge or n == -math.huge then return "-" end
  return string.format("%d", math.floor(n))
end

-- "1 failed attempt", "2 failed attempts".
function M.plural(n, one, many)
  return M.int(n) .. " " .. (n == 1 and one or many)
end

-- Milliseconds -> "850ms", "12.3s", "2m05s", "1h02m".
function M.duration(ms)
  ms = math.floor(ms)
  if ms < 1000 then return string.format("%dms", ms) end
  local s = ms / 1000
  if s < 60 then return string.format("%.1fs", s) end
  s = math.floor(s)
  if s < 3600 then return string.format("%dm%02ds", math.floor(s / 60), s % 60) end
  return string.format("%dh%02dm", math.floor(s / 3600), math.floor(s / 60) % 60)
end

-- Compact JSON of a decoded value, cut to max characters with "...".
function M.compact(value, max)
  local text = json.encode(value) or tostring(value)
  if max and #text > max then text = text:sub(1, max - 3) .. "..." end
  return text
end

-- ---- tables ----

local function rstrip(s) return (s:gsub("%s+$", "")) end

-- header: {"ID", "TYPE", ...}; rows: lists of strings. Columns are as wide
-- as their widest cell, two spaces apart; lines have no trailing spaces.
-- Returns the lines (header first).
function M.table(header, rows)
  local widths = {}
  for i, h in ipairs(header) do widths[i] = #h end
  for _, row in ipairs(rows) do
    for i = 1, #header do
      local cell = tostring(row[i] or "")
      if #cell > widths[i] then widths[i] = #cell end
    end
  end
  local lines = {}
  local function line(cells)
    local parts = {}
    for i = 1, #header do
      local cell = tostring(cells[i] or "")
      parts[i] = i < #header and cell .. string.rep(" ", widths[i] - #cell) or cell
    end
    lines[#lines + 1] = rstrip(table.concat(parts, "  "))
  end
  line(header)
  for _, row in ipairs(rows) do line(row) end
  return lines
end

-- The `lodestone list` table of run objects.
function M.runs_table(runs)
  local rows = {}
  for i, r in ipairs(runs) do
    local status = r.status or "?"
    if type(r.waiting) == "table" and r.waiting.kind == "paused" then status = status .. " (paused)" end
    rows[i] = { r.id or "?", r.type or "?", r.version or "-", status, M.int(r.steps_completed),
                M.datetime(r.created_at) }
  end
  return M.table({ "ID", "TYPE", "VERSION", "STATUS", "STEPS", "CREATED" }, rows)
end

-- ---- one run ----

-- A run's "waiting" object -> "sleeping (cool-off) until 11:44:47" or
-- "retrying charge at 11:44:47"; when = M.time-like formatter of due_at.
function M.waiting(w, when)
  if type(w) ~= "table" then return nil end
  when = when or function(ts) return M.time(ts, false) end
  local name = type(w.name) == "string" and w.name ~= "" and w.name or nil
  if w.kind == "sleep" then
    return "sleeping " .. (name and "(" .. name .. ") " or "") .. "until " .. when(w.due_at)
  elseif w.kind == "retry" then
    return "retrying " .. (name or "?") .. " at " .. when(w.due_at)
  elseif w.kind == "paused" then
    return "paused: step " .. (name or "?") .. " used up its attempts (lodestone resume)"
  elseif w.kind == "child" then
    return "waiting for child run " .. (name or "?")
  elseif w.kind == "signal" then
    return "waiting for signal " .. (name or "?") .. (w.due_at and " until " .. when(w.due_at) or "")
  end
  return tostring(w.kind or "waiting") .. " " .. (name and name .. " " or "") .. "until " .. when(w.due_at)
end

-- The `lodestone show` lines: "label:  value", labels aligned.
function M.run_details(run)
  local function long_time(ts) return M.datetime(ts, true, true) end
  local fields = {
    { "id", run.id },
    { "type", run.type },
    { "parent", run.parent },
    { "branch", run.branch },
    { "status", run.status },
    { "created", run.created_at and long_time(run.created_at) },
    { "updated", run.updated_at and long_time(run.updated_at) },
    { "steps", run.steps_completed and M.int(run.steps_completed) },
    { "failed attempts", run.attempts_failed and M.int(run.attempts_failed) },
    { "waiting", M.waiting(run.waiting, long_time) },
    { "input", run.input ~= nil and M.compact(run.input) or nil },
    { "output", run.output ~= nil and M.compact(run.output) or nil },
    { "error", run.error },
    { "reason", run.reason ~= nil and (run.reason ~= "" and run.reason or "(none given)") or nil },
    { "by", run.by },
    { "custom status", run.custom_status ~= nil and M.compact(run.custom_status) or nil },
  }
  local lines = {}
  for _, f in ipairs(fields) do
    if f[2] ~= nil then
      local label = f[1] .. ":"
      lines[#lines + 1] = label .. string.rep(" ", 17 - #label) .. tostring(f[2])
    end
  end
  return lines
end

-- The `start --wait` status line: "running for 12.3s: 3 steps done,
-- 1 failed attempt; sleeping (cool-off) until 11:44:47"; once the run has
-- ended, "completed after 14.0s: ...".
function M.progress(run, elapsed_ms)
  local status = run.status or "?"
  local s = string.format("%s %s %s: %s, %s", status, status == "running" and "for" or "after",
    M.duration(elapsed_ms),
    M.plural(run.steps_completed or 0, "step done", "steps done"),
    M.plural(run.attempts_failed or 0, "failed attempt", "failed attempts"))
  local w = M.waiting(run.waiting)
  if w then s = s .. "; " .. w end
  return s
end

-- ---- history ----

local SHOWN = 120 -- characters of a JSON value in a timeline line

local function attempt(ev)
  local s = tostring(ev.name or "?")
  if ev.attempt ~= nil then s = s .. " (attempt " .. M.int(ev.attempt) .. ")" end
  return s
end

-- "name " for a named timer, "" for an unnamed one (ctx:sleep).
local function named(ev)
  return type(ev.name) == "string" and ev.name ~= "" and ev.name .. " " or ""
end

local DETAIL = {
  workflow_started = function(ev) return ev.input ~= nil and "input " .. M.compact(ev.input, SHOWN) or "" end,
  step_started = attempt,
  step_completed = function(ev)
    if ev.result == nil then return attempt(ev) end
    return attempt(ev) .. " -> " .. M.compact(ev.result, SHOWN)
  end,
  step_failed = function(ev)
    local s = attempt(ev) .. ": " .. tostring(ev.error or "?")
    if ev.retry_at then return s .. "; retry at " .. M.time(ev.retry_at) end
    if ev.paused then return s .. "; paused until resumed" end
    if ev.final then return s .. "; final" end
    return s
  end,
  timer_started = function(ev) return named(ev) .. "until " .. M.time(ev.due_at) end,
  timer_fired = function(ev) return (named(ev):gsub(" $", "")) end,
  side_effect_recorded = function(ev) return tostring(ev.name or "?") .. " = " .. M.compact(ev.value, SHOWN) end,
  workflow_completed = function(ev) return "output " .. M.compact(ev.output, SHOWN) end,
  workflow_failed = function(ev) return tostring(ev.error or "?") end,
  timer_cancelled = function(ev) return (named(ev):gsub(" $", "")) end,
  signal_received = function(ev)
    return tostring(ev.name or "?") .. (ev.payload ~= nil and " " .. M.compact(ev.payload, SHOWN) or "")
  end,
}

local function reason(ev)
  local s = ev.by and ("by " .. tostring(ev.by)) or ""
  if ev.reason and ev.reason ~= "" then s = s .. (s ~= "" and ": " or "") .. tostring(ev.reason) end
  return s
end
DETAIL.cancel_requested = reason
DETAIL.workflow_cancelled = reason
DETAIL.workflow_terminated = reason

-- Events this CLI does not know yet: their fields other than seq, type, time.
local function other(ev)
  local rest, any = {}, false
  for k, v in pairs(ev) do
    if k ~= "seq" and k ~= "type" and k ~= "time" then
      rest[k] = v
      any = true
    end
  end
  return any and M.compact(rest, SHOWN) or ""
end

-- The `lodestone history` lines, one per event:
-- "  #3  11:44:46.123  step_failed      charge (attempt 1): payments unavailable; retry at 11:44:47.123"
-- Sequence numbers are right-aligned, types padded to the longest (16 at least).
function M.timeline(events)
  local seqw, typew = 2, 16
  for _, ev in ipairs(events) do
    seqw = math.max(seqw, #("#" .. M.int(ev.seq)))
    typew = math.max(typew, #tostring(ev.type or "?"))
  end
  local lines = {}
  for i, ev in ipairs(events) do
    local seq = "#" .. M.int(ev.seq)
    local ty = tostring(ev.type or "?")
    local detail = (DETAIL[ty] or other)(ev)
    lines[i] = rstrip("  " .. string.rep(" ", seqw - #seq) .. seq .. "  " .. M.time(ev.time) .. "  "
      .. ty .. string.rep(" ", typew - #ty) .. " " .. detail)
  end
  return lines
end

-- ---- JSON for reading ----

-- Re-indents JSON text by two spaces, keeping its keys in the order given;
-- empty objects and arrays stay "{}" and "[]". Text that is not JSON comes
-- out re-spaced but otherwise intact.
function M.pretty_json(text)
  local out, depth, i, n = {}, 0, 1, #text
  local function newline() out[#out + 1] = "\n" .. string.rep("  ", depth) end
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' then
      local j = i + 1
      while j <= n do
        local d = text:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == '"' then break
        else j = j + 1 end
      end
      out[#out + 1] = text:sub(i, j)
      i = j + 1
    elseif c == "{" or c == "[" then
      local close = c == "{" and "}" or "]"
      local j = text:find("[^ \t\r\n]", i + 1)
      if j and text:sub(j, j) == close then
        out[#out + 1] = c .. close
        i = j + 1
      else
        out[#out + 1] = c
        depth = depth + 1
        newline()
        i = i + 1
      end
    elseif c == "}" or c == "]" then
      depth = math.max(0, depth - 1)
      newline()
      out[#out + 1] = c
      i = i + 1
    elseif c == "," then
      out[#out + 1] = ","
      newline()
      i = i + 1
    elseif c == ":" then
      out[#out + 1] = ": "
      i = i + 1
    elseif c:match("%s") then
      i = i + 1
    else
      local j = text:find('[%s,:%[%]{}"]', i) or n + 1
      out[#out + 1] = text:sub(i, j - 1)
      i = j
    end
  end
  return table.concat(out)
end

return M
