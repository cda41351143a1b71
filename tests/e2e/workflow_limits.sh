#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: the published limits (lodestoned --max-payload, --max-events,
# --max-steps, --max-depth): a start, a signal or a step result over the
# payload limit, a run past the events or steps limit, a workflow that
# starts itself without end; each refused or failed with an error naming
# the limit and the option that raises it. Step and signal names a
# workflow chooses: at most 200 bytes of UTF-8 without control characters,
# checked where they are first recorded (a chain recorded under a higher
# --max-depth still ends). Workflow type names: 1 to 200 letters, digits
# and - _ . :, checked where a file is loaded and where a run starts. Log
# lines (ctx:log, s:log): cut after 8 KiB. A limit crossed fails the run even when its code
# catches the error; depths survive a restart after retention.
# usage: tests/e2e/workflow_limits.sh BUILD_DIR   (from the project root)
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
cat > "$d/wf/big.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "big",
  run = function(ctx, input)
    if input.wait then ctx:wait_signal("go") end
    if input.out then return string.rep("y", input.out) end
    return ctx:step("make", function() return string.rep("x", input.size) end)
  end,
}
LUA
cat > "$d/wf/many.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "many",
  run = function(ctx, input)
    for i = 1, input.n do ctx:step("s" .. i, function() return i end) end
    return input.n
  end,
}
LUA

# (line 4 and line 5: the calls a refusal names)
cat > "$d/wf/named.lua" <<'LUA'
local workflow = require "lodestone.workflow"
local names = { big = string.rep("x", 1e7), long = string.rep("x", 201), ff = "a\255b", nul = "a\0b", del = "a\127b", c1 = "a\194\133b", slash = "a/b", dots = ".." }
return workflow.define { name = "named", run = function(ctx, input)
  local a = ctx:step(input.step and names[input.what] or "ok", function() return "a" end)
  local b = input.signal and ctx:wait_signal(names[input.what], { timeout = input.timeout })
  return { a, b }
end }
LUA
cat > "$d/wf/rec.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "rec", run = function(ctx, n)
  n = n or 0
  local v = ctx:child("rec", n + 1)
  return v
end }
LUA
cat > "$d/wf/chain.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "chain", run = function(ctx, n)
  if n == 4 then return ctx:wait_signal("go") end
  local v = ctx:child("chain", n + 1, { id = ctx.id .. "-" .. (n + 1) })
  return v
end }
LUA
cat > "$d/wf/manyp.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "manyp", run = function(ctx, input)
  for i = 1, input.n do pcall(ctx.step, ctx, "s" .. i, function() return i end) end
  return input.n
end }
LUA
cat > "$d/wf/drec.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "drec", run = function(ctx, n)
  n = n or 0
  if n == 2 then ctx:wait_signal("go") end
  ctx:start_child("drec", n + 1, { id = "drec-" .. (n + 1), detached = true })
  return n
end }
LUA

# Workflow type names: 1 to 200 letters, digits and - _ . :, not "." or
# "..". A file with another name is a load error naming the file and the
# field; lodestoned took any name a file gave (100 KB, "a/b" set after
# workflow.define), and crashed on one that was not a string.
wf_named() { # FILE NAME_EXPR [AFTER]: a workflow named NAME_EXPR (Lua), then AFTER
  cat > "$d/wf/$1" <<LUA
local workflow = require "lodestone.workflow"
local d = workflow.define { name = $2, run = function(ctx, input) return ctx:child(input or "a/b") end }
${3:-}
return d
LUA
}
wf_named type201.lua 'string.rep("t", 201)'
wf_named typebig.lua 'string.rep("t", 1e5)'
wf_named typedots.lua '".."'
wf_named typeslash.lua '"after"' 'd.name = "a/b\1"'
wf_named typetable.lua '"after2"' 'd.name = {}'
wf_named type200.lua 'string.rep("t", 200)'
cat > "$d/wf/kid.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "kid", run = function(ctx, input) return "kid" end }
LUA

cat > "$d/wf/logs.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "logs", run = function(ctx, input)
  local big = "a" .. string.rep("\195\169", input.n) -- "a", then 2-byte characters
  ctx:log(big)
  ctx:step("s", function(s) s:log("step", big) end)
  ctx:log("x\0y")
  ctx:log("bytes \255 and \192\128 are not UTF-8")
  return #big
