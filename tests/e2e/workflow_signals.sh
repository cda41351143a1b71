#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: signals, cancellation, termination and custom status through
# lodestoned's HTTP API and the CLI, with the example workflows/approval.lua:
# a signal that arrives while the run waits and one sent before it waits,
# a wait that times out, 404/409/400 answers, a cancelled run that cleans
# up, a terminated run that does not, and a SIGKILL of the daemon while a
# run waits for a signal (the signal sent after the restart completes it).
# usage: tests/e2e/workflow_signals.sh BUILD_DIR   (from the project root)
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
cp "$root/workflows/approval.lua" "$d/wf/"
cat > "$d/wf/chores.lua" <<'LUA'
-- Sleeps for an hour between steps; cleans up when cancelled.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "chores",
  run = function(ctx)
    ctx:step("first", function() return 1 end)
    local ok, err = pcall(function() ctx:sleep("1h") end)
    if not ok and workflow.is_cancelled(err) then
      ctx:step("cleanup", function() return "tidied" end)
      error(err, 0)
    end
    ctx:step("second", function() return 2 end)
  end,
}
LUA

cli() { "$build/bin/lodestone" "$@" --socket "$sock"; }

start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 \
    || exit 1
  daemon=$E2E_DAEMON
}
start_daemon

# ---- a signal while the run waits ----
start approval '{"id":"req-1","input":{"item":"laptop"}}'
check "approval starts" 201 "$code"
poll 100 waiting_for req-1 signal
check "it waits for the approved signal" "signal approved" "$(j '.waiting.kind + " " + .waiting.name')"
check "with a due time (the timeout)" "true" "$(j '.waiting.due_at != null')"
check "custom status shows the stage" '{"item":"laptop","stage":"waiting for approval"}' "$(jc .custom_status)"
out=$(cli show req-1)
check_contains "lodestone show prints the custom status" 'custom status:   {"item":"laptop","stage":"waiting for approval"}' "$out"
check_contains "lodestone show prints the wait" "waiting for signal approved until" "$out"
api POST /v1/workflows/req-1/signals/approved -H 'Content-Type: application/json' --data-binary '{"by":"alice"}'
check "signal is accepted" 202 "$code"
check "the answer names run and signal" "req-1 approved" "$(j '.id + " " + .signal')"
result req-1
check "the run completes" completed "$(j .status)"
check "with the signal's payload" alice "$(j .output.approved_by)"
api GET /v1/workflows/req-1
check "custom status after approval" '{"by":"alice","stage":"approved"}' "$(jc .custom_status)"
api GET /v1/workflows/req-1/history
check "history records the signal" '{"by":"alice"}' "$(jc '[.events[] | select(.type=="signal_received")][0].payload')"
check "and the timer the signal beat" "timer_cancelled" "$(j '[.events[] | select(.name=="signal:approved")] | last | .type')"

# ---- errors ----
api POST /v1/workflows/req-1/signals/approved --data-binary '{}'
check "a finished run refuses signals: 409" 409 "$code"
check_contains "saying it finished" "has finished (completed)" "$(j .error.message)"
api POST /v1/workflows/nope/signals/approved --data-binary '{}'
check "an unknown run: 404" 404 "$code"
out=$(cli signal req-1 approved '{}' 2>&1); rc=$?
check "lodestone signal to a finished run exits 1" 1 "$rc"
check_contains "and says why" "has finished (completed)" "$out"

# ---- signals sent before the run waits, by the CLI ----
start approval '{"id":"req-2","input":{"item":"desk"}}'
out=$(cli signal req-2 approved '{"by":"bob"}' 2>&1); rc=$?
check "lodestone signal exits 0" 0 "$rc"
check_contains "and says so" "sent signal approved to req-2" "$out"
result req-2
check "a signal sent early is kept" "completed bob" "$(j '.status + " " + .output.approved_by')"
start approval '{"id":"req-3"}'
api POST /v1/workflows/req-3/signals/approved --data-binary '{bad'
check "a payload that is not JSON: 400" 400 "$code"
check_contains "naming the payload" "payload" "$(j .error.message)"

# ---- a timeout ----
start approval '{"id":"req-4","input":{"timeout":"300ms"}}'
result req-4
check "the wait times out: the run fails as written" failed "$(j .status)"
check_contains "with the workflow's message" "no approval within 300ms (timeout)" "$(j .error)"
api GET /v1/workflows/req-4/history
check "the release step ran" 1 "$(j '[.events[] | select(.type=="step_completed" and .name=="release")] | length')"

