#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: lodestone.testing writes the history lodestoned writes. The
# same workflow files go through the same scenarios twice, once against a
# real lodestoned over its HTTP API and once in lodestone.testing under
# LuaJIT (virtual time); the event sequences (type, name, attempt, final)
# and the outcomes (status, output or error, reason) must be equal:
# retries with backoff, a durable sleep, a step that fails for good,
# signals sent before a wait and into a wait with a timeout, a signal wait
# that times out, cancellation with cleanup, termination, parallel
# branches (each a branch run of its own: their histories too), a run
# that fails past the depth limit although its code catches the error, a
# step whose error and log line hold a secret's value (masked in both).
# usage: tests/e2e/testing_parity.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }
command -v luajit >/dev/null || { echo "luajit not found (scripts/deps.sh installs it)"; exit 1; }
export LODESTONE_LUA_DIR="$root/lua"

d=$E2E_DIR
data=$d/data
sock=$data/lodestoned.sock
mkdir -p "$d/wf"
cp "$root/workflows/approval.lua" "$d/wf/"
cat > "$d/wf/parity.lua" <<'LUA'
-- Steps, a retried step (exact backoff: no jitter), a durable sleep, a
-- recorded time, and a step that fails for good when asked to.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "parity",
  retry = { initial_interval = "100ms", backoff = 2.0, jitter = 0, max_attempts = 3 },
  run = function(ctx, input)
    local a = ctx:step("a", function(s) return { key_len = #s.idempotency_key } end)
    local b = ctx:step("b", function(s)
      if s.attempt < 3 then error("flaky " .. s.attempt) end
      return s.attempt
    end)
    ctx:sleep("200ms")
    local now = ctx:now()
    if input.fail then
      ctx:step("c", function() error("boom") end, { retry = { max_attempts = 2 } })
    end
    return { a = a.key_len > 0, b = b, now = type(now) }
  end,
}
LUA
cat > "$d/wf/inbox.lua" <<'LUA'
-- Signals sent while the run sleeps are kept, in order; a signal wait
-- with a timeout that passes.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "inbox",
  run = function(ctx)
    ctx:step("a", function() return 1 end)
    ctx:sleep("5s")
    local x1 = ctx:wait_signal("x")
    local x2 = ctx:wait_signal("x", { timeout = "10s" })
    local y, why = ctx:wait_signal("y", { timeout = "300ms" })
    return { x1 = x1, x2 = x2, y = y, why = why }
  end,
}
LUA

cat > "$d/wf/fan.lua" <<'LUA'
-- Parallel branches: one sleeps, one retries, one has a section of its
-- own. (They end far apart, so in the same order in both.)
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "fan",
  retry = { initial_interval = "1200ms", jitter = 0, max_attempts = 3 },
  run = function(ctx)
    local a = ctx:step("a", function() return 1 end)
    local r = ctx:all {
      function(c) c:sleep("400ms"); return c:step("x", function() return "X" end) end,
      function(c)
        return c:step("y", function(s)
          if s.attempt < 2 then error("flaky") end
          return s.attempt
        end)
      end,
      function(c) return c:all { function(g) return g:step("n", function() return "N" end) end } end,
    }
    return { a = a, r = r, z = ctx:step("z", function() return 2 end) }
  end,
}
LUA

cat > "$d/wf/deep.lua" <<'LUA'
-- Starts itself until the depth limit (32 in both) fails the deepest run,
-- whose code catches the failure and returns: the run still fails, with
-- the limit's message as it is.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "deep",
  run = function(ctx, n)
    n = n or 0
    local ok = pcall(ctx.child, ctx, "deep", n + 1, { id = "dp-" .. (n + 1) })
    return { n = n, ok = ok }
  end,
}
LUA

