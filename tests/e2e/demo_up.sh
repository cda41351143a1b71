#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: `lodestone up` starts lodestoned and Debian's lighttpd on
# 127.0.0.1 with the generated configuration. Runs the three commands the
# banner prints, exactly as printed (allowed 200, denied 401, a workflow
# started 201 that then completes), checks the admin policy on /v1/, the
# followed logs, that a second `up` on a taken port or on a data directory
# in use fails clearly, that SIGTERM stops both children (by PID) with exit
# 0, that a child that dies stops the other with exit 1 and its last log
# lines, and that a SIGKILLed `up` leaves no child behind.
# usage: tests/e2e/demo_up.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }

d=$E2E_DIR
L=$build/bin/lodestone
# lighttpd loads the module built with ASan: it needs the runtime first.
UP_ENV=("${E2E_SAN_VARS[@]}")

# start_up NAME PORT: `lodestone up` in its own session, output in
# $d/NAME.out and $d/NAME.err; sets $up. Waits for the banner's last line.
start_up() {
  setsid env "${UP_ENV[@]}" "$L" up --port "$2" --data "$d/data" \
    > "$d/$1.out" 2> "$d/$1.err" &
  up=$!
  E2E_PIDS+=("$up")
  for _ in $(seq 200); do
    grep -q "Ctrl-C stops everything" "$d/$1.out" 2>/dev/null && return 0
    e2e_alive "$up" || break
    sleep 0.1
  done
  echo "lodestone up did not come up:"; cat "$d/$1.out" "$d/$1.err"
  return 1
}

# pids NAME: sets $lt and $ld, the PIDs the banner names.
pids() {
  lt=$(grep -o 'lighttpd (pid [0-9]*)' "$d/$1.out" | grep -o '[0-9]*')
  ld=$(grep -o 'lodestoned /.* (pid [0-9]*)' "$d/$1.out" | grep -o 'pid [0-9]*' | grep -o '[0-9]*')
}

# waits up to 20 s for PID $1 (a child of this shell) to exit; sets $rc.
wait_exit() {
  for _ in $(seq 200); do e2e_alive "$1" || break; sleep 0.1; done
  if e2e_alive "$1"; then rc=timeout; return; fi
  wait "$1" 2>/dev/null
  rc=$?
  e2e_forget "$1"
}

# ---- bad options fail before anything starts ----

out=$("$L" up --port 0 2>&1); rc=$?
check "--port 0 is refused" 2 "$rc"
check_contains "naming the field" '--port: expected 1 to 65535, got "0"' "$out"
out=$("$L" up --port=70000 2>&1); rc=$?
check "--port=VALUE is read as --port VALUE" "2 lodestone up: --port: expected 1 to 65535, got \"70000\"" "$rc $out"
out=$("$L" up extra 2>&1); rc=$?
check "an argument that is no option is refused, named as such" \
  "2 lodestone up: unexpected argument \"extra\" (see lodestone up --help)" "$rc $out"
out=$("$L" up --frobnicate 2>&1); rc=$?
check "an unknown option last is unknown, not short of a value" \
  "2 lodestone up: unknown option --frobnicate (see lodestone up --help)" "$rc $out"
out=$("$L" up --port 8080 --workflows "$d/nope" --data "$d/d0" 2>&1); rc=$?
check "a missing workflows directory is refused" 1 "$rc"
check_contains "naming it" "--workflows $d/nope: no such directory" "$out"
check "and creates no data directory" no "$([ -e "$d/d0" ] && echo yes || echo no)"
out=$("$L" up --help); rc=$?
check "up --help" 0 "$rc"
check_contains "up --help names the options" "--policies DIR" "$out"

# ---- up, and the three printed commands ----

port=$(e2e_free_port)
start_up up1 "$port" || exit 1
pids up1
base=http://127.0.0.1:$port
banner=$(cat "$d/up1.out")
check_contains "banner: where the API is" "API        $base/v1/" "$banner"
check_contains "banner: the data directory" "data       $d/data" "$banner"
check_contains "banner: the socket" "$d/data/lodestoned.sock (pid $ld)" "$banner"
check_match "banner: lighttpd's pid" '^[0-9]+$' "$lt"
e2e_alive "$lt" && ok "lighttpd runs" || not_ok "lighttpd runs" "pid [$lt]"
e2e_alive "$ld" && ok "lodestoned runs" || not_ok "lodestoned runs" "pid [$ld]"
check_contains "lighttpd runs the generated configuration" "-f $d/data/lighttpd/lighttpd.conf" \
  "$(tr '\0' ' ' < "/proc/$lt/cmdline")"
