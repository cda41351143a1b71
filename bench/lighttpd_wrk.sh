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
. "$root/tests/e2e/lib.sh" # e2e_free_port, e2e_wait_port

for tool in lighttpd wrk curl lua5.4; do
  command -v "$tool" >/dev/null || { echo "lighttpd_wrk: $tool is not installed (scripts/deps.sh)" >&2; exit 1; }
done
module=$build/lib/lua/5.4/lodestone/core.so
[ -f "$module" ] || { echo "lighttpd_wrk: $module is missing: build target lodestone_lua54" >&2; exit 1; }
if grep -q '^LS_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "lighttpd_wrk: skipped: $build is a sanitizer build"
  exit 0
fi

d=$(mktemp -d "$tmp/lighttpd-wrk-XXXXXX")
pids=()
declare -A pid url
stop_servers() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  pids=()
}
# shellcheck disable=SC2317 # runs from the EXIT trap
stop_all() {
  stop_servers
  rm -rf "$d"
}
trap stop_all EXIT

# ---- the site, the policy, the token ----

mkdir -p "$d/www/orders" "$d/rl" "$d/a" "$d/b" "$d/c"
head -c 1024 /dev/zero | tr '\0' 'x' > "$d/www/orders/1k.html"
url_path=/orders/1k.html

# The example policy as shipped, with two changes: a rate limit that never
# denies at these rates (one subject makes every request) and the audit log
# in the temp dir. Its key files resolve against policies/ (base_dir).
sed -e 's|rate_limit = {[^}]*}|rate_limit = { by = "subject", rate = 10000000, per = "1s", burst = 10000000 }|' \
    -e "s|audit = { path = \"[^\"]*\"|audit = { path = \"$d/audit.log\"|" \
    "$root/policies/orders-api.lua" > "$d/policy.lua"
if ! grep -q 'rate = 10000000' "$d/policy.lua" ||
   ! grep -q "path = \"$d/audit.log\", log = \"deny\"" "$d/policy.lua"; then
  echo "lighttpd_wrk: policies/orders-api.lua changed shape: cannot set its rate limit and audit path" >&2
  exit 1
fi

now=$(date +%s)
claims="{\"iss\":\"https://id.example.com/\",\"aud\":\"orders\",\"sub\":\"bench-user\",\"iat\":$now,\"exp\":$((now + 3600)),\"scope\":\"openid orders:read\",\"realm_access\":{\"roles\":[\"user\"]},\"tenant\":\"acme\"}"
token=$("$root/scripts/dev/mint-rs256.sh" "$root/policies/demo-keys/demo-signing-key.pem" demo-2026 "$claims")

# (a) the trivial check. (b) the gate: the module paths and the options
# are set once per Lua state (package.loaded survives between requests;
# prepending on every request would grow package.path without bound). The
# shipped gate (conf/gate.lua) passes no options; a table built on every
# request would cost about 1 us of its own.
cat > "$d/a/check.lua" <<'LUA'
if lighty.r.req_header["X-Foo"] == "bar" then return 403 end
return 0
LUA
cat > "$d/b/gate.lua" <<LUA
local policy = package.loaded["lodestone.policy"]
if not policy then
  package.path = "$root/lua/?.lua;$root/lua/?/init.lua;" .. package.path
  package.cpath = "$build/lib/lua/5.4/?.so;" .. package.cpath
  policy = require "lodestone.policy"
  package.loaded["bench.gate.opts"] = { rl_dir = "$d/rl", base_dir = "$root/policies" }
end
return policy.enforce(lighty, "$d/policy.lua", package.loaded["bench.gate.opts"])
LUA
cat > "$d/c/access.lua" <<'LUA'
local r = lighty.r
local attr, rh = r.req_attr, r.req_header
local path, method, addr = attr["uri.path-raw"], attr["request.method"], attr["request.remote-addr"]
local authz, key = rh["Authorization"], rh["X-API-Key"]
if not (path and method and addr and authz) or key then return 403 end
rh["X-User"] = "bench-user"
rh["X-Roles"] = "user"
rh["X-Tenant"] = nil
return 0
LUA

# server.max-worker = 1: lighttpd 1.4.69 then runs as one process (no
# fork), so its utime+stime is the server's CPU; on two cores wrk -t1 takes
# one and lighttpd the other. (Worker children, should there be any, are
# counted too.) With two CPUs or more the servers are pinned to the first
# and wrk to the second, so that neither migrates during a run.
pin_server=() pin_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi
start() { # $1: a or b, $2: the magnet script
  local port
  port=$(e2e_free_port)
  cat > "$d/$1/lighttpd.conf" <<CONF
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $port
server.max-worker = 1
server.errorlog = "$d/$1/error.log"
server.modules = ( "mod_magnet" )
magnet.attract-raw-url-to = ( "$2" )
CONF
  lighttpd -tt -f "$d/$1/lighttpd.conf" >/dev/null || { echo "lighttpd_wrk: lighttpd -tt failed ($1)" >&2; exit 1; }
  # Its own session: lighttpd signals its process group to stop workers.
  setsid "${pin_server[@]}" lighttpd -D -f "$d/$1/lighttpd.conf" > "$d/$1/out" 2>&1 &
  pids+=($!)
  pid[$1]=$!
  url[$1]=http://127.0.0.1:$port$url_path
  e2e_wait_port "$port" || { echo "lighttpd_wrk: lighttpd ($1) did not start" >&2; cat "$d/$1/error.log" >&2; exit 1; }
}
start a "$d/a/check.lua"
start b "$d/b/gate.lua"
start c "$d/c/access.lua"

# Before measuring: both answer the benchmark's request with 200 and the
# file, and both scripts are really in force ((a) refuses X-Foo: bar, (b)
# a request without a token).
for c in a b c; do
  got=$(curl -s -o "$d/$c/body" -w '%{http_code}' -H "Authorization: Bearer $token" "${url[$c]}")
  if [ "$got" != 200 ] || ! cmp -s "$d/$c/body" "$d/www/orders/1k.html"; then
    echo "lighttpd_wrk: error: ($c) answered $got, not 200 with the file" >&2
    cat "$d/$c/error.log" >&2
    exit 1
  fi
done
got_a=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H "X-Foo: bar" "${url[a]}")
got_b=$(curl -s -o /dev/null -w '%{http_code}' "${url[b]}")
got_c=$(curl -s -o /dev/null -w '%{http_code}' "${url[c]}")
if [ "$got_a" != 403 ] || [ "$got_b" != 401 ] || [ "$got_c" != 403 ]; then
  echo "lighttpd_wrk: error: the scripts are not in force: (a) X-Foo: bar gave $got_a (want 403), (b) no token gave $got_b (want 401), (c) no token gave $got_c (want 403)" >&2
  exit 1
fi
# That 401 is the one denial the audit log may hold.

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
if [ ${#pin_server[@]} -gt 0 ]; then echo "  lighttpd pinned to CPU 0, wrk to CPU 1"; fi
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
