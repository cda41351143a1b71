#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: lodestoned's HTTP API on its unix socket, with tests/tools/
# mocksvc as the outside world, running the example workflows (copied from
# workflows/) and a few test-only ones with fast retry policies. Covers
# starts and their errors, results and long polls, history, retries, fatal
# errors, step timeouts (an HTTP call and a pure-Lua busy loop), a durable
# sleep across a restart, the data directory's lock, a broken workflow
# file, secrets (never returned, logged or stored in the clear, nor are
# payloads), list filters and paging, and /metrics.
# usage: tests/e2e/workflow_api.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }
export LODESTONE_LUA_DIR="$root/lua"

d=$E2E_DIR
data=$d/data
sock=$data/lodestoned.sock
mkdir -p "$d/wf"
# Random, so that finding them anywhere is no accident (and compression
# cannot hide a plaintext copy).
SECRET=sk-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
PAYLOAD=pl-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
TAG=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
ORDER=order-$TAG # a run id, which is stored in the clear

# ---- the outside world and the workflows ----

# One 503 before any charge succeeds: order.lua's retry path.
"$build/tests/mocksvc" --port-file "$d/mock.port" --log "$d/mock.log" --fail-first 1 &
mock=$!
E2E_PIDS+=("$mock")
e2e_wait_file "$d/mock.port" || { echo "mocksvc did not start"; exit 1; }
mock_url=http://127.0.0.1:$(cat "$d/mock.port")

cp "$root"/workflows/*.lua "$d/wf/"
cat > "$d/wf/call.lua" <<'LUA'
-- POSTs to input.url: 5xx is retried (fast), 4xx is fatal with the body's error.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "call",
  retry = { initial_interval = "50ms", backoff = 2.0, max_attempts = 5 },
  run = function(ctx, input)
    local out = ctx:step("call", function(s)
      local res = s.http.post(input.url, { headers = { ["Idempotency-Key"] = s.idempotency_key } })
      if res.status >= 500 then error("HTTP " .. res.status) end
      if res.status >= 400 then
        error(workflow.fatal(res.json and res.json.error or ("HTTP " .. res.status)))
      end
      return { status = res.status, calls = res.json and res.json.calls }
    end)
    return out
  end,
}
LUA
cat > "$d/wf/slow.lua" <<'LUA'
-- An HTTP call that outlives the step's timeout.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "slow",
  run = function(ctx, input)
    local out = ctx:step("slow", function(s) return s.http.get(input.url).json end,
      { timeout = "300ms", retry = { max_attempts = 2, initial_interval = "50ms" } })
    return out
  end,
}
LUA
cat > "$d/wf/spin.lua" <<'LUA'
-- Runaway Lua: only the deadline's hook can stop it.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "spin",
  run = function(ctx)
    ctx:step("spin", function() while true do end end,
      { timeout = "200ms", retry = { max_attempts = 2, initial_interval = "50ms" } })
  end,
}
LUA
cat > "$d/wf/nap.lua" <<'LUA'
-- A step, a durable sleep, a result.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "nap",
  run = function(ctx, input)
    local before = ctx:step("before", function() return { at = "before" } end)
    ctx:sleep(input.sleep)
    return { slept = input.sleep, before = before.at }
  end,
}
LUA
cat > "$d/wf/whoami.lua" <<'LUA'
-- Sends the payments_token secret to mocksvc's /echo; records only whether
-- it arrived intact, and its length.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "whoami",
  retry = { initial_interval = "50ms", max_attempts = 3 },
  run = function(ctx, input)
    local out = ctx:step("echo", function(s)
      local token = s:secret("payments_token")
      local res = s.http.post(input.url, { headers = { Authorization = "Bearer " .. token } })
      local seen = res.json.headers.authorization
      return { auth_ok = seen == "Bearer " .. token, length = #seen }
    end)
    return out
  end,
}
LUA
printf 'local workflow = require "lodestone.workflow"\nreturn workflow.define {\n  name = "broken",\n' > "$d/wf/broken.lua"

# ---- helpers ----

# api METHOD PATH [curl args...]: lib.sh's, and it keeps every response in
# responses.log (checked for the secret at the end).
api() {
  local out
  out=$(curl -s --unix-socket "$sock" -X "$1" -w '\n%{http_code}' "http://lodestoned$2" "${@:3}")
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  printf '%s\n' "$body" >> "$d/responses.log"
}
# (j, jc, start, result, waiting_for: tests/e2e/lib.sh)
# history ID: the run's history into $body; evtypes: its event types.
history() { api GET "/v1/workflows/$1/history"; }
evtypes() { j '[.events[].type] | join(" ")'; }
# sleeping ID: whether the run waits on a ctx:sleep (GET run into $body).
sleeping() { api GET "/v1/workflows/$1"; [ "$(j .waiting.kind)" = sleep ]; }
# reloaded N: whether the daemon has logged N reloads (SIGHUP).
reloaded() { [ "$(grep -c "workflows reloaded" "$d/daemon.log")" -ge "$1" ]; }
# error_shape NAME: the last body is {"error":{"code":string,"message":string}} only.
error_shape() {
  check "$1: error shape" "true" \
    "$(j '(keys == ["error"]) and (.error | keys == ["code","message"]) and (.error.code|type=="string") and (.error.message|type=="string")')"
}

start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --body-limit 2048 \
    --workers 4 --grace 5 || exit 1
  daemon=$E2E_DAEMON
}
start_daemon

# ---- health, workflow types, a file that does not load ----

api GET /healthz
check "healthz is 200" 200 "$code"
check "healthz counts the file that failed to load" 1 "$(j .workflow_load_errors)"
# Requests carry more than API clients send: 8 KiB of cookies through a
# proxy still fits in a connection's memory.
api GET /healthz -H "Cookie: c=$(head -c 8192 /dev/zero | tr '\0' a)"
check "a request with 8 KiB of headers is served" 200 "$code"
api GET /v1/workflow-types
check "types: the broken file is listed with its name" "$d/wf/broken.lua" "$(j '.errors[0].file')"
check_contains "types: with the parse error, naming the file" "broken.lua:" "$(j '.errors[0].error')"
# (each file in workflows/ is named after its workflow: 07-workflow_spec checks that)
good=$(for f in "$d"/wf/*.lua; do f=${f##*/}; [ "$f" = broken.lua ] || echo "${f%.lua}"; done | LC_ALL=C sort | paste -sd' ')
check "types: the good files are loaded" "$good" "$(j '[.types[].name] | sort | join(" ")')"
check_contains "the daemon log says a file failed to load" "1 workflow files failed to load" "$(cat "$d/daemon.log")"

