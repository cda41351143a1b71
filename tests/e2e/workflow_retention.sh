#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: retention with a real lodestoned (--retention 2s, passes
# every 200 ms). Finished runs become 404 (run and history) and leave the
# list while a running run and a type with a longer retention
# (workflow.define{retention = "1h"}) stay; /metrics counts the deletions;
# a deleted run's id starts a new run. Then 300 finished runs, a SIGKILL
# while retention deletes them in batches of 5, and a restart: every run
# is either whole (record and full history) or gone, and the next daemon
# deletes the rest.
# usage: tests/e2e/workflow_retention.sh BUILD_DIR   (from the project root)
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
cat > "$d/wf/quick.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "quick",
  run = function(ctx, input) return { n = input and input.n } end,
}
LUA
cat > "$d/wf/kept.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "kept",
  retention = "1h",
  run = function(ctx) return ctx:step("one", function() return 1 end) end,
}
LUA
cat > "$d/wf/waiter.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "waiter",
  run = function(ctx) return ctx:wait_signal("go") end,
}
LUA
cat > "$d/wf/bulk.lua" <<'LUA'
-- A history of some length to delete (side effects are written unsynced).
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "bulk",
  run = function(ctx, input)
    for i = 1, 3 do ctx:step("s" .. i, function() return i end) end
    for _ = 1, 400 do ctx:now() end -- side effects: cheap events
    return input
  end,
}
LUA

gone() { api GET "/v1/workflows/$1"; [ "$code" = 404 ]; }
deleted_total() {
  curl -s --unix-socket "$sock" http://lodestoned/metrics | awk '$1 == "lodestone_runs_deleted_total" { print $2 }'
}
waiting() { api GET "/v1/workflows/$1"; [ "$(j .waiting.kind)" = signal ]; }

start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 "$@" \
    || exit 1
  daemon=$E2E_DAEMON
}
kill_daemon() {
  kill -9 "$daemon"
  wait "$daemon" 2>/dev/null
  e2e_forget "$daemon"
}

# ---- a bare number is refused: "--retention 30" meant as days would delete runs after 30 s ----
out=$("$build/bin/lodestoned" --data "$d/bare" --retention 30 2>&1); rc=$?
check "--retention 30 is refused" 2 "$rc"
check_contains "naming the missing unit" '--retention: "30" needs a unit: s, m, h or d ("30d" for days), or "forever"' "$out"
out=$("$build/bin/lodestoned" --data "$d/bare" --retention-interval 5 2>&1); rc=$?
check "--retention-interval 5 is refused" 2 "$rc"

# ---- finished runs go after --retention; running and longer-kept ones stay ----
start_daemon --retention 2s --retention-interval 200ms
start waiter '{"id":"w-1"}'
check "a waiting run starts" 201 "$code"
for i in 1 2 3; do
  start quick "{\"id\":\"q-$i\",\"input\":{\"n\":$i}}"
  result "q-$i"
  check "q-$i completes" completed "$(j .status)"
done
start kept '{"id":"k-1"}'
result k-1
check "a run of a type kept for 1h completes" completed "$(j .status)"
poll 150 gone q-3
for i in 1 2 3; do
  api GET "/v1/workflows/q-$i"
  check "q-$i is gone after its retention: 404" 404 "$code"
  api GET "/v1/workflows/q-$i/history"
  check "and so is its history" 404 "$code"
done
api GET "/v1/workflows?limit=100"
check "the list holds the waiting run and the kept one" "k-1 w-1" "$(j '[.runs[].id] | sort | join(" ")')"
api GET /v1/workflows/w-1
check "the waiting run is still running" running "$(j .status)"
api GET /v1/workflows/k-1
check "the type with retention = 1h keeps its run" completed "$(j .status)"
counted() { [ "$(deleted_total)" = "$1" ]; }
logged() { grep -q "retention: deleted" "$d/daemon.log"; }
poll 50 counted 3 # counted just after the write that deleted them
check "/metrics counts the deleted runs" 3 "$(deleted_total)"
poll 50 logged # logged once the pass is over
check_contains "the daemon logs the deletions" "retention: deleted" "$(cat "$d/daemon.log")"
start quick '{"id":"q-1","input":{"n":10}}'
check "a deleted run's id starts a new run: 201" 201 "$code"
result q-1
check "the new run has the new input" 10 "$(j .output.n)"
e2e_stop "$daemon" 10

