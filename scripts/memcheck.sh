#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every C unit test binary under valgrind memcheck, then the fuzz
# harnesses on their seeds (tests/fuzz/replay.sh) with each replay under
# valgrind; fails on any memory error or definitely/indirectly lost block.
# usage: scripts/memcheck.sh BUILD_DIR
set -uo pipefail
build=${1:-build}
command -v valgrind >/dev/null || { echo "memcheck: valgrind not found (Debian package valgrind)" >&2; exit 2; }
kinds=definite,indirect
vg=(valgrind --quiet --leak-check=full "--errors-for-leak-kinds=$kinds"
    "--show-leak-kinds=$kinds" --error-exitcode=99 --track-fds=no)
status=0
pass=0
fail=0
# check NAME COMMAND...: runs it, prints a line, and its output on failure.
check() {
  local name=$1 log
  shift
  log=$(mktemp)
  if "$@" >"$log" 2>&1; then
    pass=$((pass + 1))
    echo "memcheck $name: clean ($(grep -E '^\[  PASSED  \]|harnesses ran' "$log" | tail -1))"
  else
    fail=$((fail + 1))
    status=1
    echo "memcheck $name: FAILED"
    cat "$log"
  fi
  rm -f "$log"
}
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  check "$(basename "$t")" "${vg[@]}" "$t"
done
check "fuzz seeds" env LS_REPLAY_RUNNER="${vg[*]}" bash "$(dirname "$0")/../tests/fuzz/replay.sh" "$build/tests/fuzz"
echo "memcheck: $pass passed, $fail failed"
exit $status
