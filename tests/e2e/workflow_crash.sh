#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Crash test: 300 runs of a 3-step workflow whose steps append
# "run-id step attempt" lines to a file outside the daemon. lodestoned is
# SIGKILLed at random moments five times while they run and restarted each
# time. In the end every run is completed, every step of every run left a
# line, steps re-ran only when they were in flight at a kill (at most
# kills x workers extra lines), and each run's history holds exactly one
# step_completed per step.
#
# Usage: workflow_crash.sh BUILD_DIR
set -u
BUILD=${1:?usage: workflow_crash.sh BUILD_DIR}
. "$(dirname "$0")/lib.sh"

RUNS=${CRASH_RUNS:-300}
KILLS=5
WORKERS=4

e2e_tmpdir
trap e2e_cleanup EXIT
mkdir -p "$E2E_DIR/wf"
LINES="$E2E_DIR/steps.log"
SOCK="$E2E_DIR/d.sock"

cat >"$E2E_DIR/wf/crash3.lua" <<EOF
local workflow = require "lodestone.workflow"
local function mark(ctx, s, step)
  local f = assert(io.open("$LINES", "a"))
  f:write(ctx.id, " ", step, " ", s.attempt, "\n")
  f:close()
  return { step = step }
end
return workflow.define {
  name = "crash3",
  retry = { initial_interval = "50ms", max_attempts = 0 },
  run = function(ctx, input)
    ctx:step("one", function(s) return mark(ctx, s, "one") end)
    ctx:sleep(input.pause_ms / 1000)
    ctx:step("two", function(s) return mark(ctx, s, "two") end)
    ctx:sleep(input.pause_ms / 1000)
    ctx:step("three", function(s) return mark(ctx, s, "three") end)
    return { ok = true }
  end,
}
EOF

DAEMON_PID=
start_daemon() {
  "$BUILD/bin/lodestoned" --data "$E2E_DIR/data" --workflows "$E2E_DIR/wf" --socket "$SOCK" \
    --workers $WORKERS --grace 1 2>>"$E2E_DIR/daemon.log" &
  DAEMON_PID=$!
  E2E_PIDS+=("$DAEMON_PID")
  for _ in $(seq 100); do
    curl -sf --unix-socket "$SOCK" http://d/healthz >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "lodestoned did not come up; log:" >&2
  tail -20 "$E2E_DIR/daemon.log" >&2
  return 1
}

api() { curl -s --unix-socket "$SOCK" "$@"; }

start_daemon || { not_ok "daemon starts"; e2e_finish; exit 1; }

# Start the runs in the background, 8 at a time, while the killer works.
# A start that hits a dead daemon is retried: starts are idempotent by id.
starter() {
  local i
  for i in $(seq 1 "$RUNS"); do
    # Each run sleeps 1 to 1.4 s twice, so runs stay unfinished until the
    # last kill even when a loaded machine starts them all early.
    local body="{\"id\":\"crash-$i\",\"input\":{\"pause_ms\":$((1000 + (i * 37) % 400))}}"
    for _ in $(seq 200); do
      code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" \
        -X POST http://d/v1/workflows/crash3 -d "$body" 2>/dev/null)
      case "$code" in 200 | 201) break ;; esac
      sleep 0.05
    done
  done
}
starter &
STARTER=$!

# Each kill lands while runs are unfinished (checked just before it), at a
# random moment after that.
in_flight_kills=0
for k in $(seq 1 $KILLS); do
  sleep "0.$((3 + RANDOM % 7))"
  unfinished=0
  for _ in $(seq 250); do
    unfinished=$(api "http://d/v1/workflows?status=running&limit=1" | jq '.runs | length')
    [ "${unfinished:-0}" -gt 0 ] && break
    sleep 0.02
  done
  kill -9 "$DAEMON_PID"
  wait "$DAEMON_PID" 2>/dev/null
  [ "${unfinished:-0}" -gt 0 ] && in_flight_kills=$((in_flight_kills + 1))
  start_daemon || break
done
wait "$STARTER"
check "every SIGKILL hit a daemon with unfinished runs" "$KILLS" "$in_flight_kills"

# Wait (bounded) until nothing is running.
running=-1
for _ in $(seq 600); do
  running=$(api "http://d/v1/workflows?status=running&limit=1000" | jq '.runs | length')
  [ "$running" = 0 ] && break
  sleep 0.1
done
check "no run left running" 0 "$running"

completed=0
cursor=
while :; do
  page=$(api "http://d/v1/workflows?status=completed&type=crash3&limit=1000${cursor:+&cursor=$cursor}")
  completed=$((completed + $(jq '.runs | length' <<<"$page")))
  cursor=$(jq -r '.next_cursor // empty' <<<"$page")
  [ -n "$cursor" ] || break
done
check "every run completed" "$RUNS" "$completed"

# Every (run, step) appears at least once in the side-effect file.
missing=0
distinct=$(awk '{print $1, $2}' "$LINES" | sort -u | wc -l)
check "every step of every run ran" $((RUNS * 3)) "$distinct"
total=$(wc -l <"$LINES")
extra=$((total - RUNS * 3))
if [ "$extra" -ge 0 ] && [ "$extra" -le $((KILLS * WORKERS)) ]; then
  ok "re-run steps: $extra (at most $((KILLS * WORKERS)) = kills x workers)"
else
  not_ok "re-run steps within kills x workers" "$extra extra lines for $((KILLS * WORKERS)) allowed"
fi

# Exactly one step_completed per step in each run's history.
bad=0
for i in $(seq 1 "$RUNS"); do
  got=$(api "http://d/v1/workflows/crash-$i/history" |
    jq -r '[.events[] | select(.type == "step_completed") | .name] | sort | join(",")')
  if [ "$got" != "one,three,two" ]; then
    bad=$((bad + 1))
    [ $bad -le 3 ] && echo "#   crash-$i: step_completed events: [$got]"
  fi
done
check "each history has exactly one step_completed per step" 0 "$bad"

# No run started twice: one run per id.
all=$(api "http://d/v1/workflows?type=crash3&limit=1000" | jq '.runs | length')
check "one run per id" "$RUNS" "$all"

e2e_finish
