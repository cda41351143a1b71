#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every benchmark in BUILD_DIR/bench. Benchmarks print figures and
# ratios against a baseline measured in the same run; none passes or fails on
# time. Data goes to a temporary directory removed afterwards.
# usage: scripts/bench.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
dir=$(mktemp -d "${TMPDIR:-/tmp}/lodestone-bench-XXXXXX")
trap 'rm -rf "$dir"' EXIT
for b in "$build"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b" "$dir"
done
