#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: the gate's decision metrics. Debian's lighttpd with two
# workers (server.max-worker = 2) enforces a policy; after a known number
# of allowed and denied requests, spread over both workers, GET
# /_lodestone/metrics from 127.0.0.1 answers Prometheus text whose counters
# and histogram match exactly (the table is shared through a file). A
# second lighttpd whose gate allows the endpoint to 10.0.0.0/8 only treats
# /_lodestone/metrics from 127.0.0.1 like any other path (the policy
# denies it), and metrics = false turns counting off.
# usage: tests/e2e/policy_metrics.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT

SECRET=0123456789abcdef0123456789abcdef
d=$E2E_DIR
mkdir -p "$d/www/public" "$d/www/me" "$d/rl" "$d/rl2"
echo hello > "$d/www/public/index.html"
echo me > "$d/www/me/index.html"
printf '%s' "$SECRET" > "$d/hs.key"
chmod 600 "$d/hs.key"
cat > "$d/policy.lua" <<'LUA'
local policy = require "lodestone.policy"
return policy.define {
  name = "metrics-e2e",
  authenticate = { policy.jwt { secret_file = "hs.key", algorithms = { "HS256" } } },
  rules = {
    { path = "/public/**", allow = "anyone" },
    { path = "/me/**" },
  },
}
LUA

# gate NAME OPTS: a gate script that also names the worker that ran it.
gate() {
  cat > "$d/$1.lua" <<LUA
package.path = "$root/lua/?.lua;$root/lua/?/init.lua;" .. package.path
package.cpath = "$build/lib/lua/5.4/?.so;" .. package.cpath
local f = io.open("/proc/self/stat")
lighty.r.resp_header["X-Worker"] = f:read("*l"):match("^(%d+)")
f:close()
return require("lodestone.policy").enforce(lighty, "$d/policy.lua", $2)
LUA
}
gate gate '{ rl_dir = "'"$d/rl"'" }'
gate gate2 '{ rl_dir = "'"$d/rl2"'", metrics = { allow = { "10.0.0.0/8" } } }'
gate gate3 '{ rl_dir = "'"$d/rl2"'", metrics = false }'

# conf NAME PORT GATE WORKERS
conf() {
  cat > "$d/$1.conf" <<CONF
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $2
server.max-worker = $4
server.errorlog = "$d/$1.error.log"
server.modules = ( "mod_magnet" )
index-file.names = ( "index.html" )
magnet.attract-raw-url-to = ( "$d/$3.lua" )
CONF
}
port=$(e2e_free_port)
port2=$(e2e_free_port)
port3=$(e2e_free_port)
conf front "$port" gate 2
conf second "$port2" gate2 1
conf third "$port3" gate3 1

# Programs that load the module built with ASan need its runtime first.
SAN_ENV=("${E2E_SAN_ENV[@]}")
for c in front second third; do
  lighttpd -tt -f "$d/$c.conf" || { echo "lighttpd -tt failed for $c"; exit 1; }
  # Its own session: lighttpd signals its whole process group to stop workers.
  setsid "${SAN_ENV[@]}" lighttpd -D -f "$d/$c.conf" > "$d/$c.out" 2>&1 &
  E2E_PIDS+=($!)