# SIGHUP reloads the files: a new one becomes a type.
cat > "$d/wf/late.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "late", run = function(ctx, input) return { hello = input.name } end }
LUA
kill -HUP "$daemon"
has_late() { api GET /v1/workflow-types; [ "$(j '[.types[].name] | index("late")')" != null ]; }
poll 100 has_late
check "SIGHUP: the new file is loaded" "late" "$(j '[.types[].name | select(. == "late")] | join(" ")')"
start late '{"id":"late-1","input":{"name":"world"}}'
result late-1
check "SIGHUP: and runs" '{"hello":"world"}' "$(j '.output|tojson')"

# Start and wait in one request: POST ...?wait=S answers like GET .../result.
api POST "/v1/workflows/late?wait=20" --data-binary '{"id":"late-2","input":{"name":"one"}}'
check "start?wait: 200 once the run has ended" 200 "$code"
check "start?wait: with its result" 'completed {"hello":"one"}' "$(j '"\(.status) \(.output|tojson)"')"
api POST "/v1/workflows/late?wait=20" --data-binary '{"id":"late-2","input":{"name":"two"}}'
check "start?wait: the same id again answers the first run's result" '{"hello":"one"}' "$(j '.output|tojson')"
api POST "/v1/workflows/late?wait=never" --data-binary '{"id":"late-3"}'
check "start?wait: a bad wait is 400" 400 "$code"
api GET /v1/workflows/late-3
check "start?wait: and starts nothing" 404 "$code"

# ---- start: created, the same id again, errors ----

# (webhook_fanout with a subscriber that never recovers takes its retries'
# 3.5 s: it starts now and is checked with the other examples.)
start webhook_fanout "{\"id\":\"fanout-down\",\"input\":{\"event\":{\"type\":\"ping\"},\"urls\":[\"$mock_url/hooks/c\",\"$mock_url/status/503\"]}}"
start nap '{"id":"nap-1","input":{"sleep":"3s"}}'
check "start: 201" 201 "$code"
check "start: the run object" "nap-1 nap running 3s" "$(j '"\(.id) \(.type) \(.status) \(.input.sleep)"')"
created=$(j .created_at)
start nap '{"id":"nap-1","input":{"sleep":"1s"}}'
check "same id again: 200" 200 "$code"
check "same id again: the same run, its own input" "nap-1 $created 3s" "$(j '"\(.id) \(.created_at) \(.input.sleep)"')"
api GET '/v1/workflows?type=nap'
check "same id again: no second run" 1 "$(j '[.runs[] | select(.id == "nap-1")] | length')"
start late '{"id":"nap-1"}'
check "the id of another type's run: 409" 409 "$code"
check "the id of another type's run: says whose" \
  'conflict: a run with id "nap-1" exists and is of type "nap", not "late"' "$(j '"\(.error.code): \(.error.message)"')"