end }
LUA

# --max-depth takes 1 to 1000.
for v in 0 1001 x; do
  out=$(timeout 20 "$build/bin/lodestoned" --data "$d/data-bad" --workflows "$d/wf" --max-depth "$v" 2>&1)
  check "--max-depth $v stops lodestoned (exit 2)" "2 lodestoned: --max-depth: expected 1 to 1000, got \"$v\"" "$? $out"
done

e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 \
  --max-payload 1000 --max-events 40 --max-steps 12 --max-depth 3 || exit 1
daemon=$E2E_DAEMON

# ---- names a workflow chooses ----
# A step name of 10 MB was recorded, in each of its events (the history
# of such a run was 20 MB, its JSON too), under no limit: --max-payload
# bounds payloads, not names. Bytes that are not UTF-8 showed as U+FFFD,
# and a signal wait with a NUL in its name recorded a timer for its name
# cut at the NUL.
for what in big long ff nul del c1; do
  start named "{\"id\":\"n-$what\",\"input\":{\"step\":true,\"what\":\"$what\"}}"
  result "n-$what"
  check "a step name ($what) that is not 1 to 200 bytes of text fails the run" failed "$(j .status)"
  err_n=$(j .error)
  api GET "/v1/workflows/n-$what/history"
  check "before anything is recorded" "0 true" \
    "$(j '[.events[] | select(.type == "step_started")] | length') $([ ${#body} -lt 20000 ] && echo true)"
  case $what in
    big) want="ctx:step: step name: must be 1 to 200 bytes, got 10000000" ;;
    long) want="ctx:step: step name: must be 1 to 200 bytes, got 201" ;;
    ff) want="ctx:step: step name: byte 2 (0xff) is not valid UTF-8" ;;
    nul|del|c1) want="ctx:step: step name: control character at byte 2" ;;
  esac
  check_contains "naming the call, its line and what is wrong" "/named.lua:4: $want" "$err_n"
done
for what in ff nul del c1 slash dots; do
  for timeout in none 1h; do
    opt=; [ "$timeout" = none ] || opt=",\"timeout\":\"$timeout\""
    start named "{\"id\":\"s-$what-$timeout\",\"input\":{\"signal\":true,\"what\":\"$what\"$opt}}"
    result "s-$what-$timeout"
    check "a signal wait on a name no signal can have ($what, timeout $timeout) fails the run" failed "$(j .status)"
    check_contains "naming the call and its line" "/named.lua:5: ctx:wait_signal: signal name: " "$(j .error)"
    api GET "/v1/workflows/s-$what-$timeout/history"
    check "and records no timer" 0 "$(j '[.events[] | select(.type == "timer_started")] | length')"
  done
done
start named '{"id":"n-ok","input":{}}'
result n-ok
check "a step with a name within the limit runs" 'completed ["a"]' "$(j '.status + " " + (.output | tostring)')"
data_kb=$(du -sk "$data" | cut -f1)
check "and the store did not grow by the names refused" true "$([ "$data_kb" -lt 5000 ] && echo true || echo false)"

# ---- workflow type names ----
t200=$(printf 't%.0s' $(seq 200))
api GET /v1/workflow-types
load_error() { j ".errors[] | select(.file | endswith(\"/$1\")) | .error | split(\"\\n\")[0]"; }
rule="is not allowed; use letters, digits and - _ . :"
check "a name of 201 characters does not load, naming the file, the line and the field" \
  "$d/wf/type201.lua:2: workflow.define: name: must be 1 to 200 characters, got 201" "$(load_error type201.lua)"
check "nor one of 100 KB" "$d/wf/typebig.lua:2: workflow.define: name: must be 1 to 200 characters, got 100000" \
  "$(load_error typebig.lua)"
check "nor \"..\"" "$d/wf/typedots.lua:2: workflow.define: name: \"..\" is not allowed: a URL reads it as a path step" \
  "$(load_error typedots.lua)"
check "nor a name set after workflow.define" \
  "$d/wf/typeslash.lua: workflow.define: name: character 2 (0x2f) $rule" "$(load_error typeslash.lua)"