# ---- cancel: the run cleans up ----
start chores '{"id":"ch-1"}'
poll 100 waiting_for ch-1 sleep
out=$(cli cancel ch-1 --reason "not needed" 2>&1); rc=$?
check "lodestone cancel exits 0" 0 "$rc"
check_contains "and says what happens" "cancel requested for ch-1" "$out"
result ch-1
check "the run ends cancelled" cancelled "$(j .status)"
api GET /v1/workflows/ch-1
check "with the reason and who asked" "not needed api" "$(j '.reason + " " + .by')"
api GET /v1/workflows/ch-1/history
check "its cleanup step ran, the rest did not" "first cleanup" "$(j '[.events[] | select(.type=="step_completed") | .name] | join(" ")')"
check "history says who cancelled" "api not needed" "$(j '[.events[] | select(.type=="cancel_requested")][0] | .by + " " + .reason')"
api POST /v1/workflows/ch-1/cancel
check "cancelling a finished run: 409" 409 "$code"
start approval '{"id":"req-5"}'
poll 100 waiting_for req-5 signal
# A run's history keeps only UTF-8 text: a name or a note that is not (or
# that has a NUL) is refused, naming it, and the run stays readable.
api POST /v1/workflows/req-5/signals/%ff
check "a signal name that is not UTF-8: 400 naming it" \
  "400 signal name: byte 1 (0xff) is not valid UTF-8" "$code $(j .error.message)"
api POST /v1/workflows/req-5/cancel -H $'X-User: \xff'
check "an X-User that is not UTF-8: 400 naming it" "400 X-User: not valid UTF-8" "$code $(j .error.message)"
api POST /v1/workflows/req-5/cancel -H "X-User: $(head -c 1025 /dev/zero | tr '\0' u)"
check "an X-User over 1024 bytes: 400 (it was recorded as api)" \
  "400 X-User: at most 1024 bytes, got 1025" "$code $(j .error.message)"
api POST /v1/workflows/req-5/cancel --data-binary '{"reason":"a\u0000b"}'
check "a reason with \\u0000: 400 (it was cut there)" \
  "400 reason: control character at byte 2" "$code $(j .error.message)"
# DEL and the C1 controls (U+0080 to U+009F) are control characters too:
# they passed, and names show in the UI and in logs.
api POST /v1/workflows/req-5/signals/g%7Fo
check "a signal name with DEL: 400" "400 signal name: control character at byte 2" "$code $(j .error.message)"
api POST /v1/workflows/req-5/signals/go%C2%85
check "a signal name with U+0085: 400" "400 signal name: control character at byte 3" "$code $(j .error.message)"
api POST /v1/workflows/req-5/cancel -H $'X-User: ops\x7f'
check "an X-User with DEL: 400" "400 X-User: control character at byte 4" "$code $(j .error.message)"
api POST /v1/workflows/req-5/cancel -H $'X-User: \xc2\x9fops'
check "an X-User with U+009F: 400" "400 X-User: control character at byte 1" "$code $(j .error.message)"
api POST /v1/workflows/req-5/cancel --data-binary '{"reason":"a\u0085b"}'
check "a reason with U+0085: 400" "400 reason: control character at byte 2" "$code $(j .error.message)"
# A name is one segment of the path: "/" (sent as %2F, decoded before the
# route) and dot segments (clients remove them) are refused, naming why.
# (A wait on such a name waited for a signal nobody could send: a%2Fb was
# a 404 "no route".)
api POST /v1/workflows/req-5/signals/a%2Fb
check "a signal name with /: 400 naming the rule" \
  '400 signal name: "/" at byte 2: a name is one segment of the API'"'"'s path (/v1/workflows/ID/signals/NAME)' \
  "$code $(j .error.message)"
api POST /v1/workflows/req-5/signals/a/b --path-as-is
check "the same sent as a/b" 400 "$code"
api POST /v1/workflows/req-5/signals/.. --path-as-is
check "a signal named ..: 400" \
  '400 signal name: ".." is not a name: HTTP clients remove such segments from the API'"'"'s path' \
  "$code $(j .error.message)"
out=$(cli signal req-5 a/b 2>&1); rc=$?
check "lodestone signal with a name with /: exit 1, saying why" \
  '1 lodestone signal: signal name: "/" at byte 2: a name is one segment of the API'"'"'s path (/v1/workflows/ID/signals/NAME)' \
  "$rc $out"
