#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Key rotation against a real lodestoned: `lodestone key show|rotate` and
# GET /v1/keys, POST /v1/keys/rotate (and rotate's --timeout against a
# socket that never answers). A secret is set and a run waits for a
# signal (its input and first step sealed under key 1); the rotation makes
# key 2 current, the key file holds both, the secret still reads in a
# step, the waiting run completes after its signal, and everything opens
# after a restart (also over --listen with its token). The key file's copy
# from before the rotation is refused at start; key 2 alone opens a run
# started after the rotation and the resealed secret, not a run from
# before it.
# Then a reseal with a secret that does not open reseals every other
# secret, leaves that one as it was and says so, with the numbers;
# `key show` counts the secrets under older keys before and after, and a
# rotation again, once that secret is gone, reseals every secret.
# usage: tests/e2e/key_rotation.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }
export LODESTONE_LUA_DIR="$root/lua" HOME="$E2E_DIR"
unset LODESTONE_SOCKET LODESTONE_URL LODESTONE_TOKEN COLUMNS
ls=$build/bin/lodestone
d=$E2E_DIR
data=$d/data
key=$data/master.key
sock=$d/ld.sock
SECRET=tk-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$d/wf"
cd "$d" || exit 1

cat > "$d/wf/gate.lua" <<'LUA'
-- A step, then a wait for the signal "go".
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "gate",
  run = function(ctx, input)
    local first = ctx:step("first", function() return { n = input.n } end)
    return { n = first.n, go = ctx:wait_signal("go") }
  end,
}
LUA
cat > "$d/wf/peek.lua" <<'LUA'
-- Whether secret input.name reads as input.expect (never the value
-- itself), or the error reading it raised. One attempt.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "peek",
  retry = { max_attempts = 1 },
  run = function(ctx, input)
    return ctx:step("read", function(s)
      local ok, v = pcall(s.secret, s, input.name)
      if not ok then return { error = tostring(v) } end
      return { matches = v == input.expect, length = #v }
    end)
  end,
}
LUA
cat > "$d/wf/quick.lua" <<'LUA'
-- No steps: ends at once with its input.
local workflow = require "lodestone.workflow"
return workflow.define { name = "quick", run = function(ctx, input) return input end }
LUA

# run ARGS...: the CLI; sets rc, out, err.
run() {
  "$ls" "$@" > "$d/out" 2> "$d/err"
  rc=$?
  out=$(cat "$d/out")
  err=$(cat "$d/err")
}
jo() { printf '%s' "$out" | jq -r "$1" 2>/dev/null; }
# api METHOD PATH [curl args...]: sets code and body.
api() {
  local o
  o=$(curl -s --unix-socket "$sock" -X "$1" -w '\n%{http_code}' "http://lodestoned$2" "${@:3}")
  code=${o##*$'\n'}
  body=${o%$'\n'*}
}
daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --socket "$sock" --workflows "$d/wf" \
    --grace 2 "$@" || exit 1
  lsd=$E2E_DAEMON
}
# peek NAME EXPECT: runs peek on secret NAME; out holds its output (JSON).
peek() {
  run start peek --input "{\"name\":\"$1\",\"expect\":\"$2\"}" --wait --timeout 20 --socket "$sock"
  out=$(printf '%s' "$out" | jq -c .output 2>/dev/null)
}
keys_in_file() { grep -c '^key ' "$key"; }

daemon

# ---- before: key 1 ----

run key show --socket "$sock"
check "key show: key 1, one key, no secret under an older key" \
  "0|current key: 1|keys:        1|secrets under older keys: 0" \
  "$rc|$(printf '%s' "$out" | tr '\n' '|' | sed 's/|$//')"
run key show --json --socket "$sock"
check "key show --json: the API's object, never key material" \
  '0 {"current":1,"keys":1,"secrets_under_older_keys":0}' \
  "$rc $(jo . | jq -c .)"
api GET /v1/keys
check "GET /v1/keys" '200 {"current":1,"keys":1,"secrets_under_older_keys":0}' "$code $body"

