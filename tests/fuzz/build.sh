#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan, straight from the project's sources, into build/fuzz/.
#   tests/fuzz/build.sh            every harness
#   tests/fuzz/build.sh jwt cron   only fuzz_jwt and fuzz_cron
# The project's sources are compiled once into build/fuzz/obj/ (rebuilt
# when a source is newer than its object). Runs one compiler at a time.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/fuzz
CC=${CC:-clang}
CFLAGS="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
INC="-I$ROOT/tests/c -I$ROOT/native/include -I$ROOT/native -I$ROOT/native/core -I$ROOT/native/policy -I$ROOT/build/fuzz/gen"
LIBS="-ljansson -lcrypto -lsodium -lcurl -ldl -lm -lpthread"

mkdir -p "$OUT/obj" "$OUT/gen"
# ls_config.h, as CMake generates it (native/core/ls_config.h.in)
if [ ! -f "$OUT/gen/ls_config.h" ]; then
  sed -e 's/@PROJECT_VERSION@/0.1.0/; s/@PROJECT_VERSION_MAJOR@/0/; s/@PROJECT_VERSION_MINOR@/1/' \
      -e 's/@PROJECT_VERSION_PATCH@/0/; s#@[A-Za-z_]*@#/nonexistent#g' \
      "$ROOT/native/core/ls_config.h.in" > "$OUT/gen/ls_config.h"
fi

SRCS="$ROOT/native/core/*.c $ROOT/native/policy/*.c $ROOT/native/flow/cron.c $ROOT/native/flow/history.c $ROOT/native/store/keys.c"
OBJS=""
for s in $SRCS; do
  o=$OUT/obj/$(basename "$(dirname "$s")")_$(basename "$s" .c).o
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ]; then
    echo "cc $s"
    "$CC" $CFLAGS -fsanitize=fuzzer-no-link -std=gnu11 $INC -c "$s" -o "$o"
  fi
  OBJS="$OBJS $o"
done

if [ $# -gt 0 ]; then
  TARGETS="$*"
else
  TARGETS=$(cd "$ROOT/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
fi
for t in $TARGETS; do
  echo "link fuzz_$t"
  $CC $CFLAGS -fsanitize=fuzzer -std=gnu11 $INC -DLS_FUZZ_ROOT="\"$ROOT\"" "$ROOT/tests/fuzz/fuzz_$t.c" $OBJS $LIBS \
      -o "$OUT/fuzz_$t"
done