start nope '{"id":"x"}'
check "unknown type: 404" 404 "$code"
check "unknown type: code" unknown_type "$(j .error.code)"
check_match "unknown type: names the known types" "known types: (.*, )?call, (.*, )?late, nap, nightly_cleanup, order, " \
  "$(j .error.message)"
error_shape "unknown type"
start nap '{"id": "x", "input": {'
check "malformed JSON: 400" 400 "$code"
check_match "malformed JSON: the parse error's position" "^body: line 1 column [0-9]+" "$(j .error.message)"
error_shape "malformed JSON"
start nap '{"id":"x","inptu":{}}'
check "unknown field: 400" 400 "$code"
check_contains "unknown field: named" 'unknown field "inptu"' "$(j .error.message)"
error_shape "unknown field"
start nap '{"id":""}'
check "empty id: 400 (not a fresh id)" 400 "$code"
error_shape "empty id"
start nap '{"id":"a b/c"}'
check "bad id: 400" 400 "$code"
check_contains "bad id: the character" "character 2 (0x20) is not allowed" "$(j .error.message)"
error_shape "bad id"
start nap '{"id":".."}'
check "id \"..\": 400 (/v1/workflows/.. is /v1/, not that run)" 400 "$code"
check_contains "id \"..\": says why" 'id: ".." is not allowed: a URL reads it as a path step' "$(j .error.message)"
head -c 4096 /dev/zero | tr '\0' a > "$d/big"
printf '{"id":"big","input":"%s"}' "$(cat "$d/big")" > "$d/big.json"
start nap "@$d/big.json"
check "body over --body-limit: 413" 413 "$code"
check "body over --body-limit: code" payload_too_large "$(j .error.code)"
error_shape "body over the limit"
# A body declared over the limit is refused before it is read (it was read
# whole first; one declared and never sent waited for the connection's
# timeout, 330 s).
api POST /v1/workflows/nap -m 10 -H 'Content-Length: 99999999999' --data-binary x
check "a Content-Length over --body-limit: 413 at once" "413 payload_too_large" "$code $(j .error.code)"
check_contains "a Content-Length over --body-limit: says both" \
  "the body exceeds the limit of 2048 bytes (Content-Length: 99999999999)" "$(j .error.message)"
start nap '[1,2]'
check "body not an object: 400" 400 "$code"
error_shape "body not an object"
api GET /v1/workflows/no-such-run
check "unknown run: 404" 404 "$code"
error_shape "unknown run"
api GET '/v1/workflows?limit=0'
check "bad limit: 400" 400 "$code"
error_shape "bad limit"
# Numbers are decimal (strtoul and strtod also took " 1", "+5", "0x10" and
# "1e2"), and a parameter given twice is refused, not read as its first.
for q in 'limit=%201' 'limit=+5' 'limit=0x10' 'limit=1&limit=abc' 'limit=1&LIMIT=x' 'Status=running&status=bogus' \
         'status=running&status=completed'; do
  api GET "/v1/workflows?$q"
  check "list ?$q: 400" 400 "$code"
done
check "a parameter given twice: says which" "status: given more than once; give it once" "$(j .error.message)"
for w in 0x10 1e2 %205; do
  api GET "/v1/workflows/no-such-run/result?wait=$w"
  check "result ?wait=$w: 400" 400 "$code"
done
check_contains "a bad wait: says what it takes" "wait: must be a number of seconds from 0 to 300" "$(j .error.message)"
api GET /v1/workflows/big
check "refused starts left no run" 404 "$code"

# ---- hostile input: what a request quotes, NULs, ids, methods ----