check "nor one that is not a string (lodestoned crashed)" \
  "$d/wf/typetable.lua: workflow.define: name: must be a string of letters, digits and - _ . :, got a table" "$(load_error typetable.lua)"
check "a name of 200 characters loads" "$t200" "$(j ".types[] | select(.file | endswith(\"/type200.lua\")) | .name")"
out=$("$build/bin/lodestone" types --socket "$sock" 2>&1)
check "lodestone types exits 1" 1 "$?"
check_contains "and shows the error, naming the file once" "error: $d/wf/typetable.lua: workflow.define: name: must be" "$out"
start "$t200" '{"id":"t200","input":"kid"}'
result t200
check "a run of the 200-character type completes" "completed kid" "$(j '.status + " " + .output')"
start "t$t200" '{}'
check "a start of a 201-character type: 400 naming the rule" \
  "400 workflow type: must be 1 to 200 characters, got 201" "$code $(j .error.message)"
start "a%20b" '{}'
check "of one with a space: 400" "400 workflow type: character 2 (0x20) $rule" "$code $(j .error.message)"
api POST /v1/workflows/.. --path-as-is -H 'Content-Type: application/json' --data-binary '{}'
check "of \"..\" as it is: 400" '400 workflow type: ".." is not allowed: a URL reads it as a path step' \
  "$code $(j .error.message)"
start "$t200" '{"id":"t200-child"}'
result t200-child
check "a child of a type no file can declare fails the run, naming the rule" \
  "failed child workflow: workflow type: character 2 (0x2f) $rule" "$(j '.status + " " + .error')"
api POST /v1/schedules -H 'Content-Type: application/json' \
  --data-binary "{\"name\":\"s200\",\"workflow\":\"$t200\",\"cron\":\"@yearly\"}"
check "a schedule names a 200-character type (it took 100 at most)" "201 $t200" "$code $(j .workflow)"
api DELETE /v1/schedules/s200

# ---- log lines ----
# A line of ctx:log or s:log is cut after 8 KiB where a character starts,
# saying how many bytes were dropped (it was cut at 1023 bytes, without a
# word, in the middle of a character if it fell there), and a NUL is
# logged as U+FFFD (it ended the line).
start logs '{"id":"lg-1","input":{"n":5000000}}'
result lg-1
check "a run that logs lines of 10 MB completes" "completed 10000001" "$(j '.status + " " + (.output | tostring)')"
logged() { jq -r "select(.run == \"lg-1\") | .msg | $1" "$d/daemon.log" | sed -n "$2p"; }
check "ctx:log's line is cut after 8 KiB, at a character's start, saying how much was dropped" \
  "8220 ééé [cut: 9991810 bytes dropped]" "$(logged '"\(utf8bytelength) \(.[-32:])"' 1)"
check "and it is text (no half character)" false "$(logged 'index("\ufffd") != null' 1)"
check "s:log's too" "8221 ééé [cut: 9991814 bytes dropped]" "$(logged '"\(utf8bytelength) \(.[-32:])"' 2)"
check "a NUL is logged as U+FFFD" "x�y" "$(logged . 3)"
# Bytes that start no UTF-8 character went into the log as they were, so
# that the line was not JSON to a strict reader (jq takes it).
# (jq itself reads such bytes as U+FFFD: the raw line is what tells)
check "bytes that are not UTF-8 are logged as U+FFFD" 1 \
  "$(grep -cF '"msg":"bytes \ufffd and \ufffd\ufffd are not UTF-8"' "$d/daemon.log")"
check "every line of lodestoned's log is UTF-8 and JSON" ok \
  "$(python3 -c 'import json, sys
for line in open(sys.argv[1], "rb"): json.loads(line.decode("utf-8"))
print("ok")' "$d/daemon.log" 2>&1 | tail -1)"
# lodestoned's own messages were cut at 2 KiB without a word: the line
# listing the loaded workflows and the files that failed (over 2 KiB here)
# lost its end, and with it the JSON it holds.
api GET /v1/workflow-types
check "the line listing the workflow files is whole (over 2 KiB of JSON)" "true $(j '.types | length')" \
  "$(jq -r 'select(.msg | startswith("workflows from ")) | .msg | (length > 2048 | tostring) + " " +
    (sub("^workflows from [^ ]*: "; "") | fromjson | .types | length | tostring)' "$d/daemon.log" | head -1)"

# ---- a workflow that starts itself ----
# It started about 3,000 runs a second without end, and a terminate of its
# first run never caught up with the newest.
start rec '{"id":"r-1"}'
result r-1
check "a workflow that starts itself fails" failed "$(j .status)"
api GET '/v1/workflows?type=rec&limit=100'
check "after --max-depth 3 runs below the first" 4 "$(j '.runs | length')"
deepest=$(j '[.runs[] | select(.error | test("max-depth"))][0].id')
check "the deepest names the limit and the option" \
  "run $deepest cannot start child workflow \"rec\": it is nested 3 deep, the limit of nested runs (lodestoned --max-depth); does a workflow start itself without end?" \
  "$(j "[.runs[] | select(.id == \"$deepest\")][0].error")"

start big '{"id":"b-1","input":{"size":10}}'
result b-1
check "under the limits a run completes" "completed xxxxxxxxxx" "$(j '.status + " " + .output')"
start big '{"id":"b-2","input":{"size":2000}}'
result b-2
check "a step result over --max-payload fails the run" failed "$(j .status)"
check_contains "naming the step and the limit" \
  'the result of step "make" is 2002 bytes, over the payload limit of 1000 bytes (lodestoned --max-payload)' "$(j .error)"
start big '{"id":"b-out","input":{"out":2000}}'
result b-out
check "an output over --max-payload fails the run, saying so" \
  "failed the workflow's output is 2002 bytes, over the payload limit of 1000 bytes (lodestoned --max-payload)" \
  "$(j '.status + " " + .error')"
pad=$(head -c 1200 /dev/zero | tr '\0' a)
start big "{\"id\":\"b-3\",\"input\":{\"size\":1,\"pad\":\"$pad\"}}"
check "an input over --max-payload: 400" 400 "$code"
check_contains "naming the limit" "input: 1219 bytes, over the payload limit of 1000 bytes (lodestoned --max-payload)" "$(j .error.message)"
api GET /v1/workflows/b-3
check "and nothing was started" 404 "$code"
start big '{"id":"b-4","input":{"size":1,"wait":true}}'
api POST /v1/workflows/b-4/signals/go --data-binary "\"$pad\""
check "a signal over --max-payload: 400" 400 "$code"
check_contains "naming the limit" "payload: 1202 bytes, over the payload limit" "$(j .error.message)"

start many '{"id":"m-1","input":{"n":10}}'
result m-1
check "ten steps are within --max-steps 12" completed "$(j .status)"
start many '{"id":"m-2","input":{"n":15}}'
result m-2
check "a run past --max-steps fails" failed "$(j .status)"
check_contains "naming the limit" "12 steps completed, the limit of steps per run (lodestoned --max-steps)" "$(j .error)"
e2e_stop "$daemon" 10

# A chain of 5 runs (depth 0 to 4) recorded under --max-depth 10 ...
e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 \
  --max-depth 10 || exit 1
daemon=$E2E_DAEMON
start chain '{"id":"c","input":0}'
poll 100 waiting_for c-1-2-3-4 signal
check "a chain of runs 4 deep under a higher limit" "signal go" "$(j '.waiting.kind + " " + .waiting.name')"
e2e_stop "$daemon" 10

# ... goes on under --max-depth 2: children that history holds are not
# checked again.
e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 \
  --max-depth 2 || exit 1
daemon=$E2E_DAEMON
api POST /v1/workflows/c-1-2-3-4/signals/go --data-binary '"went on"'
result c
check "and completes under a lower one" 'completed went on' "$(j '.status + " " + .output')"
e2e_stop "$daemon" 10

e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 \
  --max-events 20 || exit 1
daemon=$E2E_DAEMON
start many '{"id":"m-3","input":{"n":30}}'
result m-3
check "a run past --max-events fails" failed "$(j .status)"
check_contains "naming the limit" "history reached the limit of 20 events (lodestoned --max-events)" "$(j .error)"
api GET /v1/workflows/m-3/history
check "its history ends just past the limit, with the failure" "21 workflow_failed" "$(j '(.events | length | tostring) + " " + .events[-1].type')"
# A limit crossed is a failure even when the code catches the error: the
# run fails with the limit's message as it is. (The message was recorded
# with the driver's frames after it: "stack traceback: [C]: in function
# 'complete' ... in function 'drive'".)
start manyp '{"id":"m-4","input":{"n":30}}'
result m-4
check "a run past --max-events that catches the error still fails, with the message alone" \
  "failed|run m-4: history reached the limit of 20 events (lodestoned --max-events); split the work into child workflows" \
  "$(j '.status + "|" + .error')"
api GET /v1/workflows/m-4/history
check "and no traceback of the driver" null "$(j '.events[-1].traceback')"
e2e_stop "$daemon" 10

# A chain of detached children crossing a restart, after retention deleted
# the finished runs above it, stops at --max-depth too: each run's depth is
# stored with it. (It was counted from the links of the runs above, and a
# deleted one taken for the first run: drec-4, at depth 4, was started.)
opts=(--data "$d/data-r" --workflows "$d/wf" --workers 2 --max-depth 3 --retention 1s
      --retention-interval 1s)
sock_r=$d/data-r/lodestoned.sock
e2e_lodestoned "$sock_r" "$d/daemon.log" "${opts[@]}" || exit 1
daemon=$E2E_DAEMON
sock=$sock_r
start drec '{"id":"drec-0","input":0}'
poll 100 waiting_for drec-2 signal || not_ok "drec-2 waits for its signal"
gone() { api GET "/v1/workflows/$1"; [ "$code" = 404 ]; }
poll 100 gone drec-1 || not_ok "retention deletes drec-0 and drec-1"
check "drec-0 deleted by retention" 404 "$(api GET /v1/workflows/drec-0; echo "$code")"
e2e_stop "$daemon" 10
e2e_lodestoned "$sock_r" "$d/daemon.log" "${opts[@]}" || exit 1
daemon=$E2E_DAEMON
api POST /v1/workflows/drec-2/signals/go --data-binary 'null'
result drec-2 # (it starts drec-3 before it ends)
result drec-3
check "after a restart, the run at depth 3 fails starting a child" \
  "failed|run drec-3 cannot start child workflow \"drec\": it is nested 3 deep, the limit of nested runs (lodestoned --max-depth); does a workflow start itself without end?" \
  "$(j '.status + "|" + .error')"
api GET /v1/workflows/drec-4
check "and no run is deeper" 404 "$code"
e2e_stop "$daemon" 10

# ---- a log that is a pipe ----
# Under systemd or a log shipper stderr is a pipe, which keeps a write
# whole only up to 4 KiB: lines of 8 KiB from two workers came out mixed
# (a few in a hundred were no JSON) while the reader lagged.
mkdir -p "$d/wf-pipe"
cat > "$d/wf-pipe/chatty.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define { name = "chatty", run = function(ctx, input)
  local line = string.rep(input.c, 8000)
  for _ = 1, 200 do ctx:log(line) end
  return 1
end }
LUA
mkfifo "$d/logpipe"
# the reader opens the pipe, then lags 2 s, as a busy journal does
( exec 3< "$d/logpipe"; sleep 2; cat <&3 > "$d/piped.log" ) &
reader=$!
E2E_PIDS+=("$reader")
sock=$d/data-pipe/lodestoned.sock
e2e_lodestoned "$sock" "$d/logpipe" --data "$d/data-pipe" --workflows "$d/wf-pipe" --workers 2 || exit 1
daemon=$E2E_DAEMON
start chatty '{"id":"ca","input":{"c":"A"}}'
start chatty '{"id":"cb","input":{"c":"B"}}'
result ca
result cb
e2e_stop "$daemon" 10
wait "$reader"
e2e_forget "$reader"
check "lines of 8 KiB from two workers through a lagging pipe: each whole, each JSON" "400 400" \
  "$(python3 -c 'import json, sys
n = ok = 0
for raw in open(sys.argv[1], "rb"):
    try:
        line = json.loads(raw)
    except ValueError:
        continue
    if line.get("run") in ("ca", "cb"):
        n += 1
        ok += line["msg"] in ("A" * 8000, "B" * 8000)
print(n, ok)' "$d/piped.log")"
e2e_finish
