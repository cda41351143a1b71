#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: workflow code that is wrong, as its author may write it by
# mistake. Each case must fail its own run (or its step) with an error
# that says what was wrong, never crash or hang lodestoned, and leave the
# other runs going: durable calls from a coroutine of the workflow's own,
# runaway code that catches its own timeout, out-of-range durations, odd
# error values, huge error messages and custom statuses.
# usage: tests/e2e/workflow_authoring.sh BUILD_DIR   (from the project root)
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

# wf NAME BODY: a workflow NAME whose run(ctx, input) is BODY.
wf() {
  cat > "$d/wf/$1.lua" <<LUA
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "$1",
  step_timeout = "1s",
  retry = { initial_interval = "10ms", max_attempts = 2, jitter = 0 },
  run = function(ctx, input)
$2
  end,
}
LUA
}

wf ok 'return ctx:step("s", function() return "fine" end)'
wf sleep_in_co 'coroutine.wrap(function() ctx:sleep(0.05) end)() return "went on"'
wf steps_in_co 'return coroutine.wrap(function()
  ctx:step("a", function() return 1 end)
  return ctx:step("b", function() return 2 end)
end)()'
wf step_catches 'return ctx:step("s", function()
  while true do pcall(function() while true do end end) end
end)'
wf run_catches 'while true do pcall(function() while true do end end) end'
wf co_catches 'return ctx:step("s", function()
  while true do coroutine.resume(coroutine.create(function() while true do end end)) end
end)'
cat > "$d/wf/stuck.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "stuck",
  step_timeout = "1h",
  run = function(ctx, input)
    return ctx:step("s", function()
      while true do pcall(function() while true do end end) end
    end)
  end,
}
LUA
wf sleep_huge 'ctx:sleep(input.s) return "woke"'
wf wait_huge 'return ctx:wait_signal("go", { timeout = input.s })'
wf timeout_huge 'return ctx:step("s", function() return 1 end, { timeout = input.s })'
wf raises 'local v = ({
  table = { code = 42 },
  bad_tostring = setmetatable({}, { __tostring = function() error("boom", 0) end }),
  odd_code = { message = "declined", code = {} },
})[input.what]
if input.where == "step" then return ctx:step("s", function() error(v) end) end
error(v)'
wf saga_nil 'local saga = ctx:saga()
saga:add(function() error(nil) end)
saga:compensate()
return "compensated"'
wf raises_big 'local big = string.rep(input.c, input.n)
if input.where == "step" then return ctx:step("s", function() error(big, 0) end) end
error(big, 0)'
wf big_status 'ctx:set_status(string.rep("s", input.n)) return "set"'
wf clobbers 'type = "order" -- a local forgotten
error, tostring, pcall, coroutine = 1, 2, 3, 4
leaked = "from clobbers"
return ctx:step("s", function() return "survived" end)'
wf reads 'return ctx:step("s", function() return leaked or "nothing leaked" end)'
# A file's own global function, named through _G (it worked before files
# had globals of their own).
cat > "$d/wf/by_g.lua" <<'LUA'
local workflow = require "lodestone.workflow"
function charge_fn() return "charged" end
return workflow.define { name = "by_g", run = function(ctx)
  return ctx:step("charge", _G["charge_fn"])
end }
LUA
wf guards 'return ctx:step("s", function()
  if input.what == "os.exit" then os.exit(3) end
  if input.what == "debug.sethook" then debug.sethook() while true do end end
  if input.what == "jit.on" then jit.on() local x = 0 while true do x = x + 1 end end
end)'
wf child_in_co 'return coroutine.wrap(function() return ctx:child("ok", nil, { id = "child-" .. ctx.id }) end)()'

