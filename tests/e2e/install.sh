#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: the installed product. Installs the build into a temporary
# prefix (cmake --install), checks every expected file, runs the installed
# CLI (which must use the installed Lua files, not the source tree), Debian's
# lighttpd with a gate that finds lodestone.policy and lodestone.core in the
# prefix through LUA_PATH_5_4/LUA_CPATH_5_4 (an allowed and a denied
# request against an installed example policy), and the installed
# lodestoned running an installed example workflow to completion. Also:
# `make install` honours PREFIX and DESTDIR (with /usr: the multiarch
# directory Debian's Lua looks in), the systemd unit passes
# `systemd-analyze verify`, the man pages render without warnings.
# usage: tests/e2e/install.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }
unset LODESTONE_LUA_DIR LODESTONE_SOCKET LODESTONE_URL LODESTONE_TOKEN

d=$E2E_DIR
p=$d/prefix
arch=$(cc -print-multiarch)

# ---- cmake --install into a prefix ----

if cmake --install "$build" --prefix "$p" > "$d/install.log" 2>&1; then
  ok "cmake --install --prefix succeeds"
else
  not_ok "cmake --install --prefix succeeds" "$(tail -5 "$d/install.log")"
fi
expected=(
  bin/lodestone bin/lodestoned
  lib/lua/5.4/lodestone/core.so
  lib/lua/5.1/lodestone/core.so lib/lua/5.1/lodestone/httpc.so
  share/lua/5.4/lodestone/init.lua share/lua/5.4/lodestone/policy.lua
  share/lua/5.4/lodestone/workflow.lua share/lua/5.4/lodestone/cli/policy.lua
  share/lua/5.1/lodestone/init.lua share/lua/5.1/lodestone/policy.lua
  share/lua/5.1/lodestone/workflow.lua share/lua/5.1/lodestone/cli/workflow.lua
  share/lodestone/conf/README.md
  share/lodestone/policies/api-keys.lua share/lodestone/policies/orders-api.lua
  share/lodestone/workflows/hello.lua
  lib/systemd/system/lodestoned.service lib/sysusers.d/lodestone.conf
  share/man/man1/lodestone.1 share/man/man8/lodestoned.8
  share/doc/lodestone/README.md
)
# Whatever conf/ and ui/ hold is installed too.
for f in $(cd "$root" && find conf -type f ! -name '*.in'); do expected+=("share/lodestone/$f"); done
if [ -d "$root/ui" ]; then
  for f in $(cd "$root" && find ui -type f); do expected+=("share/lodestone/$f"); done
fi
missing=()
for f in "${expected[@]}"; do [ -e "$p/$f" ] || missing+=("$f"); done
check "all ${#expected[@]} expected files are installed" "" "${missing[*]}"
check "the programs are executable" "yes" \
  "$([ -x "$p/bin/lodestone" ] && [ -x "$p/bin/lodestoned" ] && echo yes || echo no)"
check "no template is installed" "" "$(find "$p" -name '*.in')"
check "the demo keys are not installed (they are public)" "" "$(find "$p" -path '*demo-keys*')"
unit=$(cat "$p/lib/systemd/system/lodestoned.service")
check_contains "the unit runs the installed lodestoned" "ExecStart=$p/bin/lodestoned " "$unit"
check_contains "the unit has its own user" "User=lodestone" "$unit"
check_contains "the unit keeps data in StateDirectory" "StateDirectory=lodestone" "$unit"
check "the unit has no unsubstituted @VARIABLE@" "" "$(grep -E '@[A-Z_]+@' <<<"$unit")"

if command -v systemd-analyze >/dev/null; then
  out=$(cd "$d" && MANPATH="$p/share/man" systemd-analyze verify \
        "$p/lib/systemd/system/lodestoned.service" 2>&1)
  check "systemd-analyze verify passes on the installed unit" "0:" "$?:$out"
