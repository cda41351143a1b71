#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: Debian's lighttpd (mod_magnet, Lua 5.4) runs the example gate
# policies/routes/gate.lua as shipped (route.dispatch over
# policies/routes/examples.lua), which starts workflows on a real lodestoned
# through lodestone.client. Checks: a signed GitHub delivery answers 202
# with Location and its github-push run completes; unsigned and tampered
# deliveries are refused and start nothing; a redelivery is the same run;
# bad JSON is 400 and an oversized body 413; POST /orders with a JWT
# (orders:write) and an Idempotency-Key answers 202 and the same run on a
# repeat, a fresh run without the key, 403 without the scope; a stopped
# daemon gives 503 and an audit line; a daemon that accepts and never
# answers (tests/tools/stallsock) gives 503 after the client's timeout
# while lighttpd goes on answering; a daemon started again is used again.
# usage: tests/e2e/client_routes.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }
export LODESTONE_LUA_DIR="$root/lua"

d=$E2E_DIR
sock=$d/lodestoned.sock
mkdir -p "$d/wf" "$d/www"
# The example policies and gates as shipped; only the orders policy's audit
# log moves into the temp dir.
cp -r "$root/policies" "$d/policies"
sed -i "s|/tmp/lodestone-orders-api-audit.log|$d/audit.log|" "$d/policies/orders-api.lua"
grep -q "$d/audit.log" "$d/policies/orders-api.lua" || { echo "audit path not replaced"; exit 1; }
cp "$root/workflows/github-push.lua" "$root/workflows/order.lua" "$d/wf/"

start_daemon() {
  "$build/bin/lodestoned" --data "$d/data" --socket "$sock" --workflows "$d/wf" \
    > "$d/lodestoned.out" 2>&1 &
  daemon=$!
  E2E_PIDS+=("$daemon")
  for _ in $(seq 100); do
    curl -s -o /dev/null --unix-socket "$sock" http://lodestoned/healthz && return 0
    sleep 0.1
  done
  echo "lodestoned did not start"; cat "$d/lodestoned.out"; exit 1
}
api() { curl -s --unix-socket "$sock" "http://lodestoned$1"; }
start_daemon

port=$(e2e_free_port)
cat > "$d/lighttpd.conf" <<CONF
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $port
server.max-worker = 2
server.errorlog = "$d/error.log"
server.modules = ( "mod_magnet" )
magnet.attract-raw-url-to = ( "$d/policies/routes/gate.lua" )
CONF
echo "backend" > "$d/www/index.html"

# Programs that load the module built with ASan need its runtime first.
[ "${LS_SANITIZE:-0}" = 1 ] && export "${E2E_SAN_VARS[@]}"
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
export LUA_CPATH="$build/lib/lua/5.4/?.so;;"
export LODESTONE_SOCKET=$sock
lighttpd -tt -f "$d/lighttpd.conf" || { echo "lighttpd -tt failed"; exit 1; }
# Its own session: lighttpd signals its whole process group to stop workers.
setsid lighttpd -D -f "$d/lighttpd.conf" > "$d/lighttpd.out" 2>&1 &
E2E_PIDS+=($!)
unset LD_PRELOAD LUA_PATH LUA_CPATH LODESTONE_SOCKET
e2e_wait_port "$port" || { echo "lighttpd did not start"; cat "$d/error.log"; exit 1; }
base="http://127.0.0.1:$port"

# ---- GitHub deliveries ----

GH_SECRET=$(cat "$root/policies/demo-keys/github-webhook.secret")
sign() { printf '%s' "$1" | openssl dgst -sha256 -hmac "$GH_SECRET" | sed 's/^.*= //'; }
push='{"ref":"refs/heads/main","repository":{"full_name":"acme/shop"},"commits":[{"id":"a1","message":"Fix the cart\n\nlong text","author":{"username":"ada"}},{"id":"b2","message":"Add tests","author":{"username":"bob"}}]}'
sig=sha256=$(sign "$push")
DELIVERY=72d3162e-cc78-11e3-81ab-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')

# deliver OUT_PREFIX [curl args...]: writes OUT_PREFIX.h (headers) and .b (body), echoes the status
deliver() {
  local out=$1
  shift
  curl -s -m 10 -o "$out.b" -D "$out.h" -w '%{http_code}' -X POST \
    -H "Content-Type: application/json" -H "X-GitHub-Event: push" "$@" "$base/hooks/github"
}