# An error that quotes the request's bytes is answered with them escaped
# (\xNN), not dropped for not being UTF-8.
api GET /v1/workflows/%ff%fe
check "an id that is not UTF-8: 404" 404 "$code"
check "an id that is not UTF-8: quoted, escaped" 'no workflow run with id "\xff\xfe"' "$(j .error.message)"
api GET '/v1/workflows?status=%ff'
check "a status that is not UTF-8: 400 naming it" \
  '400 status: unknown value "\xff"; use running, completed, failed, cancelled, terminated or paused' \
  "$code $(j .error.message)"
long=$(head -c 187 /dev/zero | tr '\0' a)
api GET "/v1/nothing/$long%C3%A9"
check "a message cut inside a character: 404" 404 "$code"
check_match "a message cut inside a character: the cut byte escaped" 'a\\xc3$' "$(j .error.message)"
# %00 is refused, not taken for the end of the text (which made this a
# start of hello, and a signal "a%00b" a signal "a").
api POST /v1/workflows/hello%00/cancel
check "%00 in a path: 400" 400 "$code"
check_contains "%00 in a path: says so" "%00 (a NUL byte) is not allowed" "$(j .error.message)"
api GET '/v1/workflows?type=hello'
check "%00 in a path: and starts nothing" "200 0" "$code $(j '.runs | length')"
api GET '/v1/workflows?status=running%00x'
check "%00 in a query value: 400" 400 "$code"
api GET /v1/workflows/a%2500b
check "an escaped %: the text %00, not a NUL" '404 no workflow run with id "a%00b"' "$code $(j .error.message)"

# A method a path does not take is 405, with the ones it takes in Allow
# (there was no Allow; /healthz, /metrics and /v1/workflow-types said 404);
# a path that is no route is 404 (/v1/workflows/x/bogus said 405).
status_allow() {
  local h
  h=$(curl -s -o /dev/null -D - --unix-socket "$sock" -X "$1" "http://lodestoned$2" | tr -d '\r')
  printf '%s %s' "$(sed -n '1s/^HTTP[^ ]* \([0-9]*\).*/\1/p' <<< "$h")" "$(sed -n 's/^[Aa]llow: //p' <<< "$h")"
}
while IFS='|' read -r req allow; do
  check "$req: 405, Allow: $allow" "405 $allow" "$(status_allow $req)"
done <<'ROUTES'
DELETE /healthz|GET, HEAD
POST /metrics|GET, HEAD
PUT /v1/workflow-types|GET, HEAD
POST /v1/workflows|GET, HEAD
DELETE /v1/workflows/nap|GET, HEAD, POST
POST /v1/workflows/nap-1/history|GET, HEAD
DELETE /v1/workflows/nap-1/result|GET, HEAD
GET /v1/workflows/nap-1/cancel|POST
GET /v1/workflows/nap-1/terminate|POST
PUT /v1/workflows/nap-1/resume|POST
GET /v1/workflows/nap-1/signals/go|POST
PUT /v1/schedules|GET, HEAD, POST
POST /v1/schedules/x|GET, HEAD, DELETE
POST /v1/secrets|GET, HEAD
GET /v1/secrets/x|PUT, DELETE
ROUTES
api DELETE /v1/workflows/nap
check_contains "405: says what the path takes" "DELETE is not allowed on /v1/workflows/nap; it takes GET, HEAD, POST" \
  "$(j .error.message)"
error_shape "405"
api GET /v1/workflows/nap-1/bogus
check "a path under a run that is no route: 404" "404 no route for GET /v1/workflows/nap-1/bogus" "$code $(j .error.message)"
check "HEAD is GET without the body" "HTTP/1.1 200 OK" \
  "$(curl -s -I --unix-socket "$sock" http://lodestoned/v1/workflows/nap-1 | head -1 | tr -d '\r')"

# ---- a sleeping run: waiting, 202, then the long poll ----

poll 100 sleeping nap-1
check "while it sleeps the run shows waiting" "running sleep 1" "$(j '"\(.status) \(.waiting.kind) \(.steps_completed)"')"
api GET /v1/workflows/nap-1/result
check "result without wait on a sleeping run: 202" 202 "$code"
check "result without wait: status running" running "$(j .status)"
result nap-1
check "result?wait: 200 once completed" 200 "$code"
check "result?wait: the output" 'completed {"before":"before","slept":"3s"}' "$(j '"\(.status) \(.output|tojson)"')"
history nap-1
check "history: events in order" \
  "workflow_started step_started step_completed timer_started timer_fired workflow_completed" "$(evtypes)"
