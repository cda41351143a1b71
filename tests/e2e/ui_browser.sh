#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: the web UI in ui/ in headless Debian chromium. First the
# node:test specs of the timeline model and the run page's pure parts, and
# static checks of ui/. Then a real lodestoned (hello.lua; a workflow whose
# first step fails twice before it succeeds, then sleeps; one that fails
# for good; one whose step always fails and pauses the run; a file that
# does not load) and Debian's lighttpd serving /ui/ from the repository's
# ui/ and proxying /v1/ to the daemon's unix socket; runs started with curl
# through lighttpd; then tests/ui/run_page.mjs (playwright-core driving
# /usr/bin/chromium) checks the runs list, its filters, paging and live
# refresh, the run page's timeline, input, output and error, the actions'
# error banner, resuming the paused run from its page (checked in the
# daemon's history), the types and schedules pages, and that the page logs
# no console error; it saves a screenshot of the run page as
# BUILD_DIR/ui-run.png. A copy of the UI that logs a console error must
# make run_page.mjs fail. Last, with the daemon stopped, the page must show
# the proxy's error. Fails (never skips) when node, chromium or
# playwright-core is missing: scripts/deps.sh installs them.
# usage: tests/e2e/ui_browser.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
export LODESTONE_LUA_DIR="$root/lua"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

missing=""
command -v node >/dev/null || missing="$missing node"
[ -x /usr/bin/chromium ] || missing="$missing /usr/bin/chromium"
[ -f "$root/tests/ui/node_modules/playwright-core/package.json" ] ||
  missing="$missing tests/ui/node_modules/playwright-core"
command -v lighttpd >/dev/null || missing="$missing lighttpd"
command -v jq >/dev/null || missing="$missing jq"
if [ -n "$missing" ]; then
  not_ok "the browser test's tools are installed" "missing:$missing (run scripts/deps.sh)"
  e2e_finish
  exit 1
fi

d=$E2E_DIR
sock=$d/d.sock
port=$(e2e_free_port)
base=http://127.0.0.1:$port
mkdir -p "$d/wf" "$d/www"

# ---- static checks of ui/: no markup from data, nothing from elsewhere ----