# Files that do not load: each is listed with why, the others run.
printf 'error({ reason = "bad" })\n' > "$d/wf/load_table.lua"
printf 'return 42\n' > "$d/wf/load_number.lua"
sed 's/name = "ok"/name = "ok", description = "a second ok"/' "$d/wf/ok.lua" > "$d/wf/zz_dup.lua"
cat > "$d/wf/not_json.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "not_json", -- the default retry policy: no limit on attempts
  run = function(ctx, input)
    return ctx:step("s", function()
      if input.what == "function" then return { f = print } end
      if input.what == "cycle" then local t = {} t.t = t return t end
      if input.what == "nan" then return { x = 0 / 0 } end
      if input.what == "mixed" then return { 1, 2, a = 3 } end
      return string.char(255)
    end)
  end,
}
LUA
wf hog 'return ctx:step("s", function()
  local function fill()
    local t = {}
    for i = 1, input.mb * 16 do t[i] = string.rep("m", 65536 - 8) .. string.format("%08d", i) end
    return #t
  end
  if input.catch then
    local ok, n = pcall(fill)
    return ok and n or "caught: " .. tostring(n)
  end
  return fill()
end)'

# A limit that is not a number of MiB stops lodestoned at start; there is
# none unless set (0 says so too).
for v in "" 64x -1; do
  out=$(LODESTONE_LUA_MEMORY_MB=$v timeout 20 "$build/bin/lodestoned" --data "$d/data-bad" \
    --workflows "$d/wf" 2>&1)
  check "LODESTONE_LUA_MEMORY_MB=\"$v\" stops lodestoned (exit 2)" 2 $?
  check_contains "and says why" "LODESTONE_LUA_MEMORY_MB: must be a whole number of MiB" "$out"
done
# (a limit on each worker state that the memory cases can reach fast)
export LODESTONE_LUA_MEMORY_MB=64
e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 1 \
  --max-payload 100000 || exit 1
daemon=$E2E_DAEMON

# alive NAME: lodestoned still runs and completes a run.
n_ok=0
alive() {
  n_ok=$((n_ok + 1))
  start ok "{\"id\":\"ok-$n_ok\"}"
  result "ok-$n_ok"
  check "$1: lodestoned still runs other runs" "completed fine" "$(j '.status + " " + .output')"
}

# ---- files that do not load ----
api GET /v1/workflow-types
load_error() { j ".errors[] | select(.file | endswith(\"/$1\")) | .error | split(\"\\n\")[0]"; }
check "a file raising a table is listed, saying so" "the file raised a table, not a string" \
  "$(load_error load_table.lua)"
check "a file returning a number is listed" "$d/wf/load_number.lua: does not return workflow.define{...}" \
  "$(load_error load_number.lua)"
check "a second file for a type is listed" \
  "$d/wf/zz_dup.lua: workflow \"ok\" is already defined by $d/wf/ok.lua" "$(load_error zz_dup.lua)"
alive "with files that do not load"
# A top level that catches its own timeout: the load (here a reload) hung.
printf 'while true do pcall(function() while true do end end) end\n' > "$d/wf/load_loops.lua"
kill -HUP "$daemon"
listed() { api GET /v1/workflow-types; [ -n "$(load_error load_loops.lua)" ]; }
poll 300 listed
check "a file whose top level loops is stopped after 5 s" "timed out after 5000 ms" \
  "$(load_error load_loops.lua)"
alive "after a reload with a file that loops"
# A newcomer that declares a workflow another file serves is charged,
# though its name sorts first; a schedule in a zone ICU does not know
# fails its file, as a bad cron text does.
rm "$d/wf/load_loops.lua"
sed 's/"fine"/"taken over"/' "$d/wf/ok.lua" > "$d/wf/aa_dup.lua"
cat > "$d/wf/mars.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "mars",
  schedule = { cron = "@hourly", timezone = "Mars/Olympus_Mons" },
  run = function() return 1 end,
}
LUA
kill -HUP "$daemon"
listed() { api GET /v1/workflow-types; [ -n "$(load_error aa_dup.lua)" ]; }
poll 300 listed
check "a newcomer declaring a served workflow is the one charged" \
  "$d/wf/aa_dup.lua: workflow \"ok\" is already defined by $d/wf/ok.lua" "$(load_error aa_dup.lua)"