tt=$(lighttpd -tt -f "$d/data/lighttpd/lighttpd.conf" 2>&1); rc=$?
check "the generated lighttpd.conf passes lighttpd -tt" 0 "$rc"

mapfile -t cmds < <(grep '^  curl ' "$d/up1.out")
check "three commands to try" 3 "${#cmds[@]}"
# Each exactly as printed, with the status code and body captured.
run_printed() {
  code=$(cd "$d" && bash -c "${cmds[$1]} -o $d/body -w '%{http_code}'")
  body=$(cat "$d/body")
}
run_printed 0
check "printed command 1 (admin token) is allowed" 200 "$code"
check_contains "and lists runs" '"runs":' "$body"
run_printed 1
check "printed command 2 (no token) is denied" 401 "$code"
check_contains "with a Bearer challenge" 'WWW-Authenticate: Bearer realm="lodestone-api"' "$body"
run_printed 2
check "printed command 3 starts a workflow" 201 "$code"
id=$(printf '%s' "$body" | jq -r .id)
check "a hello run" hello "$(printf '%s' "$body" | jq -r .type)"
admin=$("$L" dev token --sub alice --roles admin)
res=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $admin" "$base/v1/workflows/$id/result?wait=10")
check "the run completes (result through lighttpd)" "hello, Ada 200" \
  "$(printf '%s' "${res% *}" | jq -r .output.greeting) ${res##* }"
check "its history through lighttpd" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $admin" "$base/v1/workflows/$id/history")"

# ---- the admin policy on /v1/ ----

status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
viewer=$("$L" dev token --sub bob --roles viewer)
check "a viewer's token is refused on /v1/" 403 "$(status -H "Authorization: Bearer $viewer" "$base/v1/workflows")"
other=$("$L" dev token --sub alice --roles admin --aud orders)
check "a token for another audience is refused" 401 "$(status -H "Authorization: Bearer $other" "$base/v1/workflows")"
expired=$("$L" dev token --sub alice --roles admin --claim exp=1)
check "an expired token is refused" 401 "$(status -H "Authorization: Bearer $expired" "$base/v1/workflows")"
check "no start without a token" 401 "$(status -X POST -d '{}' "$base/v1/workflows/hello")"
check "/ redirects to the UI" "301 $base/ui/" \
  "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$base/")"
check "/ui redirects to /ui/" "301 $base/ui/" \
  "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$base/ui")"
ui_headers=$(curl -s -D - -o /dev/null "$base/ui/")
check_contains "the UI may not be framed" "frame-ancestors 'none'" "$ui_headers"
check_contains "nor load from elsewhere" "Content-Security-Policy: default-src 'self'" "$ui_headers"
check_contains "and is never sniffed" "X-Content-Type-Options: nosniff" "$ui_headers"
check "other paths: the example API policy (no token)" 401 "$(status "$base/orders/7")"
check "webhooks: an unsigned body is refused" 401 "$(status -X POST -d x "$base/hooks/github")"

# ---- endpoints that start workflows (lodestone.route) ----

