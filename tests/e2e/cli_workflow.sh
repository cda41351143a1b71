#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The workflow commands of `lodestone` without a daemon: a clear "cannot
# reach" (exit 3) naming where it looked and how to start lodestoned, usage
# errors (exit 2), `secret set` refusing a value on the command line, and,
# against tests/tools/mocksvc standing in for a wrong endpoint, the error
# path of an HTTP answer (exit 1) over --url with a bearer token (the token
# file's first line, as lodestoned reads it).
# usage: tests/e2e/cli_workflow.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
export LODESTONE_LUA_DIR="$root/lua" HOME="$E2E_DIR"
unset LODESTONE_SOCKET LODESTONE_URL LODESTONE_TOKEN
ls=$build/bin/lodestone
d=$E2E_DIR
cd "$d"

# No daemon: exit 3, with the place and the way to start it.
err=$("$ls" list 2>&1)
check "list without a daemon exits 3" 3 $?
check "says where it looked and how to start lodestoned" \
  "lodestone: cannot reach lodestoned at ./var/lodestone/lodestoned.sock (no socket at that path); is it running? Start it with: lodestoned --data ./var/lodestone" "$err"
err=$(LODESTONE_SOCKET=$d/run/lodestoned.sock "$ls" show r1 2>&1)
check "LODESTONE_SOCKET is used" 3 $?
check_contains "and named" "at $d/run/lodestoned.sock (no socket at that path)" "$err"
check_contains "with its directory as the data dir" "lodestoned --data $d/run" "$err"
touch "$d/stale.sock"
err=$("$ls" history r1 --socket "$d/stale.sock" 2>&1)
check "a file that is no socket: exit 3" 3 $?
check_contains "with the transport's reason" "cannot reach lodestoned at $d/stale.sock (" "$err"
err=$("$ls" types --url http://127.0.0.1:1 2>&1)
check "--url to a closed port: exit 3" 3 $?
check_contains "names the URL and the reason" "cannot reach lodestoned at http://127.0.0.1:1 (Couldn't connect to server)" "$err"

# Usage errors: exit 2, before any connection.
err=$("$ls" list --frobnicate 2>&1)
check "unknown option exits 2" 2 $?
check "and says so" "lodestone list: unknown option --frobnicate (see lodestone list --help)" "$err"
# An option where a value belongs is a forgotten value, not the value.
err=$("$ls" start hello --id --wait 2>&1)
check "an option as the value of --id exits 2" 2 $?
check "and says so" "lodestone start: --id needs a value, got the option --wait (write --id=--wait if that is the value) (see lodestone start --help)" "$err"
# An option given twice, or an empty argument, is a mistake to name.
err=$("$ls" start hello --id a --id b 2>&1)
check "an option given twice exits 2" 2 $?
check "and says so" "lodestone start: --id is given twice (see lodestone start --help)" "$err"
err=$("$ls" show '' 2>&1)
check "an empty id exits 2" 2 $?
check "and says so, not 'no route'" "lodestone show: argument 1 is empty (see lodestone show --help)" "$err"
err=$("$ls" signal some-run '' 2>&1)
check "an empty signal name exits 2" "2 lodestone signal: argument 2 is empty (see lodestone signal --help)" "$? $err"
err=$("$ls" list --status -h 2>&1)
check "-h as the value of --status exits 2" 2 $?
err=$("$ls" start 2>&1)
check "start without TYPE exits 2" 2 $?
err=$("$ls" start order --input '{"a":' 2>&1)
check "bad --input exits 2" 2 $?
check_contains "names the option" "--input: json.decode: line 1" "$err"
err=$("$ls" --socket /run/x.sock start hello 2>&1)
check "a connection option before the command exits 2" 2 $?
check "and says where it goes" "lodestone: --socket goes after the command: lodestone COMMAND --socket VALUE ... (see lodestone --help)" "$err"
err=$("$ls" signal k1 go '{bad' 2>&1)
check "a bad signal payload exits 2" 2 $?
check_contains "names the payload, not --input" "lodestone signal: PAYLOAD: json.decode: line 1" "$err"
# curl would remove a dot segment: lodestoned would not see the name.
for n in . ..; do
  err=$("$ls" signal k1 "$n" 2>&1)
  check "a signal named $n exits 1 before any request" \
    "1 lodestone signal: signal name: \"$n\" is not a name: HTTP clients remove such segments from the API's path" \
    "$? $err"
  err=$("$ls" start "$n" 2>&1)
  check "a start of type $n exits 1 before any request" \
    "1 lodestone start: workflow type: \"$n\" is not a name: HTTP clients remove such segments from the API's path" \
    "$? $err"
done
err=$("$ls" start order --timeout 5 2>&1)
check "--timeout without --wait exits 2" 2 $?
for t in nan inf 0 -1; do
  err=$("$ls" start order --wait --timeout "$t" 2>&1)
  check "--timeout $t exits 2" 2 $?
  check_contains "and names it" "lodestone start: --timeout: expected seconds (more than 0), got $t" "$err"
done
err=$(echo s3cret | "$ls" secret set db_password s3cret 2>&1)
check "secret set refuses a value in argv" 2 $?
check_contains "and explains how to pipe it" "never from arguments" "$err"
check_contains "with the command to use" "| lodestone secret set db_password" "$err"
err=$(printf '\n' | "$ls" secret set db_password 2>&1)
check "an empty value is refused" 2 $?
err=$("$ls" socket 2>&1)
check "unknown command exits 2" 2 $?
for v in start list show history types secret signal cancel terminate; do
  out=$("$ls" $v --help)
  check "$v --help exits 0" 0 $?
  check_contains "$v --help shows its usage" "usage: lodestone $v" "$out"
done
err=$("$ls" cancel 2>&1)
check "cancel without a run ID exits 2" 2 $?
check_contains "says so" "expected one run ID" "$err"

# An HTTP error answer: exit 1 with its message; the token goes along.
"$build/tests/mocksvc" --port-file "$d/port" --log "$d/mock.log" &
E2E_PIDS+=($!)
for _ in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.1; done
url=http://127.0.0.1:$(cat "$d/port")
printf ' tok-123 \n' > "$d/token"
err=$("$ls" show r1 --url "$url" --token-file "$d/token" 2>&1)
check "an error answer exits 1" 1 $?
check "with the answer's message" "lodestone show: no route" "$err"
check_contains "the request reached the service" "GET /v1/workflows/r1 404" "$(cat "$d/mock.log")"
# The token is the file's first line, as lodestoned reads its --token-file
# (lodestone(1)): a second line is not sent along.
printf 'tok-1234567890abcdef\nwritten by ops on Monday\n' > "$d/token2"
err=$("$ls" show r2 --url "$url" --token-file "$d/token2" 2>&1)
check "a token file of two lines: its first line is used (the answer, exit 1)" \
  "1 lodestone show: no route" "$? $err"
check_contains "and the request reached the service" "GET /v1/workflows/r2 404" "$(cat "$d/mock.log")"
printf '\ntok-1234567890abcdef\n' > "$d/token3"
err=$("$ls" show r3 --url "$url" --token-file "$d/token3" 2>&1)
check "a token file whose first line is empty exits 2" 2 $?
check_contains "and says so" "--token-file: $d/token3 has no token on its first line" "$err"
# Only the first line is read, and at most so much of it: /dev/zero (no
# line break, ever) is refused, not read until memory runs out.
err=$(timeout 20 "$ls" show r3 --url "$url" --token-file /dev/zero 2>&1)
check "a token file with no end (/dev/zero) exits 2" 2 $?
check_contains "and says so" "--token-file: the token on the first line of /dev/zero is longer than 4096 characters" "$err"
err=$(LODESTONE_TOKEN=$'tok\nX-Injected: 1' "$ls" show r4 --url "$url" 2>&1)
check "LODESTONE_TOKEN with a line break exits 2, not 3 (unreachable)" 2 $?
check_contains "and names it" "LODESTONE_TOKEN: has a line break" "$err"
err=$(LODESTONE_URL=$url "$ls" secret rm 'a b/c' 2>&1)
check "LODESTONE_URL is used" 1 $?
check_contains "odd names are escaped (the service logs them decoded)" "DELETE /v1/secrets/a b/c 404" "$(cat "$d/mock.log")"

e2e_finish
