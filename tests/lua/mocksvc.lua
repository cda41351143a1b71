-- SPDX-License-Identifier: MIT
-- Starts and stops tests/tools/mocksvc (built as BUILD/tests/mocksvc; run.sh
-- puts its path in LS_MOCKSVC) for specs that need an HTTP service.
--   local svc = require("mocksvc").start{fail_first = 2, unix = true}
--   svc.url      "http://127.0.0.1:PORT"
--   svc.socket   unix socket path (with unix = true)
--   svc.log()    the request log, one "METHOD PATH STATUS KEY" per line
--   svc.stop()   SIGTERM by PID, waits for the exit; removes the temp dir
local M = {}

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

local function sleep(s) os.execute("sleep " .. s) end

-- Running, and not a zombie waiting for whoever adopted it to reap it.
local function alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

function M.start(opts)
  opts = opts or {}
  local bin = assert(os.getenv("LS_MOCKSVC"), "LS_MOCKSVC not set: run specs through tests/lua/run.sh")
  local dir = os.tmpname() -- a fresh name; replaced by a directory of the same name
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. sh_quote(dir)))
  local svc = { dir = dir }
  local cmd = { sh_quote(bin), "--port-file", sh_quote(dir .. "/port"), "--log", sh_quote(dir .. "/log") }
  if opts.fail_first then cmd[#cmd + 1] = "--fail-first " .. tonumber(opts.fail_first) end
  if opts.unix then
    svc.socket = dir .. "/svc.sock"
    cmd[#cmd + 1] = "--unix " .. sh_quote(svc.socket)
  end
  assert(os.execute(table.concat(cmd, " ") .. " 2>" .. sh_quote(dir .. "/stderr")
    .. " & echo $! > " .. sh_quote(dir .. "/pid")))
  svc.pid = tonumber(read(dir .. "/pid"))
  assert(svc.pid, "mocksvc did not start")

  function svc.log() return read(dir .. "/log") or "" end

  function svc.stop()
    if svc.pid then
      os.execute("kill " .. svc.pid .. " 2>/dev/null")
      for _ = 1, 100 do
        if not alive(svc.pid) then break end
        sleep(0.05)
      end
      os.execute("kill -9 " .. svc.pid .. " 2>/dev/null")
      svc.pid = nil
    end
    os.execute("rm -rf " .. sh_quote(dir))
  end

  for _ = 1, 200 do -- up to 10 s (longer under ASan)
    local port = tonumber(read(dir .. "/port") or "")
    if port then
      svc.port = port
      svc.url = "http://127.0.0.1:" .. port
      return svc
    end
    sleep(0.05)
  end
  local err = read(dir .. "/stderr") or ""
  svc.stop()
  error("mocksvc wrote no port file within 10 s: " .. err)
end

return M