code=$(deliver "$d/gh1" -H "X-Hub-Signature-256: $sig" -H "X-GitHub-Delivery: $DELIVERY" --data-binary "$push")
check "signed delivery: 202" 202 "$code"
check_contains "signed delivery: Location names the run" "Location: /v1/workflows/gh-$DELIVERY" "$(tr -d '\r' < "$d/gh1.h")"
check "signed delivery: body has the run id" "gh-$DELIVERY" "$(jq -r .id "$d/gh1.b")"
check "signed delivery: body has the run status" running "$(jq -r .status "$d/gh1.b")"
result=$(api "/v1/workflows/gh-$DELIVERY/result?wait=10")
check "the github-push run completes" completed "$(jq -r .status <<< "$result")"
check "it summarised the commits" "2 ada, bob Fix the cart | Add tests acme/shop" \
  "$(jq -r '.output.summary | "\(.commits) \(.authors) \(.titles) \(.repository)"' <<< "$result")"
check "it recorded the delivery" "$DELIVERY push" "$(jq -r '"\(.output.delivery) \(.output.event)"' <<< "$result")"

code=$(deliver "$d/gh2" -H "X-Hub-Signature-256: $sig" -H "X-GitHub-Delivery: $DELIVERY" --data-binary "$push")
check "redelivery: 202" 202 "$code"
check "redelivery: the same run" "gh-$DELIVERY completed" "$(jq -r '"\(.id) \(.status)"' "$d/gh2.b")"

check "unsigned delivery: 401" 401 "$(deliver "$d/gh3" -H "X-GitHub-Delivery: unsigned-1" --data-binary "$push")"
check "tampered delivery: 401" 401 "$(deliver "$d/gh4" -H "X-Hub-Signature-256: $sig" -H "X-GitHub-Delivery: tampered-1" --data-binary "${push/ada/eve}")"
check "a GET is the policy's: 403" 403 "$(curl -s -o /dev/null -w '%{http_code}' "$base/hooks/github")"
bad='{"ref": "refs/heads/main",'
code=$(deliver "$d/gh5" -H "X-Hub-Signature-256: sha256=$(sign "$bad")" -H "X-GitHub-Delivery: badjson-1" --data-binary "$bad")
check "signed but not JSON: 400" 400 "$code"
check_contains "400 names the problem" "body: invalid JSON: " "$(jq -r .message "$d/gh5.b")"
code=$(deliver "$d/gh6" -H "X-Hub-Signature-256: $sig" -H "X-GitHub-Delivery: bad/id" --data-binary "$push")
check "a bad delivery id: 400" 400 "$code"
check_contains "400 names the header" "X-GitHub-Delivery: " "$(jq -r .message "$d/gh6.b")"
big=$(head -c 70000 /dev/zero | tr '\0' a)
code=$(printf '{"a":"%s"}' "$big" | deliver "$d/gh7" -H "X-Hub-Signature-256: sha256=00" --data-binary @-)
check "a body over 64 KiB: 413" 413 "$code"
check "413 body" "payload_too_large" "$(jq -r .error "$d/gh7.b")"
runs=$(api "/v1/workflows?type=github-push" | jq '.runs | length')
check "refused deliveries started nothing: one github-push run" 1 "$runs"

# ---- lodestone.client from a plain Lua 5.4 process ----

