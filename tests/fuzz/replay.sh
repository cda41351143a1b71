#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make test's replay of the libFuzzer harnesses (tests/CMakeLists.txt):
# writes the seed corpora into a temp dir (seeds.py, and the event and
# apikey harnesses' own seeds, as run.sh does for make fuzz), then runs
# each replay_<target> on its corpus. Fails when a harness aborts (a crash,
# a sanitizer report or a wrong result) or has no seeds to run.
#   tests/fuzz/replay.sh DIR    (DIR holds the replay_<target> binaries)
# LS_REPLAY_RUNNER, when set, is put before each replay (scripts/memcheck.sh
# sets valgrind there).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:?usage: tests/fuzz/replay.sh DIR}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ls-fuzz-seeds-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

python3 "$root/tests/fuzz/seeds.py" "$tmp"
mkdir -p "$tmp/event"
FUZZ_SEED_DIR=$tmp/event "$bin/replay_event" --min 0 2>/dev/null
{ printf '\001'; FUZZ_PRINT_FILE=1 "$bin/replay_apikey" --min 0 2>/dev/null; } > "$tmp/apikey/seed-file"

n=0
for b in "$bin"/replay_*; do
  t=${b##*/replay_}
  [ -d "$tmp/$t" ] || { echo "replay.sh: no seeds for $t (tests/fuzz/seeds.py)" >&2; exit 1; }
  # shellcheck disable=SC2086 # the runner is a command and its options
  ${LS_REPLAY_RUNNER:-} "$b" "$tmp/$t"
  n=$((n + 1))
done
[ "$n" -eq "$(find "$root/tests/fuzz" -name 'fuzz_*.c' | wc -l)" ] || {
  echo "replay.sh: $n replays built, not one per tests/fuzz/fuzz_*.c" >&2; exit 1; }
echo "replay.sh: $n harnesses ran on their seeds"
