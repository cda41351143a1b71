# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2154 # root, build, tmp, me: the caller's
# Sourced by the lighttpd benchmarks (bench/lighttpd_*.sh): checks the
# tools and the build, and makes in a temp dir (removed at exit) the site
# they serve, a 1 KiB static file, with the three mod_magnet scripts they
# compare: (a) a trivial header check, (b) the orders-api example policy
# through the Lodestone gate, (c) only the mod_magnet accesses (b) needs.
# The caller sets root, build, tmp and me (its name, for messages) first,
# and may set tools (more commands it needs), server_cmd (an array: what
# lighttpd runs under) and start_tries (how many 10-second waits a server
# gets to listen: 1 by default). Afterwards it has d, token and url_path,
# and the functions start, check_in_force and stop_servers; pid[c] and
# url[c] are the server and URL of configuration c.
. "$root/tests/e2e/lib.sh" # e2e_free_port, e2e_wait_port

for tool in lighttpd wrk curl lua5.4 ${tools:-}; do
  command -v "$tool" >/dev/null || { echo "$me: $tool is not installed (scripts/deps.sh)" >&2; exit 1; }
done
module=$build/lib/lua/5.4/lodestone/core.so
[ -f "$module" ] || { echo "$me: $module is missing: build target lodestone_lua54" >&2; exit 1; }
if grep -q '^LS_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "$me: skipped: $build is a sanitizer build"
  exit 0
fi

d=$(mktemp -d "$tmp/lighttpd-bench-XXXXXX")
pids=()
declare -A pid url
stop_servers() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  pids=()
}
# shellcheck disable=SC2317 # runs from the EXIT trap
stop_all() {
  stop_servers
  rm -rf "$d"
}
trap stop_all EXIT

# ---- the site, the policy, the token ----

mkdir -p "$d/www/orders" "$d/rl" "$d/a" "$d/b" "$d/c"
head -c 1024 /dev/zero | tr '\0' 'x' > "$d/www/orders/1k.html"
url_path=/orders/1k.html

# The example policy as shipped, with two changes: a rate limit that never
# denies at these rates (one subject makes every request) and the audit log
# in the temp dir. Its key files resolve against policies/ (base_dir).
sed -e 's|rate_limit = {[^}]*}|rate_limit = { by = "subject", rate = 10000000, per = "1s", burst = 10000000 }|' \
    -e "s|audit = { path = \"[^\"]*\"|audit = { path = \"$d/audit.log\"|" \
    "$root/policies/orders-api.lua" > "$d/policy.lua"
if ! grep -q 'rate = 10000000' "$d/policy.lua" ||
   ! grep -q "path = \"$d/audit.log\", log = \"deny\"" "$d/policy.lua"; then
  echo "$me: policies/orders-api.lua changed shape: cannot set its rate limit and audit path" >&2
  exit 1
fi

now=$(date +%s)
claims="{\"iss\":\"https://id.example.com/\",\"aud\":\"orders\",\"sub\":\"bench-user\",\"iat\":$now,\"exp\":$((now + 3600)),\"scope\":\"openid orders:read\",\"realm_access\":{\"roles\":[\"user\"]},\"tenant\":\"acme\"}"
token=$("$root/scripts/dev/mint-rs256.sh" "$root/policies/demo-keys/demo-signing-key.pem" demo-2026 "$claims")

# (a) the trivial check. (b) the gate: the module paths and the options
# are set once per Lua state (package.loaded survives between requests;
# prepending on every request would grow package.path without bound). The
# shipped gate (conf/gate.lua) passes no options; a table built on every
# request would cost about 1 us of its own.
cat > "$d/a/check.lua" <<'LUA'
if lighty.r.req_header["X-Foo"] == "bar" then return 403 end
return 0
LUA
cat > "$d/b/gate.lua" <<LUA
local policy = package.loaded["lodestone.policy"]
if not policy then
  package.path = "$root/lua/?.lua;$root/lua/?/init.lua;" .. package.path
  package.cpath = "$build/lib/lua/5.4/?.so;" .. package.cpath
  policy = require "lodestone.policy"
  package.loaded["bench.gate.opts"] = { rl_dir = "$d/rl", base_dir = "$root/policies" }
end
return policy.enforce(lighty, "$d/policy.lua", package.loaded["bench.gate.opts"])
LUA
cat > "$d/c/access.lua" <<'LUA'
local r = lighty.r
local attr, rh = r.req_attr, r.req_header
local path, method, addr = attr["uri.path-raw"], attr["request.method"], attr["request.remote-addr"]
local authz, key = rh["Authorization"], rh["X-API-Key"]
if not (path and method and addr and authz) or key then return 403 end
rh["X-User"] = "bench-user"
rh["X-Roles"] = "user"
rh["X-Tenant"] = nil
return 0
LUA

start() { # $1: a, b or c; $2: its magnet script
  local port
  port=$(e2e_free_port)
  cat > "$d/$1/lighttpd.conf" <<CONF
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $port
server.max-worker = 1
server.errorlog = "$d/$1/error.log"
server.modules = ( "mod_magnet" )
magnet.attract-raw-url-to = ( "$2" )
CONF
  lighttpd -tt -f "$d/$1/lighttpd.conf" >/dev/null || { echo "$me: lighttpd -tt failed ($1)" >&2; exit 1; }
  # Its own session: lighttpd signals its process group to stop workers.
  setsid ${server_cmd[@]+"${server_cmd[@]}"} lighttpd -D -f "$d/$1/lighttpd.conf" > "$d/$1/out" 2>&1 &
  pids+=($!)
  pid[$1]=$!
  url[$1]=http://127.0.0.1:$port$url_path
  local _
  for _ in $(seq "${start_tries:-1}"); do e2e_wait_port "$port" && return 0; done
  echo "$me: lighttpd ($1) did not start" >&2
  cat "$d/$1/error.log" "$d/$1/out" >&2
  exit 1
}
# check_in_force [CONFIG...] (default a b c): before measuring, each
# answers the benchmark's request with 200 and the file, and its script is
# really in force: (a) refuses X-Foo: bar, (b) and (c) a request without a
# token. That 401 of (b) is the one denial its audit log may hold.
check_in_force() {
  local c got want what
  local cs=("$@")
  [ $# -gt 0 ] || cs=(a b c)
  for c in "${cs[@]}"; do
    got=$(curl -s -o "$d/$c/body" -w '%{http_code}' -H "Authorization: Bearer $token" "${url[$c]}")
    if [ "$got" != 200 ] || ! cmp -s "$d/$c/body" "$d/www/orders/1k.html"; then
      echo "$me: error: ($c) answered $got, not 200 with the file" >&2
      cat "$d/$c/error.log" >&2
      exit 1
    fi
    if [ "$c" = a ]; then
      got=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H "X-Foo: bar" "${url[a]}")
      want=403 what="X-Foo: bar"
    else
      got=$(curl -s -o /dev/null -w '%{http_code}' "${url[$c]}")
      want=$([ "$c" = b ] && echo 401 || echo 403) what="no token"
    fi
    if [ "$got" != "$want" ]; then
      echo "$me: error: the script of ($c) is not in force: $what gave $got (want $want)" >&2
      exit 1
    fi
  done
}
