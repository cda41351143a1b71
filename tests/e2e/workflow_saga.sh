#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: a saga (workflows/trip_booking.lua). A booking that fails for
# good makes the run undo the earlier bookings, newest first, each a
# durable step; a SIGKILL in the middle of the compensations (during a
# durable wait between them) loses nothing and runs no undo twice.
# usage: tests/e2e/workflow_saga.sh BUILD_DIR   (from the project root)
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
cp "$root/workflows/trip_booking.lua" "$d/wf/"

steps() { api GET "/v1/workflows/$1/history"; j '[.events[] | select(.type=="step_completed") | .name] | join(",")'; }
start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 \
    || exit 1
  daemon=$E2E_DAEMON
}
start_daemon

api POST /v1/workflows/trip_booking --data-binary '{"id":"ok-1","input":{"trip":"lisbon"}}'
result ok-1
check "all three booked: the run completes" "completed 3" "$(j '.status + " " + (.output.booked | length | tostring)')"
check "no compensation ran" "book flight,book hotel,book car" "$(steps ok-1)"

api POST /v1/workflows/trip_booking --data-binary '{"id":"car-1","input":{"trip":"porto","car":"none left"}}'
result car-1
check "the car fails for good: the run fails with its error" "failed" "$(j .status)"
check_contains "naming it" "car: none left" "$(j .error)"
check "the earlier bookings are undone, newest first" \
  "book flight,book hotel,cancel hotel,cancel flight" "$(steps car-1)"

# SIGKILL between two compensations (each waits 2s first).
api POST /v1/workflows/trip_booking --data-binary '{"id":"car-2","input":{"trip":"faro","car":"none left","cool_off":"2s"}}'
hotel_undone() { [ "$(steps car-2)" = "book flight,book hotel,cancel hotel" ]; }
poll 100 hotel_undone
check "before the kill: the hotel undone, the flight not yet" \
  "book flight,book hotel,cancel hotel" "$(steps car-2)"
api GET /v1/workflows/car-2
check "the run shows it is compensating" compensating "$(j .custom_status.stage)"
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
start_daemon
result car-2
check "after the restart the compensation finishes and the run fails" failed "$(j .status)"
check "each undo ran once, in order" "book flight,book hotel,cancel hotel,cancel flight" "$(steps car-2)"

e2e_stop "$daemon" 10
e2e_finish