out=$(cli signal req-5 . 2>&1); rc=$?
check "lodestone signal named .: exit 1, saying why" \
  '1 lodestone signal: signal name: "." is not a name: HTTP clients remove such segments from the API'"'"'s path' \
  "$rc $out"
api GET /v1/workflows/req-5/history
check "the run's history still reads, with none of them" "200 0" \
  "$code $(j '[.events[] | select(.type=="signal_received" or .type=="cancel_requested")] | length')"
api GET /v1/workflows
check "and so does the list" 200 "$code"
# An OpenID subject may be 255 characters: such an X-User is recorded.
carol="carol-$(head -c 300 /dev/zero | tr '\0' x)"
api POST /v1/workflows/req-5/cancel -H "X-User: $carol" --data-binary '{"reason":"duplicate"}'
check "cancel through the API: 202" 202 "$code"
result req-5
check "a cancelled approval ends cancelled" cancelled "$(j .status)"
api GET /v1/workflows/req-5
check "X-User is recorded as who asked, 306 bytes of it" "$carol duplicate" "$(j '.by + " " + .reason')"
api GET /v1/workflows/req-5/history
check "and releases its reservation" 1 "$(j '[.events[] | select(.type=="step_completed" and .name=="release")] | length')"
api POST /v1/workflows/req-5/cancel --data-binary '{"why":"x"}'
check "an unknown body field: 400" 400 "$code"

# ---- terminate: nothing more runs ----
start chores '{"id":"ch-2"}'
poll 100 waiting_for ch-2 sleep
api POST /v1/workflows/ch-2/terminate --data-binary '{"reason":"stuck"}'
check "terminate answers 200 once ended" 200 "$code"
check "with the run, terminated" "terminated stuck" "$(j '.status + " " + .reason')"
api GET /v1/workflows/ch-2/history
check "no cleanup step ran" "first" "$(j '[.events[] | select(.type=="step_completed") | .name] | join(" ")')"
start chores '{"id":"ch-3"}'
poll 100 waiting_for ch-3 sleep
out=$(cli terminate ch-3 2>&1); rc=$?
check "lodestone terminate exits 0" 0 "$rc"
check_contains "and says so" "ch-3 terminated" "$out"
out=$(cli history ch-3)
check_contains "history shows the termination" "workflow_terminated" "$out"

api GET /metrics
check_contains "metrics count cancelled runs" 'lodestone_runs_ended_total{status="cancelled"} 2' "$body"
check_contains "metrics count terminated runs" 'lodestone_runs_ended_total{status="terminated"} 2' "$body"

# ---- a cancel and a terminate are durable once accepted: SIGKILL right after ----
start chores '{"id":"ch-4"}'
start chores '{"id":"ch-5"}'
poll 100 waiting_for ch-4 sleep
poll 100 waiting_for ch-5 sleep
api POST /v1/workflows/ch-4/cancel --data-binary '{"reason":"durable"}'
check "cancel accepted" 202 "$code"
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
start_daemon
result ch-4
api GET /v1/workflows/ch-4
check "after a SIGKILL the accepted cancel still ends the run" "cancelled durable" "$(j '.status + " " + .reason')"
api GET /v1/workflows/ch-4/history
check "and its cleanup ran once" 1 "$(j '[.events[] | select(.type=="step_completed" and .name=="cleanup")] | length')"
api POST /v1/workflows/ch-5/terminate --data-binary '{"reason":"durable"}'
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
start_daemon
result ch-5
api GET /v1/workflows/ch-5
check "after a SIGKILL a terminate stays done" "terminated durable" "$(j '.status + " " + .reason')"

# ---- SIGKILL while a run waits for a signal ----
start approval '{"id":"req-6","input":{"item":"chair"}}'
poll 100 waiting_for req-6 signal
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
start_daemon
poll 100 waiting_for req-6 signal
check "after a SIGKILL the run still waits" "signal approved" "$(j '.waiting.kind + " " + .waiting.name')"
api POST /v1/workflows/req-6/signals/approved --data-binary '{"by":"dave"}'
check "the signal is accepted after the restart" 202 "$code"
result req-6
check "and completes the run" "completed dave" "$(j '.status + " " + .output.approved_by')"
api GET /v1/workflows/req-6/history
check "the reserve step ran once" 1 "$(j '[.events[] | select(.type=="step_completed" and .name=="reserve")] | length')"


e2e_stop "$daemon" 10
e2e_finish
