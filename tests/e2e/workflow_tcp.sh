#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# lodestoned's loopback TCP listener: refused without a token file or with
# one it cannot use (blank, a control character, too short or too long),
# and an address other than 127.0.0.1:PORT (PORT 1 to 65535, nothing after),
# and every request on it needs the bearer token, the token file's first
# line without the spaces and tabs around it (the unix socket does not).
# A token file that group or others may write is refused, one that others
# may read gets a warning, and a pipe is read like a file.
#
# Usage: workflow_tcp.sh BUILD_DIR
set -u
BUILD=${1:?usage: workflow_tcp.sh BUILD_DIR}
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
trap e2e_cleanup EXIT
mkdir -p "$E2E_DIR/wf"
cat >"$E2E_DIR/wf/one.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "one", run = function(ctx, input)
  return ctx:step("a", function() return { ok = true } end)
end }
LUA
PORT=$(e2e_free_port)
# 604 characters (past the 511 it once read), with spaces and tabs around
# it and a second line: the token is the first line, trimmed, read whole.
TOKEN=tok-$(head -c 300 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf ' \t%s \t\r\nwritten by ops on Monday\n' "$TOKEN" >"$E2E_DIR/token"
chmod 0644 "$E2E_DIR/token" # others may read it: a warning, not a refusal

out=$("$BUILD/bin/lodestoned" --data "$E2E_DIR/data0" --workflows "$E2E_DIR/wf" \
  --listen 127.0.0.1:$PORT 2>&1)
check "--listen without --token-file exits 2" 2 $?
check_contains "and says why" "needs --token-file" "$out"

# A token file it cannot use is refused at start, named, exit 2, before
# the data directory is made (10 s at most: one that started all the same
# gets SIGTERM).
refused() { # NAME CONTENT EXPECTED_MESSAGE
  printf "$2" >"$E2E_DIR/bad-token"
  out=$(timeout 10 "$BUILD/bin/lodestoned" --data "$E2E_DIR/data-bad" --workflows "$E2E_DIR/wf" \
    --listen 127.0.0.1:$PORT --token-file "$E2E_DIR/bad-token" 2>&1)
  check "$1: exit 2, says why" "2 lodestoned: --token-file $E2E_DIR/bad-token: $3" "$? $out"
}
refused "a token file whose first line is blank" ' \t \nsecond-line-token-1234\n' \
  "has no token on its first line"
refused "an empty token file" '' "has no token on its first line"
refused "a token with a control character" 'tok-1234567890\001abcdef\n' \
  "the token has a control character (0x01 at character 15)"
refused "a token of 15 characters" '  tok-1234567890a  \n' "the token is 15 characters; it needs 16 or more"
refused "a token over 4096 characters" "$(head -c 4097 /dev/zero | tr '\0' a)\\n" \
  "the token on its first line is longer than 4096 characters"
# A file that group or others may write is refused: anyone could plant a
# token they know. (The token in it is a good one.)
printf '%s\n' "$TOKEN" >"$E2E_DIR/bad-token"
for mode in 0664 0646; do
  chmod "$mode" "$E2E_DIR/bad-token"
  out=$(timeout 10 "$BUILD/bin/lodestoned" --data "$E2E_DIR/data-bad" --workflows "$E2E_DIR/wf" \
    --listen 127.0.0.1:$PORT --token-file "$E2E_DIR/bad-token" 2>&1)
  check "a token file of mode $mode: exit 2, says why" \
    "2 lodestoned: --token-file $E2E_DIR/bad-token: mode $mode lets group or others write it, so anyone could set a token they know (chmod go-w)" \
    "$? $out"
done
out=$(timeout 10 "$BUILD/bin/lodestoned" --data "$E2E_DIR/data-bad" --workflows "$E2E_DIR/wf" \
  --listen 127.0.0.1:$PORT --token-file "$E2E_DIR" 2>&1)
check "a directory as the token file: exit 2, says why" \
  "2 lodestoned: --token-file $E2E_DIR: is a directory" "$? $out"
# A pipe is read like a file (--token-file <(pass show lodestone)).
out=$(timeout 10 "$BUILD/bin/lodestoned" --data "$E2E_DIR/data-bad" --workflows "$E2E_DIR/wf" \
  --listen 127.0.0.1:$PORT --token-file <(printf 'tok-from-a-pipe\n') 2>&1)
check_contains "a token from a pipe is read (this one is too short)" \
  "the token is 15 characters; it needs 16 or more" "$out"
check "a refused token file: no data directory was made" no \
  "$([ -e "$E2E_DIR/data-bad" ] && echo yes || echo no)"

# A bad --listen is refused as a bad option (exit 2), before the store is
# opened; trailing junk is not read as the port before it.
printf '%s\n' "$TOKEN" >"$E2E_DIR/good-token"
bad_listen() { # NAME ADDRESS EXPECTED_MESSAGE
  out=$(timeout 10 "$BUILD/bin/lodestoned" --data "$E2E_DIR/data-bad" --workflows "$E2E_DIR/wf" \
    --listen "$2" --token-file "$E2E_DIR/good-token" 2>&1)
  check "--listen $1: exit 2, says why" "2 lodestoned: --listen: $3" "$? $out"
}
bad_listen "with junk after the port" "127.0.0.1:${PORT}x" \
  "the port \"${PORT}x\" is not a number (expected 127.0.0.1:PORT, PORT 1 to 65535)"
bad_listen "with a sign" "127.0.0.1:+$PORT" \
  "the port \"+$PORT\" is not a number (expected 127.0.0.1:PORT, PORT 1 to 65535)"
bad_listen "with port 0" "127.0.0.1:0" "port 0 is out of range (1 to 65535)"
bad_listen "with port 65536" "127.0.0.1:65536" "port 65536 is out of range (1 to 65535)"
out=$(timeout 10 "$BUILD/bin/lodestoned" --data "$E2E_DIR/data-bad" --workflows "$E2E_DIR/wf" \
  --listen "localhost:$PORT" --token-file "$E2E_DIR/good-token" 2>&1)
check "--listen on another host than 127.0.0.1: exit 2, says why" \
  "2 lodestoned: --listen: expected 127.0.0.1:PORT (only loopback), got \"localhost:$PORT\"" "$? $out"
check "a bad --listen: no data directory was made" no \
  "$([ -e "$E2E_DIR/data-bad" ] && echo yes || echo no)"

"$BUILD/bin/lodestoned" --data "$E2E_DIR/data" --workflows "$E2E_DIR/wf" \
  --listen 127.0.0.1:$PORT --token-file "$E2E_DIR/token" 2>"$E2E_DIR/daemon.log" &
E2E_PIDS+=($!)
e2e_wait_port "$PORT" || { not_ok "daemon listens on $PORT"; e2e_finish; exit 1; }

url=http://127.0.0.1:$PORT
check_contains "a token file every user may read gets a warning" \
  "--token-file $E2E_DIR/token: mode 0644 lets every user read the token (chmod o-r)" \
  "$(cat "$E2E_DIR/daemon.log")"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$url/healthz")
check "the token is the whole first line, without the spaces and tabs around it" 200 "$code"
# The scheme is case-insensitive (RFC 9110), the token is not.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: bearer $TOKEN" "$url/healthz")
check "a lower-case scheme is accepted" 200 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: BEARER  $TOKEN" "$url/healthz")
check "an upper-case one, with two spaces, too" 200 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN^^}" "$url/healthz")
check "the token in upper case is not the token" 401 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN:0:511}" "$url/healthz")
check "its first 511 characters are not the token" 401 "$code"
for path in /healthz /v1/workflows /v1/secrets /metrics; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url$path")
  check "GET $path without a token is 401" 401 "$code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong-$TOKEN" "$url$path")
  check "GET $path with a wrong token is 401" 401 "$code"
done
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/v1/workflows/one" -d '{"id":"t1"}')
check "a start without a token is refused" 401 "$code"
check "a 401 says which scheme it takes (WWW-Authenticate)" 'Bearer realm="lodestoned"' \
  "$(curl -s -o /dev/null -D - "$url/healthz" | tr -d '\r' | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: //p')"
body=$(curl -s -H "Authorization: Bearer $TOKEN" -X POST "$url/v1/workflows/one" -d '{"id":"t1"}')
check_contains "a start with the token works" '"id":"t1"' "$body"
body=$(curl -s -H "Authorization: Bearer $TOKEN" "$url/v1/workflows/t1/result?wait=10")
check_contains "and its result is served" '"status":"completed"' "$body"
body=$(curl -s --unix-socket "$E2E_DIR/data/lodestoned.sock" http://d/v1/workflows/t1)
check_contains "the unix socket needs no token" '"id":"t1"' "$body"
check_absent "the token is not logged" "$TOKEN" "$(cat "$E2E_DIR/daemon.log")"

e2e_finish
