#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Style and static checks: clang-format (every C file), cppcheck (native/),
# clang-tidy (C files changed against HEAD, or all with LINT_ALL=1).
# usage: scripts/lint.sh BUILD_DIR   (BUILD_DIR holds compile_commands.json)
set -uo pipefail
build=${1:-build}
cd "$(git rev-parse --show-toplevel)"
status=0

mapfile -t all < <(git ls-files --cached --others --exclude-standard -- '*.c' '*.h' | grep -v '^build/')
if [ ${#all[@]} -gt 0 ] && ! clang-format --dry-run --Werror "${all[@]}"; then
  echo "lint: clang-format found differences (fix: clang-format -i FILES)"; status=1
fi

if ! cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
     --inline-suppr --std=c11 -I native/include -I native/core -I "$build/generated" \
     --suppress=missingIncludeSystem native/; then
  echo "lint: cppcheck found problems"; status=1
fi

if [ "${LINT_ALL:-0}" = 1 ]; then
  changed=("${all[@]}")
else
  mapfile -t changed < <( { git diff --name-only HEAD -- '*.c'; git ls-files --others --exclude-standard -- '*.c'; } | sort -u)
fi
changed=($(printf '%s\n' "${changed[@]}" | grep '\.c$' || true))
if [ ${#changed[@]} -gt 0 ]; then
  if ! clang-tidy --quiet -p "$build" "${changed[@]}" 2>/dev/null; then
    echo "lint: clang-tidy found problems"; status=1
  fi
fi
[ $status = 0 ] && echo "lint: clean (clang-format ${#all[@]} files, cppcheck native/, clang-tidy ${#changed[@]} changed files)"
exit $status