else
  not_ok "systemd-analyze verify passes on the installed unit" "systemd-analyze not found"
fi
# The sysusers snippet, applied to a scratch root (never to this system):
# the lodestone user and group, with www-data (lighttpd) in the group.
mkdir -p "$d/sysroot/etc"
printf 'root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n' \
  > "$d/sysroot/etc/passwd"
printf 'root:x:0:\nwww-data:x:33:\n' > "$d/sysroot/etc/group"
systemd-sysusers --root="$d/sysroot" "$p/lib/sysusers.d/lodestone.conf" > "$d/sysusers.log" 2>&1
check "systemd-sysusers accepts the snippet" 0 "$?"
check_match "it makes the lodestone system user, home /var/lib/lodestone" \
  '^lodestone:x:[0-9]+:[0-9]+:[^:]*:/var/lib/lodestone:' "$(grep '^lodestone:' "$d/sysroot/etc/passwd")"
check_match "and puts www-data in its group (the socket's group)" '^lodestone:x:[0-9]+:www-data$' \
  "$(grep '^lodestone:' "$d/sysroot/etc/group")"

for page in man1/lodestone.1 man8/lodestoned.8; do
  out=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$p/share/man/$page" 2>&1)
  check "man page $page renders without warnings" "" "$out"
done
check_contains "man -l shows lodestone(1)" "lodestone policy check" \
  "$(MANWIDTH=100 man -l "$p/share/man/man1/lodestone.1" 2>&1 | tr -s ' ')"
# Every option the programs' --help lists is in their man page.
page_text() { groff -man -Tascii "$p/share/man/$1" 2>/dev/null | col -bx; }
opts_of() { grep -oE -- '--[a-z][a-z-]+' | sort -u; }
missing=()
for o in $("$p/bin/lodestoned" --help | opts_of); do
  page_text man8/lodestoned.8 | grep -qF -- "$o" || missing+=("$o")
done
check "lodestoned(8) documents every option of lodestoned --help" "" "${missing[*]}"
missing=()
for o in $(page_text man8/lodestoned.8 | opts_of); do
  "$p/bin/lodestoned" --help | grep -qF -- "$o" || missing+=("$o")
done
check "lodestoned --help lists every option of lodestoned(8)" "" "${missing[*]}"
missing=()
for o in $( { "$p/bin/lodestone" --help
              for c in start list show history types secret key; do "$p/bin/lodestone" "$c" --help; done
            } 2>/dev/null | opts_of); do
  page_text man1/lodestone.1 | grep -qF -- "$o" || missing+=("$o")
done
check "lodestone(1) documents every option of lodestone --help and its commands' --help" "" \
  "${missing[*]}"

# ---- the installed CLI uses the installed Lua files ----

# Marks the installed copies, so that a run that loads them can tell.
for abi in 5.1 5.4; do
  for m in cli/policy workflow; do
    f=$p/share/lua/$abi/lodestone/$m.lua
    { echo 'io.stderr:write("installed-lua-'"$m"'\n")'; cat "$f"; } > "$f.new" && mv "$f.new" "$f"
  done
done

check "installed lodestone --version" "lodestone $(sed -n 's/^project(lodestone VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")" \
  "$(cd "$d" && "$p/bin/lodestone" --version)"
# up and dev token are for a source checkout (templates, demo keys): an
# installed copy says so, instead of naming a path it never had.
mkdir -p "$d/wf"
out=$(cd "$d" && "$p/bin/lodestone" up --workflows "$d/wf" 2>&1)
check "installed lodestone up says it runs from a source checkout (exit 1: cannot start)" \
  "1: lodestone up: runs from a source checkout (make demo there)" "$?: ${out%%: it needs*}"
out=$(cd "$d" && "$p/bin/lodestone" dev token --sub alice 2>&1)
check "installed lodestone dev token says it runs from a source checkout (exit 2)" \
  "2: lodestone dev token: runs from a source checkout" "$?: ${out%%: it signs*}"
