#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: parallel branches (ctx:all) in a real lodestoned: each
# branch is a run of its own on the worker pool; branches that sleep, run
# steps and a child run overlap and return in order; two branches' Lua code
# runs at the same time on two workers; a SIGKILL while some branches wait
# and others are done loses nothing and runs no completed step again; a
# failing branch fails the run once the others have settled; a signal wait
# in a branch is refused.
# usage: tests/e2e/workflow_parallel.sh BUILD_DIR   (from the project root)
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
cp "$root/workflows/hello.lua" "$d/wf/"
cat > "$d/wf/par.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "par",
  run = function(ctx, input)
    local first = ctx:step("before", function() return 0 end)
    local r = ctx:all {
      function(c) c:sleep(input.long); return c:step("a", function() return "A" end) end,
      function(c) return c:step("b", function() return "B" end) end,
      function(c)
        c:sleep("200ms")
        local x = c:step("c1", function() return 1 end)
        c:sleep("200ms")
        return x + c:step("c2", function() return 1 end)
      end,
      function(c) return c:child("hello", { name = "kid" }).greeting end,
      function(c)
        return c:all { function(g) return g:step("n", function() return "N1" end) end,
                       function(g) g:sleep("100ms"); return g:step("n", function() return "N2" end) end }
      end,
    }
    return { first = first, r = r }
  end,
}
LUA
cat > "$d/wf/par_fail.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "par_fail",
  run = function(ctx)
    ctx:all {
      function(c) c:sleep("300ms"); return c:step("slow", function() return 1 end) end,
      function(c) return c:step("bad", function() error(workflow.fatal("no stock")) end) end,
    }
  end,
}
LUA
cat > "$d/wf/par_http.lua" <<'LUA'
-- Three branches whose steps each call an endpoint that answers only once
-- all three requests are there at the same time.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "par_http",
  run = function(ctx, input)
    local function call(c, name)
      return c:step(name, function(s) return s.http.get(input.url, { timeout = "15s" }).json end)
    end
    return ctx:all {
      function(c) return call(c, "a") end,
      function(c) local r = call(c, "b"); c:sleep("50ms"); return r end,
      function(c) return c:all { function(g) return call(g, "c") end } end,
    }
  end,
}
LUA
cat > "$d/wf/par_cpu.lua" <<'LUA'
-- Branch 1's step spins (Lua code, never waiting) until branch 2's step
-- has run: only branches on two workers at once get there.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "par_cpu",
  retry = { max_attempts = 1 },
  run = function(ctx, input)
    return ctx:all {
      function(c)
        return c:step("spin", function()
          while true do
            local f = io.open(input.flag, "r")
            if f then f:close(); return "saw the flag" end
          end
        end, { timeout = "20s" })
      end,
      function(c)
        return c:step("flag", function()
          local f = assert(io.open(input.flag, "w"))
          f:write("up"); f:close()
          return "set the flag"
        end)
      end,
    }
  end,
}
LUA
cat > "$d/wf/par_one.lua" <<'LUA'
-- One run of this type at a time: its branch runs do not count.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "par_one",
  concurrency = { limit = 1 },
  run = function(ctx)
    return ctx:all { function(c) return c:step("a", function() return 1 end) end,
                     function(c) return c:step("b", function() return 2 end) end }
  end,
}
LUA
cat > "$d/wf/par_signal.lua" <<'LUA'
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "par_signal",
  run = function(ctx) ctx:all { function(c) return c:wait_signal("go") end } end,
}
LUA

# branch_runs ID: the branch runs a run started (their ids, one a line).
# (a command issued in a branch carries the branch's scope: "[1.5]ID-b1.5_1.1")
branch_runs() {
  api GET "/v1/workflows/$1/history"
  j '.events[] | select(.type=="child_started") | .name | sub("^(\\[[0-9]+\\.[0-9]+\\])+"; "") | select(test("-b[0-9._]+$"))'
}
# own_steps ID: the steps a run completed, without its branch runs'.
own_steps() { api GET "/v1/workflows/$1/history"; j '.events[] | select(.type=="step_completed") | .name'; }
# all_steps ID: the steps completed by a run and all its branch runs.
all_steps() {
  local kid
  own_steps "$1"
  for kid in $(branch_runs "$1"); do all_steps "$kid"; done
}
completed_steps() { all_steps "$1" | sort | paste -sd' '; }
start_daemon() {
  e2e_lodestoned "$sock" "$d/daemon.log" --data "$data" --workflows "$d/wf" --workers 2 --grace 2 \
    || exit 1
  daemon=$E2E_DAEMON
}
"$build/tests/mocksvc" --port-file "$d/mock.port" --log "$d/mock.log" &
E2E_PIDS+=($!)
e2e_wait_file "$d/mock.port" || { echo "mocksvc did not start"; exit 1; }
mock_url=http://127.0.0.1:$(cat "$d/mock.port")
start_daemon