# ---- 300 finished runs, SIGKILL while they are deleted, restart ----
start_daemon --retention forever
for i in $(seq 300); do
  start bulk "{\"id\":\"b-$i\",\"input\":{\"i\":$i}}"
  [ "$code" = 201 ] || { not_ok "start b-$i" "$code $body"; break; }
done
done_bulk() {
  api GET "/v1/workflows?status=completed&type=bulk&limit=1000"
  [ "$(j '.runs | length')" = 300 ]
}
poll 600 done_bulk
check "300 bulk runs complete" 300 "$(j '.runs | length')"
api GET /v1/workflows/b-1/history
events=$(j '.events | length')
check_match "a bulk run has a long history" '^[0-9]{2,}$' "$events"
e2e_stop "$daemon" 10
sleep 1.2 # the runs are now over the 1 s retention below

start_daemon --retention 1s --retention-interval 10ms --retention-batch 5
# As soon as the first batch is counted (no sleep: the pass is quick).
for _ in $(seq 3000); do n=$(deleted_total); [ "${n:-0}" -gt 0 ] && break; done
kill_daemon
echo "# SIGKILL once /metrics counted ${n:-0} deleted runs"

start_daemon --retention forever
# Whole: the run is completed, its history has every event (seqs are
# dense: $events is there, the one after is not) from start to end.
# Matched in bash: 300 histories through jq take minutes on a busy machine.
whole=0 missing=0 broken=0
for i in $(seq 300); do
  api GET "/v1/workflows/b-$i"
  c1=$code b1=$body
  api GET "/v1/workflows/b-$i/history"
  if [ "$c1 $code" = "404 404" ]; then
    missing=$((missing + 1))
  elif [ "$c1 $code" = "200 200" ] && [[ $b1 == *'"status":"completed"'* ]] &&
    [[ $body == *"\"seq\":$events,"* && $body != *"\"seq\":$((events + 1)),"* ]] &&
    [[ $body == *'"type":"workflow_started"'* && $body == *'"type":"workflow_completed"'* ]]; then
    whole=$((whole + 1))
  else
    broken=$((broken + 1))
    echo "# b-$i: run $c1 ${b1:0:200}, history $code ${body:0:200}"
  fi
done
echo "# after the SIGKILL: $missing runs deleted, $whole whole"
check "every run is whole or gone after a SIGKILL during deletion" "0 300" "$broken $((whole + missing))"
api GET "/v1/workflows?type=bulk&limit=1000"
check "the list shows exactly the whole runs" "$whole" "$(j '.runs | length')"
api GET /v1/workflows/w-1
check "the waiting run survived" running "$(j .status)"
api GET /v1/workflows/q-1
q1_left=$([ "$code" = 200 ] && echo 1 || echo 0) # it ended before the bulk runs
e2e_stop "$daemon" 10

start_daemon --retention 1s --retention-interval 100ms
none_left() {
  api GET "/v1/workflows?type=bulk&limit=1000"
  [ "$(j '.runs | length')" = 0 ]
}
poll 300 none_left
check "the next daemon deletes the rest" 0 "$(j '.runs | length')"
poll 100 counted $((whole + q1_left))
check "and counts them (with q-1 when it was left)" $((whole + q1_left)) "$(deleted_total)"
gone q-1
check "q-1 is gone" 404 "$code"
api GET /v1/workflows/k-1
check "the kept type's run is still there" completed "$(j .status)"
api POST /v1/workflows/w-1/signals/go --data-binary '{"ok":true}'
result w-1
check "the waiting run completes on its signal" completed "$(j .status)"
poll 150 gone w-1
check "and goes once its retention has passed" 404 "$code"
e2e_stop "$daemon" 10
e2e_finish