cat > "$d/wf/leak.lua" <<'LUA'
-- A step that puts a secret's value in its log line and its error: both
-- show "[secret stripe_key]" instead.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "leak",
  retry = { initial_interval = "100ms", jitter = 0, max_attempts = 2 },
  run = function(ctx)
    ctx:step("charge", function(s)
      s:log("charging with " .. s:secret("stripe_key"))
      error("refused: Bearer " .. s:secret("stripe_key"))
    end)
  end,
}
LUA
TOKEN=sk_live_parity_4eC39HqLyjWDarjtT1zdp7dc

# The harness side: runs one scenario, prints the events and the outcome
# in the shape jq gives the daemon's below.
cat > "$d/harness.lua" <<'LUA'
package.path = arg[1] .. "/?.lua;" .. arg[1] .. "/?/init.lua;" .. package.path
package.cpath = arg[2] .. "/lib/lua/5.1/?.so;" .. package.cpath
local testing = require "lodestone.testing"
local json = require("lodestone.core").json
local wf, scenario = arg[3], arg[4]
local t
if scenario == "retry" then
  t = testing.run(wf .. "/parity.lua", { input = {}, auto_advance = true })
elseif scenario == "fail" then
  t = testing.run(wf .. "/parity.lua", { input = { fail = true }, auto_advance = true })
elseif scenario == "inbox" then
  t = testing.run(wf .. "/inbox.lua")
  t:signal("x", 1)
  t:signal("x", 2)
  t:advance("5s")
  t:advance("300ms")
elseif scenario == "approve" then
  t = testing.run(wf .. "/approval.lua", { input = { item = "desk" } })
  t:signal("approved", { by = "alice" })
elseif scenario == "expire" then
  t = testing.run(wf .. "/approval.lua", { input = { item = "desk", timeout = "300ms" } })
  t:advance("300ms")
elseif scenario == "cancel" then
  t = testing.run(wf .. "/approval.lua", { input = { item = "desk" } })
  t:cancel("not needed", "api")
elseif scenario == "terminate" then
  t = testing.run(wf .. "/approval.lua", { input = { item = "desk" } })
  t:terminate("stuck", "api")
elseif scenario == "fan" then
  t = testing.run(wf .. "/fan.lua", { auto_advance = true })
elseif scenario == "leak" then
  t = testing.run(wf .. "/leak.lua", { secrets = { stripe_key = arg[5] }, auto_advance = true })
elseif scenario == "deep" then
  t = testing.run(wf .. "/deep.lua", { id = "dp-0" })
  for i = 1, 32 do t = t:child("dp-" .. i) end
end
-- The run's events, then each branch run's (depth first).
local function events(run)
  for _, e in ipairs(run.history) do
    print(json.encode({ type = e.type, name = e.name, attempt = e.attempt, final = e.final }))
  end
  for _, e in ipairs(run.history) do
    local id = e.type == "child_started" and e.name:match("^[%[%]%d.]*(.-%-b[%d._]+)$")
    if id then events(run:child(id)) end
  end
end
events(t)
print(json.encode({ status = t.status, output = t.output, error = t.error, reason = t.reason }))
LUA

signal() { api POST "/v1/workflows/$1/signals/$2" -H 'Content-Type: application/json' --data-binary "$3"; }

