#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The workflow commands of `lodestone` against a real lodestoned (a temp
# data dir, a unix socket given by --socket and by LODESTONE_SOCKET, the
# repo's workflows/hello.lua and a few test workflows): types and a file
# that does not load, start (an id that exists, --wait off and on a
# pseudo-terminal, a failed run, --timeout, --input @FILE, @- and bad
# JSON), list (the table, filters, --limit and paging past one page), show,
# history, secrets, an unknown run, and the daemon gone. And lodestoned's own
# command line: a stray word, an unknown option, --name=VALUE, a --socket
# path too long (before anything is opened).
# usage: tests/e2e/cli_daemon.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }
command -v script >/dev/null || { echo "script not found (bsdutils; scripts/deps.sh installs it)"; exit 1; }
export LODESTONE_LUA_DIR="$root/lua" HOME="$E2E_DIR"
unset LODESTONE_SOCKET LODESTONE_URL LODESTONE_TOKEN COLUMNS
ls=$build/bin/lodestone
d=$E2E_DIR
data=$d/data
sock=$d/ld.sock # not in the data dir: --socket is what finds it
SECRET=tk-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$d/wf"
cd "$d"

# ---- the outside world and the workflows ----

"$build/tests/mocksvc" --port-file "$d/mock.port" --log "$d/mock.log" &
mock=$!
E2E_PIDS+=("$mock")
e2e_wait_file "$d/mock.port" || { echo "mocksvc did not start"; exit 1; }
mock_url=http://127.0.0.1:$(cat "$d/mock.port")

cp "$root/workflows/hello.lua" "$d/wf/"
cat > "$d/wf/decline.lua" <<'LUA'
-- A step that fails for good.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "decline",
  run = function(ctx)
    return ctx:step("charge", function() error(workflow.fatal("card declined")) end)
  end,
}
LUA
cat > "$d/wf/sleeper.lua" <<'LUA'
-- A run that sleeps for input.sleep.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "sleeper",
  run = function(ctx, input)
    ctx:sleep(input.sleep)
    return { slept = input.sleep }
  end,
}
LUA
cat > "$d/wf/quick.lua" <<'LUA'
-- No steps: ends at once with its input.
local workflow = require "lodestone.workflow"
return workflow.define { name = "quick", run = function(ctx, input) return input end }
LUA
cat > "$d/wf/whoami.lua" <<'LUA'
-- Sends the secret "tok" to mocksvc's /echo; records only whether it came
-- back intact, and its length. One attempt.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "whoami",
  retry = { max_attempts = 1 },
  run = function(ctx, input)
    return ctx:step("echo", function(s)
      local token = s:secret("tok")
      local res = s.http.post(input.url, { headers = { Authorization = "Bearer " .. token } })
      local seen = res.json.headers.authorization
      return { auth_ok = seen == "Bearer " .. token, length = #token }
    end)
  end,
}
LUA

# ---- helpers ----

# run ARGS...: runs lodestone, sets $rc, $out (stdout) and $err (stderr).
run() {
  "$ls" "$@" > "$d/out" 2> "$d/err"
  rc=$?
  out=$(cat "$d/out")
  err=$(cat "$d/err")
}
# jo FILTER: jq -r over the last stdout.
jo() { printf '%s' "$out" | jq -r "$1" 2>/dev/null; }
# ended ID: waits for run ID to end (20 s at most), through the API.
ended() {
  curl -s -o /dev/null --unix-socket "$sock" "http://lodestoned/v1/workflows/$1/result?wait=20"
}
# aligned TEXT: every line's cells start where the header's columns do
# (a space before, a non-space at the start). Prints the first bad line.
aligned() {
  printf '%s\n' "$1" | awk '
    NR == 1 {
      n = 0
      for (i = 2; i <= length($0); i++)
        if (substr($0, i - 1, 1) == " " && substr($0, i, 1) != " ") starts[++n] = i
      next
    }
    {
      for (k = 1; k <= n; k++) {
        c = starts[k]
        if (substr($0, c - 1, 1) != " " || substr($0, c, 1) == " ") { print "line " NR ": " $0; exit 1 }
      }
    }'
}

# ---- lodestoned's own command line: what is wrong is named, exit 2 ----

