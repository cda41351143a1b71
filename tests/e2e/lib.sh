# SPDX-License-Identifier: MIT
# Shared helpers for end-to-end tests: a temp dir, free ports, processes
# started in the background and stopped by PID, and ok/fail counting that
# ends in a "N passed, N failed" line.
set -u

E2E_PASS=0
E2E_FAIL=0
E2E_PIDS=()

# A program that loads the Lua module built with ASan+UBSan (LS_SANITIZE=1:
# lighttpd, lua5.4, luajit) needs their runtimes preloaded. E2E_SAN_VARS
# holds those environment assignments (none otherwise), E2E_SAN_ENV the
# same as a command prefix: "${E2E_SAN_ENV[@]}" lua5.4 ...
E2E_SAN_VARS=()
E2E_SAN_ENV=()
if [ "${LS_SANITIZE:-0}" = 1 ]; then
  E2E_SAN_VARS=("LD_PRELOAD=$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
                ASAN_OPTIONS=detect_leaks=0)
  E2E_SAN_ENV=(env "${E2E_SAN_VARS[@]}")
fi

e2e_tmpdir() {
  E2E_DIR=$(mktemp -d "${TMPDIR:-/tmp}/lodestone-e2e-XXXXXX")
}

e2e_cleanup() {
  local pid
  for pid in "${E2E_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${E2E_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  [ -n "${E2E_KEEP:-}" ] || rm -rf "$E2E_DIR"
}

# A TCP port on 127.0.0.1 that nothing listens on now.
e2e_free_port() {
  # Below the kernel's ephemeral range: a port there can be the local end
  # of some other test's connection, which no connect() sees but which a
  # server's bind() then finds in use (a flake seen under ctest -j2).
  local port low=32768
  read -r low _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  [ "$low" -gt 11000 ] || low=32768
  for _ in $(seq 100); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "$port"; return 0; fi
  done
  echo "no free port" >&2
  return 1
}

# Waits until 127.0.0.1:$1 accepts connections (up to 10 s).
e2e_wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

ok() { E2E_PASS=$((E2E_PASS + 1)); echo "ok - $1"; }
not_ok() { E2E_FAIL=$((E2E_FAIL + 1)); echo "not ok - $1"; [ $# -gt 1 ] && echo "#   $2"; }

# check NAME EXPECTED ACTUAL
check() {
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected [$2], got [$3]"; fi
}

# check_contains NAME NEEDLE HAYSTACK
check_contains() {
  case "$3" in *"$2"*) ok "$1" ;; *) not_ok "$1" "[$2] not in [$3]" ;; esac
}

check_absent() {
  case "$3" in *"$2"*) not_ok "$1" "[$2] found in output" ;; *) ok "$1" ;; esac
}

e2e_finish() {
  echo "e2e: $E2E_PASS passed, $E2E_FAIL failed"
  [ "$E2E_FAIL" -eq 0 ]
}

# ---- processes started by a test (additions for the daemon tests) ----

# Whether PID $1 runs (a zombie, exited but not yet reaped, does not).
e2e_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ "$stat" != *") Z "* ]]
}

# Drops PID $1 from E2E_PIDS (it was stopped: never signal a reused PID).
e2e_forget() {
  local keep=() pid
  for pid in "${E2E_PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
  E2E_PIDS=("${keep[@]}")
}

# Stops PID $1, a child of this shell: SIGTERM, up to ${2:-10} s to exit,
# then SIGKILL. Returns its exit status (reaped here) and forgets it.
e2e_stop() {
  local pid=$1 rc
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq $(( ${2:-10} * 10 ))); do e2e_alive "$pid" || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
  e2e_forget "$pid"
  return "$rc"
}

