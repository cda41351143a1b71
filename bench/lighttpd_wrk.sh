#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Debian's lighttpd under wrk on 127.0.0.1 (keep-alive, bounded in time):
# the same 1 KiB static file behind (a) a trivial mod_magnet header check
# and (b) the orders-api example policy through the Lodestone gate (a
# cached RS256 token from policies/demo-keys, rules, a rate limit too
# generous to deny, identity headers, audit of denials), and (c) a script
# that makes only the mod_magnet accesses that policy needs (three request
# attributes and two headers read, three identity headers written) and
# decides nothing: the ceiling of any Lua gate of that shape. Runs
# alternate a,b,c,b,c,a,c,a,b,...; prints requests/s, server CPU per request
# (utime+stime of the lighttpd processes from /proc, and utime alone) and
# the medians and ratios b/a, c/a and b/c. Figures only, never pass/fail on
# time; exits 1 only when responses were not 200.
# usage: bench/lighttpd_wrk.sh BUILD_DIR TMPDIR   (from the project root)
#   LS_BENCH_WRK_SECONDS (default 5) seconds per run, LS_BENCH_WRK_ROUNDS (3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
tmp=${2:-${TMPDIR:-/tmp}}
secs=${LS_BENCH_WRK_SECONDS:-5}
rounds=${LS_BENCH_WRK_ROUNDS:-3}
conns=16

me=lighttpd_wrk
# server.max-worker = 1: lighttpd 1.4.69 then runs as one process (no
# fork), so its utime+stime is the server's CPU; on two cores wrk -t1 takes
# one and lighttpd the other. (Worker children, should there be any, are
# counted too.) With two CPUs or more the servers are pinned to the first
# and wrk to the second, so that neither migrates during a run.
server_cmd=() pin_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_cmd=(taskset -c 0) pin_client=(taskset -c 1)
fi
. "$root/bench/lib/lighttpd_site.sh"
start a "$d/a/check.lua"
start b "$d/b/gate.lua"
start c "$d/c/access.lua"
check_in_force a b c

# ---- measuring ----