done
for p in "$port" "$port2" "$port3"; do
  e2e_wait_port "$p" || { echo "lighttpd did not start on $p"; cat "$d"/*.error.log; exit 1; }
done
base="http://127.0.0.1:$port"

lua54() { "${SAN_ENV[@]}" lua5.4 -e "
  package.path = '$root/lua/?.lua;$root/lua/?/init.lua;' .. package.path
  package.cpath = '$build/lib/lua/5.4/?.so;' .. package.cpath
  $1"
}
mint() { # $1 claims JSON
  LS_CLAIMS=$1 lua54 "
    local l = require 'lodestone'
    local b = l.base64url.encode
    local input = b('{\"alg\":\"HS256\",\"typ\":\"JWT\"}') .. '.' .. b(os.getenv('LS_CLAIMS'))
    io.write(input .. '.' .. b(l.hmac.sha256('$SECRET', input)))"
}
alice=$(mint "{\"sub\":\"alice\",\"exp\":$(( $(date +%s) + 600 ))}")

# ---- a known mix of decisions, in parallel batches over both workers ----
# (Which worker accepts a connection is the kernel's choice: on a loaded
# machine one worker may take every connection of a few rounds, so rounds
# go on, 4 at least, until both have decided requests, at most 40.)

# batch N URL [curl args]: N parallel requests; appends "status worker" lines.
batch() {
  local n=$1 url=$2
  shift 2
  local urls=()
  for _ in $(seq "$n"); do urls+=(-o /dev/null "$url"); done
  curl -s -Z --parallel-max 8 -w '%{http_code} %header{x-worker}\n' "$@" "${urls[@]}" 2>>"$d/curl.err" \
    >> "$d/results"
}
: > "$d/results"
rounds=0
while :; do
  rounds=$((rounds + 1))
  batch 10 "$base/public/" # allowed
  batch 5 "$base/me/" -H "Authorization: Bearer $alice" # allowed
  batch 4 "$base/me/" # denied: not_authenticated
  batch 3 "$base/elsewhere" # denied: no_matching_rule
  batch 2 "$base/me/" -H "Authorization: Bearer not.a.token" # denied: JWT reason
  workers=$(awk '{print $2}' "$d/results" | sort -u | wc -l)
  if [ "$rounds" -ge 4 ] && { [ "$workers" -ge 2 ] || [ "$rounds" -ge 40 ]; }; then break; fi
done
total=$((rounds * 24))
check "every request got an answer" "$total" "$(wc -l < "$d/results")"
allowed=$(awk '$1 == 200' "$d/results" | wc -l)
denied=$(awk '$1 != 200' "$d/results" | wc -l)
check "allowed and denied as the policy says" "$((rounds * 15)) $((rounds * 9))" "$allowed $denied"
check "both lighttpd workers decided requests" 2 "$workers"

# ---- the endpoint ----

m=$(curl -s -D "$d/mhdrs" "$base/_lodestone/metrics")
check_contains "the endpoint answers Prometheus text" "Content-Type: text/plain; version=0.0.4" \
  "$(cat "$d/mhdrs")"
val() { # value of the series $1 (name and labels) in $m
  printf '%s\n' "$m" | awk -v s="$1" 'index($0, s " ") == 1 { print $2 }'
}
P='policy="metrics-e2e"'
check "allowed decisions counted exactly" $((rounds * 15)) \
  "$(val "lodestone_policy_decisions_total{$P,decision=\"allow\",reason=\"allowed\"}")"
check "not_authenticated denials counted exactly" $((rounds * 4)) \
  "$(val "lodestone_policy_decisions_total{$P,decision=\"deny\",reason=\"not_authenticated\"}")"
check "no_matching_rule denials counted exactly" $((rounds * 3)) \
  "$(val "lodestone_policy_decisions_total{$P,decision=\"deny\",reason=\"no_matching_rule\"}")"
jwt_reason=$(printf '%s\n' "$m" | grep "decisions_total{$P,decision=\"deny\"" |
  grep -v 'reason="not_authenticated"\|reason="no_matching_rule"')
check_match "the bad tokens are counted under the engine's reason code" \
  '^lodestone_policy_decisions_total\{policy="metrics-e2e",decision="deny",reason="[a-z_]+"\} '$((rounds * 2))'$' \
  "$jwt_reason"
check "the histogram counts every decision" "$total" \
  "$(val "lodestone_policy_decision_seconds_count{$P}")"
check "the +Inf bucket holds every decision" "$total" \
  "$(val "lodestone_policy_decision_seconds_bucket{$P,le=\"+Inf\"}")"
sum=$(val "lodestone_policy_decision_seconds_sum{$P}")
check "the time sum is a positive number of seconds" yes \
  "$(awk -v s="$sum" -v n="$total" 'BEGIN { print (s > 0 && s < n) ? "yes" : "no" }')"
check "buckets are cumulative" yes "$(printf '%s\n' "$m" |
  awk -v p="$P" 'index($0, "lodestone_policy_decision_seconds_bucket{" p) == 1 {
    if ($2 < last) bad = 1; last = $2 } END { print bad ? "no" : "yes" }')"
check "nothing dropped" 0 "$(val lodestone_policy_metrics_dropped_total)"
bad=$(printf '%s\n' "$m" | grep -Ev '^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? [0-9.e+-]+)$')
check "every line is a comment or a sample" "" "$bad"
m2=$(curl -s "$base/_lodestone/metrics")
check "scraping is not a decision" "$total" \
  "$(printf '%s\n' "$m2" | awk -v s="lodestone_policy_decision_seconds_count{$P} " 'index($0, s) == 1 { print $2 }')"
check "POST to the endpoint is left to the policy" 403 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x "$base/_lodestone/metrics")"

# ---- the allow option, and turning metrics off ----

base2="http://127.0.0.1:$port2"
curl -s -o /dev/null "$base2/public/"
check "outside metrics.allow the endpoint is any other path (no rule: 403)" 403 \
  "$(curl -s -o "$d/body2" -w '%{http_code}' "$base2/_lodestone/metrics")"
check_absent "and no metrics leak" "lodestone_policy" "$(cat "$d/body2")"
base3="http://127.0.0.1:$port3"
check "metrics = false: the endpoint is any other path" 403 \
  "$(curl -s -o /dev/null -w '%{http_code}' "$base3/_lodestone/metrics")"
check "metrics = false: public routes still pass" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' "$base3/public/")"
check_contains "that gate still counts into its own table" \
  'lodestone_policy_decisions_total{policy="metrics-e2e",decision="deny",reason="no_matching_rule"} 1' \
  "$(lua54 "io.write(assert(require('lodestone.core').policy_metrics('$d/rl2/lodestone-policy.metrics')):render())" 2>&1)"
check "the shared table lives where rl_dir says" "yes" \
  "$([ -f "$d/rl/lodestone-policy.metrics" ] && echo yes || echo no)"

e2e_finish