# e2e_gate_behind_proxy DIR PORT BPORT [CONF_LINES]: the lighttpd pair the
# policy tests run, as in production: a backend on BPORT running
# DIR/backend/echo.lua, and in front of it on PORT the gate DIR/gate.lua,
# proxying with mod_proxy (CONF_LINES: more of the front's configuration).
# Each in its own session (lighttpd signals its process group to stop its
# workers), stopped by e2e_cleanup; the front with the sanitizer runtimes
# the module needs (LS_SANITIZE=1). Sets E2E_FRONT to the front's PID.
# Ends the test when either does not start.
e2e_gate_behind_proxy() {
  local d=$1 port=$2 bport=$3 extra=${4:-}
  cat > "$d/backend/lighttpd.conf" <<CONF
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $bport
server.errorlog = "$d/backend/error.log"
server.modules = ( "mod_magnet" )
magnet.attract-raw-url-to = ( "$d/backend/echo.lua" )
CONF
  cat > "$d/lighttpd.conf" <<CONF
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$d/error.log"
server.modules = ( "mod_magnet", "mod_proxy" )
magnet.attract-raw-url-to = ( "$d/gate.lua" )
proxy.server = ( "" => (( "host" => "127.0.0.1", "port" => $bport )) )
$extra
CONF
  setsid lighttpd -D -f "$d/backend/lighttpd.conf" > "$d/backend/out" 2>&1 &
  E2E_PIDS+=($!)
  e2e_wait_port "$bport" || { echo "backend lighttpd did not start"; cat "$d/backend/error.log"; exit 1; }
  "${E2E_SAN_ENV[@]}" lighttpd -tt -f "$d/lighttpd.conf" || { echo "lighttpd -tt failed"; exit 1; }
  setsid "${E2E_SAN_ENV[@]}" lighttpd -D -f "$d/lighttpd.conf" > "$d/lighttpd.out" 2>&1 &
  E2E_FRONT=$!
  E2E_PIDS+=("$E2E_FRONT")
  e2e_wait_port "$port" || { echo "lighttpd did not start"; cat "$d/error.log"; exit 1; }
}

# e2e_mint_hs256 CLAIMS_JSON KEY: prints an HS256 JWT of the claims signed
# with KEY, made by the Lua 5.4 module of $build (the test's $root, $build).
e2e_mint_hs256() {
  LS_CLAIMS=$1 LS_KEY=$2 "${E2E_SAN_ENV[@]}" lua5.4 -e "
    package.path = '$root/lua/?.lua;$root/lua/?/init.lua;' .. package.path
    package.cpath = '$build/lib/lua/5.4/?.so;' .. package.cpath
    local l = require 'lodestone'
    local b = l.base64url.encode
    local input = b('{\"alg\":\"HS256\",\"typ\":\"JWT\"}') .. '.' .. b(os.getenv('LS_CLAIMS'))
    io.write(input .. '.' .. b(l.hmac.sha256(os.getenv('LS_KEY'), input)))"
}

# Waits until file $1 exists and is not empty (up to 10 s).
e2e_wait_file() {
  for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

# check_match NAME EXTENDED_REGEX VALUE
check_match() {
  if printf '%s' "$3" | grep -Eq -- "$2"; then ok "$1"; else not_ok "$1" "[$3] does not match /$2/"; fi
}

# poll N CMD...: runs CMD every 0.1 s until it succeeds, at most N times.
poll() {
  local n=$1
  shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}

# e2e_lodestoned SOCK LOG ARGS...: starts "$build/bin/lodestoned ARGS"
# (stderr appended to LOG) and waits until it answers /healthz on SOCK (up
# to 10 s). Sets E2E_DAEMON. Returns 1, with the log's tail, when it does
# not come up.
e2e_lodestoned() {
  local sock=$1 log=$2
  shift 2
  "$build/bin/lodestoned" "$@" 2>> "$log" &
  E2E_DAEMON=$!
  E2E_PIDS+=("$E2E_DAEMON")
  for _ in $(seq 100); do
    curl -s -o /dev/null --unix-socket "$sock" http://lodestoned/healthz && return 0
    e2e_alive "$E2E_DAEMON" || break
    sleep 0.1
  done
  echo "lodestoned did not start:" >&2
  tail -30 "$log" >&2
  return 1
}

# ---- lodestoned's HTTP API on the unix socket $sock ----

# api METHOD PATH [curl args...]: sets $code and $body.
api() {
  local out
  out=$(curl -s --unix-socket "$sock" -X "$1" -w '\n%{http_code}' "http://lodestoned$2" "${@:3}")
  code=${out##*$'\n'}
  body=${out%$'\n'*}
}
# j FILTER / jc FILTER: jq -r / jq -c over the last body.
j() { printf '%s' "$body" | jq -r "$1" 2>/dev/null; }
jc() { printf '%s' "$body" | jq -c "$1" 2>/dev/null; }
# start TYPE JSON_BODY: POST /v1/workflows/TYPE.
start() { api POST "/v1/workflows/$1" -H 'Content-Type: application/json' --data-binary "$2"; }
# result ID: long-polls until the run ends (30 s at most).
result() { api GET "/v1/workflows/$1/result?wait=30"; }
# waiting_for ID KIND: whether the run waits on KIND (GET run into $body).
waiting_for() { api GET "/v1/workflows/$1"; [ "$(j .waiting.kind)" = "$2" ]; }
