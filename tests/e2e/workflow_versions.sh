#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: each run is pinned to the workflow source that started it.
# A run sleeps in version 1 of a file; the file is edited (another step)
# and reloaded: new runs use version 2, the sleeping run finishes with
# version 1's code, even across a SIGKILL and restart, and even once the
# file is gone; lodestone types / list show the versions and the runs each
# still has.
# usage: tests/e2e/workflow_versions.sh BUILD_DIR   (from the project root)
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
write_v() { # $1 version label, $2 step name
  cat > "$d/wf/deploy.lua" <<LUA
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "deploy",
  run = function(ctx, input)
    local a = ctx:step("$2", function() return "$1" end)
    ctx:sleep(input and input.wait or "50ms")
    return { first = a, code = "$1" }
  end,
}
LUA
}
write_v v1 build

sleeping() { api GET "/v1/workflows/$1"; [ "$(j .waiting.kind)" = sleep ]; }
types_version() { api GET /v1/workflow-types; j '.types[] | select(.name=="deploy") | .version'; }
cli() { "$build/bin/lodestone" "$@" --socket "$sock"; }
start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 \
    || exit 1
  daemon=$E2E_DAEMON
}
start_daemon

v1=$(types_version)
check_match "the loaded file has a version" '^[0-9a-f]{16}$' "$v1"
api POST /v1/workflows/deploy --data-binary '{"id":"old","input":{"wait":"4s"}}'
check "a run starts pinned to it" "$v1" "$(j .version)"
poll 100 sleeping old

write_v v2 compile
kill -HUP "$daemon"
changed() { [ "$(types_version)" != "$v1" ]; }
poll 100 changed
v2=$(types_version)
check "after the edit and SIGHUP the type has a new version" "true" "$([ -n "$v2" ] && [ "$v2" != "$v1" ] && echo true)"
api POST /v1/workflows/deploy --data-binary '{"id":"new"}'
check "a new run is pinned to the new version" "$v2" "$(j .version)"
result new
check "and runs the new code" "completed v2 v2" "$(j '.status + " " + .output.first + " " + .output.code')"
api GET /v1/workflow-types
check "the type counts the old version's unfinished run" 1 "$(j ".types[] | select(.name==\"deploy\") | .runs[\"$v1\"]")"
out=$(cli types)
check_contains "lodestone types shows the older version's runs" "$v1=1" "$out"
out=$(cli list --type deploy)
check_contains "lodestone list shows each run's version" "$v1" "$(printf '%s\n' "$out" | grep '^old ')"

# SIGKILL while the old run sleeps; the file now has version 2 only.
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
start_daemon
result old
check "the old run completes with its own version's code" "completed v1 v1" "$(j '.status + " " + .output.first + " " + .output.code')"
api GET /v1/workflows/old/history
check "no non-determinism: its steps are version 1's" "build" "$(j '[.events[] | select(.type=="step_completed") | .name] | join(" ")')"

# A run whose file is gone still finishes from the kept source.
write_v v3 package
kill -HUP "$daemon"
v2_gone() { [ "$(types_version)" != "$v2" ]; }
poll 100 v2_gone
api POST /v1/workflows/deploy --data-binary '{"id":"orphan","input":{"wait":"1s"}}'
poll 100 sleeping orphan
rm "$d/wf/deploy.lua"
kill -HUP "$daemon"
gone() { api GET /v1/workflow-types; [ "$(j '[.types[] | select(.name=="deploy")] | length')" = 0 ]; }
poll 100 gone
result orphan
check "a run of a deleted file finishes from its kept source" "completed v3" "$(j '.status + " " + .output.code')"
api POST /v1/workflows/deploy --data-binary '{}'
check "while new runs of the deleted type are refused" 404 "$code"

e2e_stop "$daemon" 10
e2e_finish