# lsd ARGS...: runs lodestoned to its end (10 s at most: one that started
# all the same gets SIGTERM); sets $rc and $out (its stdout and stderr).
lsd() {
  out=$(timeout 10 "$build/bin/lodestoned" "$@" 2>&1)
  rc=$?
}
lsd --data "$d/cl" --workflows "$d/wf" stray
check "lodestoned: a stray word is named as such, not short of a value" \
  '2 lodestoned: unexpected argument "stray": lodestoned takes only options (see --help)' "$rc $out"
lsd --data "$d/cl" --workflows "$d/wf" --bogus
check "lodestoned: an unknown option last is unknown, not short of a value" \
  "2 lodestoned: unknown option --bogus (see --help)" "$rc $out"
lsd --bogus --data "$d/cl"
check "lodestoned: an unknown option first too" "2 lodestoned: unknown option --bogus (see --help)" "$rc $out"
lsd --data "$d/cl" --workers
check "lodestoned: a known option last is short of a value" \
  "2 lodestoned: --workers needs a value (see --help)" "$rc $out"
lsd --workers=0 --data "$d/cl"
check "lodestoned: --workers=0 is read as --workers 0 (and refused for its value)" \
  '2 lodestoned: --workers: expected 1 to 1024, got "0"' "$rc $out"
lsd --data "$d/cl" --no-sync=yes
check "lodestoned: a flag given a value is refused" \
  '2 lodestoned: --no-sync takes no value, got "--no-sync=yes"' "$rc $out"
lsd --data= --workflows "$d/wf"
check "lodestoned: an empty value is refused" "2 lodestoned: --data: the value is empty (see --help)" "$rc $out"
long=$(printf 's%.0s' $(seq 110))
lsd --data "$d/cl" --workflows "$d/wf" --socket "$d/$long"
check "lodestoned: a --socket path too long for a unix socket is a bad option (exit 2)" \
  "2 lodestoned: --socket: the path is $(( ${#d} + 111 )) bytes; a unix socket's may have at most 107" \
  "$rc $out"
lsd --data "$d/cl/$long" --workflows "$d/wf"
check "lodestoned: so is a default socket path (under --data) too long" \
  "2 lodestoned: --socket: the path is $(( ${#d} + 130 )) bytes; a unix socket's may have at most 107 (the default, DATA/lodestoned.sock: give --socket, or a shorter --data)" \
  "$rc $out"
check "lodestoned: and none of these made a data directory" no "$([ -e "$d/cl" ] && echo yes || echo no)"
# --help lists every option the parser takes (the names quoted in main.c),
# and no other.
check "lodestoned --help lists every option the parser takes, and no other" \
  "$(grep -oE '"--[a-z][a-z-]+"' "$root/native/daemon/main.c" | tr -d '"' | sort -u | paste -sd' ')" \
  "$("$build/bin/lodestoned" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u | paste -sd' ')"
# --name=VALUE works for every option that takes a value (the socket, data,
# workers and log level given that way are the ones used).
e2e_lodestoned "$d/eq.sock" "$d/eq.log" --data="$d/eq" --socket="$d/eq.sock" --workflows="$d/wf" \
  --workers=3 --grace=1 --log-level=warn || exit 1
check "lodestoned --name=VALUE: the values are used" "3 true" \
  "$(curl -s --unix-socket "$d/eq.sock" http://lodestoned/healthz | jq -r .workers.configured) \
$([ -d "$d/eq/store" ] && echo true)"
check "lodestoned --log-level=warn: no info lines" "" "$(grep '"level":"info"' "$d/eq.log")"
e2e_stop "$E2E_DAEMON" 10
check "lodestoned --name=VALUE: stops with exit 0" 0 $?

start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --socket "$sock" --workflows "$d/wf" \
    --workers 2 --grace 2 || exit 1
  daemon=$E2E_DAEMON
}
start_daemon

# ---- types: via --socket, then LODESTONE_SOCKET; a file that does not load ----

run types --socket "$sock"
check "types: exit 0" 0 "$rc"
check "types: a TYPE VERSION RUNS OLDER FILE table" "TYPE VERSION RUNS OLDER FILE" "$(printf '%s\n' "$out" | head -1 | tr -s ' ')"
check "types: every loaded type, with its file" \
  "decline:$d/wf/decline.lua hello:$d/wf/hello.lua quick:$d/wf/quick.lua sleeper:$d/wf/sleeper.lua whoami:$d/wf/whoami.lua" \
  "$(printf '%s\n' "$out" | tail -n +2 | awk '{print $1 ":" $5}' | sort | paste -sd' ')"