check "history: seq numbers 1..n" "1 2 3 4 5 6" "$(j '[.events[].seq] | map(tostring) | join(" ")')"
check "history: the step's name and result" 'before {"at":"before"}' \
  "$(j '.events[2] | "\(.name) \(.result|tojson)"')"

# ---- code that is not deterministic does not match its run's history ----
# (Editing the file cannot cause this: runs are pinned to their version; see
# workflow_versions.sh. Orchestration code that reads the outside world can.)

cat > "$d/wf/edited.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "edited", run = function(ctx, input)
  local marker = io.open(input.marker) -- wrong: outside state read in run, not in a step
  if marker then marker:close() end
  ctx:step(marker and "renamed" or "first", function() return 1 end)
  ctx:sleep("2s")
  return ctx:step("second", function() return 2 end)
end }
LUA
kill -HUP "$daemon"
poll 100 reloaded 2
start edited "{\"id\":\"edited-1\",\"input\":{\"marker\":\"$d/marker\"}}"
poll 100 sleeping edited-1
touch "$d/marker"
kill -HUP "$daemon"
poll 100 reloaded 3
result edited-1
check "non-determinism: the run fails, naming both sides" \
  'failed run edited-1: non-determinism at command 1: history has step "first", the workflow asked for step "renamed"' \
  "$(j '"\(.status) \(.error)"')"

# ---- a run whose workflow file went missing goes on from its kept source ----

cat > "$d/wf/comeback.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "comeback", run = function(ctx)
  ctx:sleep("500ms")
  return ctx:step("after", function() return "back" end)
end }
LUA
kill -HUP "$daemon"
poll 100 reloaded 4
start comeback '{"id":"comeback-1"}'
poll 100 sleeping comeback-1
mv "$d/wf/comeback.lua" "$d/comeback.lua.away"
kill -HUP "$daemon"
poll 100 reloaded 5
api GET /v1/workflow-types
check "missing type: no longer loaded" 0 "$(j '[.types[] | select(.name=="comeback")] | length')"
result comeback-1
check "missing type: its run completes from the source it was pinned to" \
  'completed "back"' "$(j '"\(.status) \(.output|tojson)"')"
start comeback '{"id":"comeback-2"}'
check "missing type: new runs are refused" 404 "$code"
mv "$d/comeback.lua.away" "$d/wf/comeback.lua"
kill -HUP "$daemon"
poll 100 reloaded 6

# ---- secrets, and order.lua against the payments mock ----

api PUT /v1/secrets/payments_token --data-binary "$SECRET"
check "secret set: 200" 200 "$code"
check "secret set: names it" payments_token "$(j .name)"
put_at=$(j .updated_at)
api GET /v1/secrets
check "secret list: the name" payments_token "$(j '[.secrets[].name] | join(" ")')"
check_absent "secret list: not the value" "$SECRET" "$body"
listed_at=$(j '.secrets[] | select(.name == "payments_token") | .updated_at')
check_match "secret list: its update time (RFC 3339, UTC)" \
  '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' "$listed_at"
check "secret list: the time of the put, not later than its answer" yes \
  "$([[ ! "$listed_at" > "$put_at" ]] && echo yes || echo "no: $listed_at > $put_at")"
out=$("$build/bin/lodestone" secret list --socket "$sock" 2>&1)
check_match "lodestone secret list: the name and its update time" \
  "^payments_token +${listed_at:0:10} ${listed_at:11:8}\$" "$(printf '%s\n' "$out" | grep payments_token)"
check_absent "lodestone secret list: not the value" "$SECRET" "$out"
# A name may hold "/" (the CLI sends it as %2F): the route took the rest
# of the path for segments, and such a secret could not be set.
api PUT /v1/secrets/team%2Fpayments --data-binary "x-$TAG"
check "a secret named team/payments: set" "200 team/payments" "$code $(j .name)"
api DELETE /v1/secrets/team/payments
check "a secret named team/payments: deleted" "200 true" "$code $(j .deleted)"

start order "{\"id\":\"$ORDER\",\"input\":{\"id\":\"1001\",\"amount\":4200,\"payments_url\":\"$mock_url\",\"ship_delay\":\"300ms\",\"note\":\"$PAYLOAD\"}}"
check "order: started" 201 "$code"
start whoami "{\"id\":\"whoami-1\",\"input\":{\"url\":\"$mock_url/echo\"}}"
result "$ORDER"
check "order: completed with the charge and the tracking number" 'completed ch_1 T-1001' \
  "$(j '"\(.status) \(.output.charge) \(.output.tracking)"')"
