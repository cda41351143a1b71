#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: a step's HTTP call does not hold its worker. With one worker,
# three runs whose steps call an endpoint that answers only once all three
# requests are there together all complete; a run with no HTTP completes
# while another's call is in flight; a terminate and a daemon shutdown end
# a run whose call is still in flight without waiting for the call.
# usage: tests/e2e/workflow_http_wait.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }
export LODESTONE_LUA_DIR="$root/lua"

d=$E2E_DIR
data=$d/data
sock=$data/lodestoned.sock
mkdir -p "$d/wf"
cp "$root/workflows/hello.lua" "$d/wf/"
cat > "$d/wf/call.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "call",
  retry = { max_attempts = 1 },
  run = function(ctx, input)
    local before = ctx:step("before", function() return 1 end)
    local got = ctx:step("call", function(s) return s.http.get(input.url, { timeout = "30s" }).json end)
    return { before = before, got = got, after = ctx:step("after", function() return 2 end) }
  end,
}
LUA

"$build/tests/mocksvc" --port-file "$d/mock.port" --log "$d/mock.log" &
E2E_PIDS+=($!)
e2e_wait_file "$d/mock.port" || { echo "mocksvc did not start"; exit 1; }
mock=http://127.0.0.1:$(cat "$d/mock.port")
e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 1 --grace 1 \
  || exit 1
daemon=$E2E_DAEMON

# slow_calls N: whether N calls to /slow have arrived at the service.
slow_calls() { [ "$(grep -c '^GET /slow 0 ' "$d/mock.log")" -ge "$1" ]; }

# ---- three runs meet at a barrier on one worker ----
for i in 1 2 3; do start call "{\"id\":\"b-$i\",\"input\":{\"url\":\"$mock/barrier?n=3\"}}"; done
for i in 1 2 3; do
  result "b-$i"
  check "run b-$i completes, its call met the two others" 'completed {"after":2,"before":1,"got":{"met":3}}' \
    "$(j .status) $(jc .output)"
done

# ---- a run with no HTTP goes on while another's call is in flight ----
# (were the worker held by w-1's call, w-2 could not call before w-1's
# barrier gave up, and neither would meet the other)
start call "{\"id\":\"w-1\",\"input\":{\"url\":\"$mock/barrier?n=2\"}}"
start hello '{"id":"h-1","input":{"name":"x"}}'
result h-1
check "hello completes meanwhile" "completed hello, x" "$(j '.status + " " + .output.greeting')"
api GET /v1/workflows/w-1
check "while w-1 still waits for its answer" running "$(j .status)"
start call "{\"id\":\"w-2\",\"input\":{\"url\":\"$mock/barrier?n=2\"}}"
result w-1
check "then w-1 and w-2 meet" "completed 2" "$(j '.status + " " + (.output.got.met | tostring)')"
result w-2
check "both of them" "completed 2" "$(j '.status + " " + (.output.got.met | tostring)')"

# ---- terminate a run whose call is in flight ----
start call "{\"id\":\"t-1\",\"input\":{\"url\":\"$mock/slow?ms=60000\"}}"
poll 100 slow_calls 1
check "t-1's call has reached the service" 0 $?
api POST /v1/workflows/t-1/terminate --data-binary '{"reason":"enough"}'
check "terminate ends it before its 60 s call answers" "200 terminated" "$code $(j .status)"
start hello '{"id":"h-2","input":{"name":"y"}}'
result h-2
check "the worker goes on" completed "$(j .status)"

# ---- shutdown while a call is in flight ----
start call "{\"id\":\"s-1\",\"input\":{\"url\":\"$mock/slow?ms=60000\"}}"
poll 100 slow_calls 2
check "s-1's call has reached the service" 0 $?
e2e_stop "$daemon" 20
check "SIGTERM: lodestoned exits after its grace period, not after the call" 0 $?
check_contains "saying it interrupted the activation" "interrupting" "$(cat "$d/daemon.log")"
e2e_lodestoned "$sock" "$d/daemon2.log" --data "$data" --workflows "$d/wf" --workers 1 || exit 1
daemon=$E2E_DAEMON
api GET /v1/workflows/s-1
check "the run is still there, unfinished" running "$(j .status)"
api GET /v1/workflows/s-1/history
check "its call is the step it was in" "before" \
  "$(j '[.events[] | select(.type=="step_completed") | .name] | join(" ")')"

e2e_stop "$daemon" 20
e2e_finish
