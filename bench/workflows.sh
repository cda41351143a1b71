#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Durable workflows end to end: a real lodestoned (LuaJIT runner, synced
# writes) driven over its unix socket by bench/flowload, with a 3-step
# workflow whose steps return small JSON. Prints:
#   - the disk's own fdatasync rate (the physical reference);
#   - runs per second to completion at concurrency 1, 32 and 256, and
#     start-to-result latency p50/p99 (median of 3 rounds each);
#   - the daemon's RSS with 1,000,000 completed runs stored;
#   - the time to resume 100,000 unfinished runs after a restart.
# The reference line is what two well-known durable-execution engines
# measured on this machine with the same shape (see issue 4).
# Figures only: nothing here passes or fails on time.
#
# usage: bench/workflows.sh BUILD_DIR TMPDIR
#   STORED_RUNS (default 1000000) and RESUME_RUNS (default 100000) scale
#   the last two.
set -euo pipefail
build=$1
tmp=$2/workflows
stored=${STORED_RUNS:-1000000}
resume=${RESUME_RUNS:-100000}
mkdir -p "$tmp/wf"
cat >"$tmp/wf/three.lua" <<'EOF'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "three",
  run = function(ctx, input)
    local a = ctx:step("a", function() return { n = input.n } end)
    local b = ctx:step("b", function() return { n = a.n + 1 } end)
    local c = ctx:step("c", function() return { n = b.n + 1 } end)
    return { total = c.n }
  end,
}
EOF

cat >"$tmp/wf/nap.lua" <<'EOF'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "nap",
  run = function(ctx, input)
    ctx:sleep(input.ms / 1000)
    return true
  end,
}
EOF

pid=
start_daemon() { # data-dir extra-args...
  local data=$1
  shift
  "$build/bin/lodestoned" --data "$data" --workflows "$tmp/wf" --log-level warn "$@" \
    2>>"$tmp/daemon.log" &
  pid=$!
  for _ in $(seq 600); do
    curl -sf --unix-socket "$data/lodestoned.sock" http://d/healthz >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "lodestoned did not start" >&2
  tail "$tmp/daemon.log" >&2
  return 1
}
stop_daemon() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap stop_daemon EXIT

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

"$build/bench/flowload" --fsync-ref "$tmp"

echo "lodestoned --workers 4 (LuaJIT runner), 3 steps, synced writes, flowload over the unix socket; median of 3 rounds:"
for mode in two one-request; do
  if [ "$mode" = two ]; then
    echo " start (POST) then result (GET .../result?wait=60), two requests per run:"
  else
    echo " start and wait in one request (POST .../three?wait=60):"
  fi
  for conc in 1 32 256; do
    runs=$((conc == 1 ? 1000 : 10000))
    rates=() p50s=() p99s=()
    for round in 1 2 3; do
      rm -rf "$tmp/data"
      start_daemon "$tmp/data" --workers 4
      line=$("$build/bench/flowload" "$tmp/data/lodestoned.sock" three "$conc" "$runs" \
        $([ "$mode" = two ] || echo one-request))
      stop_daemon
      rates+=("$(sed -E 's/.*: ([0-9]+) runs\/s.*/\1/' <<<"$line")")
      p50s+=("$(sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' <<<"$line")")
      p99s+=("$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$line")")
    done
    printf '  concurrency %3d: %6s runs/s   p50 %6s ms   p99 %7s ms\n' "$conc" \
      "$(printf '%s\n' "${rates[@]}" | median)" "$(printf '%s\n' "${p50s[@]}" | median)" \
      "$(printf '%s\n' "${p99s[@]}" | median)"
  done
done
echo "  reference (two durable-execution engines, same shape, this machine):"
echo "                    ~500 runs/s at concurrency 32, p50 ~5 ms, p99 ~10 ms, 440 MiB server"

# Timer precision under light load: 100 runs each sleeping 200 ms, started
# 20 ms apart; lateness = when timer_fired was written - the timer's due time.
rm -rf "$tmp/data"
start_daemon "$tmp/data"
sock="$tmp/data/lodestoned.sock"
for i in $(seq 100); do
  curl -s -o /dev/null --unix-socket "$sock" -X POST http://d/v1/workflows/nap \
    -d "{\"id\":\"nap-$i\",\"input\":{\"ms\":200}}"
  sleep 0.02
done
for i in $(seq 100); do
  curl -s -o /dev/null --unix-socket "$sock" "http://d/v1/workflows/nap-$i/result?wait=10"
  curl -s --unix-socket "$sock" "http://d/v1/workflows/nap-$i/history" |
    jq -r '[.events[] | select(.type == "timer_started") | .due_at][0] + " " +
           [.events[] | select(.type == "timer_fired") | .time][0]'
done | awk '
  function ms(t,   h) { split(substr(t, 12, 12), h, ":"); return (h[1] * 3600 + h[2] * 60 + h[3]) * 1000 }
  { print ms($2) - ms($1) }' | sort -n | awk '{ v[NR] = $1 }
  END { printf "timers: 100 sleeps of 200 ms under light load fired %.0f ms late at the median, %.0f ms at p99, %.0f ms at most (target: within 10 ms)\n", v[int((NR + 1) / 2)], v[int(NR * 0.99)], v[NR] }'
stop_daemon

# Memory with many stored runs.
rm -rf "$tmp/big"
"$build/bench/bench_flow" --fill "$tmp/big" "$stored" 0
start_daemon "$tmp/big" --workers 8
sleep 1
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
stop_daemon
echo "RSS of lodestoned (8 workers) with $stored completed runs stored: $((rss / 1024)) MiB (target < 100 MiB)"
rm -rf "$tmp/big"

# Resume after a restart.
rm -rf "$tmp/resume"
"$build/bench/bench_flow" --fill "$tmp/resume" 0 "$resume"
t0=$(date +%s.%N)
start_daemon "$tmp/resume" --workers 64
tready=$(date +%s.%N)
active=-1
while :; do
  active=$(curl -s --unix-socket "$tmp/resume/lodestoned.sock" http://d/healthz |
    sed -E 's/.*"runs_active":([0-9]+).*/\1/')
  [ "$active" = 0 ] && break
  sleep 0.05
done
t1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
stop_daemon
awk -v n="$resume" -v t0="$t0" -v tr="$tready" -v t1="$t1" -v rss="$rss" 'BEGIN {
  printf "resume: %d unfinished runs: daemon serving (all recovered, queued) %.2f s after the restart;\n", n, tr - t0
  printf "        all of them completed %.1f s after it (target < 10 s); RSS then %d MiB\n", t1 - t0, rss / 1024 }'
rm -rf "$tmp/resume"
