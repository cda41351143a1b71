#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The lighttpd benchmark of bench/lighttpd_wrk.sh counted instead of timed:
# each of (a) the trivial mod_magnet check, (b) the orders-api policy
# through the gate and (c) the mod_magnet accesses alone runs in lighttpd
# under valgrind's callgrind, wrk sends it requests for a while, and the
# instructions lighttpd executed in user space are divided by the requests
# answered. Unlike time, the count hardly moves from run to run or with
# other load on the machine, so it shows what a change to the gate costs
# or saves; it leaves out the kernel, whose share (most of a request) only
# the timed benchmark sees. Prints instructions per request, the ratios
# b/a and c/a, and for (b) the part spent in the gate and in the engine's
# decision. Figures only; exits 1 only when what it measured was wrong.
# usage: bench/lighttpd_instr.sh BUILD_DIR TMPDIR   (from the project root)
#   LS_BENCH_INSTR_SECONDS (default 5) seconds of requests per configuration
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
tmp=${2:-${TMPDIR:-/tmp}}
secs=${LS_BENCH_INSTR_SECONDS:-5}

me=lighttpd_instr
tools="valgrind callgrind_control callgrind_annotate"
start_tries=6 # lighttpd takes seconds to start under valgrind
. "$root/bench/lib/lighttpd_site.sh"

echo "lighttpd $(lighttpd -v | sed -n 's/^lighttpd\/\([^ ]*\).*/\1/p') under callgrind + wrk on 127.0.0.1: GET $url_path (1 KiB static file),"
echo "  keep-alive, wrk -t1 -c1 -d${secs}s per configuration; user-space instructions of lighttpd / requests answered"
echo "  (a) trivial mod_magnet header check   (b) orders-api policy through the gate (RS256 token, cached)"
echo "  (c) the mod_magnet reads and writes (b) needs, deciding nothing"

declare -A ipr
for c in a b c; do
  case $c in
    a) script=$d/a/check.lua ;;
    b) script=$d/b/gate.lua ;;
    c) script=$d/c/access.lua ;;
  esac
  server_cmd=(valgrind --tool=callgrind "--callgrind-out-file=$d/$c/callgrind.out")
  start "$c" "$script"
  # The check also warms up: the gate compiles the policy and caches the
  # token; then a second of requests before the counters are zeroed.
  check_in_force "$c"
  timeout 60 wrk -t1 -c1 -d1s -H "Authorization: Bearer $token" "${url[$c]}" >/dev/null
  callgrind_control -z "${pid[$c]}" >/dev/null 2>&1
  out=$(timeout $((secs + 60)) wrk -t1 -c1 -d"${secs}s" -H "Authorization: Bearer $token" "${url[$c]}" 2>&1) || {
    echo "$me: wrk failed: $out" >&2; exit 1; }
  callgrind_control -d "${pid[$c]}" >/dev/null 2>&1
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
  if [ -z "$reqs" ] || [ "$reqs" -lt 100 ]; then echo "$me: ($c) too few requests: $out" >&2; exit 1; fi
  if [ -n "${bad:-}" ] && [ "$bad" != 0 ]; then echo "$me: error: ($c) $bad responses were not 2xx/3xx" >&2; exit 1; fi
  dump=$d/$c/callgrind.out.1
  [ -s "$dump" ] || { echo "$me: ($c) callgrind wrote no dump" >&2; exit 1; }
  total=$(awk '/^summary:/ {print $2}' "$dump")
  ipr[$c]=$(awk -v t="$total" -v n="$reqs" 'BEGIN { printf "%.0f", t / n }')
  printf '  (%s) %7d instructions/request  (%d requests)\n' "$c" "${ipr[$c]}" "$reqs"
  if [ "$c" = b ]; then
    # Inclusive counts of the gate's C function and of the engine.
    incl=$(callgrind_annotate --inclusive=yes "$dump" 2>/dev/null)
    gate=$(awk '/lls_policy\.c:l_gate_fast \[/ {gsub(",", "", $1); print $1; exit}' <<<"$incl")
    engine=$(awk '/eval\.c:ls_policy_eval \[/ {gsub(",", "", $1); print $1; exit}' <<<"$incl")
    if [ -z "$gate" ] || [ -z "$engine" ]; then
      echo "$me: error: (b) never reached the gate's fast path or the engine" >&2
      exit 1
    fi
    awk -v g="$gate" -v e="$engine" -v n="$reqs" 'BEGIN {
      printf "      of which %d in the gate (pol:gate_fn), %d of them the engine'"'"'s decision (ls_policy_eval)\n", g / n, e / n }'
  fi
  stop_servers
done
awk -v a="${ipr[a]}" -v b="${ipr[b]}" -v c="${ipr[c]}" 'BEGIN {
  printf "  ratio b/a instructions: %.3f   c/a: %.3f   b/c: %.3f\n", b / a, c / a, b / c
  printf "  policy cost: %+d instructions/request (b - a): %+d for the accesses (c - a), %+d for deciding (b - c)\n", b - a, c - a, b - c }'