check_match "types: versions are content hashes" '^[0-9a-f]{16}$' "$(printf '%s\n' "$out" | awk '$1 == "hello" {print $2}')"
check "types: aligned" "" "$(aligned "$out")"
check "types: no errors" "" "$err"

export LODESTONE_SOCKET=$sock
run types
check "LODESTONE_SOCKET: types exits 0" 0 "$rc"
check_contains "LODESTONE_SOCKET: lists hello" "hello" "$out"
run types --socket "$d/nowhere.sock"
check "--socket wins over LODESTONE_SOCKET" 3 "$rc"

printf 'local workflow = require "lodestone.workflow"\nreturn workflow.define {\n  name = "broken",\n' > "$d/wf/broken.lua"
kill -HUP "$daemon"
types_fail() { "$ls" types > /dev/null 2>&1; [ $? -eq 1 ]; }
poll 100 types_fail
run types
check "a file that does not load: types exits 1" 1 "$rc"
check_match "and names it, with the load error, on stderr" "^error: $d/wf/broken\\.lua:[0-9]+: " "$err"
check_contains "the good types are still listed" "hello" "$out"
check_absent "the broken one is not a type" "broken" "$out"

# ---- start: an id, the same id again ----

run start hello --id h1 --input '{"name":"Ada","pause":"1s"}'
check "start: exit 0" 0 "$rc"
check "start: prints the id" h1 "$out"
check "start: says it started" "started hello run h1" "$err"
run start hello --id h1 --input '{"name":"Bob"}'
check "the same id again: exit 0" 0 "$rc"
check "the same id again: prints the id" h1 "$out"
check_match "the same id again: says it exists, not started" \
  '^run h1 already exists \((running|completed)\); not started again$' "$err"
run list --json
check "the same id again: one run h1" 1 "$(jo '[.[] | select(.id == "h1")] | length')"
run show h1 --json
check "the same id again: the first input stays" Ada "$(jo .input.name)"

# ---- start --wait off a terminal ----

run start hello --id w1 --input '{"name":"Bo","pause":"100ms"}' --wait
check "--wait: exit 0" 0 "$rc"
check "--wait: the result JSON, completed, with the output" "w1 completed hello, Bo" \
  "$(jo '"\(.id) \(.status) \(.output.greeting)"')"
check_contains "--wait: the JSON is indented" '  "status": "completed"' "$out"

run start decline --id f1 --wait
check "--wait on a failing run: exit 1" 1 "$rc"
check "--wait on a failing run: the result JSON says failed" "failed" "$(jo .status)"
check_contains "--wait on a failing run: the error on stderr" \
  'lodestone start: run f1 failed: step "charge" failed on attempt 1: card declined' "$err"

run start sleeper --id s1 --input '{"sleep":"30s"}' --wait --timeout 1
check "--timeout 1 on a 30 s sleep: exit 4" 4 "$rc"
check_contains "--timeout: says it goes on" "run s1 still running after 1 s (--timeout)" "$err"
run show s1 --json
check "--timeout: the run goes on" running "$(jo .status)"

# ---- --input @FILE, @-, bad JSON ----

printf '{"name":"File","pause":"100ms"}\n' > "$d/in.json"
run start hello --id in-file --input "@$d/in.json" --wait
check "--input @FILE: completed with that input" "0 hello, File" "$rc $(jo .output.greeting)"
out=$(printf '{"name":"Stdin","pause":"100ms"}' | "$ls" start hello --id in-stdin --input @- --wait 2> "$d/err")
rc=$?
check "--input @-: completed with stdin's input" "0 hello, Stdin" "$rc $(jo .output.greeting)"

run start hello --id bad-input --input '{"name":'
check "malformed --input: exit 2" 2 "$rc"
check_match "malformed --input: says where" '^lodestone start: --input: json\.decode: line 1 .*\(see lodestone start --help\)$' "$err"
check "malformed --input: nothing on stdout" "" "$out"
printf '{"name": "x",}' > "$d/bad.json"
run start hello --id bad-input --input "@$d/bad.json"
check "malformed --input @FILE: exit 2" 2 "$rc"
run start hello --id bad-input --input "@$d/missing.json"
check "--input @FILE that does not exist: exit 2" 2 "$rc"
check_contains "and names it" "--input: $d/missing.json" "$err"
run show bad-input
check "a refused --input started no run" 1 "$rc"

