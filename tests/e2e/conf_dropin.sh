#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: the drop-in conf/lodestone.conf and the installed gate
# conf/gate.lua, for real. Both pass `lighttpd -tt` included from Debian's
# own /etc/lighttpd/lighttpd.conf; then, with their installed paths
# (/etc/lodestone, /run/lodestone, /usr/share/lodestone) moved into a temp
# dir and nothing else changed, lighttpd runs them in front of a real
# lodestoned: /v1/ for admins only, the UI served, other paths denied (503)
# until default.lua exists and then decided by it.
# usage: tests/e2e/conf_dropin.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }
export LODESTONE_LUA_DIR="$root/lua"

d=$E2E_DIR
L=$build/bin/lodestone

# ---- lighttpd -tt with Debian's configuration ----

cp /etc/lighttpd/lighttpd.conf "$d/debian.conf"
echo "include \"$root/conf/lodestone.conf\"" >> "$d/debian.conf"
out=$(lighttpd -tt -f "$d/debian.conf" 2>&1); rc=$?
check "Debian's lighttpd.conf with the drop-in passes lighttpd -tt" 0 "$rc"
[ "$rc" = 0 ] || echo "# $out"

# ---- the drop-in with its paths in a temp dir ----

# Only the installed locations change; everything else is the shipped text.
relocate() {
  sed -e "s#/etc/lodestone#$d/etc/lodestone#g" -e "s#/run/lodestone#$d/run/lodestone#g" \
      -e "s#/usr/share/lodestone#$d/share/lodestone#g" "$1"
}
mkdir -p "$d/etc/lodestone/policies/demo-keys" "$d/run/lodestone" "$d/share/lodestone/ui" \
         "$d/www" "$d/conf-enabled"
relocate "$root/conf/lodestone.conf" > "$d/conf-enabled/50-lodestone.conf"
relocate "$root/conf/gate.lua" > "$d/etc/lodestone/gate.lua"
cp "$root/policies/lodestone-api.lua" "$d/etc/lodestone/policies/"
cp "$root/policies/demo-keys/jwks.json" "$d/etc/lodestone/policies/demo-keys/"
check "the relocated drop-in keeps no installed path" "" \
  "$(grep -h -e /etc/lodestone -e /run/lodestone -e /usr/share/lodestone \
       "$d/conf-enabled/50-lodestone.conf" "$d/etc/lodestone/gate.lua" | grep -v "$d" || true)"
echo '<title>lodestone-ui-marker</title>' > "$d/share/lodestone/ui/index.html"
echo 'hello from the site' > "$d/www/hello.txt"
echo 'not for you' > "$d/www/secret.txt"

port=$(e2e_free_port)
# As Debian's lighttpd.conf does: its modules, then the conf-enabled files.
cat > "$d/lighttpd.conf" <<CONF
server.modules = ( "mod_indexfile", "mod_access", "mod_alias", "mod_redirect" )
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$d/error.log"
index-file.names = ( "index.html" )
include "$d/conf-enabled/*.conf"
CONF
out=$(lighttpd -tt -f "$d/lighttpd.conf" 2>&1); rc=$?
check "the relocated drop-in passes lighttpd -tt" 0 "$rc"

"$build/bin/lodestoned" --data "$d/var" --workflows "$root/workflows" \
  --socket "$d/run/lodestone/lodestoned.sock" > "$d/lodestoned.log" 2>&1 &
E2E_PIDS+=($!)
for _ in $(seq 100); do [ -S "$d/run/lodestone/lodestoned.sock" ] && break; sleep 0.1; done

# The installed gate finds the modules on Lua 5.4's own path (make install);
# here the environment puts the source tree and the build there instead.
SAN=("${E2E_SAN_VARS[@]}")
setsid env "${SAN[@]}" LUA_PATH_5_4="$root/lua/?.lua;$root/lua/?/init.lua;;" \
  LUA_CPATH_5_4="$build/lib/lua/5.4/?.so;;" lighttpd -D -f "$d/lighttpd.conf" > "$d/lighttpd.out" 2>&1 &
E2E_PIDS+=($!)
e2e_wait_port "$port" || { echo "lighttpd did not start"; cat "$d/error.log"; exit 1; }
base=http://127.0.0.1:$port

status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
admin=$("$L" dev token --sub alice --roles admin)
viewer=$("$L" dev token --sub bob --roles viewer)

check "/v1/ without a token is 401" 401 "$(status "$base/v1/workflows")"
check "/v1/ with a viewer's token is 403" 403 "$(status -H "Authorization: Bearer $viewer" "$base/v1/workflows")"
check "/v1/ with an admin's token reaches lodestoned" '200 {"runs":[]}' \
  "$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $admin" "$base/v1/workflows" | awk '{print $NF, $1}')"
body=$(curl -s -X POST -H "Authorization: Bearer $admin" -d '{"input":{"name":"Bo","pause":"10ms"}}' "$base/v1/workflows/hello")
id=$(printf '%s' "$body" | jq -r .id)
res=$(curl -s -H "Authorization: Bearer $admin" "$base/v1/workflows/$id/result?wait=10")
check "an admin starts a run through the proxy and it completes" "hello, Bo" \
  "$(printf '%s' "$res" | jq -r .output.greeting)"
check_contains "the UI is served" "lodestone-ui-marker" "$(curl -s "$base/ui/")"
check "other paths: 503 until default.lua exists (fail closed)" 503 "$(status "$base/hello.txt")"
check_contains "the error log says why" "default.lua" "$(cat "$d/error.log")"

cat > "$d/etc/lodestone/policies/default.lua" <<'LUA'
local policy = require "lodestone.policy"
return policy.define { name = "site", rules = { { path = "/hello.txt", allow = "anyone" } } }
LUA
for _ in $(seq 30); do [ "$(status "$base/hello.txt")" = 200 ] && break; sleep 0.1; done
check "default.lua, once written, decides other paths" "hello from the site" "$(curl -s "$base/hello.txt")"
check "and denies what it does not allow" 403 "$(status "$base/secret.txt")"
check "/v1/ is still for admins" 401 "$(status "$base/v1/workflows")"

e2e_finish
