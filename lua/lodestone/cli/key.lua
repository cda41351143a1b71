-- SPDX-License-Identifier: MIT
-- `lodestone key show|rotate`: lodestoned's keyring, as a client of its
-- HTTP API (GET /v1/keys, POST /v1/keys/rotate); never key material.
-- Connection options, errors and exit codes are the workflow commands'
-- (lodestone.cli.workflow).
local lib = require("lodestone.cli.workflow").lib

local M = {}

-- A rotation reseals every secret in synced batches: give it longer than
-- the other calls' 10 s, and --timeout SECONDS more still (a store of many
-- secrets). Cut off, it goes on in lodestoned: exit 4, as start --wait's.
local ROTATE_TIMEOUT = 300
local MAX_TIMEOUT = 2147483 -- s: about 24 days, the HTTP client's limit

local HELP = [[
usage: lodestone key show [--json]
       lodestone key rotate [--json] [--timeout SECONDS]

lodestoned seals secrets and workflow payloads (inputs, step results,
signals, outputs) under the current key of its key file (lodestoned
--key-file, default DATA/master.key); each sealed value names its key.

`show` prints the current key's id, how many keys the key file holds and
how many secrets are sealed under a key other than the current one.

`rotate` adds a new random key to the key file and makes it current: new
payloads are sealed under it, and every secret is resealed under it.
Payloads already stored stay under their old keys, which stay in the key
file and must be kept until `lodestoned --retire-old-keys` (lodestoned
stopped) reseals them under the current key and leaves it alone in the key
file. Back the key file up after a rotation: it changed, and lodestoned
refuses to start with an older copy, which lacks the new key.
lodestone waits up to --timeout SECONDS (default 300) for the answer; when
they run out it exits 4 and the rotation goes on in lodestoned (`key show`
counts the secrets left under older keys); when they run out before a
connection was made, nothing was sent: exit 3, as for any lodestoned that
cannot be reached.
A secret that does not open is skipped and left as it was, and the others
are resealed: then (exit 1, naming the first such secret, why, and how many)
the new key is current all the same and the skipped secrets stay under
their old keys: set them again, or remove them, and rotate again, which
reseals every secret not under the newest key. A store error stops the
reseal (exit 1, saying why); rotating again goes on from there.

--json prints the API's object (also the one of a half-done rotation).
]]

local function keys_text(n)
  return n == 1 and "1 key" or tostring(n) .. " keys"
end

local function show(args)
  local pos, opts = lib.parse(args, 3, { json = "flag" })
  if #pos ~= 0 then lib.usage_error("unexpected argument '" .. pos[1] .. "'") end
  local res = lib.call(lib.connection(opts), "GET", "/v1/keys")
  if opts.json then lib.print_json_text(res.body) return 0 end
  local k = res.json
  lib.print_lines {
    "current key: " .. tostring(k.current),
    "keys:        " .. tostring(k.keys) ..
      (tonumber(k.keys) and k.keys > 1 and " (the older ones open data sealed before a rotation)" or ""),
    "secrets under older keys: " .. tostring(k.secrets_under_older_keys) ..
      (tonumber(k.secrets_under_older_keys) and k.secrets_under_older_keys > 0
        and " (a rotation reseals them under the current key)" or ""),
  }
  return 0
end

local function rotate(args)
  local pos, opts = lib.parse(args, 3, { json = "flag", timeout = "value" })
  if #pos ~= 0 then lib.usage_error("unexpected argument '" .. pos[1] .. "'") end
  local seconds = ROTATE_TIMEOUT
  if opts.timeout then
    -- the transfer's limit is a whole number of ms that fits an int
    seconds = tonumber(opts.timeout)
    if not seconds or seconds ~= seconds or seconds <= 0 or seconds > MAX_TIMEOUT then
      lib.usage_error("--timeout: expected seconds (more than 0, at most " .. MAX_TIMEOUT
        .. "), got " .. opts.timeout)
    end
  end
  local ok, res = pcall(lib.call, lib.connection(opts), "POST", "/v1/keys/rotate", {
    timeout = seconds,
    on_error = function(r)
      -- a rotation that happened, with its reseal cut short: its numbers too
      if opts.json and type(r.json) == "table" and r.json.key ~= nil then lib.print_json_text(r.body) end
    end,
  })
  if not ok then
    -- the request was sent and no answer came in time: not "unreachable"
    -- (a connect that timed out sent nothing: that is)
    local msg = type(res) == "table" and res.code == 3 and tostring(res.msg) or ""
    if msg:find("timed out after", 1, true) and not msg:find("while connecting", 1, true) then
      lib.fail(4, "lodestone key: no answer from lodestoned within " .. seconds .. " s (--timeout);"
        .. " the rotation goes on there: lodestone key show tells the current key and how many"
        .. " secrets are still under older keys")
    end
    error(res, 0)
  end
  local k = res.json
  if opts.json then lib.print_json_text(res.body) end
  local n = tonumber(k.secrets_resealed) or 0
  io.stderr:write("rotated: key ", tostring(k.key), " is current (the key file holds ",
    keys_text(k.keys), "); ", n == 1 and "1 secret" or n .. " secrets", " resealed under it\n",
    "back up the key file now: it changed\n")
  return 0
end

local SUB = { show = show, rotate = rotate }

function M.main(args)
  return lib.subcommands(args, "key", HELP, SUB, "show, rotate", { json = "flag", timeout = "value" })
end

return M