api GET "/v1/workflows/$ORDER"
check "order: one failed attempt (the mock's 503), retried" "1 2" "$(j '"\(.attempts_failed) \(.steps_completed)"')"
history "$ORDER"
check "order: history" \
  "workflow_started step_started step_failed step_started step_completed timer_started timer_fired step_started step_completed workflow_completed" \
  "$(evtypes)"
check_contains "order: the retried error" "payments unavailable" "$(j '.events[] | select(.type == "step_failed") | .error')"
key=$(grep '^POST /charges 503 ' "$d/mock.log" | awk '{print $4}')
check_match "order: the charge carried an idempotency key" '^[0-9A-Z]+-[0-9]+$' "$key"
check "order: the retry sent the same key, and charged once" "POST /charges 503 $key|POST /charges 201 $key" \
  "$(grep '^POST /charges' "$d/mock.log" | paste -sd'|')"
result whoami-1
check "secret: the step sent Authorization: Bearer <secret> (as mocksvc echoed it)" \
  "completed true $(( ${#SECRET} + 7 ))" "$(j '"\(.status) \(.output.auth_ok) \(.output.length)"')"

# ---- retries, a fatal error, step timeouts ----

start call "{\"id\":\"flaky-1\",\"input\":{\"url\":\"$mock_url/flaky/f1?fail=2\"}}"
start call "{\"id\":\"decline-1\",\"input\":{\"url\":\"$mock_url/decline\"}}"
start slow "{\"id\":\"slow-1\",\"input\":{\"url\":\"$mock_url/slow?ms=3000\"}}"
start spin '{"id":"spin-1"}'
start call "{\"id\":\"after-spin\",\"input\":{\"url\":\"$mock_url/flaky/after?fail=0\"}}"

result flaky-1
check "retries: completed on the third call" "completed 3" "$(j '"\(.status) \(.output.calls)"')"
api GET /v1/workflows/flaky-1
check "retries: attempts_failed = 2" 2 "$(j .attempts_failed)"
history flaky-1
check "retries: history" \
  "workflow_started step_started step_failed step_started step_failed step_started step_completed workflow_completed" \
  "$(evtypes)"
check "retries: step_failed events carry the attempt and retry_at" "1:true 2:true" \
  "$(j '[.events[] | select(.type == "step_failed") | "\(.attempt):\(.retry_at | test("^[0-9]{4}-.*Z$"))"] | join(" ")')"
check "retries: step_started attempts" "1 2 3" \
  "$(j '[.events[] | select(.type == "step_started") | .attempt | tostring] | join(" ")')"

result decline-1
check "fatal: failed" failed "$(j .status)"
check "fatal: the error" 'step "call" failed on attempt 1: card declined' "$(j .error)"
api GET /v1/workflows/decline-1
check "fatal: one attempt only" "1 0" "$(j '"\(.attempts_failed) \(.steps_completed)"')"
history decline-1
check "fatal: history" "workflow_started step_started step_failed workflow_failed" "$(evtypes)"
check "fatal: step_failed is final, with no retry_at" "true null card declined" \
  "$(j '.events[2] | "\(.final) \(.retry_at) \(.error)"')"
check_contains "fatal: workflow_failed has a traceback" "stack traceback" "$(j '.events[3].traceback')"
check "fatal: one call reached the service" 1 "$(grep -c '^POST /decline 402' "$d/mock.log")"

result slow-1
check "HTTP step timeout: failed" failed "$(j .status)"
check_match "HTTP step timeout: says timed out, after the 2nd attempt" 'failed on attempt 2: .*timed out' "$(j .error)"
history slow-1
check "HTTP step timeout: two attempts" 2 "$(j '[.events[] | select(.type == "step_failed")] | length')"

result spin-1
check "busy loop: failed after its attempts" failed "$(j .status)"
check 'busy loop: interrupted by the deadline' 'step "spin" failed on attempt 2: timed out after 200 ms' "$(j .error)"
api GET /healthz
check "busy loop: the daemon stays healthy" "200 ok" "$code $(j .status)"
result after-spin
check "busy loop: other runs still complete" "completed 1" "$(j '"\(.status) \(.output.calls)"')"

# ---- the other examples ----