printf '%s\n' "$SECRET" | "$ls" secret set token --socket "$sock" 2> /dev/null
check "a secret is set" 0 $?
run start quick --id before --input '{"when":"before"}' --wait --socket "$sock"
check "a run completes before the rotation" "0 before" "$rc $(jo .output.when)"
run start gate --id k1 --input '{"n":7}' --socket "$sock"
check "a run starts" 0 "$rc"
k1_waits() { [ "$("$ls" show k1 --json --socket "$sock" | jq -r .waiting.kind)" = signal ]; }
poll 100 k1_waits
check "the run waits for its signal (input and first step sealed under key 1)" 0 $?
cp -p "$key" "$d/master.key.before"

# ---- the rotation ----

run key rotate --json --socket "$sock"
check "key rotate: exit 0, key 2, two keys, the secret resealed" \
  '0 {"key":2,"keys":2,"secrets_resealed":1,"secrets_skipped":0}' "$rc $(jo . | jq -c .)"
check "key rotate says what happened and to back up the key file" \
  "rotated: key 2 is current (the key file holds 2 keys); 1 secret resealed under it
back up the key file now: it changed" "$err"
check "the key file holds two keys, key 2 current" "2 current 2" \
  "$(keys_in_file) $(sed -n 2p "$key")"
check "the key file's first key is the one it had" "$(grep '^key 1 ' "$d/master.key.before")" \
  "$(grep '^key 1 ' "$key")"
check "the key file is still 0600" 600 "$(stat -c %a "$key")"
run key show --socket "$sock"
check "key show: key 2 of 2" "0 current key: 2" "$rc $(printf '%s' "$out" | head -1)"
check_contains "key show: the older key is for older data" "2 (the older ones open" "$out"
check_contains "key show: the secret is under the current key" "secrets under older keys: 0" "$out"
check_absent "the log names no key material" "$(grep '^key 2 ' "$key" | cut -d' ' -f3)" \
  "$(cat "$d/daemon.log")"
check_contains "the log says who rotated and to back the key file up" \
  "keys rotated by api: key 2 is current, the key file holds 2 keys (back it up)" \
  "$(cat "$d/daemon.log")"

peek token "$SECRET"
check "the secret still reads in a step" '0 {"length":'${#SECRET}',"matches":true}' "$rc $out"
run signal k1 go '{"ok":true}' --socket "$sock"
check "the waiting run takes its signal" 0 "$rc"
curl -s -o /dev/null --unix-socket "$sock" "http://lodestoned/v1/workflows/k1/result?wait=20"
run show k1 --json --socket "$sock"
check "the run sealed under key 1 completes under key 2" \
  'completed {"go":{"ok":true},"n":7}' "$(jo .status) $(printf '%s' "$out" | jq -S -c .output)"
run start quick --id after --input '{"when":"after"}' --wait --socket "$sock"
check "a run after the rotation completes" "0 after" "$rc $(jo .output.when)"

# ---- the routes' edges ----

api POST /v1/keys/rotate --data-binary '{}'
check "POST /v1/keys/rotate with a body: 400, nothing rotated" \
  '400 bad_request 2' "$code $(printf '%s' "$body" | jq -r .error.code) $(keys_in_file)"
api DELETE /v1/keys/rotate -i
check "DELETE /v1/keys/rotate: 405, Allow: POST" "405 1" \
  "$(printf '%s' "$body" | sed -n '1s/^HTTP[^ ]* \([0-9]*\).*/\1/p') \
$(printf '%s' "$body" | grep -c $'^Allow: POST\r$')"
api PUT /v1/keys -i
check "PUT /v1/keys: 405, Allow: GET, HEAD" "405 1" \
  "$(printf '%s' "$body" | sed -n '1s/^HTTP[^ ]* \([0-9]*\).*/\1/p') \
$(printf '%s' "$body" | grep -c $'^Allow: GET, HEAD\r$')"
run key rotate extra --socket "$sock"
check "key rotate with an argument: usage, exit 2, nothing rotated" "2 2" "$rc $(keys_in_file)"
run key --socket "$sock"
check "key without a subcommand: usage, exit 2" 2 "$rc"
# A lodestoned that takes the request and does not answer in time (a
# rotation resealing many secrets): exit 4 after --timeout, not "unreachable".
"$build/tests/stallsock" "$d/stall.sock" &
stall=$!
E2E_PIDS+=("$stall")
for _ in $(seq 50); do [ -S "$d/stall.sock" ] && break; sleep 0.1; done
run key rotate --timeout 1 --socket "$d/stall.sock"
check "key rotate --timeout 1 with no answer: exit 4, the rotation goes on in lodestoned" \
  "4 lodestone key: no answer from lodestoned within 1 s (--timeout); the rotation goes on there: lodestone key show tells the current key and how many secrets are still under older keys" \
  "$rc $err"
e2e_stop "$stall" 5
# One whose connect times out (a listener that never accepts) sent nothing:
# "cannot reach", exit 3, not "the rotation goes on".
"$build/tests/fullqueue" "$d/fullqueue.port" &
full=$!
E2E_PIDS+=("$full")
for _ in $(seq 50); do [ -s "$d/fullqueue.port" ] && break; sleep 0.1; done
printf 'tok\n' > "$d/fq-token"
run key rotate --timeout 1 --url "http://127.0.0.1:$(cat "$d/fullqueue.port")" --token-file "$d/fq-token"
check "key rotate --timeout 1 whose connect times out: exit 3, unreachable" \
  "3 lodestone: cannot reach lodestoned at http://127.0.0.1:$(cat "$d/fullqueue.port") (timed out after 1000 ms while connecting); is it running?" \
  "$rc $err"
e2e_stop "$full" 5
run key rotate --timeout soon --socket "$sock"
check "key rotate --timeout that is no number: usage, exit 2, nothing rotated" "2 2" \
  "$rc $(keys_in_file)"
for t in inf nan 1e999 3000000 0; do
  run key rotate --timeout "$t" --socket "$sock"
  check "key rotate --timeout $t: usage, exit 2, nothing rotated" \
    "2 2 lodestone key: --timeout: expected seconds (more than 0, at most 2147483), got $t (see lodestone key --help)" \
    "$rc $(keys_in_file) $err"
done

# ---- a restart: everything still opens, also over --listen ----

e2e_stop "$lsd" 10
check "lodestoned stops" 0 $?
port=$(e2e_free_port)
printf 'rot-token-%s\n' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" > "$d/token"
chmod 600 "$d/token"
daemon --listen "127.0.0.1:$port" --token-file "$d/token"
run key show --json --url "http://127.0.0.1:$port" --token-file "$d/token"
check "after a restart, over TCP with the token: key 2 of 2" \
  '0 {"current":2,"keys":2,"secrets_under_older_keys":0}' \
  "$rc $(jo . | jq -c .)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/v1/keys/rotate")