# ---- start --wait on a terminal: the live status line ----

script -qec "'$ls' start hello --id tty1 --input '{\"name\":\"Tty\",\"pause\":\"1s\"}' --wait" /dev/null \
  > "$d/tty.out" 2>&1 < /dev/null
rc=$?
tty=$(tr -d '\r' < "$d/tty.out")
check "on a terminal: exit 0" 0 "$rc"
check_contains "on a terminal: the status line redraws in place" $'\e[K' "$tty"
check_match "on a terminal: progress while it sleeps" \
  'running for [0-9.]+(ms|s): 1 step done, 0 failed attempts; sleeping until [0-9]{2}:[0-9]{2}:[0-9]{2}' "$tty"
check_match "on a terminal: the final line" 'completed after [0-9.]+(ms|s): 2 steps done, 0 failed attempts' "$tty"
out=$(printf '%s\n' "$tty" | sed -n '/^{/,/^}/p')
check "on a terminal: then the result JSON" "tty1 completed hello, Tty" "$(jo '"\(.id) \(.status) \(.output.greeting)"')"

# ---- list: the table, filters, --limit, paging ----

ended h1
run list
check "list: exit 0" 0 "$rc"
check_match "list: the header" '^ID +TYPE +VERSION +STATUS +STEPS +CREATED$' "$(printf '%s\n' "$out" | head -1)"
check "list: aligned" "" "$(aligned "$out")"
check_match "list: a row" '^h1 +hello +[0-9a-f]{16} +completed +2 +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$' \
  "$(printf '%s\n' "$out" | grep '^h1 ')"
run list --status completed --type hello
check "list --status --type: those runs" "h1 in-file in-stdin tty1 w1" \
  "$(printf '%s\n' "$out" | tail -n +2 | awk '{print $1}' | sort | paste -sd' ')"
check "list --status --type: only completed hello runs" "completed hello" \
  "$(printf '%s\n' "$out" | tail -n +2 | awk '{print $4, $2}' | sort -u | paste -sd'|')"
run list --status running --json
check "list --status running: s1" s1 "$(jo '[.[].id] | join(" ")')"
run list --type nope
check "list with no match: exit 0, says no runs" "0 no runs" "$rc $err"

for i in 1 2 3 4 5 6 7; do
  "$ls" start quick --id "q$i" --input "{\"n\":$i}" > /dev/null 2>&1 || not_ok "start q$i"
done
for i in 1 2 3 4 5 6 7; do ended "q$i"; done
run list --type quick --json
all=$(jo '[.[].id] | join(" ")')
check "list --json: all 7 quick runs" "q1 q2 q3 q4 q5 q6 q7" "$(jo '[.[].id] | sort | join(" ")')"
check "list --json: newest first" "true" "$(jo '[.[].created_at] | . == (sort | reverse)')"
run list --type quick --limit 3
check "list --limit 3: three rows" 3 "$(printf '%s\n' "$out" | tail -n +2 | wc -l)"
check "list --limit 3: the newest three" "$(echo "$all" | cut -d' ' -f1-3)" \
  "$(printf '%s\n' "$out" | tail -n +2 | awk '{print $1}' | paste -sd' ')"
run list --type quick --limit 0
check "list --limit 0: usage error" 2 "$rc"

