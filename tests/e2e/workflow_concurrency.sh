#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: concurrency = { limit = 2, key = "tenant" } and a per-type
# total: at most two runs per tenant are admitted at once, the others wait
# (listed, waiting.kind concurrency, none of their code run) and start in
# order as slots free; a SIGKILL while runs wait keeps the order and the
# limit; a waiting run can be terminated.
# usage: tests/e2e/workflow_concurrency.sh BUILD_DIR   (from the project root)
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
cat > "$d/wf/report.lua" <<'LUA'
-- Holds its slot until it gets the signal "done".
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "report",
  concurrency = { limit = 2, key = "tenant", total = 3 },
  run = function(ctx, input)
    local at = ctx:step("begin", function() return 1 end)
    ctx:wait_signal("done")
    return input.tenant .. "-" .. at
  end,
}
LUA

kind_of() { api GET "/v1/workflows/$1"; j '.waiting.kind'; }
is_kind() { [ "$(kind_of "$1")" = "$2" ]; }
began() { api GET "/v1/workflows/$1/history"; j '[.events[] | select(.type=="step_completed")] | length'; }
start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 \
    || exit 1
  daemon=$E2E_DAEMON
}
start_daemon

for i in 1 2 3; do api POST /v1/workflows/report --data-binary "{\"id\":\"a$i\",\"input\":{\"tenant\":\"acme\"}}"; done
api POST /v1/workflows/report --data-binary '{"id":"b1","input":{"tenant":"bolt"}}'
api POST /v1/workflows/report --data-binary '{"id":"b2","input":{"tenant":"bolt"}}'
poll 100 is_kind a1 signal; poll 100 is_kind a2 signal; poll 100 is_kind b1 signal
check "two acme runs are admitted" "signal signal" "$(kind_of a1) $(kind_of a2)"
api GET /v1/workflows/a3
check "the third acme run waits for a slot" "concurrency acme" "$(j '.waiting.kind + " " + .waiting.name')"
check "and has run none of its code" 0 "$(began a3)"
check "bolt has its own slots" signal "$(kind_of b1)"
check "b2 waits: the type's total of 3 is reached" concurrency "$(kind_of b2)"
api GET '/v1/workflows?status=running&type=report'
check "waiting runs are listed as running" 5 "$(j '.runs | length')"

# SIGKILL while two runs wait.
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
start_daemon
poll 100 is_kind a1 signal
check "after a SIGKILL a3 still waits" concurrency "$(kind_of a3)"
check "and so does b2" concurrency "$(kind_of b2)"

api POST /v1/workflows/a1/signals/done --data-binary 'null'
result a1
check "a1 completes" "completed acme-1" "$(j '.status + " " + .output')"
poll 100 is_kind a3 signal
check "its slot goes to the oldest that fits: a3 (acme)" signal "$(kind_of a3)"
check "b2 still waits (the total is 3 again)" concurrency "$(kind_of b2)"
api POST /v1/workflows/b1/signals/done --data-binary 'null'
result b1
poll 100 is_kind b2 signal
check "b1's end admits b2" signal "$(kind_of b2)"

# A waiting run can be terminated; it frees nothing it did not hold.
api POST /v1/workflows/report --data-binary '{"id":"a4","input":{"tenant":"acme"}}'
poll 100 is_kind a4 concurrency
api POST /v1/workflows/a4/terminate --data-binary '{"reason":"not needed"}'
check "a waiting run is terminated" terminated "$(j .status)"
for id in a2 a3 b2; do api POST /v1/workflows/$id/signals/done --data-binary 'null'; done
for id in a2 a3 b2; do result $id; check "$id completes" completed "$(j .status)"; done
check "a3 ran its steps once" 1 "$(began a3)"

e2e_stop "$daemon" 10
e2e_finish
