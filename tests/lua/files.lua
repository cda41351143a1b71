-- SPDX-License-Identifier: MIT
-- Files for the specs: a fresh temporary directory, whole-file writes and
-- reads. `local files = require "files"` (tests/lua is on package.path).
local M = {}

--- files.tmpdir([tag]) -> the path of a new directory under $TMPDIR or /tmp
function M.tmpdir(tag)
  local p = io.popen("mktemp -d " .. (os.getenv("TMPDIR") or "/tmp") .. "/lodestone-" ..
    (tag or "lua") .. "-XXXXXX")
  local dir = p:read("*l")
  p:close()
  assert(dir and #dir > 0, "mktemp -d failed")
  return dir
end

--- files.write(path, text): replaces the file's contents
function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- files.read(path, [missing]) -> the file's contents; missing (when
--- given) for a file that does not exist, else an error
function M.read(path, missing)
  local f, err = io.open(path, "rb")
  if not f then
    if missing ~= nil then return missing end
    error(err, 2)
  end
  local text = f:read("*a")
  f:close()
  return text
end

return M
