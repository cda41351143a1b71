#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: child workflows with the examples workflows/batch_approval.lua
# (one approval child run per item) and workflows/approval.lua: children
# start with predictable ids and link to their parent, a SIGKILL of the
# daemon while the parent waits for its children loses nothing, the
# parent collects outputs and failures, and terminating a parent cancels
# its open children (which clean up).
# usage: tests/e2e/workflow_children.sh BUILD_DIR   (from the project root)
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
cp "$root/workflows/approval.lua" "$root/workflows/batch_approval.lua" "$d/wf/"

start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 \
    || exit 1
  daemon=$E2E_DAEMON
}
start_daemon

start batch_approval '{"id":"b-1","input":{"items":["laptop","desk","chair"]}}'
check "the batch starts" 201 "$code"
poll 100 waiting_for b-1 child
check "it waits for its first child" "child b-1-1" "$(j '.waiting.kind + " " + .waiting.name')"
for i in 1 2 3; do
  poll 100 waiting_for "b-1-$i" signal
  check "child b-1-$i waits for approval" "signal approved" "$(j '.waiting.kind + " " + .waiting.name')"
  check "child b-1-$i names its parent" "b-1" "$(j .parent)"
done
api GET '/v1/workflows?type=approval'
check "three approval runs exist" 3 "$(j '.runs | length')"
api POST /v1/workflows/b-1-1/signals/approved --data-binary '{"by":"alice"}'
result b-1-1
check "the first child completes" completed "$(j .status)"

# SIGKILL while the parent waits for the other two.
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
start_daemon
poll 100 waiting_for b-1 child
check "after the restart the parent waits for child 2" "child b-1-2" "$(j '.waiting.kind + " " + .waiting.name')"
check "its custom status counts what is open" '{"open":2,"stage":"waiting for approvals"}' "$(jc .custom_status)"
api POST /v1/workflows/b-1-2/signals/approved --data-binary '{"by":"bob"}'
check "child 2 takes its signal after the restart" 202 "$code"
api POST /v1/workflows/b-1-3/cancel --data-binary '{"reason":"out of stock"}'
result b-1
check "the batch completes" completed "$(j .status)"
check "with each child's outcome" "alice bob" "$(j '[.output[] | .approved_by // empty] | join(" ")')"
check_contains "and the cancelled child's error" "child workflow b-1-3 cancelled: out of stock" "$(j '.output[2].error')"
api GET /v1/workflows/b-1/history
check "history: three children started" 3 "$(j '[.events[] | select(.type=="child_started")] | length')"
check "two completed, one failed" "2 1" "$(j '([.events[] | select(.type=="child_completed")] | length | tostring) + " " + ([.events[] | select(.type=="child_failed")] | length | tostring)')"
check "child_started names the workflow" approval "$(j '[.events[] | select(.type=="child_started")][0].workflow')"

# A parent that ends first cancels its open children.
start batch_approval '{"id":"b-2","input":{"items":["lamp","rug"]}}'
poll 100 waiting_for b-2-2 signal
api POST /v1/workflows/b-2/terminate --data-binary '{"reason":"stop"}'
check "the parent is terminated" terminated "$(j .status)"
result b-2-1
check "its open child is cancelled" cancelled "$(j .status)"
api GET /v1/workflows/b-2-1
check "by its parent" "b-2 its parent run ended" "$(j '.by + " " + .reason')"
api GET /v1/workflows/b-2-2/history
result b-2-2
check "every child ends" cancelled "$(j .status)"
api GET /v1/workflows/b-2-2/history
check "and releases its reservation" 1 "$(j '[.events[] | select(.type=="step_completed" and .name=="release")] | length')"

# Errors: an unknown child type fails the parent with the engine's message.
cat > "$d/wf/bad_parent.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "bad_parent", run = function(ctx) return ctx:child("nope", {}) end }
LUA
kill -HUP "$daemon"
poll 100 bash -c "curl -s --unix-socket '$sock' http://lodestoned/v1/workflow-types | grep -q bad_parent"
start bad_parent '{"id":"bp-1"}'
result bp-1
check "a child of an unknown type fails the parent" failed "$(j .status)"
check "saying which" 'child workflow: unknown workflow type "nope"; known types: approval, bad_parent, batch_approval' "$(j .error)"

e2e_stop "$daemon" 10
e2e_finish
