#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Retiring old keys against a real lodestoned (`lodestoned --retire-old-keys`).
# Runs, a custom status and secrets are sealed under key 1; a rotation
# makes key 2 current; a secret is sealed under a key 3 whose bytes the key
# file then loses (it no longer opens); a second rotation makes key 4
# current. Retirement is refused while lodestoned runs (exit 2); stopped,
# it reseals everything else but keeps the key file as it was because of
# that secret (exit 1, naming it). With the secret removed and a rotation
# to key 5, it retires keys 1 to 4: the key file, a symlink, stays one and
# holds key 5 alone.
# Again, there is nothing to retire. Then lodestoned starts with that key
# file, the run that waited since key 1 takes its signal and completes,
# and every old payload and the secret read through the API.
# usage: tests/e2e/key_retire.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }
export LODESTONE_LUA_DIR="$root/lua" HOME="$E2E_DIR"
unset LODESTONE_SOCKET LODESTONE_URL LODESTONE_TOKEN LODESTONE_KEY_FILE COLUMNS
ls=$build/bin/lodestone
lsd_bin=$build/bin/lodestoned
d=$E2E_DIR
data=$d/data
key=$data/master.key
sock=$d/ld.sock
SECRET=tk-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$d/wf"
cd "$d" || exit 1

cat > "$d/wf/gate.lua" <<'LUA'
-- A step and a custom status, then a wait for the signal "go".
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "gate",
  run = function(ctx, input)
    local first = ctx:step("first", function() return { n = input.n } end)
    ctx:set_status { stage = "waiting" }
    return { n = first.n, go = ctx:wait_signal("go") }
  end,
}
LUA
cat > "$d/wf/peek.lua" <<'LUA'
-- Whether secret input.name reads as input.expect (never the value).
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "peek",
  retry = { max_attempts = 1 },
  run = function(ctx, input)
    return ctx:step("read", function(s)
      local ok, v = pcall(s.secret, s, input.name)
      if not ok then return { error = tostring(v) } end
      return { matches = v == input.expect }
    end)
  end,
}
LUA
cat > "$d/wf/quick.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "quick", run = function(ctx, input) return input end }
LUA

run() {
  "$ls" "$@" --socket "$sock" > "$d/out" 2> "$d/err"
  rc=$?
  out=$(cat "$d/out")
  err=$(cat "$d/err")
}
jo() { printf '%s' "$out" | jq -r "$1" 2>/dev/null; }
daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --socket "$sock" --workflows "$d/wf" \
    --grace 2 "$@" || exit 1
  lsd=$E2E_DAEMON
}
# retire [ARGS...]: lodestoned --retire-old-keys; sets rc, out, err.
retire() {
  "$lsd_bin" --retire-old-keys --data "$data" "$@" > "$d/out" 2> "$d/err"
  rc=$?
  out=$(cat "$d/out")
  err=$(cat "$d/err")
}
peek() {
  run start peek --input "{\"name\":\"$1\",\"expect\":\"$2\"}" --wait --timeout 20
  out=$(printf '%s' "$out" | jq -c .output 2>/dev/null)
}
keys_in_file() { grep -c '^key ' "$key"; }
with_key3() { # BASE64: key 3 with these bytes, current (the file changed by hand)
  { sed -n 1p "$key"; echo "current 3"; grep '^key [12] ' "$key"; echo "key 3 $1"; } > "$d/k.new"
  cat "$d/k.new" > "$key"
}

# ---- key 1: a secret, a run that completed, a run that waits ----

daemon
printf '%s\n' "$SECRET" | "$ls" secret set token --socket "$sock" 2> /dev/null
check "a secret is set under key 1" 0 $?
run start quick --id q1 --input '{"when":"key 1"}' --wait
check "a run completes under key 1" "0 key 1" "$rc $(jo .output.when)"
run start gate --id k1 --input '{"n":7}'
k1_waits() { [ "$("$ls" show k1 --json --socket "$sock" | jq -r .waiting.kind)" = signal ]; }
poll 100 k1_waits
check "a run waits for its signal (input, step, status sealed under key 1)" 0 $?

# ---- key 2, a secret under a key 3 that then changes, key 4 ----

run key rotate --json
check "rotation to key 2" '0 2' "$rc $(jo .key)"
run start quick --id q2 --input '{"when":"key 2"}' --wait
check "a run completes under key 2" "0 key 2" "$rc $(jo .output.when)"
e2e_stop "$lsd" 10
with_key3 "$(head -c 32 /dev/urandom | base64)"
daemon
printf 'm-value\n' | "$ls" secret set m --socket "$sock" 2> /dev/null
check "secret m is set under key 3" 0 $?
e2e_stop "$lsd" 10
with_key3 "$(head -c 32 /dev/urandom | base64)"
daemon
run key rotate --json
check "rotation to key 4: m does not open and stays under key 3" '1 4 1' \
  "$rc $(jo .key) $(jo .secrets_skipped)"
check "the key file holds keys 1 to 4" "4 current 4" "$(keys_in_file) $(sed -n 2p "$key")"

# ---- refused while lodestoned runs ----