# The daemon's side of a finished run, in the harness's shape: its
# events, then each branch run's (depth first), then its outcome.
daemon_events() {
  local h kid
  api GET "/v1/workflows/$1/history"
  h=$body
  printf '%s' "$h" | jq -S -c '.events[] | {type, name, attempt, final} | with_entries(select(.value != null))'
  for kid in $(printf '%s' "$h" | jq -r '.events[] | select(.type=="child_started") | .name
                 | sub("^(\\[[0-9]+\\.[0-9]+\\])+"; "") | select(test("-b[0-9._]+$"))'); do
    daemon_events "$kid"
  done
}
daemon_view() {
  api GET "/v1/workflows/$1/result?wait=20"
  daemon_events "$1"
  api GET "/v1/workflows/$1"
  printf '%s' "$body" | jq -S -c '{status, output, error, reason} | with_entries(select(.value != null))'
}

# luajit loading the module built with ASan needs its runtime first.
SAN_ENV=("${E2E_SAN_ENV[@]}")

harness_view() {
  "${SAN_ENV[@]}" luajit "$d/harness.lua" "$root/lua" "$build" "$d/wf" "$1" "$TOKEN" 2>&1
}

# Idempotency keys are ID-N in both, and branch runs ID-b1.2, but the
# daemon's ID is its internal id.
same_keys() { sed -E 's/"order":"[^"]*-([0-9]+)"/"order":"ID-\1"/; s/"([^"]*\])?[^"[]*-b([0-9._]+)"/"\1ID-b\2"/g'; }

compare() { # NAME RUN_ID SCENARIO
  local want got
  got=$(daemon_view "$2" | same_keys)
  want=$(harness_view "$3" | same_keys)
  if [ "$want" = "$got" ]; then
    ok "$1"
  else
    not_ok "$1" "harness and daemon differ:"
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | sed 's/^/#   /'
  fi
}

e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 || exit 1

start parity '{"id":"p-retry","input":{}}'
compare "retries with backoff, a sleep and a recorded time: the same history" p-retry retry

start parity '{"id":"p-fail","input":{"fail":true}}'
compare "a step that fails for good: the same history and error" p-fail fail

start inbox '{"id":"i-1"}'
poll 100 waiting_for i-1 sleep || not_ok "inbox run sleeps"
signal i-1 x 1
signal i-1 x 2
compare "signals sent during a sleep, a wait that times out: the same history" i-1 inbox

start approval '{"id":"a-ok","input":{"item":"desk"}}'
poll 100 waiting_for a-ok signal || not_ok "approval waits"
signal a-ok approved '{"by":"alice"}'
compare "a signal into a wait with a timeout: the same history and output" a-ok approve

start approval '{"id":"a-exp","input":{"item":"desk","timeout":"300ms"}}'
compare "a signal wait that times out: the same history and error" a-exp expire

start approval '{"id":"a-can","input":{"item":"desk"}}'
poll 100 waiting_for a-can signal || not_ok "approval waits (cancel)"
api POST /v1/workflows/a-can/cancel -H 'Content-Type: application/json' --data-binary '{"reason":"not needed"}'
compare "cancellation with cleanup: the same history and reason" a-can cancel

start approval '{"id":"a-term","input":{"item":"desk"}}'
poll 100 waiting_for a-term signal || not_ok "approval waits (terminate)"
api POST /v1/workflows/a-term/terminate -H 'Content-Type: application/json' --data-binary '{"reason":"stuck"}'
compare "termination: the same history and reason" a-term terminate

start fan '{"id":"f-1"}'
compare "parallel branches: the same histories, the run's and its branch runs'" f-1 fan

api PUT /v1/secrets/stripe_key --data-binary "$TOKEN"
check "the secret is set" 200 "$code"
start leak '{"id":"lk-1"}'
compare "a secret's value in a step's error: the same masked history and error" lk-1 leak
check_contains "the harness's error names the secret" 'Bearer [secret stripe_key]"' "$(harness_view leak)"
api GET /v1/workflows/lk-1/history
hist=$body
check "the daemon's step errors name the secret" "2" \
  "$(printf '%s' "$hist" | jq '[.events[] | select(.type=="step_failed")
     | select(.error | endswith("refused: Bearer [secret stripe_key]"))] | length')"
api GET /v1/workflows/lk-1
check_absent "nor the history nor the run show the value" "$TOKEN" "$hist$body"
check_contains "the daemon's log has the line, masked" "charging with [secret stripe_key]" "$(cat "$d/daemon.log")"
check_absent "nor lodestoned's log holds the value" "$TOKEN" "$(cat "$d/daemon.log")"
# (lodestoned recorded the message with the driver's frames after it:
# "stack traceback: [C]: in function 'complete' ... in function 'drive'")
start deep '{"id":"dp-0"}'
result dp-0
check "the runs above it complete" completed "$(j .status)"
compare "a depth failure caught by pcall: the same history and error" dp-32 deep

e2e_stop "$E2E_DAEMON" 10 || true
e2e_finish
