#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Starts without an id are written while their HTTP connection waits,
# without holding an HTTP thread. This checks what a client is promised:
#   - a 201 (or a result) is only sent once the start is durable: after a
#     SIGKILL amid 16 clients starting runs, every run a client was told
#     about exists after the restart, and completes;
#   - a SIGTERM amid such starts ends the daemon cleanly: every client gets
#     an answer, and every run it was told about exists;
#   - under load, every start that waits for its result gets it;
#   - requests that reach one HTTP thread all at once are all answered
#     (libmicrohttpd's epoll loop left exactly 128 of them unanswered).
#
# Usage: workflow_starts.sh BUILD_DIR
set -u
BUILD=${1:?usage: workflow_starts.sh BUILD_DIR}
. "$(dirname "$0")/lib.sh"

CLIENTS=16
e2e_tmpdir
trap e2e_cleanup EXIT
mkdir -p "$E2E_DIR/wf" "$E2E_DIR/out"
SOCK="$E2E_DIR/d.sock"

cat >"$E2E_DIR/wf/nap.lua" <<'EOF'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "nap",
  run = function(ctx, input)
    ctx:sleep(input.s)
    return { slept = input.s }
  end,
}
EOF
cat >"$E2E_DIR/wf/one.lua" <<'EOF'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "one",
  run = function(ctx, input)
    return ctx:step("a", function() return { n = input.n } end)
  end,
}
EOF

build=$BUILD # (e2e_lodestoned's name for it)
DAEMON_PID=
start_daemon() {
  e2e_lodestoned "$SOCK" "$E2E_DIR/daemon.log" --data "$E2E_DIR/data" --workflows "$E2E_DIR/wf" \
    --socket "$SOCK" --workers 2 --http-threads 4 --grace 2 || return 1
  DAEMON_PID=$E2E_DAEMON
}

# CLIENTS loops of starts without an id; each answer is a line "CODE BODY"
# in out/PHASE-N. $2: a query string ("" or "?wait=10").
CLIENT_PIDS=()
clients() {
  local phase=$1 query=$2 i
  CLIENT_PIDS=()
  for i in $(seq $CLIENTS); do
    (
      for k in $(seq 200); do
        out=$(curl -s --max-time 20 --unix-socket "$SOCK" -X POST -w '\n%{http_code}' \
          "http://d/v1/workflows/one$query" -d "{\"input\":{\"n\":$k}}")
        code=${out##*$'\n'}
        echo "$code ${out%$'\n'*}" >>"$E2E_DIR/out/$phase-$i"
        [ "$code" = 000 ] && break # the daemon is gone
      done
    ) &
    CLIENT_PIDS+=($!)
  done
}
answers() { cat "$E2E_DIR"/out/"$1"-* 2>/dev/null | wc -l; }
# The ids of the runs clients were told about (any 2xx answer).
told() { cat "$E2E_DIR"/out/"$1"-* | awk '$1 ~ /^2/' | sed -E 's/.*"id":"([^"]+)".*/\1/'; }
wait_answers() { # phase n
  for _ in $(seq 300); do
    [ "$(answers "$1")" -ge "$2" ] && return 0
    sleep 0.02
  done
  return 1
}

# ---- SIGKILL amid starts ----
start_daemon || { not_ok "daemon starts"; e2e_finish; exit 1; }
clients kill ""
wait_answers kill 100 || not_ok "clients got 100 answers"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
for p in "${CLIENT_PIDS[@]}"; do wait "$p"; done
told kill >"$E2E_DIR/told-kill"
n=$(wc -l <"$E2E_DIR/told-kill")
[ "$n" -ge 100 ] && ok "SIGKILL came after $n acknowledged starts" || not_ok "acknowledged starts before the kill" "$n"
check "every acknowledgement before the kill was a 201" 0 \
  "$(cat "$E2E_DIR"/out/kill-* | awk '$1 ~ /^2/ && $1 != 201' | wc -l)"

start_daemon || { not_ok "daemon restarts"; e2e_finish; exit 1; }
missing=0 unfinished=0
while read -r id; do
  out=$(curl -s --unix-socket "$SOCK" "http://d/v1/workflows/$id/result?wait=10")
  case "$out" in
    *'"status":"completed"'*) ;;
    *'"error"'*) missing=$((missing + 1)) ;;
    *) unfinished=$((unfinished + 1)) ;;
  esac
done <"$E2E_DIR/told-kill"
check "every run acknowledged before the SIGKILL exists after the restart" 0 "$missing"
check "and completes" 0 "$unfinished"

# ---- SIGTERM amid starts that wait for their result ----
clients term "?wait=10"
wait_answers term 100 || not_ok "clients got 100 answers"
kill -TERM "$DAEMON_PID"
exited=
for _ in $(seq 200); do
  kill -0 "$DAEMON_PID" 2>/dev/null || { exited=1; break; }
  sleep 0.05
done
check "SIGTERM amid starts: the daemon exits within 10 s" 1 "${exited:-0}"
wait "$DAEMON_PID"
check "with status 0" 0 "$?"
hung=0
for p in "${CLIENT_PIDS[@]}"; do
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$p" 2>/dev/null && hung=$((hung + 1))
done
check "no client is left waiting for an answer" 0 "$hung"
for p in "${CLIENT_PIDS[@]}"; do wait "$p" 2>/dev/null; done
check "no answer is a server error" 0 "$(cat "$E2E_DIR"/out/term-* | awk '$1 ~ /^5/ && $1 != 503' | wc -l)"
told term >"$E2E_DIR/told-term"
start_daemon || { not_ok "daemon restarts"; e2e_finish; exit 1; }
missing=0
while read -r id; do
  curl -s --unix-socket "$SOCK" "http://d/v1/workflows/$id" | grep -q '"error"' && missing=$((missing + 1))