SAN_ENV=("${E2E_SAN_ENV[@]}")
out=$(LS_SOCK=$sock LS_RUN=gh-$DELIVERY "${SAN_ENV[@]}" lua5.4 -e "
  package.path = '$root/lua/?.lua;$root/lua/?/init.lua;' .. package.path
  package.cpath = '$build/lib/lua/5.4/?.so;' .. package.cpath
  local client = require 'lodestone.client'
  client.configure { socket = os.getenv('LS_SOCK') }
  local run, status = client.get(os.getenv('LS_RUN'))
  print('get', run.status, run.type, status)
  print('missing', select('#', client.get('no-such-run')), client.get('no-such-run'))
  local r, msg, code, st = client.start('no-such-type', {})
  print('unknown', r, code, st, msg:match('^lodestoned: 404 unknown_type: unknown workflow type') ~= nil)
  local a, s1 = client.start('github-push', { push = {} }, { id = 'lua-1' })
  local b, s2 = client.start('github-push', { push = {} }, { id = 'lua-1' })
  print('start', a.id, s1, b.id, s2)
  local st = client.stats()
  print('stats', st.requests, st.connects, st.reconnects)
" 2>&1)
check_contains "client.get: a run and 200" "get	completed	github-push	200" "$out"
check_contains "client.get: a single nil for no such run" "missing	1	nil" "$out"
check_contains "client.start: the daemon's code and status" "unknown	nil	unknown_type	404	true" "$out"
check_contains "client.start: 201, then the same run with 200" "start	lua-1	201	lua-1	200" "$out"
check_contains "six calls on one connection" "stats	6	1	0" "$out"

# ---- orders with a JWT ----

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
mint() { # claims JSON -> RS256 token signed with the demo key
  local h p s
  h=$(printf '%s' '{"alg":"RS256","typ":"JWT","kid":"demo-2026"}' | b64url)
  p=$(printf '%s' "$1" | b64url)
  s=$(printf '%s' "$h.$p" | openssl dgst -sha256 -binary -sign "$root/policies/demo-keys/demo-signing-key.pem" | b64url)
  printf '%s' "$h.$p.$s"
}
exp=$(( $(date +%s) + 600 ))
claims() { # sub scope
  printf '{"iss":"https://id.example.com/","aud":"orders","sub":"%s","exp":%s,"scope":"%s","tenant":"acme"}' "$1" "$exp" "$2"
}
alice=$(mint "$(claims alice "orders:read orders:write")")
carol=$(mint "$(claims carol "orders:read orders:write")")
reader=$(mint "$(claims bob "orders:read")")
KEY=key-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')

order() { # OUT_PREFIX token [curl args...]
  local out=$1 tok=$2
  shift 2
  curl -s -m 10 -o "$out.b" -D "$out.h" -w '%{http_code}' -X POST -H "Authorization: Bearer $tok" \
    -H "Content-Type: application/json" "$@" "$base/orders"
}

check "order with orders:write and a key: 202" 202 "$(order "$d/o1" "$alice" -H "Idempotency-Key: $KEY" --data '{"amount": 4200}')"
oid=$(jq -r .id "$d/o1.b")
check_match "the run id derives from the key" '^order-[0-9a-f]{32}$' "$oid"
check_contains "Location names it" "Location: /v1/workflows/$oid" "$(tr -d '\r' < "$d/o1.h")"
check "the repeat: 202" 202 "$(order "$d/o2" "$alice" -H "Idempotency-Key: $KEY" --data '{"amount": 4200}')"
check "the repeat: the same run" "$oid" "$(jq -r .id "$d/o2.b")"
run=$(api "/v1/workflows/$oid")
check "the run has the order and the caller" "order 4200 alice $oid" \
  "$(jq -r '"\(.type) \(.input.amount) \(.input.customer) \(.input.id)"' <<< "$run")"
order "$d/o3" "$carol" -H "Idempotency-Key: $KEY" --data '{"amount": 4200}' > /dev/null
check_absent "the same key from another caller is another run" "$oid" "$(jq -r .id "$d/o3.b")"
order "$d/o4" "$alice" --data '{"amount": 100}' > /dev/null
order "$d/o5" "$alice" --data '{"amount": 100}' > /dev/null
id4=$(jq -r .id "$d/o4.b")
id5=$(jq -r .id "$d/o5.b")
check_match "no key: a fresh id" '^[0-9A-Z]{26}$' "$id4"
[ "$id4" != "$id5" ] && ok "no key: every POST is a new run" || not_ok "no key: every POST is a new run" "$id4 twice"
before=$(api "/v1/workflows?type=order" | jq '.runs | length')
check "without orders:write: 403" 403 "$(order "$d/o6" "$reader" -H "Idempotency-Key: r-1" --data '{"amount": 1}')"
check "without a token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data '{"amount": 1}' "$base/orders")"
check "a bad amount: 400" 400 "$(order "$d/o7" "$alice" --data '{"amount": -5}')"
check "400 names the field" "amount: expected a positive whole number of cents" "$(jq -r .message "$d/o7.b")"
after=$(api "/v1/workflows?type=order" | jq '.runs | length')
check "refused orders started nothing" "$before" "$after"
check "GET /orders/x with orders:read goes on to the backend (404 here)" 404 \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $reader" "$base/orders/x")"

# Kept connections: the daemon's side of each connection to its socket is a
# line of /proc/net/unix with the socket's path in state 03 (connected).
conns() { awk -v p="$sock" '$6 == "03" && $8 == p' /proc/net/unix | wc -l; }
for i in 1 2 3 4 5 6; do
  order "$d/k$i" "$alice" -H "Idempotency-Key: keep-$i" --data '{"amount": 1}' > /dev/null
done
n=$(conns)
[ "$n" -ge 1 ] && [ "$n" -le 2 ] && ok "six starts through two workers kept at most two connections ($n)" \
  || not_ok "kept connections" "$n connections to the daemon for 2 lighttpd workers"

# ---- the daemon restarted between two requests: one transparent reconnect ----

e2e_stop "$daemon"
start_daemon
check "daemon restarted: the next start just works" 202 "$(order "$d/r1" "$alice" -H "Idempotency-Key: restart-1" --data '{"amount": 1}')"
check "and the one after" 202 "$(order "$d/r2" "$alice" -H "Idempotency-Key: restart-2" --data '{"amount": 1}')"

# ---- the daemon stopped ----

e2e_stop "$daemon"
code=$(order "$d/o8" "$alice" -H "Idempotency-Key: down-1" --data '{"amount": 1}')
check "daemon stopped: 503" 503 "$code"
check "503 body" '{"error":"workflows_unavailable"}' "$(cat "$d/o8.b")"
check_contains "503 has Retry-After" "Retry-After: 1" "$(tr -d '\r' < "$d/o8.h")"
sleep 1.2 # the audit file is written at once; the error log by lighttpd's own buffer
check_contains "an audit line in the policy's audit log" '"reason":"workflows_unavailable"' "$(cat "$d/audit.log" 2>/dev/null)"
line=$(grep workflows_unavailable "$d/audit.log" | tail -n 1)
check "the audit line is one JSON object naming the workflow and caller" "order alice 503 error" \
  "$(jq -r '"\(.workflow) \(.subject) \(.status) \(.decision)"' <<< "$line")"
rid=$(tr -d '\r' < "$d/o8.h" | sed -n 's/^X-Request-Id: //p')
check "the 503 names the audit line's request id" "$(jq -r .request_id <<< "$line")" "$rid"
[ ${#rid} = 32 ] && ok "a request id of 32 digits" || not_ok "request id" "$rid"
check_contains "and the error log says why" "lodestoned at $sock: connect" "$(cat "$d/error.log")"

# ---- a daemon that accepts and never answers ----

"$build/tests/stallsock" "$sock" &
stall=$!
E2E_PIDS+=("$stall")
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
code=$(deliver "$d/gh8" -H "X-Hub-Signature-256: $sig" -H "X-GitHub-Delivery: stalled-1" --data-binary "$push")
check "silent daemon: 503" 503 "$code"
check "silent daemon: 503 body" '{"error":"workflows_unavailable"}' "$(cat "$d/gh8.b")"
check "lighttpd answers the next request at once" 403 "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$base/hooks/github")"
code=$(deliver "$d/gh9" -H "X-Hub-Signature-256: $sig" -H "X-GitHub-Delivery: stalled-2" --data-binary "$push")
check "silent daemon, again: 503" 503 "$code"
sleep 1.2
check_contains "the error log names the timeout" "no answer within the timeout of 500 ms" "$(cat "$d/error.log")"
e2e_stop "$stall"

# ---- the daemon back ----

rm -f "$sock"
start_daemon
code=$(deliver "$d/gh10" -H "X-Hub-Signature-256: $sig" -H "X-GitHub-Delivery: back-1" --data-binary "$push")
check "daemon back: 202 again" 202 "$code"
check "daemon back: the run completes" completed "$(api "/v1/workflows/gh-back-1/result?wait=10" | jq -r .status)"

# ---- a workflow type the daemon does not know ----

rm "$d/wf/order.lua"
kill -HUP "$daemon"
for _ in $(seq 100); do
  api /v1/workflow-types | jq -e '[.types[].name] | index("order") == null' > /dev/null && break
  sleep 0.1
done
code=$(order "$d/o9" "$alice" -H "Idempotency-Key: gone-1" --data '{"amount": 1}')
check "unknown workflow type: 502" 502 "$code"
check "502 body names no internals" '{"error":"workflow_start_failed"}' "$(cat "$d/o9.b")"
check_contains "and an audit line with the daemon's reason" '"reason":"unknown_type"' "$(cat "$d/audit.log")"

e2e_finish