check "and the file that served it still does" "$d/wf/ok.lua" "$(j '.types[] | select(.name == "ok") | .file')"
check "a schedule in an unknown zone fails its file" \
  "$d/wf/mars.lua: workflow.define: schedule.timezone: unknown zone \"Mars/Olympus_Mons\" (an IANA name such as \"Europe/Berlin\", or \"UTC\")" \
  "$(load_error mars.lua)"
check "whose workflow is not served" "" "$(j '.types[] | select(.name == "mars") | .name')"
alive "after a reload with a newcomer for a served workflow"
rm "$d/wf/aa_dup.lua" "$d/wf/mars.lua"

# ---- durable calls from a coroutine the workflow made ----
# The yield of a wait went to the author's coroutine: the code went on past
# the wait and ended the run while the wait's write was in flight, which
# handed the committer a second batch (lodestoned crashed).
start sleep_in_co '{"id":"co-1"}'
result co-1
check "ctx:sleep in a coroutine of the workflow's own fails the run" failed "$(j .status)"
check_contains "saying why" "ctx:sleep inside a coroutine the workflow made" "$(j .error)"
start steps_in_co '{"id":"co-2"}'
result co-2
check "ctx:step in one fails the run" failed "$(j .status)"
check_contains "saying why" "ctx:step inside a coroutine the workflow made" "$(j .error)"
api GET /v1/workflows/co-2/history
check "and runs no step" 0 "$(j '[.events[] | select(.type == "step_started")] | length')"
start child_in_co '{"id":"co-3"}'
result co-3
check "ctx:child in one fails the run" failed "$(j .status)"
check_contains "saying why" "ctx:child inside a coroutine the workflow made" "$(j .error)"
api GET /v1/workflows/child-co-3
check "before it starts the child" 404 "$code"
alive "after durable calls in a coroutine"

# ---- runaway code that catches its own timeout ----
# The deadline's error was caught by the code's pcall (or coroutine.resume)
# and the loop went on: the run held its worker for ever, past its step
# timeout, a terminate and lodestoned's stop. With one worker, one such
# run stopped every other run.
start step_catches '{"id":"rc-1"}'
start run_catches '{"id":"rc-2"}'
start co_catches '{"id":"rc-3"}'
result rc-1
check "a step that catches its timeout still times out" failed "$(j .status)"
check_contains "and says so" 'step "s" failed on attempt 2: timed out after 1000 ms' "$(j .error)"
result rc-2
check "run code that catches its timeout still times out" "failed timed out after 1000 ms" \
  "$(j '.status + " " + .error')"
result rc-3
check "so does one that catches it with coroutine.resume" failed "$(j .status)"
check_contains "saying so" "timed out after 1000 ms" "$(j .error)"
alive "after runaway code"
start stuck '{"id":"rc-4"}'
step_started() { api GET "/v1/workflows/$1/history"; [ "$(j '[.events[].type] | index("step_started")')" != null ]; }
poll 100 step_started rc-4
api POST /v1/workflows/rc-4/terminate -H 'Content-Type: application/json' --data-binary '{"reason":"stuck"}'
check "a terminate ends a step that catches its interruption" "200 terminated" "$code $(j .status)"
alive "after the terminate"

# ---- durations out of range ----
# A number of seconds had no upper bound (a string has 100 years): 1e300
# overflowed its conversion to ms (undefined; the sleep ended at once), and
# 4e9 s slept for 126 years. Longer than a century is now a century: a
# wait "for ever" written as 1e10 s, as runs recorded before may hold.
sleeping() { api GET "/v1/workflows/$1"; [ "$(j .waiting.kind)" = sleep ]; }
signalled() { api GET "/v1/workflows/$1"; [ "$(j .waiting.kind)" = signal ]; }
for s in 1e300 4e9; do
  start sleep_huge "{\"id\":\"sleep_huge-$s\",\"input\":{\"s\":$s}}"
  poll 100 sleeping "sleep_huge-$s"
  check "sleep_huge($s s) sleeps (a century at most)" "running sleep" \
    "$(j '.status + " " + .waiting.kind')"
  start wait_huge "{\"id\":\"wait_huge-$s\",\"input\":{\"s\":$s}}"
  poll 100 signalled "wait_huge-$s"
  api POST "/v1/workflows/wait_huge-$s/signals/go" -H 'Content-Type: application/json' --data '"here"'
  result "wait_huge-$s"
  check "wait_huge($s s) waits for its signal" "completed here" "$(j '.status + " " + .output')"
  start timeout_huge "{\"id\":\"timeout_huge-$s\",\"input\":{\"s\":$s}}"
  result "timeout_huge-$s"
  check "timeout_huge($s s) runs its step" "completed 1" "$(j '.status + " " + (.output|tostring)')"
