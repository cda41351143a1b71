#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: on_exhausted = "pause". A step whose downstream is down uses
# up its attempts and the run pauses instead of failing (visible in the run,
# the list, `lodestone list --status paused` and /metrics); a resume while
# it is still down pauses it again after a new round of attempts; a SIGKILL
# while paused keeps it paused; once the downstream is fixed a resume
# completes it, each completed step having run once.
# usage: tests/e2e/workflow_pause.sh BUILD_DIR   (from the project root)
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
cat > "$d/wf/sync.lua" <<'LUA'
-- The "downstream" is up once the secret downstream_token is set.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "sync",
  on_exhausted = "pause",
  retry = { initial_interval = "200ms", max_attempts = 2, jitter = 0 },
  run = function(ctx)
    ctx:step("prepare", function() return "ok" end)
    return ctx:step("push", function(s)
      local ok, token = pcall(s.secret, s, "downstream_token")
      if not ok then error("downstream unavailable") end
      return { pushed = #token }
    end)
  end,
}
LUA

paused() { api GET "/v1/workflows/$1"; [ "$(j .waiting.kind)" = paused ]; }
failed_attempts() { api GET "/v1/workflows/$1/history"; j '[.events[] | select(.type=="step_failed")] | length'; }
cli() { "$build/bin/lodestone" "$@" --socket "$sock"; }
start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 \
    || exit 1
  daemon=$E2E_DAEMON
}
start_daemon

api POST /v1/workflows/sync --data-binary '{"id":"s-1"}'
poll 100 paused s-1
check "the run pauses instead of failing" "running paused push" "$(j '.status + " " + .waiting.kind + " " + .waiting.name')"
check "after its two attempts" 2 "$(failed_attempts s-1)"
api GET /v1/workflows/s-1/history
check "the last failure says paused" true "$(j '[.events[] | select(.type=="step_failed")] | last | .paused')"
out=$(cli list --status paused)
check_contains "lodestone list --status paused shows it" "s-1" "$out"
check_contains "as running (paused)" "running (paused)" "$out"
api GET '/v1/workflows?status=paused'
check "GET /v1/workflows?status=paused lists it" "s-1" "$(j '[.runs[].id] | join(" ")')"
check_contains "lodestone show says how to resume" "paused: step push used up its attempts (lodestone resume)" "$(cli show s-1)"
api GET /metrics
check_contains "metrics count paused runs" "lodestone_runs_paused 1" "$body"

# Resumed while still down: a new round of attempts, then paused again.
out=$(cli resume s-1 2>&1); rc=$?
check "lodestone resume exits 0" 0 "$rc"
wait_four() { [ "$(failed_attempts s-1)" = 4 ] && paused s-1; }
poll 100 wait_four
check "a resume gives the step a new round of attempts" 4 "$(failed_attempts s-1)"
check "and it pauses again" paused "$(j .waiting.kind)"

# Eight resumes at once: one is taken, the others are refused (409), and
# the history gains one resume, not eight.
# (One curl, eight transfers in parallel: they arrive within milliseconds,
# well inside the 200 ms the new round takes to pause again.)
urls=()
for i in 1 2 3 4 5 6 7 8; do urls+=(-o "$d/resume-$i.body" http://lodestoned/v1/workflows/s-1/resume); done
curl -s -Z --parallel-max 8 --unix-socket "$sock" -X POST -w '%{http_code}\n' "${urls[@]}" > "$d/resume.codes"
codes=$(sort "$d/resume.codes" | uniq -c | awk '{printf "%s*%s ", $1, $2}')
check "eight resumes at once: one 202, seven 409" "1*202 7*409 " "$codes"
refusals=$(cat "$d"/resume-*.body | jq -r '.error.message // empty' |
           grep -cE '^run s-1 is (already resuming|not paused)$')
check "the refusals say it is already resuming or no longer paused" 7 "$refusals"
wait_six() { [ "$(failed_attempts s-1)" = 6 ] && paused s-1; }
poll 100 wait_six
check "one new round of attempts" 6 "$(failed_attempts s-1)"
api GET /v1/workflows/s-1/history
check "one more resume in the history" 2 "$(j '[.events[] | select(.type=="resumed")] | length')"

# SIGKILL while paused.
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
start_daemon
poll 100 paused s-1
check "after a SIGKILL it is still paused" paused "$(j .waiting.kind)"

printf '%s' "tok-123" | cli secret set downstream_token 2>/dev/null
api POST /v1/workflows/s-1/resume
check "resume through the API: 202" 202 "$code"
result s-1
check "once fixed, a resume completes the run" "completed 7" "$(j '.status + " " + (.output.pushed|tostring)')"
api GET /v1/workflows/s-1/history
check "the prepare step ran once" 1 "$(j '[.events[] | select(.type=="step_completed" and .name=="prepare")] | length')"
check "the resumes are in history" 3 "$(j '[.events[] | select(.type=="resumed")] | length')"
api POST /v1/workflows/s-1/resume
check "resuming a finished run: 409" 409 "$code"
api POST /v1/workflows/sync --data-binary '{"id":"s-2"}'
result s-2
api POST /v1/workflows/nope/resume
check "resuming an unknown run: 404" 404 "$code"

e2e_stop "$daemon" 10
e2e_finish
