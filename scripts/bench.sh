#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every benchmark: each program BUILD_DIR/bench/bench_* with a temp
# dir, then each script bench/*.sh with BUILD_DIR and that temp dir.
# Benchmarks print figures and ratios against a baseline measured in the
# same run; none passes or fails on time (a script exits non-zero only when
# what it measured was wrong, e.g. error responses). Every benchmark runs;
# the exit status says whether any of them failed. Data goes to a
# temporary directory removed afterwards.
# usage: scripts/bench.sh BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/lodestone-bench-XXXXXX")
trap 'rm -rf "$dir"' EXIT
failed=()
for b in "$build"/bench/bench_*; do
  if [ -f "$b" ] && [ -x "$b" ]; then
    echo "== $(basename "$b")"
    "$b" "$dir" || failed+=("$(basename "$b")")
  fi
done
for s in "$root"/bench/*.sh; do
  [ -f "$s" ] || continue
  echo "== $(basename "$s")"
  (cd "$root" && bash "$s" "$build" "$dir") || failed+=("$(basename "$s")")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