tck=$(getconf CLK_TCK)
# "utime stime" in ticks of process $1 and its children.
server_ticks() {
  local p u=0 t=0 f
  for p in "$1" $(ps -o pid= --ppid "$1"); do
    # after "pid (comm) ": state is field 0, utime 11, stime 12
    read -ra f < <(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    u=$((u + f[11]))
    t=$((t + f[12]))
  done
  echo "$u $t"
}

# CPU ticks of the children this shell has waited for (wrk among them).
client_ticks() {
  local f
  read -ra f < <(sed 's/^.*) //' "/proc/$$/stat")
  echo $((f[13] + f[14]))
}

failed=0
# run C SECONDS: one wrk run against config C; sets rps, reqs, cpu (us of
# server CPU per request), ucpu (the user-space part) and client (wrk's
# CPU, % of one core).
run() {
  local c=$1 s=$2 u0 t0 u1 t1 w0 w1 out bad errs
  read -r u0 t0 < <(server_ticks "${pid[$c]}")
  w0=$(client_ticks)
  out=$(timeout $((s + 30)) "${pin_client[@]}" wrk -t1 -c"$conns" -d"${s}s" -H "Authorization: Bearer $token" "${url[$c]}" 2>&1) || {
    echo "lighttpd_wrk: wrk failed: $out" >&2; exit 1; }
  w1=$(client_ticks)
  read -r u1 t1 < <(server_ticks "${pid[$c]}")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
  errs=$(awk '/Socket errors:/' <<<"$out")
  if [ -z "$reqs" ] || [ -z "$rps" ]; then echo "lighttpd_wrk: cannot read wrk output: $out" >&2; exit 1; fi
  if [ -n "${bad:-}" ] && [ "$bad" != 0 ]; then
    echo "lighttpd_wrk: error: ($c) $bad responses were not 2xx/3xx" >&2
    failed=1
  fi
  if [ -n "$errs" ]; then echo "lighttpd_wrk: ($c) $errs" >&2; fi
  rps=$(awk -v r="$rps" 'BEGIN { printf "%.0f", r }')
  cpu=$(awk -v n="$reqs" -v t=$((u1 - u0 + t1 - t0)) -v k="$tck" 'BEGIN { printf "%.2f", t * 1e6 / k / n }')
  ucpu=$(awk -v n="$reqs" -v t=$((u1 - u0)) -v k="$tck" 'BEGIN { printf "%.2f", t * 1e6 / k / n }')
  client=$(awk -v t=$((w1 - w0)) -v k="$tck" -v s="$s" 'BEGIN { printf "%.0f", t * 100 / k / s }')
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "lighttpd $(lighttpd -v | sed -n 's/^lighttpd\/\([^ ]*\).*/\1/p') + wrk on 127.0.0.1: GET $url_path (1 KiB static file), keep-alive,"
echo "  wrk -t1 -c$conns -d${secs}s, server.max-worker = 1, $rounds rounds alternating a,b,c (each round starts one further along);"
echo "  CPU = server utime+stime / requests"
if [ ${#server_cmd[@]} -gt 0 ]; then echo "  lighttpd pinned to CPU 0, wrk to CPU 1"; fi
echo "  (a) trivial mod_magnet header check   (b) orders-api policy through the gate (RS256 token, cached)"
echo "  (c) the mod_magnet reads and writes (b) needs, deciding nothing"
run a 1 # warm-up: the gate compiles the policy and caches the token
run b 1
run c 1
for c in a b c; do : > "$d/rps_$c"; : > "$d/cpu_$c"; : > "$d/ucpu_$c"; done
# Each round starts one further along a,b,c (a,b,c then b,c,a then c,a,b),
# so that no configuration always runs in the same place, for instance
# right after the fastest one.
order=(a b c)
for r in $(seq "$rounds"); do
  k=$(((r - 1) % 3))
  for c in "${order[@]:k}" "${order[@]:0:k}"; do
    run "$c" "$secs"
    printf '  run %d%s  %9s req/s  %9s requests  %7s us server CPU/request (user %5s)  (wrk %s%% of a core)\n' \
      "$r" "$c" "$rps" "$reqs" "$cpu" "$ucpu" "$client"
    echo "$rps" >> "$d/rps_$c"
    echo "$cpu" >> "$d/cpu_$c"
    echo "$ucpu" >> "$d/ucpu_$c"
  done
done
ra=$(median < "$d/rps_a"); rb=$(median < "$d/rps_b"); rc=$(median < "$d/rps_c")
ca=$(median < "$d/cpu_a"); cb=$(median < "$d/cpu_b"); cc=$(median < "$d/cpu_c")
ua=$(median < "$d/ucpu_a"); ub=$(median < "$d/ucpu_b"); uc=$(median < "$d/ucpu_c")
printf '  median (a) %9.0f req/s  %7.2f us CPU/request (user %5.2f)\n' "$ra" "$ca" "$ua"
printf '  median (b) %9.0f req/s  %7.2f us CPU/request (user %5.2f)\n' "$rb" "$cb" "$ub"
printf '  median (c) %9.0f req/s  %7.2f us CPU/request (user %5.2f)\n' "$rc" "$cc" "$uc"
awk -v ra="$ra" -v rb="$rb" -v rc="$rc" -v ca="$ca" -v cb="$cb" -v cc="$cc" \
    -v ua="$ua" -v ub="$ub" -v uc="$uc" 'BEGIN {
  printf "  ratio b/a requests/s: %.3f (target >= 0.90)\n", rb / ra
  printf "  ratio c/a requests/s: %.3f (the mod_magnet accesses alone)\n", rc / ra
  printf "  ratio b/c requests/s: %.3f (the policy against the accesses it cannot do without)\n", rb / rc
  printf "  policy cost: %+.2f us server CPU per request (b - a): %+.2f us for the accesses (c - a), %+.2f us for deciding (b - c)\n", cb - ca, cc - ca, cb - cc
  printf "    in user space: %+.2f (b - a), %+.2f (c - a), %+.2f (b - c); the rest is kernel time\n", ub - ua, uc - ua, ub - uc }'

stop_servers # flushes the audit log
lines=$( (grep -c . "$d/audit.log" 2>/dev/null) || true)
denials=$((${lines:-0} - 1))
echo "  denials in the audit log during the runs: $denials"
if [ "$denials" != 0 ]; then
  echo "lighttpd_wrk: error: the policy denied requests during the runs:" >&2
  tail -3 "$d/audit.log" >&2
  failed=1
fi
if grep -qi error "$d/b/error.log" 2>/dev/null; then
  echo "lighttpd_wrk: lighttpd (b) logged:" >&2
  tail -5 "$d/b/error.log" >&2
fi
exit "$failed"
