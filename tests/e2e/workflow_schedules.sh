#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: schedules in a real lodestoned. A workflow file declares
# `schedule = { cron = "@every 1s" }`: runs appear with ids tick@<time>,
# and GET /v1/schedules lists it with its next fire. Schedules made through
# the API and the CLI (create, list, show, rm), the errors (400 with the
# cron parser's message, 404, 409 for a file's schedule), overlap skip
# with a slow workflow (no two of its runs overlap; skips counted in
# /metrics), a SIGKILL of the daemon and a restart 3 s later: catchup "one"
# starts exactly one fire for the missed interval, and no fire id is ever
# started twice; a reload of a file without its schedule removes it.
# usage: tests/e2e/workflow_schedules.sh BUILD_DIR   (from the project root)
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
log=$d/daemon.log
mkdir -p "$d/wf"
cat > "$d/wf/tick.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "tick",
  schedule = { cron = "@every 1s", input = { from = "schedule" } },
  run = function(ctx, input) return { from = input.from } end,
}
LUA
cat > "$d/wf/slow.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "slow",
  run = function(ctx) ctx:sleep("1500ms") return "done" end,
}
LUA

cli() { "$build/bin/lodestone" "$@" --socket "$sock"; }
post_sched() { api POST /v1/schedules -H 'Content-Type: application/json' --data-binary "$1"; }
# Epoch seconds of a fire id NAME@YYYYMMDDTHHMMSSZ.
idt() { local t=${1#*@}; date -u -d "${t:0:8} ${t:9:2}:${t:11:2}:${t:13:2}" +%s; }
# The ids of the runs of type $1, sorted by fire time.
ids_of() { api GET "/v1/workflows?type=$1&limit=1000"; j '.runs[].id' | sort; }
count_of() { ids_of "$1" | grep -c .; }
at_least() { [ "$(count_of "$1")" -ge "$2" ]; }

start_daemon() {
  e2e_lodestoned "$sock" "$log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 || exit 1
  daemon=$E2E_DAEMON
}
start_daemon

# ---- a schedule declared in a workflow file ----
poll 100 at_least tick 2
ids=$(ids_of tick)
check "a file's schedule starts runs" "true" "$([ "$(printf '%s\n' "$ids" | grep -c .)" -ge 2 ] && echo true)"
check "every id is tick@<fire time>" "" "$(printf '%s\n' "$ids" | grep -Ev '^tick@[0-9]{8}T[0-9]{6}Z$')"
first=$(printf '%s\n' "$ids" | head -1)
api GET "/v1/workflows/$first/result?wait=10"
check "a fire's run completes with the schedule's input" "completed schedule" "$(j '.status + " " + .output.from')"
api GET /v1/schedules
check "GET /v1/schedules lists it" "tick tick @every 1s file UTC skip one" \
  "$(j '.schedules[] | select(.name=="tick") | [.name, .workflow, .cron, .source, .timezone, .overlap, .catchup] | join(" ")')"
check_match "with its next fire" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' "$(j '.schedules[] | select(.name=="tick") | .next_fire')"
check_match "and its last run" '^tick@' "$(j '.schedules[] | select(.name=="tick") | .last_run')"
out=$(cli schedule list)
check_match "lodestone schedule list shows it" 'tick +tick +@every 1s +skip +.* file' "$out"
out=$(cli schedule show tick)
check_contains "lodestone schedule show names its source" "source:        file" "$out"
check_contains "and its next fire" "next fire:     20" "$out"

# ---- errors ----
api DELETE /v1/schedules/tick
check "the API cannot delete a file's schedule: 409" 409 "$code"
check_contains "saying to edit the file" "remove \`schedule\` from its workflow.define{}" "$(j .error.message)"
api DELETE /v1/schedules/nope
check "deleting an unknown schedule: 404" 404 "$code"
post_sched '{"name":"tick","workflow":"slow","cron":"@hourly"}'
check "the API cannot replace a file's schedule: 409" 409 "$code"
post_sched '{"name":"bad","workflow":"slow","cron":"61 * * * *"}'
check "a bad cron: 400" 400 "$code"
check "with the parser's message" 'cron "61 * * * *": minute: 61 is out of range 0-59' "$(j .error.message)"
post_sched '{"name":"bad","workflow":"slow","cron":"@daily","timezone":"Mars/Olympus_Mons"}'
check "an unknown timezone: 400" "400" "$code"
check_contains "naming the zone" 'timezone: unknown zone "Mars/Olympus_Mons"' "$(j .error.message)"
# A named zone: the next fire is 09:00 on Berlin's wall clock, whatever
# the offset that day (CET or CEST), and the zone is kept.
post_sched '{"name":"berlin9","workflow":"slow","cron":"0 9 * * *","timezone":"Europe/Berlin"}'
check "a schedule in Europe/Berlin: 201" 201 "$code"
check "keeps its zone" "Europe/Berlin" "$(j .timezone)"
next_local=$(TZ=Europe/Berlin date -d "$(j .next_fire)" '+%H:%M:%S')
check "fires at 09:00 Berlin time" "09:00:00" "$next_local"
api DELETE /v1/schedules/berlin9
check "and goes" "200 true" "$code $(j .deleted)"
post_sched '{"name":"bad","workflow":"slow","cron":"@daily","every":"1h"}'
check "an unknown field: 400 naming it" "400 every: unknown field" "$code $(j .error.message | cut -d'(' -f1 | sed 's/ $//')"
post_sched '{"name":"bad","workflow":"nope","cron":"@daily"}'
check "an unknown workflow type: 404" "404 unknown_type" "$code $(j .error.code)"
post_sched '{bad'
check "a body that is not JSON: 400" 400 "$code"
api PUT /v1/schedules
check "another method: 405" 405 "$code"

# ---- through the API and the CLI ----
out=$(cli schedule create later --workflow slow --cron "0 4 * * *" --catchup none --input '{"n":1}' 2>&1); rc=$?
check "lodestone schedule create exits 0" 0 "$rc"
check_contains "and says when it fires" "created schedule later; next fire" "$out"
api GET /v1/schedules/later
check "the CLI's schedule, as the API shows it" "api 0 4 * * * none 1" "$(j '[.source, .cron, .catchup, (.input.n|tostring)] | join(" ")')"
out=$(cli schedule rm later 2>&1); rc=$?
check "lodestone schedule rm exits 0" "0 deleted schedule later (its runs go on)" "$rc $out"
api GET /v1/schedules/later
check "it is gone" 404 "$code"
out=$(cli schedule show later 2>&1); rc=$?
check "lodestone schedule show of an unknown one exits 1" 1 "$rc"

# ---- overlap skip with a slow workflow ----
post_sched '{"name":"slowpoke","workflow":"slow","cron":"@every 1s"}'
check "POST /v1/schedules creates: 201" 201 "$code"
check "overlap defaults to skip" "skip api" "$(j '.overlap + " " + .source')"
post_sched '{"name":"slowpoke","workflow":"slow","cron":"@every 1s"}'
check "the same definition again: 200" 200 "$code"
completed_slow() {
  api GET "/v1/workflows?type=slow&status=completed&limit=1000"
  [ "$(j '.runs | length')" -ge 2 ]
}
poll 150 completed_slow
check "two slow runs completed" "true" "$(j '.runs | length >= 2')"
# Each run started after the one before it had ended: never two at once.
api GET "/v1/workflows?type=slow&limit=1000"
check "no two slow runs overlapped" "true" \
  "$(j '[.runs | sort_by(.id) | .[] | select(.status=="completed")] as $r
        | [range(1; $r|length) as $i | $r[$i].created_at >= $r[$i-1].updated_at] | all')"
api GET /v1/schedules/slowpoke
check "the skipped fires are counted" "true" "$(j '.fires_skipped >= 1')"
api GET /metrics
check_match "metrics count skipped fires" 'lodestone_schedule_fires_total\{outcome="skipped"\} [1-9]' "$body"
check_match "and started ones" 'lodestone_schedule_fires_total\{outcome="started"\} [1-9]' "$body"
check_contains "and the schedules" "lodestone_schedules 2" "$body"
check "a skip is in the log" "true" \
  "$(grep -q 'schedule slowpoke: fire skipped: run slowpoke@.* is still running (overlap skip)' "$log" && echo true)"
api DELETE /v1/schedules/slowpoke
check "DELETE /v1/schedules/slowpoke: 200" "200 true" "$code $(j .deleted)"

# ---- SIGKILL, 3 s down, restart: catchup one ----
before=$(ids_of tick)
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
# A fire of time T starts at T or later: fires after this second were
# missed while the daemon was down.
killed=$(date +%s)
sleep 3
lines=$(wc -l < "$log")
start_daemon
# The daemon's log lines since the restart (JSON; anything else is skipped).
new_log() { tail -n +"$((lines + 1))" "$log" | jq -rR "fromjson? | $1" 2>/dev/null; }
after_restart() { new_log 'select(.msg=="schedule tick: started tick") | .run' | head -1; }
poll 100 eval '[ -n "$(after_restart)" ]'
catchup=$(after_restart)
missed_line=$(new_log 'select(.msg | test("^schedule tick: [0-9]+ fires? passed over")) | .msg' | head -1)
check_match "after the restart the missed fires are reported" \
  '^schedule tick: [0-9]+ fires passed over \(missed while the daemon was down; catchup one starts the latest\)$' "$missed_line"
nmissed=$(printf '%s' "$missed_line" | sed -E 's/^schedule tick: ([0-9]+) .*/\1/')
check "more than one fire was missed" "true" "$([ "${nmissed:-0}" -ge 2 ] && echo true)"
poll 100 eval '[ "$(ids_of tick | awk -v c="$catchup" "\$0 > c" | grep -c .)" -ge 2 ]'
all=$(ids_of tick)
check "every run listed before the kill is still there" "" \
  "$(comm -23 <(printf '%s\n' "$before") <(printf '%s\n' "$all"))"
gap=$(( $(idt "$catchup") - killed ))
check "the catch-up fire is the latest missed time (3 s+ after the kill)" "true" "$([ "$gap" -ge 3 ] && echo true)"
# Fire times killed+1 .. catch-up were all missed; catchup one starts only
# the last of them.
between=$(for id in $all; do t=$(idt "$id"); [ "$t" -gt "$killed" ] && [ "$t" -le "$(idt "$catchup")" ] && echo "$id"; done)
check "exactly one fire was started for the missed interval" "$catchup" "$between"
next=$(printf '%s\n' "$all" | awk -v c="$catchup" '$0 > c' | head -1)
check_match "then fires go on on schedule" '^tick@[0-9]{8}T[0-9]{6}Z$' "$next"
check "no fire id appears twice" "" "$(printf '%s\n' "$all" | uniq -d)"
api GET "/v1/workflows/$catchup/history"
check "the catch-up run started once" 1 "$(j '[.events[] | select(.type=="workflow_started")] | length')"
api GET /v1/schedules/tick
check "the schedule counts the missed fires" "true" "$(j '.fires_missed >= 2')"

# ---- a reload of the file without its schedule removes it ----
cat > "$d/wf/tick.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "tick", run = function() return 1 end }
LUA
kill -HUP "$daemon"
gone() { api GET /v1/schedules/tick; [ "$code" = 404 ]; }
poll 100 gone
check "SIGHUP with the schedule removed from the file deletes it" 404 "$code"
n1=$(count_of tick)
sleep 1.5
check "and no more fires start" "$n1" "$(count_of tick)"

e2e_stop "$daemon" 10
check "lodestoned stops cleanly" 0 "$?"
e2e_finish