# ---- all branches, in order ----
start par '{"id":"p-1","input":{"long":"300ms"}}'
result p-1
check "the run completes" completed "$(j .status)"
check "results in branch order" '{"first":0,"r":["A","B",2,"hello, kid",["N1","N2"]]}' "$(jc .output)"
check "every step ran once, named by its branch" \
  "[1.1]a [1.2]b [1.3]c1 [1.3]c2 [1.5][1.1]n [1.5][1.2]n before" "$(completed_steps p-1)"
check "the run itself ran only its own step" before "$(own_steps p-1 | paste -sd' ')"
kids=$(branch_runs p-1 | paste -sd' ')
check "each branch is a run of its own, named after the run" \
  "-b1.1 -b1.2 -b1.3 -b1.4 -b1.5" "$(branch_runs p-1 | sed 's/^.*-b/-b/' | paste -sd' ')"
b15=$(branch_runs p-1 | grep -- '-b1.5$')
check "a nested section's branches are branch runs of the branch" "-b1.5_1.1 -b1.5_1.2" \
  "$(branch_runs "$b15" | sed 's/^.*-b/-b/' | paste -sd' ')"
api GET "/v1/workflows/$b15"
check "a branch run names its parent and its branch" "p-1 [1.5] completed" \
  "$(j '.parent + " " + .branch + " " + .status')"
api GET "/v1/workflows/$b15/history"
check "its history lists its own events, after the parent's it replays" "[1.5] true child_started" \
  "$(j '.branch + " " + (.parent_events > 1 | tostring) + " " + .events[0].type')"
b14=$(branch_runs p-1 | grep -- '-b1.4$')
api GET "/v1/workflows/$b14/history"
check "the child run is the branch run's child" 1 "$(j '[.events[] | select(.type=="child_completed")] | length')"

# ---- SIGKILL while one branch sleeps and the others are done ----
start par '{"id":"p-2","input":{"long":"4s"}}'
done_but_a() { [ "$(completed_steps p-2)" = "[1.2]b [1.3]c1 [1.3]c2 [1.5][1.1]n [1.5][1.2]n before" ]; }
poll 100 done_but_a
check "before the kill: all but the long branch done" \
  "[1.2]b [1.3]c1 [1.3]c2 [1.5][1.1]n [1.5][1.2]n before" "$(completed_steps p-2)"
api GET /v1/workflows/p-2
check "the run waits for its long branch" child "$(j .waiting.kind)"
api GET "/v1/workflows/$(branch_runs p-2 | grep -- '-b1.1$')"
check "which waits on its timer" sleep "$(j .waiting.kind)"
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
e2e_forget "$daemon"
start_daemon
result p-2
check "after the restart the run completes" completed "$(j .status)"
check "with every branch's result" '["A","B",2,"hello, kid",["N1","N2"]]' "$(jc .output.r)"
check "and no completed step ran again" \
  "[1.1]a [1.2]b [1.3]c1 [1.3]c2 [1.5][1.1]n [1.5][1.2]n before" "$(completed_steps p-2)"

# ---- steps of different branches make their HTTP calls at the same time ----
start par_http "{\"id\":\"ph-1\",\"input\":{\"url\":\"$mock_url/barrier?n=3\"}}"
result ph-1
check "three branches' requests met at the barrier together" "completed [3,3,[3]]" \
  "$(j '.status + " " + ([.output[0].met, .output[1].met, [.output[2][0].met]] | tojson)')"
check "each step ran once" "[1.1]a [1.2]b [1.3][1.1]c" "$(completed_steps ph-1)"

# ---- two branches' Lua code at the same time ----
start par_cpu "{\"id\":\"pc-1\",\"input\":{\"flag\":\"$d/flag\"}}"
result pc-1
check "a spinning branch sees the other branch's step: they ran on two workers at once" \
  'completed ["saw the flag","set the flag"]' "$(j .status) $(jc .output)"

# ---- a type limited to one run at a time ----
start par_one '{"id":"po-1"}'
start par_one '{"id":"po-2"}'
result po-1
check "its branch runs are not held by the limit" 'completed [1,2]' "$(j .status) $(jc .output)"
result po-2
check "and the next run goes after it" 'completed [1,2]' "$(j .status) $(jc .output)"

# ---- a failing branch ----
start par_fail '{"id":"pf-1"}'
result pf-1
check "a failing branch fails the run" failed "$(j .status)"
check_contains "with its error" "no stock" "$(j .error)"
check_contains "naming the branch" "ctx:all: branch 2 failed" "$(j .error)"
check "after the other branch settled" "[1.1]slow" "$(completed_steps pf-1)"

start par_signal '{"id":"ps-1"}'
result ps-1
check "a signal wait in a branch is refused" failed "$(j .status)"
check_contains "saying why" "cannot be used in a ctx:all branch" "$(j .error)"

e2e_stop "$daemon" 10
e2e_finish
