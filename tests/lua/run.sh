#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the busted specs in tests/lua/ under one Lua runtime.
# usage: tests/lua/run.sh luajit|lua5.4 BUILD_DIR   (from the project root)
set -euo pipefail
rt=$1
build=$(cd "$2" && pwd)
case "$rt" in
  luajit) abi=5.1 ;;
  lua5.4) abi=5.4 ;;
  *) echo "run.sh: unknown runtime '$rt' (luajit or lua5.4)" >&2; exit 2 ;;
esac
busted=$(command -v busted) || { echo "run.sh: busted not found (Debian package lua-busted)" >&2; exit 2; }

export LS_BUILD_DIR=$build LS_LUA_ABI=$abi LS_MOCKSVC=$build/tests/mocksvc

# The specs for this runtime: those of LuaJIT-only modules (lodestone.httpc
# is built for LuaJIT alone) are not run under Lua 5.4 at all, rather than
# skipped from inside. Spec files given after BUILD_DIR replace the list.
jit_only=" 06-http_spec.lua "
specs=()
for f in tests/lua/*_spec.lua; do
  if [ "$rt" = lua5.4 ] && [[ "$jit_only" == *" ${f##*/} "* ]]; then continue; fi
  specs+=("$f")
done
for a in "${@:3}"; do
  case "$a" in *_spec.lua) specs=() ;; esac
done
if [ "${LS_SANITIZE:-0}" = 1 ]; then
  # The interpreter is not instrumented: load the ASan runtime first.
  export LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
  # intercept_tls_get_addr=0: LSan's tracking of dynamic TLS (the blocks
  # of dlopen()ed libraries such as libsodium) takes a block that happens
  # to start 16 bytes into a page for glibc 2.19's layout, reads a bogus
  # range from it and crashes at exit ("Tracer caught signal 11",
  # google/sanitizers#1322); whether it happens depends on the heap's
  # layout. Without the tracking, dynamic TLS is no root for the leak
  # check, which can only add reports, never hide one.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:intercept_tls_get_addr=0}
fi
# busted is packaged for 5.1 only; its modules are plain Lua that 5.4 runs.
exec "$rt" -e "package.path='/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;'..package.path" \
  "$busted" --config-file=tests/lua/.busted "${@:3}" "${specs[@]}"
