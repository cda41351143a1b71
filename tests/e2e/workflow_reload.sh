#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SIGHUP under load: lodestoned reloads its workflow files five times while
# 2,000 runs go through it 16 at a time (bench/flowload). Runs parked in
# the old Lua state finish there while new ones start in the new state:
# every run completes, none is left behind, and the new file is in use
# right after the last reload.
#
# Usage: workflow_reload.sh BUILD_DIR
set -u
BUILD=${1:?usage: workflow_reload.sh BUILD_DIR}
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
trap e2e_cleanup EXIT
mkdir -p "$E2E_DIR/wf"
write_wf() { # version
  cat >"$E2E_DIR/wf/three.lua" <<LUA
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "three",
  run = function(ctx, input)
    local a = ctx:step("a", function() return { n = 1 } end)
    local b = ctx:step("b", function() return { n = a.n + 1 } end)
    local c = ctx:step("c", function() return { n = b.n + 1, version = $1 } end)
    return { total = c.n, version = c.version }
  end,
}
LUA
}
write_wf 1
SOCK="$E2E_DIR/d.sock"
"$BUILD/bin/lodestoned" --data "$E2E_DIR/data" --workflows "$E2E_DIR/wf" --socket "$SOCK" \
  --workers 2 2>"$E2E_DIR/daemon.log" &
DAEMON=$!
E2E_PIDS+=("$DAEMON")
for _ in $(seq 100); do
  curl -sf --unix-socket "$SOCK" http://d/healthz >/dev/null 2>&1 && break
  sleep 0.1
done

"$BUILD/bench/flowload" "$SOCK" three 16 2000 >"$E2E_DIR/load.out" 2>&1 &
LOAD=$!
# Each SIGHUP waits for the reload before it to be logged: signals that
# arrive together are one reload (the newest files win), and the test
# wants five.
reloads() { grep -c 'workflows reloaded' "$E2E_DIR/daemon.log"; }
for v in 2 3 4 5 6; do
  sleep 0.3
  write_wf "$v"
  kill -HUP "$DAEMON"
  for _ in $(seq 200); do
    [ "$(reloads)" -ge $((v - 1)) ] && break
    sleep 0.05
  done
done
wait "$LOAD"
check "the load finished without errors" 0 $?
check_contains "and ran all its runs" "2000 runs" "$(cat "$E2E_DIR/load.out")"
check "five reloads were logged" 5 "$(reloads)"

done_runs=0
cursor=
while :; do
  page=$(curl -s --unix-socket "$SOCK" "http://d/v1/workflows?status=completed&limit=1000${cursor:+&cursor=$cursor}")
  done_runs=$((done_runs + $(jq '.runs | length' <<<"$page")))
  cursor=$(jq -r '.next_cursor // empty' <<<"$page")
  [ -n "$cursor" ] || break
done
check "every run completed" 2000 "$done_runs"
check "none is left running" 0 \
  "$(curl -s --unix-socket "$SOCK" 'http://d/v1/workflows?status=running' | jq '.runs | length')"

# The file of the last reload is what new runs use, on every worker.
for i in 1 2 3 4; do
  curl -s -o /dev/null --unix-socket "$SOCK" -X POST http://d/v1/workflows/three -d "{\"id\":\"after-$i\"}"
done
versions=$(for i in 1 2 3 4; do
  curl -s --unix-socket "$SOCK" "http://d/v1/workflows/after-$i/result?wait=10" | jq -r .output.version
done | sort -u | paste -sd' ')
check "runs started after the last reload use its file" 6 "$versions"
check_absent "no error in the log" '"level":"error"' "$(cat "$E2E_DIR/daemon.log")"

e2e_finish