hook='{"ref":"refs/heads/main","commits":[{"id":"a1","message":"Fix","author":{"username":"ada"}}]}'
sig=$(printf '%s' "$hook" | openssl dgst -sha256 -hmac "$(cat "$root/policies/demo-keys/github-webhook.secret")" | sed 's/^.*= //')
hdrs=$(curl -s -D - -o "$d/hook.body" -X POST "$base/hooks/github" -H "X-GitHub-Event: push" \
  -H "X-GitHub-Delivery: demo-1" -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$hook")
check_contains "a signed webhook starts a workflow: 202" "HTTP/1.1 202" "$hdrs"
check_contains "with its Location" "Location: /v1/workflows/gh-demo-1" "$hdrs"
res=$(curl -s -H "Authorization: Bearer $admin" "$base/v1/workflows/gh-demo-1/result?wait=10")
check "the github-push run completes" completed "$(printf '%s' "$res" | jq -r .status)"

# ---- logs ----

sleep 0.3
out=$(cat "$d/up1.out")
check_contains "lighttpd's log is followed, prefixed" "[lighttpd] " "$out"
check_contains "lodestoned's log is followed, prefixed" '[lodestoned] {"ts"' "$out"
check_contains "lighttpd's log file" "server started" "$(cat "$d/data/logs/lighttpd.log")"
check_contains "lodestoned's log file" "ready: socket $d/data/lodestoned.sock" \
  "$(cat "$d/data/logs/lodestoned.log")"
check_contains "the access log" "GET /v1/workflows/$id/result" "$(cat "$d/data/logs/access.log")"

# ---- a policies folder without the route file: its endpoints fail closed ----

mkdir -p "$d/pol"
cp "$root"/policies/*.lua "$d/pol/"
cp -r "$root/policies/demo-keys" "$d/pol/"
port3=$(e2e_free_port)
setsid env "${UP_ENV[@]}" "$L" up --port "$port3" --data "$d/data3" --policies "$d/pol" \
  > "$d/up3.out" 2> "$d/up3.err" &
up3=$!
E2E_PIDS+=("$up3")
for _ in $(seq 200); do grep -q "Ctrl-C stops everything" "$d/up3.out" 2>/dev/null && break; sleep 0.1; done
grep -q "Ctrl-C stops everything" "$d/up3.out" || { echo "# up --policies did not come up:"; sed 's/^/#   /' "$d/up3.err"; }
out=$(curl -s -w ' %{http_code}' -X POST -d '{}' "http://127.0.0.1:$port3/orders")
check "no routes/examples.lua: POST /orders is 503, as a missing policy's paths are" \
  '{"error":"policy_unavailable"} 503' "$out"
check "and the other paths still get their policy's decision" 401 \
  "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port3/orders/7")"
kill -TERM "$up3"
for _ in $(seq 100); do e2e_alive "$up3" || break; sleep 0.1; done

# ---- a second up on the same port ----

out=$(env "${UP_ENV[@]}" "$L" up --port "$port" --data "$d/data2" 2>&1); rc=$?
check "a second up on a taken port fails" 1 "$rc"
check_contains "saying so" "port $port on 127.0.0.1 is in use" "$out"
check "and starts nothing" "" "$(pgrep -f "$d/data2" || true)"
out=$(env "${UP_ENV[@]}" "$L" up --port "$(e2e_free_port)" --data "$d/data" 2>&1); rc=$?
check "a second up on the same data directory fails" 1 "$rc"
check_contains "saying so" "a lodestoned already answers on $d/data/lodestoned.sock" "$out"
check_contains "and leaves the running configuration alone" "server.port = $port
" "$(cat "$d/data/lighttpd/lighttpd.conf")"

# ---- SIGTERM stops both ----

e2e_stop "$up" 30; rc=$?
check "up exits 0 on SIGTERM" 0 "$rc"
e2e_alive "$lt" && not_ok "lighttpd stopped" "pid $lt alive" || ok "lighttpd stopped"
e2e_alive "$ld" && not_ok "lodestoned stopped" "pid $ld alive" || ok "lodestoned stopped"
err=$(cat "$d/up1.err")
check_contains "up reports lighttpd stopped" "lighttpd (pid $lt) stopped: exited with status 0" "$err"
check_contains "up reports lodestoned stopped" "lodestoned (pid $ld) stopped: exited with status 0" "$err"
check "the port is free again" 1 "$( (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; echo $?)"

# ---- a child that dies stops the other ----

port=$(e2e_free_port)
start_up up2 "$port" || exit 1
pids up2
base=http://127.0.0.1:$port
check "the run survived the restart" completed \
  "$(curl -s -H "Authorization: Bearer $admin" "$base/v1/workflows/$id" | jq -r .status)"
kill -KILL "$ld"
wait_exit "$up"
check "up exits 1 when lodestoned dies" 1 "$rc"
err=$(cat "$d/up2.err")
check_contains "saying which and why" "lodestoned (pid $ld) was killed by signal 9" "$err"
check_contains "with its last log lines" "its last log lines:" "$err"
e2e_alive "$lt" && not_ok "lighttpd stopped too" "pid $lt alive" || ok "lighttpd stopped too"

# ---- a SIGKILLed up leaves no child behind ----

port=$(e2e_free_port)
start_up up3 "$port" || exit 1
pids up3
kill -KILL "$up"
wait_exit "$up"
for _ in $(seq 150); do
  { e2e_alive "$lt" || e2e_alive "$ld"; } || break
  sleep 0.1
done
e2e_alive "$lt" && not_ok "orphaned lighttpd stops" "pid $lt alive" || ok "orphaned lighttpd stops"
e2e_alive "$ld" && not_ok "orphaned lodestoned stops" "pid $ld alive" || ok "orphaned lodestoned stops"
for pid in "$lt" "$ld"; do e2e_alive "$pid" && kill -KILL "$pid"; done

e2e_finish