# The installed example, copied as a user would, with a key file of its
# own made by the installed CLI (the demo keys are not installed).
mkdir -p "$d/pol/demo-keys"
cp "$p/share/lodestone/policies/api-keys.lua" "$d/pol/"
pol=$d/pol/api-keys.lua
key=$(cd "$d" && "$p/bin/lodestone" policy hash-key "$d/pol/demo-keys/api-keys" --subject svc-billing \
      --roles billing --scopes invoices:read 2>/dev/null)
check "installed policy hash-key prints a new key" "lsk_" "${key:0:4}"
out=$(cd "$d" && "$p/bin/lodestone" policy check "$pol" \
      --request "{\"path\":\"/invoices/7\",\"headers\":{\"X-API-Key\":\"$key\"}}" 2>"$d/check.err")
check "installed policy check allows with that key" "true svc-billing" \
  "$(printf '%s' "$out" | jq -r '"\(.allow) \(.subject)"')"
check "installed policy check loaded the installed Lua files" "installed-lua-cli/policy" \
  "$(cat "$d/check.err")"
out=$(cd "$d" && "$p/bin/lodestone" policy check "$pol" \
      --request '{"path":"/invoices/7"}' 2>/dev/null)
check "installed policy check denies without a key" "false 401 not_authenticated" \
  "$(printf '%s' "$out" | jq -r '"\(.allow) \(.status) \(.reason)"')"

# ---- lighttpd with the installed Lua module ----

port=$(e2e_free_port)
mkdir -p "$d/www/invoices" "$d/rl"
echo "invoice 7" > "$d/www/invoices/7"
# Only the prefix on the Lua paths (plus the defaults): nothing from the tree.
cat > "$d/gate.lua" <<LUA
return require("lodestone.policy").enforce(lighty,
  "$pol", { rl_dir = "$d/rl" })
LUA
cat > "$d/lighttpd.conf" <<CONF
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$d/error.log"
server.modules = ( "mod_magnet" )
magnet.attract-raw-url-to = ( "$d/gate.lua" )
CONF
lua_env=(env "LUA_PATH_5_4=$p/share/lua/5.4/?.lua;$p/share/lua/5.4/?/init.lua;;"
         "LUA_CPATH_5_4=$p/lib/lua/5.4/?.so;;")
lua_env+=("${E2E_SAN_VARS[@]}")
lighttpd -tt -f "$d/lighttpd.conf" || { echo "lighttpd -tt failed"; exit 1; }
setsid "${lua_env[@]}" lighttpd -D -f "$d/lighttpd.conf" > "$d/lighttpd.out" 2>&1 &
front=$!
E2E_PIDS+=("$front")
e2e_wait_port "$port" || { echo "lighttpd did not start"; cat "$d/error.log"; exit 1; }
base="http://127.0.0.1:$port"
check "lighttpd + installed module: a valid key gets the file" "200 invoice 7" \
  "$(curl -s -w '%{http_code} ' -o "$d/body" -H "X-API-Key: $key" "$base/invoices/7")$(cat "$d/body")"
check "lighttpd + installed module: no key is 401" "401" \
  "$(curl -s -o /dev/null -w '%{http_code}' "$base/invoices/7")"
check "lighttpd + installed module: no matching rule is 403" "403" \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $key" "$base/elsewhere")"
check_contains "lighttpd loaded the installed lodestone.core" "$p/lib/lua/5.4/lodestone/core.so" \
  "$(cat "/proc/$front/maps" 2>/dev/null)"

# ---- the installed daemon runs an installed workflow ----

sock=$d/lodestoned.sock
(cd "$d" && exec "$p/bin/lodestoned" --data "$d/data" --socket "$sock" \
   --workflows "$p/share/lodestone/workflows" --workers 2 --http-threads 2 2> "$d/daemon.log") &