done
start sleep_huge '{"id":"sleep-ok","input":{"s":0.01}}'
result sleep-ok
check "a sleep in range still sleeps" "completed woke" "$(j '.status + " " + .output')"

# ---- error values that are not strings ----
# A table showed as its address ("table: 0x7f..."), different on every
# replay; nil as "nil"; a __tostring that raised made the run's end fail
# with "bad argument #2 to 'fail'"; a code that is not a string made the
# step's failure unrecordable; a compensation raising nil was lost.
raised() { # ID WHAT WHERE EXPECTED-ERROR
  start raises "{\"id\":\"$1\",\"input\":{\"what\":\"$2\",\"where\":\"$3\"}}"
  result "$1"
  check "error($2) in $3: the run fails with a message that says what was raised" \
    "failed $4" "$(j '.status + " " + .error')"
}
raised ev-1 table step 'step "s" failed on attempt 2: error value (a table, not a string): {"code":42}'
raised ev-2 table run 'error value (a table, not a string): {"code":42}'
raised ev-3 nil step 'step "s" failed on attempt 2: error(nil): the code raised nil, with no message'
raised ev-4 nil run 'error(nil): the code raised nil, with no message'
raised ev-5 bad_tostring step 'step "s" failed on attempt 2: an error value (a table) whose __tostring failed: boom'
raised ev-6 bad_tostring run 'an error value (a table) whose __tostring failed: boom'
raised ev-7 odd_code step 'step "s" failed on attempt 2: declined'
api GET /v1/workflows/ev-1/history
check "each attempt's failure is recorded with that message" \
  'error value (a table, not a string): {"code":42}' "$(j '[.events[] | select(.type == "step_failed")][0].error')"
start saga_nil '{"id":"ev-8"}'
result ev-8
check "a compensation that raises nil still fails the compensation" \
  "failed error(nil): the code raised nil, with no message" "$(j '.status + " " + .error')"
alive "after odd error values"

# ---- huge error messages ----
# Every attempt's failure kept the whole message (megabytes per event), and
# the run's end carried it in its traceback, over --max-payload: the end
# itself was refused and the run failed with 'the payload of  is 5000209
# bytes', the step's message lost.
start raises_big '{"id":"big-1","input":{"c":"y","n":3000000,"where":"step"}}'
result big-1
check "a step raising 3 MB fails the run" failed "$(j .status)"
check_match "with the message's start and what was cut" \
  '^step "s" failed on attempt 2: y{8000,8192} \.\.\. \([0-9]+ bytes cut\)$' "$(j .error)"
api GET /v1/workflows/big-1/history
check "each attempt's failure keeps at most 8 KiB of it" "2 true" \
  "$(j '[.events[] | select(.type == "step_failed") | .error | length <= 8192] | (length | tostring) + " " + (all | tostring)')"
check "the run's end keeps a traceback" true "$(j '.events[-1].traceback | length > 0')"
start raises_big '{"id":"big-2","input":{"c":"é","n":2000000,"where":"run"}}'
result big-2
check "run code raising 4 MB fails the run" failed "$(j .status)"
check_match "cut at a character, saying how much" '^(é){4000,4096} \.\.\. \([0-9]+ bytes cut\)$' "$(j .error)"
alive "after huge error messages"

