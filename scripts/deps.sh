#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages that Lodestone's build, tests, demo and
# benchmarks need. Idempotent: installs only what is missing and runs
# `apt-get update` only when a package cannot be found in the current lists.
#   scripts/deps.sh          what make, make test, make demo, make bench need
#   scripts/deps.sh --fuzz   and what make fuzz needs (clang's libFuzzer)
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config
  # libraries
  libleveldb-dev libsodium-dev libjansson-dev libssl-dev
  libcurl4-openssl-dev libmicrohttpd-dev
  libicu-dev # schedules in named timezones (ICU holds the zones)
  # Lua runtimes and headers: LuaJIT for the daemon, Lua 5.4 for mod_magnet
  luajit libluajit-5.1-dev lua5.4 liblua5.4-dev
  # lighttpd with mod_magnet (Lua 5.4)
  lighttpd lighttpd-modules-lua
  # tests
  libcmocka-dev lua-busted valgrind curl procps openssl jq
  python3 # tests/fuzz/seeds.py: the fuzz harnesses' seeds, replayed by make test
  bsdutils # script(1): a pseudo-terminal for tests/e2e/cli_daemon.sh (Essential, listed to be sure)
  # tests/e2e/install.sh: man pages rendered and checked, the systemd unit verified
  groff-base man-db bsdextrautils systemd
  # benchmarks
  wrk
  # lint
  clang-format clang-tidy cppcheck
)

# The web UI's browser test (tests/e2e/ui_browser.sh): Debian's chromium,
# driven by playwright-core from npm (pinned in tests/ui/package-lock.json;
# it never downloads a browser). Debian's node only when there is none.
PACKAGES+=(chromium)

# make fuzz (tests/fuzz/): clang with its libFuzzer runtime.
if [ "${1:-}" = "--fuzz" ]; then
  PACKAGES+=(clang libclang-rt-14-dev)
fi
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs npm)
# Installs tests/ui/node_modules when it is missing or older than the lock file.
ui_node_modules() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/ui"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "deps.sh: npm ci in tests/ui" >&2
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$dir" --no-audit --no-fund >&2
    touch "$dir/node_modules"
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  ui_node_modules
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "deps.sh: missing packages (${missing[*]}) and not root; install them or run with sudo" >&2
    exit 1
  fi
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Update the package lists only when one of the missing packages is unknown
# to apt (fresh machine, or lists too old).
need_update=0
for p in "${missing[@]}"; do
  if ! apt-cache show "$p" >/dev/null 2>&1; then need_update=1; break; fi
done
if [ "$need_update" -eq 1 ]; then
  "${SUDO[@]}" apt-get update -qq
fi
if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  # Lists can be stale even when every name resolves (a version was removed
  # from the mirror): refresh once and try again.
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
ui_node_modules