check "POST /v1/keys/rotate over TCP without the token: 401, nothing rotated" "401 2" \
  "$code $(keys_in_file)"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/keys")
check "GET /v1/keys over TCP without the token: 401" 401 "$code"
run show k1 --json --socket "$sock"
check "after a restart: the run from before the rotation opens" \
  'completed 7 {"go":{"ok":true},"n":7}' \
  "$(jo .status) $(jo .input.n) $(printf '%s' "$out" | jq -S -c .output)"
run show after --json --socket "$sock"
check "after a restart: the run from after the rotation opens" "completed after" \
  "$(jo .status) $(jo .output.when)"
peek token "$SECRET"
check "after a restart: the secret reads" '0 {"length":'${#SECRET}',"matches":true}' "$rc $out"
e2e_stop "$lsd" 10

# ---- what is under which key ----
# The key file's copy from before the rotation lacks key 2, under which
# the rotation sealed the store's key check again: lodestoned refuses it.
# A key file that holds key 2 alone opens what was sealed after the
# rotation (a run started after it, the resealed secret), and not a
# payload sealed before it.

out=$(timeout 10 "$build/bin/lodestoned" --data "$data" --socket "$sock" --workflows "$d/wf" \
  --key-file "$d/master.key.before" 2>&1)
rc=$?
check "the key file from before the rotation is refused at start: exit 2" 2 "$rc"
check_contains "... naming key 2" "written under key 2, which it does not hold" "$out"
{ sed -n 1p "$key"; echo "current 2"; grep '^key 2 ' "$key"; } > "$d/key2.only"
chmod 600 "$d/key2.only"
daemon --key-file "$d/key2.only"
run show after --json --socket "$sock"
check "key 2 alone: the run started after the rotation opens (its payloads are under key 2)" \
  "0 after after" "$rc $(jo .input.when) $(jo .output.when)"
peek token "$SECRET"
check "key 2 alone: the secret opens (resealed under key 2)" \
  '0 {"length":'${#SECRET}',"matches":true}' "$rc $out"
run show before --json --socket "$sock"
check "key 2 alone: a run from before the rotation does not (its payloads stay under key 1)" \
  1 "$rc"
check_contains "... and the error names key 1" "names key 1, which this keyring does not hold" "$err"
e2e_stop "$lsd" 10

# ---- a reseal with a secret that does not open, and the rotation again ----
# Secret m is sealed under a key 3 that the key file then holds with other
# bytes (the file was changed by hand): m does not open, 65 secrets sort
# before it and "token" after it. Resealing writes batches of 64: m is in
# the second, with the two after it.

with_key3() { # BASE64: key 3 with these bytes, current
  { sed -n 1p "$key"; echo "current 3"; grep '^key [12] ' "$key"; echo "key 3 $1"; } > "$d/k.new"
  cat "$d/k.new" > "$key"
}
with_key3 "$(head -c 32 /dev/urandom | base64)"
daemon
printf 'm-value\n' | "$ls" secret set m --socket "$sock" 2> /dev/null
check "m is set under key 3" 0 $?
e2e_stop "$lsd" 10
with_key3 "$(head -c 32 /dev/urandom | base64)"
daemon
for i in $(seq -w 0 64); do
  curl -s -o /dev/null -X PUT --unix-socket "$sock" --data-binary "value-$i" \
    "http://lodestoned/v1/secrets/a0$i"
done
run secret list --socket "$sock"
check "67 secrets" 67 "$(printf '%s\n' "$out" | tail -n +2 | grep -c .)"
run key show --socket "$sock"
check_contains "key show: one secret under an older key (token, under key 2; m names key 3)" \
  "secrets under older keys: 1 (a rotation reseals them under the current key)" "$out"

run key rotate --json --socket "$sock"
check "one skipped: exit 1" 1 "$rc"
check "one skipped: --json prints the numbers: key 4 current, 66 resealed, 1 skipped, m" \
  '{"code":"reseal_incomplete","key":4,"keys":4,"secrets_resealed":66,"secrets_skipped":1,"first_skipped":"m"}' \
  "$(jo '{code: .error.code, key, keys, secrets_resealed, secrets_skipped, first_skipped}' | jq -c .)"
check_contains "one skipped: it says the rotation happened, what was resealed and what not" \
  'lodestone key: key 4 is current (the key file changed: back it up) and 66 secrets were resealed under it, but 1 did not open and stays as it was, under older keys, which the key file keeps; the first: secret "m": ' \
  "$err"
check_contains "one skipped: and what to do" \
  "Set it again or remove it and rotate again: that reseals every secret not under the newest key" \
  "$err"
check "one skipped: the key file holds key 4, current" "4 current 4" \
  "$(keys_in_file) $(sed -n 2p "$key")"
run key show --socket "$sock"
check_contains "one skipped: key show counts only m under an older key" \
  "secrets under older keys: 1 (a rotation reseals" "$out"
api GET /v1/keys
check "one skipped: GET /v1/keys" '200 {"current":4,"keys":4,"secrets_under_older_keys":1}' \
  "$code $body"
peek token "$SECRET"
check "one skipped: the secret after m is resealed and reads" \
  '0 {"length":'${#SECRET}',"matches":true}' "$rc $out"
peek a064 value-64
check "one skipped: a secret of m's batch reads" '0 {"length":8,"matches":true}' "$rc $out"
peek m m-value
check_contains "one skipped: m is left as it was (still does not open)" \
  'secret \"m\": sealed value does not authenticate' "$out"

run secret rm m --socket "$sock"
check "the secret that does not open is removed" 0 "$rc"
run key rotate --json --socket "$sock"
check "rotating again reseals every secret not under the newest key: all 66" \
  '0 {"key":5,"keys":5,"secrets_resealed":66,"secrets_skipped":0}' "$rc $(jo . | jq -c .)"
run key show --socket "$sock"
check_contains "then key show: no secret under an older key" "secrets under older keys: 0" "$out"
peek a000 value-00
check "a secret resealed twice reads" '0 {"length":8,"matches":true}' "$rc $out"
peek token "$SECRET"
check "the secret after the one that did not open reads" \
  '0 {"length":'${#SECRET}',"matches":true}' "$rc $out"

e2e_stop "$lsd" 10
e2e_finish