daemon=$!
E2E_PIDS+=("$daemon")
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
out=$(cd "$d" && "$p/bin/lodestone" start hello --socket "$sock" --id inst-1 \
      --input '{"name":"Ada","pause":"10ms"}' --wait --timeout 30 2>"$d/start.err")
check "installed lodestoned + CLI run hello to completion" "hello, Ada" \
  "$(printf '%s' "$out" | jq -r .output.greeting 2>/dev/null)"
check "the run is completed" "completed" \
  "$(cd "$d" && "$p/bin/lodestone" show inst-1 --socket "$sock" --json | jq -r .status)"
check_contains "installed lodestoned loaded the installed Lua files" "installed-lua-workflow" \
  "$(cat "$d/daemon.log")"
# The unit sets MemoryDenyWriteExecute=yes: the daemon, with the JIT off in
# every Lua state, has no anonymous executable mapping after running code.
# (lodestoned is not dumpable: only root with CAP_SYS_PTRACE reads its map;
# an empty read must not pass for a clean map.)
maps=$(cat "/proc/$daemon/maps" 2>/dev/null)
if [ -n "$maps" ]; then
  check "lodestoned maps no anonymous executable memory" "" \
    "$(printf '%s\n' "$maps" | awk '$2 ~ /x/ && $6 == "" { print }')"
else
  ok "lodestoned maps no anonymous executable memory (skipped: /proc/$daemon/maps is not readable here)"
fi
e2e_stop "$daemon"
check "installed lodestoned stops cleanly on SIGTERM" 0 "$?"

# ---- make install: PREFIX and DESTDIR ----

stage=$d/stage
if make -s -C "$root" install BUILD="$build" JOBS=1 PREFIX=/usr DESTDIR="$stage" \
     > "$d/make-install.log" 2>&1; then
  ok "make install PREFIX=/usr DESTDIR=... succeeds"
else
  not_ok "make install PREFIX=/usr DESTDIR=... succeeds" "$(tail -5 "$d/make-install.log")"
fi
missing=()
for f in bin/lodestone bin/lodestoned share/lua/5.4/lodestone/policy.lua \
         "lib/$arch/lua/5.4/lodestone/core.so" "lib/$arch/lua/5.1/lodestone/core.so" \
         lib/systemd/system/lodestoned.service share/man/man8/lodestoned.8; do
  [ -e "$stage/usr/$f" ] || missing+=("$f")
done
check "DESTDIR stages PREFIX=/usr (Lua C modules in lib/$arch)" "" "${missing[*]}"
make -s -C "$root" install BUILD="$build" JOBS=1 PREFIX="$d/mk" > "$d/make-install2.log" 2>&1
check "make install PREFIX=DIR installs there (Lua C modules in lib/lua)" "yes" \
  "$([ -x "$d/mk/bin/lodestoned" ] && [ -f "$d/mk/lib/lua/5.4/lodestone/core.so" ] &&
     [ -f "$d/mk/share/lua/5.1/lodestone/init.lua" ] && echo yes || echo no)"
check "with PREFIX=/usr the unit runs /usr/bin/lodestoned" \
  "ExecStart=/usr/bin/lodestoned --data /var/lib/lodestone --socket /run/lodestone/lodestoned.sock --workflows /etc/lodestone/workflows" \
  "$(grep '^ExecStart=' "$stage/usr/lib/systemd/system/lodestoned.service")"
# Debian's own interpreters find a /usr install where it was put.
check_contains "lua5.4 searches lib/$arch/lua/5.4" "/usr/lib/$arch/lua/5.4/?.so" \
  "$(lua5.4 -e 'print(package.cpath)')"
check_contains "luajit searches lib/$arch/lua/5.1" "/usr/lib/$arch/lua/5.1/?.so" \
  "$(luajit -e 'print(package.cpath)')"
check_contains "lua5.4 searches share/lua/5.4" "/usr/share/lua/5.4/?/init.lua" \
  "$(lua5.4 -e 'print(package.path)')"

e2e_finish
