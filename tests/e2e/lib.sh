# SPDX-License-Identifier: MIT
# Shared helpers for end-to-end tests: a temp dir, free ports, processes
# started in the background and stopped by PID, and ok/fail counting that
# ends in a "N passed, N failed" line.
set -u

E2E_PASS=0
E2E_FAIL=0
E2E_PIDS=()

e2e_tmpdir() {
  E2E_DIR=$(mktemp -d "${TMPDIR:-/tmp}/lodestone-e2e-XXXXXX")
}

e2e_cleanup() {
  local pid
  for pid in "${E2E_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${E2E_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  [ -n "${E2E_KEEP:-}" ] || rm -rf "$E2E_DIR"
}

# A TCP port on 127.0.0.1 that nothing listens on now.
e2e_free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "$port"; return 0; fi
  done
  echo "no free port" >&2
  return 1
}

# Waits until 127.0.0.1:$1 accepts connections (up to 10 s).
e2e_wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

ok() { E2E_PASS=$((E2E_PASS + 1)); echo "ok - $1"; }
not_ok() { E2E_FAIL=$((E2E_FAIL + 1)); echo "not ok - $1"; [ $# -gt 1 ] && echo "#   $2"; }

# check NAME EXPECTED ACTUAL
check() {
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected [$2], got [$3]"; fi
}

# check_contains NAME NEEDLE HAYSTACK
check_contains() {
  case "$3" in *"$2"*) ok "$1" ;; *) not_ok "$1" "[$2] not in [$3]" ;; esac
}

check_absent() {
  case "$3" in *"$2"*) not_ok "$1" "[$2] found in output" ;; *) ok "$1" ;; esac
}

e2e_finish() {
  echo "e2e: $E2E_PASS passed, $E2E_FAIL failed"
  [ "$E2E_FAIL" -eq 0 ]
}