# More runs than one page of the API (the CLI asks for 100 at a time and
# follows next_cursor).
bulk=()
for i in $(seq 1 105); do
  bulk+=(--next -s -o /dev/null --unix-socket "$sock" -H 'Content-Type: application/json'
    --data-binary "{\"id\":\"b$i\"}" http://lodestoned/v1/workflows/quick)
done
curl "${bulk[@]:1}" # one curl, one request after the other
has_bulk() {
  [ "$(curl -s --unix-socket "$sock" 'http://lodestoned/v1/workflows?status=completed&limit=1000' |
    jq '[.runs[] | select(.id | startswith("b"))] | length')" = 105 ]
}
poll 200 has_bulk
run list --status completed --limit 1000 --json
check "list past one page: every run once" "117 117" "$(jo 'length') $(jo '[.[].id] | unique | length')"
check "list past one page: newest first across pages" "true" "$(jo '[.[].created_at] | . == (sort | reverse)')"
run list --status completed --limit 102
check "list --limit 102 over two pages: 102 rows" 102 "$(printf '%s\n' "$out" | tail -n +2 | wc -l)"
run list --status completed
check "list: 50 rows by default" 50 "$(printf '%s\n' "$out" | tail -n +2 | wc -l)"

# ---- show, history ----

run show h1
check "show: exit 0" 0 "$rc"
line() { printf '%s\n' "$out" | grep "^$1:" | sed -E "s/^$1: +//"; }
check "show: id" h1 "$(line id)"
check "show: type" hello "$(line type)"
check "show: status" completed "$(line status)"
check "show: steps" 2 "$(line steps)"
check "show: input" '{"name":"Ada","pause":"1s"}' "$(line input)"
check_contains "show: output" '"greeting":"hello, Ada"' "$(line output)"
check_match "show: created, in UTC" '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}\.[0-9]{3} UTC$' "$(line created)"
check "show: values line up" 1 "$(printf '%s\n' "$out" | awk '{match($0, /^[a-z ]+: +/); print RLENGTH}' | sort -u | wc -l)"
run show h1 --json
check "show --json: the API object" "h1 hello completed 2 0 Ada hello, Ada" \
  "$(jo '"\(.id) \(.type) \(.status) \(.steps_completed) \(.attempts_failed) \(.input.name) \(.output.greeting)"')"
api=$(curl -s --unix-socket "$sock" http://lodestoned/v1/workflows/h1)
check "show --json: the same as GET /v1/workflows/h1" "$(jq -S . <<< "$api")" "$(jo . | jq -S .)"

run history h1 --json
check "history --json: the events array" \
  "workflow_started step_started step_completed timer_started timer_fired side_effect_recorded step_started step_completed workflow_completed" \
  "$(jo '[.[].type] | join(" ")')"
types=$(jo '[.[].type] | join(" ")')
run history h1
check "history: exit 0" 0 "$rc"
check "history: one line per event, in order" "$types" "$(printf '%s\n' "$out" | awk '{print $3}' | paste -sd' ')"
check "history: numbered #1..#9" "#1 #2 #3 #4 #5 #6 #7 #8 #9" "$(printf '%s\n' "$out" | awk '{print $1}' | paste -sd' ')"
check_match "history: a step's result" '#3 +[0-9:.]+ +step_completed +greet \(attempt 1\) -> .*hello, Ada' \
  "$(printf '%s\n' "$out" | sed -n 3p)"
check_contains "history: the output at the end" 'output {"finished_at":' "$(printf '%s\n' "$out" | tail -1)"

# ---- secrets ----

run secret list
check "secret list, none: exit 0" "0 no secrets" "$rc $err"
printf '%s\n' "$SECRET" | "$ls" secret set tok > "$d/out" 2> "$d/err"
check "secret set: value from stdin, exit 0" 0 $?
check "secret set: says so" "stored secret tok" "$(cat "$d/err")"
run secret list
check "secret list: exit 0" 0 "$rc"
check_match "secret list: a NAME UPDATED table" '^NAME +UPDATED$' "$(printf '%s\n' "$out" | head -1)"
check_match "secret list: the name and an update time" \
  '^tok +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$' "$(printf '%s\n' "$out" | sed -n 2p)"
check_absent "secret list: never the value" "$SECRET" "$out$err"
run start whoami --id who1 --input "{\"url\":\"$mock_url/echo\"}" --wait
check "a step's s:secret gets the value (one trailing newline stripped)" "0 true ${#SECRET}" \
  "$rc $(jo '"\(.output.auth_ok) \(.output.length)"')"
check_absent "the result does not hold the value" "$SECRET" "$out"
run secret set tok extra-arg
check "secret set with a value on argv: exit 2" 2 "$rc"
check_contains "and says why" "never from arguments" "$err"
run secret rm tok
check "secret rm: exit 0" "0 deleted secret tok" "$rc $err"
run secret list
check "secret rm: gone from the list" "0 no secrets" "$rc $err"
run secret rm tok
check "secret rm again: exit 1" 1 "$rc"
check "secret rm again: says there is none" 'lodestone secret: no secret named "tok"' "$err"
run start whoami --id who2 --input "{\"url\":\"$mock_url/echo\"}" --wait
check "a removed secret: the step fails" 1 "$rc"
check_contains "naming the secret" 'secret \"tok\" is not set' "$out"

# ---- an unknown run; the daemon gone ----

run show nope
check "show of an unknown run: exit 1" 1 "$rc"
check "show of an unknown run: says so" 'lodestone show: no workflow run with id "nope"' "$err"

e2e_stop "$daemon" 10
check "lodestoned stops on SIGTERM with exit 0" 0 $?
run list
check "daemon stopped: exit 3" 3 "$rc"
check_match "daemon stopped: cannot reach it, says where" "^lodestone: cannot reach lodestoned at $d/ld\\.sock \\(.*\\); is it running\\?" "$err"
run show h1 --socket "$sock"
check "daemon stopped: show exits 3 too" 3 "$rc"

# ---- lodestoned's key file: a missing or wrong one is refused ----
# A run waits for a signal and lodestoned stops. Started again with the
# key file moved away, or given another key file, lodestoned refuses (exit
# 2), says why and changes nothing (no new key file). With the right key
# back, the run goes on and completes after its signal.

kd=$d/kd
ksock=$d/kd.sock
mkdir -p "$d/kwf"
cat > "$d/kwf/gate.lua" <<'LUA'
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
e2e_lodestoned "$ksock" "$d/kd.log" --data "$kd" --socket "$ksock" --workflows "$d/kwf" || exit 1
kdaemon=$E2E_DAEMON
run start gate --id k1 --input '{"n":7}' --socket "$ksock"
check "key file: a run starts" 0 "$rc"
k1_waits() { [ "$("$ls" show k1 --json --socket "$ksock" | jq -r .waiting.kind)" = signal ]; }
poll 100 k1_waits
check "key file: the run waits for its signal" 0 $?
check "key file: the socket is still 0660 (umask 077)" 660 "$(stat -c %a "$ksock")"
check "key file: no file of the data directory is open to group or others" "" \
  "$(find "$kd" -type f -perm /077 ! -name "$(basename "$ksock")")"
e2e_stop "$kdaemon" 10
check "key file: lodestoned stops" 0 $?

mv "$kd/master.key" "$d/master.key.saved"
lsd --data "$kd" --socket "$ksock" --workflows "$d/kwf"
check "key file moved away: refused, exit 2, naming it" \
  "2 lodestoned: key file $kd/master.key does not exist, and this store holds data sealed under a key (written under key 1): restore the key file from its backup (or give --key-file); a new key is created only for a new, empty data directory" \
  "$rc $out"
check "key file moved away: no new key file" no "$([ -e "$kd/master.key" ] && echo yes || echo no)"

# Another key file (also a key numbered 1), then the right one with one
# character of its key changed.
printf 'lodestone-keyring 1\ncurrent 1\nkey 1 %s\n' "$(head -c 32 /dev/urandom | base64)" > "$d/other.key"
chmod 600 "$d/other.key"
lsd --data "$kd" --socket "$ksock" --workflows "$d/kwf" --key-file "$d/other.key"
check "another key file: refused, exit 2, naming it" \
  "2 lodestoned: key file $d/other.key does not open this store's data (written under key 1): wrong --key-file, or a changed key file? Start with the key file this data was written with (from its backup); nothing was changed" \
  "$rc $out"
awk 'NR == 3 { c = substr($3, 1, 1); $3 = (c == "A" ? "B" : "A") substr($3, 2) } { print }' \
  "$d/master.key.saved" > "$d/changed.key"
chmod 600 "$d/changed.key"
lsd --data "$kd" --socket "$ksock" --workflows "$d/kwf" --key-file "$d/changed.key"
check "a changed key: refused, exit 2" "2 lodestoned: key file $d/changed.key does not open" "$rc ${out%% this store*}"
check "and still no key file in the data directory" no "$([ -e "$kd/master.key" ] && echo yes || echo no)"
# The key file's path from the environment (--key-file wins over it).
LODESTONE_KEY_FILE="$d/other.key" lsd --data "$kd" --socket "$ksock" --workflows "$d/kwf"
check "LODESTONE_KEY_FILE names the key file" "2 lodestoned: key file $d/other.key does not open" "$rc ${out%% this store*}"
LODESTONE_KEY_FILE="$d/other.key" lsd --data "$kd" --socket "$ksock" --workflows "$d/kwf" --key-file "$d/changed.key"
check "--key-file wins over LODESTONE_KEY_FILE" "2 lodestoned: key file $d/changed.key does not open" "$rc ${out%% this store*}"
LODESTONE_KEY_FILE= lsd --data "$kd" --socket "$ksock" --workflows "$d/kwf"
check "an empty LODESTONE_KEY_FILE stops lodestoned" \
  "2 lodestoned: LODESTONE_KEY_FILE is empty: set it to the key file's path, or unset it (default DATA/master.key)" \
  "$rc $out"

mv "$d/master.key.saved" "$kd/master.key"
e2e_lodestoned "$ksock" "$d/kd.log" --data "$kd" --socket "$ksock" --workflows "$d/kwf" || exit 1
kdaemon=$E2E_DAEMON
run show k1 --json --socket "$ksock"
check "right key back: the run still waits for its signal" "running signal" \
  "$(jo '"\(.status) \(.waiting.kind)"')"
run signal k1 go '{"ok":true}' --socket "$ksock"
check "right key back: the signal is taken" 0 "$rc"
curl -s -o /dev/null --unix-socket "$ksock" "http://lodestoned/v1/workflows/k1/result?wait=20"
run show k1 --json --socket "$ksock"
check "right key back: the run completes with its step's result and the signal" \
  'completed {"go":{"ok":true},"n":7}' "$(jo .status) $(printf '%s' "$out" | jq -S -c .output)"
e2e_stop "$kdaemon" 10

# A key file copied before a rotation opens the store's key check (sealed
# under key 1) but not a run sealed under key 2: that run is not failed as
# if its code had failed; lodestoned logs why and the run waits for the
# right key. (The rotation is made by hand: key 2 added and current.)
cp "$kd/master.key" "$d/master.key.k1"
{ printf 'lodestone-keyring 1\ncurrent 2\n'; sed -n '3,$p' "$d/master.key.k1"
  printf 'key 2 %s\n' "$(head -c 32 /dev/urandom | base64)"; } > "$kd/master.key"
e2e_lodestoned "$ksock" "$d/kd.log" --data "$kd" --socket "$ksock" --workflows "$d/kwf" || exit 1
kdaemon=$E2E_DAEMON
run start gate --id k2 --input '{"n":8}' --socket "$ksock"
k2_waits() { [ "$("$ls" show k2 --json --socket "$ksock" | jq -r .waiting.kind)" = signal ]; }
poll 100 k2_waits
check "key 2: a run sealed under it waits for its signal" 0 $?
e2e_stop "$kdaemon" 10
cp "$kd/master.key" "$d/master.key.k2"
cp "$d/master.key.k1" "$kd/master.key"
e2e_lodestoned "$ksock" "$d/kd.log" --data "$kd" --socket "$ksock" --workflows "$d/kwf" || exit 1
kdaemon=$E2E_DAEMON
k2_given_up() { grep -q '"run k2: payload of event 1: sealed value names key 2, which this keyring does not hold; the run waits' "$d/kd.log"; }
poll 100 k2_given_up
check "the key file from before the rotation: k2's input does not open, logged naming the run and event" 0 $?
run list --status failed --json --socket "$ksock"
check "... and no run failed for it" "0 0" "$rc $(jo length)"
e2e_stop "$kdaemon" 10
cp "$d/master.key.k2" "$kd/master.key"
e2e_lodestoned "$ksock" "$d/kd.log" --data "$kd" --socket "$ksock" --workflows "$d/kwf" || exit 1
kdaemon=$E2E_DAEMON
poll 100 k2_waits
check "with key 2 back, k2 still waits for its signal" 0 $?
run signal k2 go '{"ok":2}' --socket "$ksock"
curl -s -o /dev/null --unix-socket "$ksock" "http://lodestoned/v1/workflows/k2/result?wait=20"
run show k2 --json --socket "$ksock"
check "... and completes after it" 'completed {"go":{"ok":2},"n":8}' \
  "$(jo .status) $(printf '%s' "$out" | jq -S -c .output)"
e2e_stop "$kdaemon" 10

e2e_stop "$mock" 10
e2e_finish
