#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every C unit test binary under valgrind memcheck; fails on any memory
# error or definitely/indirectly lost block.
# usage: scripts/memcheck.sh BUILD_DIR
set -uo pipefail
build=${1:-build}
command -v valgrind >/dev/null || { echo "memcheck: valgrind not found (Debian package valgrind)" >&2; exit 2; }
status=0
pass=0
fail=0
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  log=$(mktemp)
  if valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
       --show-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no \
       "$t" >"$log" 2>&1; then
    pass=$((pass + 1))
    echo "memcheck $name: clean ($(grep -E '^\[  PASSED  \]' "$log" | tail -1))"
  else
    fail=$((fail + 1))
    status=1
    echo "memcheck $name: FAILED"
    cat "$log"
  fi
  rm -f "$log"
done
echo "memcheck: $pass passed, $fail failed"
exit $status
