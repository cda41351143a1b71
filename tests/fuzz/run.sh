#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs libFuzzer targets one after another (never two at once; the
# machines here have 2 cores):
#   tests/fuzz/run.sh SECONDS [target...]      (default: every target)
# Build them first (tests/fuzz/build.sh). An empty corpus
# build/fuzz/corpus/<target>/ is seeded first (tests/fuzz/seeds.py, and the
# harness itself for event). Logs go to build/fuzz/runs/<target>.log, inputs
# that crash or give a wrong result to build/fuzz/artifacts/<target>-*.
# Prints one line per target; exits 1 when a target found something.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT/build/fuzz" || { echo "run.sh: build the harnesses first (tests/fuzz/build.sh)" >&2; exit 2; }
mkdir -p runs artifacts corpus
secs=${1:?usage: tests/fuzz/run.sh SECONDS [target...]}
shift
if [ $# -eq 0 ]; then
  # shellcheck disable=SC2046 # target names have no blanks
  set -- $(cd "$ROOT/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
fi
if [ -z "$(ls corpus/jwt 2>/dev/null)" ]; then python3 "$ROOT/tests/fuzz/seeds.py" || exit 2; fi
if [ -z "$(ls corpus/event 2>/dev/null)" ] && [ -x ./fuzz_event ]; then
  mkdir -p corpus/event
  FUZZ_SEED_DIR=corpus/event ./fuzz_event -runs=0 corpus/event > /dev/null 2>&1
fi
if [ ! -e corpus/apikey/seed-file ] && [ -x ./fuzz_apikey ]; then
  mkdir -p corpus/apikey # the harness's own key file, as key file text (byte 0 odd)
  { printf '\001'; FUZZ_PRINT_FILE=1 ./fuzz_apikey -runs=0 2>/dev/null; } > corpus/apikey/seed-file
fi
# The harnesses' key files go to a temp dir of this run's, emptied after
# each target (libFuzzer can exit without the harness's own clean-up).
export TMPDIR="$ROOT/build/fuzz/tmp"
mkdir -p "$TMPDIR"
found=0
for t in "$@"; do
  [ -x "./fuzz_$t" ] || { echo "run.sh: no build/fuzz/fuzz_$t (tests/fuzz/build.sh $t)" >&2; exit 2; }
  dict=""
  case $t in
    jwt|jwks) dict=$ROOT/tests/fuzz/jwt.dict ;;
    policy_load|policy_eval) dict=$ROOT/tests/fuzz/policy.dict ;;
  esac
  mkdir -p "corpus/$t"
  ./fuzz_$t -max_total_time="$secs" -rss_limit_mb=2048 -timeout=5 -max_len=8192 \
    ${dict:+-dict=$dict} -artifact_prefix="artifacts/$t-" -print_final_stats=1 \
    "corpus/$t" > "runs/$t.log" 2>&1
  rc=$?
  rm -rf "${TMPDIR:?}"/lsfuzz.*
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "runs/$t.log")
  cov=$(grep -o 'cov: [0-9]*' "runs/$t.log" | tail -n 1)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz_$t: ok, ${runs:-?} runs in ${secs} s, ${cov:-cov: ?}"
  else
    found=1
    echo "fuzz_$t: FOUND SOMETHING (exit $rc): build/fuzz/runs/$t.log, build/fuzz/artifacts/$t-*"
    grep -E 'ERROR: |FUZZ BUG|runtime error' "runs/$t.log" | head -n 3
  fi
done
exit $found
