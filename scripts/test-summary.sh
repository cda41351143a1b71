#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Prints each test runner's own summary lines from a ctest log, then
# ctest's closing line, so `make test` ends with what every runner said.
log=$1
[ -f "$log" ] || exit 0
echo
echo "---- summary of each runner ----"
awk '
  /^[0-9]+\/[0-9]+ Test: / { name = $3 }
  /^\[  PASSED  \]|^\[  FAILED  \]|^\[==========\] .* ran\./ { print name ": " $0 }
  / successes? \/ [0-9]+ failures? \/ / { print name ": " $0 }
  /^(e2e: )?[0-9]+ passed, [0-9]+ failed$/ { print name ": " $0 }
' "$log"
passed=$(grep -c '^Test Passed\.$' "$log" || true)
failed=$(grep -c '^Test Failed\.$\|^Test Failed' "$log" || true)
echo "ctest: $passed passed, $failed failed"