# ---- a custom status over the payload limit ----
# It was stored whatever its size (every other payload is bounded).
start big_status '{"id":"st-1","input":{"n":200000}}'
result st-1
check "ctx:set_status over --max-payload fails the run" failed "$(j .status)"
check_contains "naming the limit" \
  "the custom status is 200002 bytes, over the payload limit of 100000 bytes (lodestoned --max-payload)" \
  "$(j .error)"
api GET /v1/workflows/st-1
check "and sets no status" null "$(j .custom_status)"
start big_status '{"id":"st-2","input":{"n":1000}}'
result st-2
check "one within it is set" "completed set" "$(j '.status + " " + .output')"
api GET /v1/workflows/st-2
check "and shown" 1000 "$(j '.custom_status | length')"
alive "after a custom status over the limit"

# ---- globals set by mistake ----
# A global the code set (type = "order") replaced the one of every file in
# the worker's state, lodestone.workflow's too: that run and every later
# run on the worker failed ('attempt to call global type'), until a restart.
# (One worker: every run shares the state.)
start clobbers '{"id":"gl-1"}'
result gl-1
check "a workflow that sets globals named like Lua's still runs" "completed survived" \
  "$(j '.status + " " + .output')"
start reads '{"id":"gl-2"}'
result gl-2
check "and its globals stay its own" "completed nothing leaked" "$(j '.status + " " + .output')"
start by_g '{"id":"gl-3"}'
result gl-3
check "_G names the file's own globals" "completed charged" "$(j '.status + " " + .output')"
alive "after globals set by mistake"

# ---- calls that would undo the guards ----
# os.exit in a step ended lodestoned (and, the step run again by the
# recovery, every restart after it); debug.sethook() removed the hook that
# enforces deadlines and jit.on() compiled the loop, where the hook does
# not run: either loop then held its worker for ever.
for what in os.exit debug.sethook jit.on; do
  start guards "{\"id\":\"g-$what\",\"input\":{\"what\":\"$what\"}}"
  result "g-$what"
  check "$what in a step fails the step" failed "$(j .status)"
  check_contains "saying it is not allowed" "$what is not allowed in workflow code" "$(j .error)"
done
alive "after os.exit, debug.sethook and jit.on"

# ---- step results that cannot be recorded ----
# They were retried as a failed attempt, and with the default policy (no
# limit on attempts) for ever: the run never ended.
nj() { # WHAT EXPECTED-ERROR
  start not_json "{\"id\":\"nj-$1\",\"input\":{\"what\":\"$1\"}}"
  result "nj-$1"
  check "a step returning $1 fails the run at its first attempt" \
    "failed step \"s\" failed on attempt 1: step result is not JSON: json.encode: $2" \
    "$(j '.status + " " + .error')"
}
nj function 'at $.f: cannot encode a function'
nj cycle 'at $.t: cycle: a table contains itself'
nj nan 'at $.x: cannot encode NaN'
nj mixed 'at $: table mixes string keys and array indices'
nj bytes 'at $: string is not valid UTF-8'
alive "after step results that cannot be recorded"

# ---- code that allocates without end ----
# Nothing bounded a state's memory: lodestoned grew until the kernel killed
# it, and the recovery ran the same step again at the next start. (Here 400
# MiB, against a limit of 64 MiB, so that the old code ends too.)
start hog '{"id":"mem-1","input":{"mb":400}}'
result mem-1
check "a step holding more than LODESTONE_LUA_MEMORY_MB fails" failed "$(j .status)"
check_contains "saying so" \
  "out of memory: the workflow's Lua state holds over 64 MiB (LODESTONE_LUA_MEMORY_MB)" "$(j .error)"
start hog '{"id":"mem-2","input":{"mb":400,"catch":true}}'
result mem-2
check "even when it catches the error" failed "$(j .status)"
check_contains "saying so" "out of memory" "$(j .error)"
start hog '{"id":"mem-3","input":{"mb":8}}'
result mem-3
check "the memory is given back: a step within the limit runs" "completed 128" \
  "$(j '.status + " " + (.output | tostring)')"
alive "after code that allocates without end"

e2e_stop "$daemon" 10
check "lodestoned exits cleanly" 0 "$?"
e2e_finish