out=$(grep -nE 'innerHTML|outerHTML|insertAdjacentHTML|document\.write' "$root"/ui/*.js)
check "ui/ never builds markup from strings" "" "$out"
out=$(grep -nE '(src|href)="(https?:)?//|import[^;]*"https?:|url\((https?:)?//' "$root"/ui/*.html "$root"/ui/*.js "$root"/ui/*.css)
check "ui/ loads nothing from another origin" "" "$out"

# The timeline's model and the run page's pure parts on their own
# (node:test; each test is one check here).
for spec in "timeline model:timeline" "run page:run"; do
  out=$(node --test --test-reporter=tap "$root/tests/ui/${spec#*:}.test.mjs" 2>&1)
  rc=$?
  while IFS= read -r line; do
    case $line in
      "ok "*) ok "${spec%%:*}: ${line#ok * - }" ;;
      "not ok "*) not_ok "${spec%%:*}: ${line#not ok * - }" ;;
    esac
  done <<< "$out"
  check "node --test tests/ui/${spec#*:}.test.mjs exits 0" 0 "$rc"
  [ "$rc" = 0 ] || printf '%s\n' "$out"
done

# ---- the daemon and lighttpd ----

cp "$root/workflows/hello.lua" "$d/wf/"
# Waits for a signal, where the daemon has signals (see below).
[ -f "$root/workflows/approval.lua" ] && cp "$root/workflows/approval.lua" "$d/wf/"
cat > "$d/wf/flaky.lua" <<'LUA'
-- A step that fails twice before it succeeds, a durable sleep, a last step:
-- the timeline has failed attempts, retry waits and a timer.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "flaky",
  retry = { initial_interval = "200ms", backoff = 2.0, max_attempts = 4, jitter = 0 },
  run = function(ctx, input)
    local got = ctx:step("fetch", function(s)
      if s.attempt < 3 then error("upstream not ready (attempt " .. s.attempt .. ")") end
      return { attempt = s.attempt }
    end)
    ctx:sleep("500ms")
    return ctx:step("report", function()
      return { fetched_on = got.attempt, note = input.note }
    end)
  end,
}
LUA

cat > "$d/wf/doomed.lua" <<'LUA'
-- A step that fails for good: the run ends failed.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "doomed",
  run = function(ctx)
    ctx:step("charge", function() error(workflow.fatal("card declined")) end)
  end,
}
LUA
cat > "$d/wf/stuck.lua" <<'LUA'
-- A step that always fails, with two quick attempts: the run pauses
-- (on_exhausted = "pause"), and pauses again after each resume.
local workflow = require "lodestone.workflow"
return workflow.define {
  name = "stuck",
  on_exhausted = "pause",
  retry = { initial_interval = "50ms", max_attempts = 2, jitter = 0 },
  run = function(ctx)
    return ctx:step("push", function() error("downstream unavailable") end)
  end,
}
LUA
# A file that does not load: the types page lists it.
printf 'local workflow = require "lodestone.workflow"\nreturn workflow.define {\n' > "$d/wf/broken.lua"

"$build/bin/lodestoned" --data "$d/data" --socket "$sock" --workflows "$d/wf" --workers 2 \
  2> "$d/daemon.log" &
daemon=$!
E2E_PIDS+=("$daemon")
for _ in $(seq 100); do
  curl -s -o /dev/null --unix-socket "$sock" http://lodestoned/healthz && break
  sleep 0.1
done

# The UI runs under the Content-Security-Policy the demo serves it with
# (conf/lighttpd.conf.in): anything it refuses is a console error.
csp=$(sed -n 's/^ *"Content-Security-Policy" => "\(.*\)",$/\1/p' "$root/conf/lighttpd.conf.in")
[ -n "$csp" ] || { echo "no Content-Security-Policy in conf/lighttpd.conf.in"; exit 1; }
write_conf() { # $1: file
  cat > "$1" <<CONF
server.modules = ( "mod_alias", "mod_proxy", "mod_setenv" )
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$d/lighttpd-error.log"
mimetype.assign = (
  ".html" => "text/html; charset=utf-8",
  ".js" => "text/javascript; charset=utf-8",
  ".css" => "text/css; charset=utf-8",
  ".png" => "image/png",
)
index-file.names = ( "index.html" )
alias.url = ( "/ui/" => "$root/ui/", "/badui/" => "$d/badui/" )
\$HTTP["url"] =^ "/ui/" {
  setenv.add-response-header = ( "Content-Security-Policy" => "$csp" )
}
\$HTTP["url"] =~ "^/v1/" {
  proxy.server = ( "" => ( ( "socket" => "$sock" ) ) )
}
CONF
}
write_conf "$d/lighttpd.conf"
# A copy of the UI that logs a console error, for the detector's own test.
cp -r "$root/ui" "$d/badui"
printf '\nconsole.error("injected by ui_browser.sh");\n' >> "$d/badui/app.js"

out=$(lighttpd -tt -f "$d/lighttpd.conf" 2>&1)
check "lighttpd accepts the test configuration" "" "$out"
lighttpd -D -f "$d/lighttpd.conf" 2> "$d/lighttpd.log" &
E2E_PIDS+=("$!")
e2e_wait_port "$port" || { not_ok "lighttpd listens" "$(cat "$d/lighttpd.log")"; e2e_finish; exit 1; }

for f in index.html app.js style.css; do
  ctype=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$base/ui/$f")
  case $f in
    *.html) want="200 text/html; charset=utf-8" ;;
    *.js) want="200 text/javascript; charset=utf-8" ;;
    *.css) want="200 text/css; charset=utf-8" ;;
  esac
  check "lighttpd serves /ui/$f" "$want" "$ctype"
done

# ---- runs, started through lighttpd ----

api() { # METHOD PATH [BODY]: prints the body, then the status on its own line
  curl -s -X "$1" -w '\n%{http_code}' -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$base/v1$2"
}
TAG=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
RUN=flaky-$TAG
OTHER=hello-$TAG
PENDING=pending-$TAG
out=$(api POST /workflows/flaky "{\"id\":\"$RUN\",\"input\":{\"note\":\"<b>not markup</b>\"}}")
check "a flaky run starts through lighttpd" 201 "${out##*$'\n'}"
out=$(api POST /workflows/hello "{\"id\":\"$OTHER\",\"input\":{\"name\":\"Ada\",\"pause\":\"10ms\"}}")
check "a hello run starts through lighttpd" 201 "${out##*$'\n'}"
FAILED=doomed-$TAG
out=$(api POST /workflows/doomed "{\"id\":\"$FAILED\"}")
check "a doomed run starts through lighttpd" 201 "${out##*$'\n'}"
out=$(api GET "/workflows/$FAILED/result?wait=30")
check "it fails" failed "$(printf '%s' "${out%$'\n'*}" | jq -r .status)"
out=$(api GET "/workflows/$RUN/result?wait=30")
check "the flaky run completes" 200 "${out##*$'\n'}"
check "its result" '{"fetched_on":3,"note":"<b>not markup</b>"}' \
  "$(printf '%s' "${out%$'\n'*}" | jq -c .output)"
out=$(api GET "/workflows/$OTHER/result?wait=30")
check "the hello run completes" 200 "${out##*$'\n'}"
PAUSED=stuck-$TAG
out=$(api POST /workflows/stuck "{\"id\":\"$PAUSED\"}")
check "a stuck run starts through lighttpd" 201 "${out##*$'\n'}"
for _ in $(seq 100); do
  [ "$(api GET "/workflows/$PAUSED" | sed '$d' | jq -r .waiting.kind)" = paused ] && break
  sleep 0.1
done
out=$(api GET "/workflows/$PAUSED" | sed '$d')
check "it pauses after its two attempts" "running paused push" \
  "$(printf '%s' "$out" | jq -r '.status + " " + .waiting.kind + " " + .waiting.name')"
# Started last, so they are the newest; they sleep for an hour.
out=$(api POST /workflows/hello "{\"id\":\"$PENDING\",\"input\":{\"name\":\"Bo\",\"pause\":\"1h\"}}")
check "a long run starts" 201 "${out##*$'\n'}"
PENDING2=pending2-$TAG
out=$(api POST /workflows/hello "{\"id\":\"$PENDING2\",\"input\":{\"name\":\"Cy\",\"pause\":\"1h\"}}")
check "another long run starts" 201 "${out##*$'\n'}"
for _ in $(seq 100); do
  [ "$(api GET "/workflows/$PENDING/history" | sed '$d' | jq '[.events[] | select(.type == "timer_started")] | length')" = 1 ] && break
  sleep 0.1
done
# Signals: a daemon that has them answers an unknown run with 404; one
# that does not yet, 501 (its error banner is checked with the cancel
# button). With signals, the page sends one to a run of approval.lua.
approval_args=()
out=$(api POST "/workflows/no-such-run/signals/approved" '{}')
case ${out##*$'\n'} in
  404)
    APPROVAL=approval-$TAG
    out=$(api POST /workflows/approval "{\"id\":\"$APPROVAL\",\"input\":{\"item\":\"laptop\",\"timeout\":\"1h\"}}")
    check "the daemon has signals: an approval run starts" 201 "${out##*$'\n'}"
    approval_args=(--approval "$APPROVAL")
    ;;
  501) ok "the daemon answers signals with 501 (not implemented yet)" ;;
  *) not_ok "the daemon answers a signal to an unknown run with 404 or 501" "$out" ;;
esac
hist=$(api GET "/workflows/$RUN/history" | sed '$d')
check "the flaky run's history has two failed attempts" 2 \
  "$(printf '%s' "$hist" | jq '[.events[] | select(.type == "step_failed")] | length')"
check "and a timer" 1 "$(printf '%s' "$hist" | jq '[.events[] | select(.type == "timer_fired")] | length')"

# ---- the browser ----

# browser NAME ARGS...: runs tests/ui/run_page.mjs ARGS, shows its lines and
# counts its "ok"/"not ok" lines as checks of this test; then checks that it
# exited 0.
browser() {
  local name=$1 out rc
  shift
  out=$(cd "$root/tests/ui" && timeout 240 node run_page.mjs "$@" 2>&1)
  rc=$?
  printf '%s\n' "$out" | grep -v '^browser: '
  E2E_PASS=$((E2E_PASS + $(printf '%s\n' "$out" | grep -c '^ok - ')))
  E2E_FAIL=$((E2E_FAIL + $(printf '%s\n' "$out" | grep -c '^not ok - ')))
  check "run_page.mjs $name exits 0" 0 "$rc"
}

rm -f "$build/ui-run.png"
browser "(the stack)" --base "$base/ui/" --run "$RUN" --type flaky --other "$OTHER" \
  --pending "$PENDING" --pending2 "$PENDING2" --failed "$FAILED" --paused "$PAUSED" \
  --shot "$build/ui-run.png" --load-error broken.lua \
  "${approval_args[@]}"
check "the screenshot is a PNG" "89504e47" "$(od -An -N4 -tx1 "$build/ui-run.png" 2>/dev/null | tr -d ' \n')"
# What the page did to the paused run, as the daemon tells it.
hist=$(api GET "/workflows/$PAUSED/history" | sed '$d')
check "the paused run's history has the resume sent from the page" "resumed by api" \
  "$(printf '%s' "$hist" | jq -r '[.events[] | select(.type == "resumed") | "resumed by " + .by] | join(", ")')"
check "then a new round of attempts and a second pause" "4 2" \
  "$(printf '%s' "$hist" | jq -r '[.events[] | select(.type == "step_failed")] | "\(length) \([.[] | select(.paused)] | length)"')"
check "and it ended terminated, not resumed again" terminated \
  "$(api GET "/workflows/$PAUSED" | sed '$d' | jq -r .status)"

# The detector's own test: its failure is expected, so it is not counted.
out=$(cd "$root/tests/ui" && timeout 120 node run_page.mjs --base "$base/badui/" --smoke 2>&1)
rc=$?
check "a page that logs a console error fails run_page.mjs" 1 "$rc"
check_contains "and the failure names the error" "injected by ui_browser.sh" "$out"
check_contains "while the page itself worked" "ok - runs list loads" "$out"

# /v1/ guarded as in the demo: a second lighttpd whose policy gate
# (mod_magnet) lets anyone load /ui/ but wants an admin's JWT on /v1/. The
# page asks for a token, and works once one is set.
gport=$(e2e_free_port)
mkdir -p "$d/guarded"
printf '%s' "0123456789abcdef0123456789abcdef" > "$d/guarded/hs.key"
chmod 600 "$d/guarded/hs.key"
cat > "$d/guarded/policy.lua" <<'LUA'
local policy = require "lodestone.policy"
return policy.define {
  name = "ui-e2e",
  authenticate = {
    policy.jwt { secret_file = "hs.key", algorithms = { "HS256" }, audience = "lodestone" },
  },
  rules = {
    { path = "/ui/**", methods = { "GET", "HEAD" }, allow = "anyone" },
    { path = "/v1/**", roles = { "admin" } },
  },
}
LUA
cat > "$d/guarded/gate.lua" <<LUA
package.path = "$root/lua/?.lua;$root/lua/?/init.lua;" .. package.path
package.cpath = "$build/lib/lua/5.4/?.so;" .. package.cpath
return require("lodestone.policy").enforce(lighty, "$d/guarded/policy.lua")
LUA
sed -e "s|^server.port = .*|server.port = $gport|" \
    -e "s|^server.errorlog = .*|server.errorlog = \"$d/guarded/error.log\"|" \
    -e 's|^server.modules = ( "mod_alias", "mod_proxy", "mod_setenv" )|server.modules = ( "mod_magnet", "mod_alias", "mod_proxy", "mod_setenv" )|' \
    "$d/lighttpd.conf" > "$d/guarded/lighttpd.conf"
printf 'magnet.attract-raw-url-to = ( "%s" )\n' "$d/guarded/gate.lua" >> "$d/guarded/lighttpd.conf"
# lighttpd loads the module, which needs the sanitizers' runtimes first
# when it was built with them.
SAN_ENV=("${E2E_SAN_ENV[@]}")
out=$("${SAN_ENV[@]}" lighttpd -tt -f "$d/guarded/lighttpd.conf" 2>&1)
check "lighttpd accepts the guarded configuration" "" "$out"
"${SAN_ENV[@]}" lighttpd -D -f "$d/guarded/lighttpd.conf" 2> "$d/guarded/lighttpd.log" &
E2E_PIDS+=("$!")
e2e_wait_port "$gport" || not_ok "the guarded lighttpd listens" "$(cat "$d/guarded/lighttpd.log")"
gbase=http://127.0.0.1:$gport
check "the guarded /v1/ refuses a request without a token" 401 \
  "$(curl -s -o /dev/null -w '%{http_code}' "$gbase/v1/workflows")"
exp=$(( $(date +%s) + 600 ))
token=$(e2e_mint_hs256 "{\"sub\":\"alice\",\"aud\":\"lodestone\",\"exp\":$exp,\"roles\":[\"admin\"]}" \
  "$(cat "$d/guarded/hs.key")")
check "the guarded /v1/ lets an admin's token through" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$gbase/v1/workflows")"
browser "(guarded /v1/)" --base "$gbase/ui/" --guarded "$token"

# The daemon stopped: the page shows lighttpd's answer instead of going blank.
e2e_stop "$daemon" 20
browser "(daemon down)" --base "$base/ui/" --down

e2e_finish