start webhook_fanout "{\"id\":\"fanout-1\",\"input\":{\"event\":{\"type\":\"order.paid\"},\"urls\":[\"$mock_url/hooks/a\",\"$mock_url/hooks/b\",\"$mock_url/status/410\",\"$mock_url/flaky/fan?fail=1\"]}}"
start nightly_cleanup "{\"id\":\"cleanup-1\",\"input\":{\"purge_url\":\"$mock_url/echo\",\"keep\":\"1d\"}}"
start hello '{"id":"hello-1","input":{"name":"e2e","pause":"200ms"}}'
result fanout-1
check "fanout: 3 of 4 delivered" "completed 3 1" "$(j '"\(.status) \(.output.delivered) \(.output.failed)"')"
check "fanout: each URL's status" "204 204 410 200" "$(j '[.output.deliveries[].status | tostring] | join(" ")')"
history fanout-1
check "fanout: one step per URL and a summary" \
  "deliver 1,deliver 2,deliver 3,deliver 4,deliver 4,summary" \
  "$(j '[.events[] | select(.type == "step_started") | .name] | join(",")')"
check "fanout: the subscriber got it once" '{"count":1}' "$(curl -s "$mock_url/hooks/a")"
result fanout-down
check "fanout: a subscriber that stays down is reported, the run completes" "completed 1 1" \
  "$(j '"\(.status) \(.output.delivered) \(.output.failed)"')"
check_match "fanout: with its final error" '^step "deliver 2" failed on attempt 4: .*answered 503$' \
  "$(j '.output.deliveries[1].error')"
history fanout-down
check "fanout: 4 attempts, the last one final" "1 2 3 4 true" \
  "$(j '[.events[] | select(.type == "step_failed") | .attempt | tostring] + [.events[] | select(.type == "step_failed" and .final) | .final | tostring] | join(" ")')"
keys=$(grep -E '^POST /(hooks/c|status/503) ' "$d/mock.log" | awk '{print $2, $4}' | sort | uniq -c |
  awk '{print $1, $2, substr($3, length($3) - 1)}' | paste -sd'|')
check "fanout: one idempotency key per step, the same on every attempt" \
  "1 /hooks/c -1|4 /status/503 -2" "$keys"
result hello-1
check "hello: completed" "completed hello, e2e" "$(j '"\(.status) \(.output.greeting)"')"
result cleanup-1
check_match "cleanup: a cutoff from ctx:now(), one batch" \
  '^completed [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z 1 0$' \
  "$(j '"\(.status) \(.output.before) \(.output.batches) \(.output.deleted)"')"
before=$(j .output.before)
check_contains "cleanup: ctx:log reached the daemon log" "deleting items older than $before" "$(cat "$d/daemon.log")"
history cleanup-1
check "cleanup: the cutoff was recorded" now \
  "$(j '[.events[] | select(.type == "side_effect_recorded") | .name] | join(" ")')"

# ---- lists: filters and paging ----

api GET '/v1/workflows?status=completed&type=call'
check "list: status and type filter" "after-spin flaky-1" "$(j '[.runs[].id] | sort | join(" ")')"
check "list: only completed runs of that type" "true" "$(j '[.runs[] | .status == "completed" and .type == "call"] | all')"
api GET '/v1/workflows?status=failed'
check "list: failed runs" "decline-1 edited-1 slow-1 spin-1" "$(j '[.runs[].id] | sort | join(" ")')"
api GET '/v1/workflows?limit=1000'
all=$(j '[.runs[].id] | sort | join(" ")')
total=$(j '.runs | length')
paged=() cursor='' pages=0
while :; do
  api GET "/v1/workflows?limit=3${cursor:+&cursor=$cursor}"
  [ "$code" = 200 ] || break
  pages=$((pages + 1))
  for id in $(j '.runs[].id'); do paged+=("$id"); done
  cursor=$(j '.next_cursor // empty')
  if [ -z "$cursor" ] || [ "$pages" -ge 50 ]; then break; fi
done
check "paging: every run exactly once" "$total $all" \
  "${#paged[@]} $(printf '%s\n' "${paged[@]}" | sort -u | paste -sd' ')"
check "paging: pages of 3" $(( (total + 2) / 3 )) "$pages"

# ---- /metrics ----