done <"$E2E_DIR/told-term"
check "every run acknowledged before the SIGTERM ($(wc -l <"$E2E_DIR/told-term")) exists after it" 0 "$missing"

# Waiting for the result of a start without an id: the wait runs out
# (202, running), or the result comes (200).
out=$(curl -s -w '\n%{http_code}' --unix-socket "$SOCK" -X POST "http://d/v1/workflows/nap?wait=0.3" \
  -d '{"input":{"s":1.5}}')
check "a start whose ?wait runs out first: 202" 202 "${out##*$'\n'}"
body=${out%$'\n'*}
check "and the run is running" running "$(j .status)"
nap_id=$(j .id)
out=$(curl -s -w '\n%{http_code}' --unix-socket "$SOCK" "http://d/v1/workflows/$nap_id/result?wait=10")
body=${out%$'\n'*}
check "which then completes" "200 1.5" "${out##*$'\n'} $(j .output.slept)"
out=$(curl -s -w '\n%{http_code}' --unix-socket "$SOCK" -X POST "http://d/v1/workflows/nap?wait=10" \
  -d '{"input":{"s":0.2}}')
body=${out%$'\n'*}
check "a start whose run ends within its ?wait: 200 with the output" "200 0.2" \
  "${out##*$'\n'} $(j .output.slept)"

# A body larger than the first buffer (4 KiB) arrives whole.
big=$(head -c 20000 /dev/zero | tr '\0' x)
printf '{"input":{"n":"%s"}}' "$big" >"$E2E_DIR/big.json"
out=$(curl -s --unix-socket "$SOCK" -X POST "http://d/v1/workflows/one?wait=10" \
  --data-binary "@$E2E_DIR/big.json")
check "a 20 KB input comes back whole as the step's result" "$big" \
  "$(printf '%s' "$out" | jq -r .output.n)"
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null

# Many starts that wait for their result, as fast as the daemon takes them
# (no fsync): the start's callback and the thread that suspends the
# connection race, and a lost resume would leave a client waiting forever
# (suspended connections never time out). Each round must end, with every
# run answered completed (flowload says so, or fails).
e2e_lodestoned "$SOCK" "$E2E_DIR/daemon.log" --data "$E2E_DIR/data-fast" --workflows "$E2E_DIR/wf" \
  --socket "$SOCK" --workers 4 --http-threads 8 --no-sync || { not_ok "daemon starts (--no-sync)"; e2e_finish; exit 1; }
DAEMON_PID=$E2E_DAEMON
for round in $(seq 8); do
  timeout 60 "$BUILD/bench/flowload" "$SOCK" one 256 8000 one-request >"$E2E_DIR/flowload-$round" 2>&1
  rc=$?
  check "round $round: 8000 starts with ?wait from 256 clients all get their result" 0 "$rc"
  [ "$rc" = 0 ] || { cat "$E2E_DIR/flowload-$round"; break; }
done
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null

# One HTTP thread finds 127, 128 or 256 requests ready at once: flowload
# --burst stops the daemon, sends a request on each of N idle keep-alive
# connections, and continues it. With libmicrohttpd's epoll loop, 128 and
# 256 were left waiting for the connection timeout (330 s).
e2e_lodestoned "$SOCK" "$E2E_DIR/daemon.log" --data "$E2E_DIR/data-burst" --workflows "$E2E_DIR/wf" \
  --socket "$SOCK" --http-threads 1 || { not_ok "daemon starts (--http-threads 1)"; e2e_finish; exit 1; }
DAEMON_PID=$E2E_DAEMON
for n in 127 128 256; do
  out=$(timeout 60 "$BUILD/bench/flowload" --burst "$SOCK" "$n" "$DAEMON_PID" 2>&1)
  rc=$?
  kill -CONT "$DAEMON_PID" 2>/dev/null # (should flowload have failed between stop and continue)
  check "$n requests ready at once on one HTTP thread are all answered" 0 "$rc"
  [ "$rc" = 0 ] || printf '%s\n' "$out"
done
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null

# 3,000 at once on 16 HTTP threads (about 190 each: with epoll,
# 128 of each thread's were left unanswered), with the soft limit on open
# files at the usual 1,024: the daemon raises it to the hard limit (it
# stalled at about 970 connections before).
n=3000
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((n + 200)) ]; then
  n=$((hard - 200)) # (this machine's hard limit: as many as it allows)
  echo "# hard limit on open files $hard: $n connections"
fi
soft=$(ulimit -Sn)
ulimit -Sn 1024
e2e_lodestoned "$SOCK" "$E2E_DIR/daemon.log" --data "$E2E_DIR/data-burst16" --workflows "$E2E_DIR/wf" \
  --socket "$SOCK" --http-threads 16 || { not_ok "daemon starts (16 HTTP threads)"; e2e_finish; exit 1; }
ulimit -Sn "$soft"
DAEMON_PID=$E2E_DAEMON
out=$(timeout 90 "$BUILD/bench/flowload" --burst "$SOCK" "$n" "$DAEMON_PID" 2>&1)
rc=$?
kill -CONT "$DAEMON_PID" 2>/dev/null
check "$n requests at once on 16 HTTP threads, started with a soft limit of 1024 files, are all answered" 0 "$rc"
[ "$rc" = 0 ] || printf '%s\n' "$out"
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null

e2e_finish
