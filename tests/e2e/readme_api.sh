#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: every route in README.md's HTTP API table is served by a real
# lodestoned: each request, in the table's order, gets neither 404 "no route"
# nor 405, and its status is one the table lists for it. (The other
# direction, every route of the router is in the table, is
# tests/lua/11-readme_spec.lua.)
# usage: tests/e2e/readme_api.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
command -v jq >/dev/null || { echo "jq not found (scripts/deps.sh installs it)"; exit 1; }

d=$E2E_DIR
sock=$d/data/lodestoned.sock
e2e_lodestoned "$sock" "$d/daemon.log" --data "$d/data" --workflows "$root/workflows" \
  --workers 2 --grace 2 || exit 1

# The table's rows: "METHOD PATH<TAB>the whole row".
rows=$(awk '/^### HTTP API/{on=1; next} on && /^##/{exit} on' README.md |
  sed -nE 's/^\| `([A-Z]+) ([^`]+)`(.*)$/\1 \2\t&/p')
n=$(printf '%s\n' "$rows" | grep -c .)
check_match "the HTTP API table has rows" '^[1-9][0-9]+$' "$n"

# A request body that the route takes, for the routes that read one.
body_for() {
  case "$1 $2" in
    "POST /v1/workflows/{type}") printf '%s' '{"id":"readme-1","input":{"name":"Ada","pause":"0s"}}' ;;
    "POST /v1/schedules") printf '%s' '{}' ;;
    "PUT /v1/secrets/{name}") printf '%s' 'readme-value' ;;
    "POST /v1/keys/rotate") ;; # no body
    "POST "*) printf '%s' '{}' ;;
  esac
}

while IFS=$'\t' read -r req line; do
  method=${req%% *}
  path=${req#* }
  url=$(printf '%s' "$path" | sed -e 's/{type}/hello/; s/{id}/readme-1/; s/{name}/readme/g')
  body=$(body_for "$method" "$path")
  args=(-s -o "$d/out" -w '%{http_code}' -X "$method" --unix-socket "$sock")
  [ -n "$body" ] && args+=(--data-binary "$body")
  code=$(curl "${args[@]}" "http://lodestoned$url")
  msg=$(jq -r '.error.message? // ""' "$d/out" 2>/dev/null)
  if [ "$code" = 405 ] || { [ "$code" = 404 ] && [[ "$msg" == "no route"* ]]; }; then
    not_ok "$req is served" "$code $msg"
  else
    ok "$req is served ($code)"
  fi
  listed=$(printf '%s' "${line#*|*|}" | grep -oE '\b[1-5][0-9]{2}\b' | tr '\n' ' ')
  check_contains "$req: $code is a status the table lists ($listed)" " $code " " $listed"
  # The start is followed by its end, so the run-level routes see a finished run.
  if [ "$method $path" = "POST /v1/workflows/{type}" ]; then
    curl -s -o /dev/null --unix-socket "$sock" "http://lodestoned/v1/workflows/readme-1/result?wait=10"
  fi
done <<< "$rows"

# A path that is not in the table is "no route": the check above can fail.
code=$(curl -s -o "$d/out" -w '%{http_code}' --unix-socket "$sock" http://lodestoned/v1/nothing)
check "an unknown path is 404" 404 "$code"
check_contains "with no route" "no route" "$(jq -r .error.message "$d/out")"

e2e_finish