metrics=$(curl -s --unix-socket "$sock" -w '\n%{content_type}' http://lodestoned/metrics)
check_contains "metrics: Prometheus text" "text/plain; version=0.0.4" "$metrics"
check_contains "metrics: runs started, as a counter" "# TYPE lodestone_runs_started_total counter" "$metrics"
check_match "metrics: the count" "lodestone_runs_started_total $total\$" "$(grep '^lodestone_runs_started_total ' <<< "$metrics")"
check_match "metrics: runs by type" '^lodestone_type_runs_total\{type="nap",event="started"\} [1-9]' \
  "$(grep 'type="nap",event="started"' <<< "$metrics")"
check_match "metrics: failed runs by type" '^lodestone_type_runs_total\{type="call",event="failed"\} [1-9]' \
  "$(grep 'type="call",event="failed"' <<< "$metrics")"
check_contains "metrics: a step duration histogram" "# TYPE lodestone_step_duration_seconds histogram" "$metrics"
steps=$(grep '^lodestone_step_duration_seconds_count ' <<< "$metrics" | awk '{print $2}')
inf=$(grep 'lodestone_step_duration_seconds_bucket{le="+Inf"}' <<< "$metrics" | awk '{print $2}')
check "metrics: its +Inf bucket counts every attempt" "$steps" "$inf"
check "metrics: attempts = completed + failed steps" \
  "$steps" "$(( $(grep 'lodestone_steps_total{outcome="completed"}' <<< "$metrics" | awk '{print $2}') + $(grep 'lodestone_steps_total{outcome="failed"}' <<< "$metrics" | awk '{print $2}') ))"
check_match "metrics: worker utilisation: time spent, not zero" \
  '^lodestone_worker_busy_seconds_total [0-9]*\.?[0-9]*[1-9][0-9]*$' \
  "$(grep '^lodestone_worker_busy_seconds_total ' <<< "$metrics")"
check_match "metrics: the store's size" '^lodestone_store_bytes [1-9][0-9]*$' "$(grep '^lodestone_store_bytes ' <<< "$metrics")"
check_contains "metrics: ready-queue depth" "lodestone_runs_queued " "$metrics"
api GET /healthz
check "healthz: store and workers" "ok ok 4 4" "$(j '"\(.status) \(.store.state) \(.workers.configured) \(.workers.alive)"')"

# ---- one daemon per data directory ----

err=$(timeout 20 "$build/bin/lodestoned" --data "$data" --workflows "$d/wf" 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
  ok "a second lodestoned on the same data exits non-zero ($rc)"
else
  not_ok "a second lodestoned on the same data exits non-zero" "exit $rc"
fi
check_contains "and says the directory is in use" "is in use by another lodestoned" "$err"
api GET /healthz
check "the first one still serves on its socket" 200 "$code"

# ---- a sleep across a restart ----

start nap '{"id":"nap-restart","input":{"sleep":"3s"}}'
poll 100 sleeping nap-restart
check "restart: the run sleeps" sleep "$(j .waiting.kind)"
e2e_stop "$daemon" 20
check "SIGTERM: lodestoned exits 0" 0 $?
check_contains "SIGTERM: it says it stopped" '"msg":"stopped"' "$(tail -1 "$d/daemon.log")"
start_daemon
check_contains "restart: the unfinished run is recovered" "recovered 1 unfinished runs" "$(cat "$d/daemon.log")"
result nap-restart
check "restart: the run completes" 'completed {"before":"before","slept":"3s"}' "$(j '"\(.status) \(.output|tojson)"')"
history nap-restart
check "restart: one step, one timer started, one fired" \
  "workflow_started step_started step_completed timer_started timer_fired workflow_completed" "$(evtypes)"

# ---- nothing leaks the secret; payloads are sealed on disk ----

check_absent "no API response holds the secret" "$SECRET" "$(cat "$d/responses.log")"
check_contains "(the responses did hold the payload, as the input)" "$PAYLOAD" "$(cat "$d/responses.log")"
check_absent "the daemon's log does not hold the secret" "$SECRET" "$(cat "$d/daemon.log")"
e2e_stop "$daemon" 20
check "stopped again: exit 0" 0 $?
found=$(grep -r -a -l -F --devices=skip "$TAG" "$data" | head -1)
if [ -n "$found" ]; then
  ok "(grep finds a run's id, stored in the clear, in the data directory)"
else
  not_ok "grep finds a run's id in the data directory (the search itself works)"
fi
check "the secret appears nowhere in the data directory" "" \
  "$(grep -r -a -l -F --devices=skip "$SECRET" "$data")"
check "the input payload appears nowhere in the data directory" "" \
  "$(grep -r -a -l -F --devices=skip "$PAYLOAD" "$data")"

e2e_stop "$mock" 10
e2e_finish