cp -p "$key" "$d/key.before"
retire
check "retirement while lodestoned runs: exit 2" 2 "$rc"
check "... one line naming the data dir, saying to stop lodestoned" \
  "lodestoned: $data is in use by a running lodestoned: stop lodestoned first, then run --retire-old-keys again (nothing was changed)" \
  "$err"
cmp -s "$key" "$d/key.before"
check "... the key file is unchanged" 0 $?
e2e_stop "$lsd" 10
check "lodestoned stops" 0 $?

# The key file becomes a symlink to a file elsewhere: retirement replaces
# that file and keeps the link.
mkdir -p "$d/keys" && chmod 700 "$d/keys"
mv "$key" "$d/keys/master.key"
ln -s "$d/keys/master.key" "$key"

# ---- a value that does not open: nothing retired ----

retire
check "with secret m not opening: exit 1, nothing on stdout" "1 " "$rc $out"
check_contains "... it says which keys stay, how many did not open and the first" \
  "lodestoned: keys 1, 2, 3 not retired: 1 value under them did not open (the first: secret \"m\": " \
  "$err"
# History: q1's and q2's input and output, k1's input, its step's start
# (sealed empty: every event is sealed since event version 3) and result.
check_contains "... what was resealed meanwhile: the payloads, the custom status" \
  "; 8 values were resealed under key 4 (history 7, custom statuses 1). The key file is unchanged (keys 1, 2, 3, 4)" \
  "$err"
check_contains "... and what to do" "Then run lodestoned --retire-old-keys again" "$err"
cmp -s "$d/keys/master.key" "$d/key.before"
check "... the key file is unchanged" 0 $?
wrong=$d/wrong.key
{ head -1 "$d/key.before"; echo "current 1"; echo "key 1 $(head -c 32 /dev/urandom | base64)"; } \
  > "$wrong"
chmod 600 "$wrong"
retire --key-file "$wrong"
check "retirement with a wrong key file: refused as a start is, exit 2" 2 "$rc"
check_contains "... with the start's message" "does not open this store's data" "$err"
"$lsd_bin" --retire-old-keys --data "$d/nowhere" > "$d/out" 2> "$d/err"
check "retirement of a data dir without a store: exit 2, asks whether --data is right" \
  "2 yes" "$? $(grep -q 'holds no store.*is --data right?' "$d/err" && echo yes)"
check "... and makes nothing there" 1 "$([ -e "$d/nowhere" ] && echo 0 || echo 1)"

daemon
run secret rm m
check "secret m is removed" 0 "$rc"
run key rotate --json
check "rotation to key 5: the secret is resealed under it" '0 5 1' \
  "$rc $(jo .key) $(jo .secrets_resealed)"
e2e_stop "$lsd" 10

# ---- retirement ----

key5=$(grep '^key 5 ' "$key")
retire
check "retirement: exit 0" 0 "$rc"
check "it says what it did: the payloads and the custom status (the secret is under key 5)" \
  "retired keys 1, 2, 3, 4: 8 values resealed under key 5 (history 7, custom statuses 1); the key file holds key 5 only
back up the key file now (it changed), and keep the old one for as long as store backups from before this retirement are kept: they need it" \
  "$out"
check "the key file holds key 5 alone, the same key" "1|current 5|$key5" \
  "$(keys_in_file)|$(sed -n 2p "$key")|$(grep '^key ' "$key")"
check "the key file is still a symlink, its target 0600" "yes 600" \
  "$([ -L "$key" ] && echo yes) $(stat -c %a "$d/keys/master.key")"
check "no temporary file is left" 0 "$(ls -A "$data" "$d/keys" | grep -c '\.tmp-')"

retire
check "again: nothing to retire, exit 0" \
  "0 nothing to retire: key file $key holds key 5 only" "$rc $out"

# ---- lodestoned with key 5 alone ----

cp "$d/keys/master.key" "$d/key5.only"
chmod 600 "$d/key5.only"
daemon --key-file "$d/key5.only"
run show k1 --json
check "the run waiting since key 1 is there, its custom status reads" "0 running waiting" \
  "$rc $(jo .status) $(jo .custom_status.stage)"
run signal k1 go '{"ok":true}'
check "it takes its signal" 0 "$rc"
curl -s -o /dev/null --unix-socket "$sock" "http://lodestoned/v1/workflows/k1/result?wait=20"
run show k1 --json
check "it completes, with its payloads from key 1" \
  'completed 7 {"go":{"ok":true},"n":7}' "$(jo .status) $(jo .input.n) $(printf '%s' "$out" | jq -S -c .output)"
run history k1 --json
check "its history reads (the step result sealed under key 1)" '0 7' \
  "$rc $(printf '%s' "$out" | jq -r '[.[] | select(.type == "step_completed")][0].result.n')"
run show q1 --json
check "the run from key 1 reads" "key 1 key 1" "$(jo .input.when) $(jo .output.when)"
run show q2 --json
check "the run from key 2 reads" "key 2 key 2" "$(jo .input.when) $(jo .output.when)"
peek token "$SECRET"
check "the secret reads" '0 {"matches":true}' "$rc $out"
check_absent "no payload failed to open" "does not open" "$(cat "$d/daemon.log")"
e2e_stop "$lsd" 10
e2e_finish
