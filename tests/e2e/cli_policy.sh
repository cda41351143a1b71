#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The `lodestone policy` commands as a user runs them: check prints the
# decision as JSON, test runs cases and fails on a failing one, hash-key
# makes a key that the policy then accepts, and bad input gets a clear error
# and a non-zero exit.
# usage: tests/e2e/cli_policy.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
export LODESTONE_LUA_DIR="$root/lua" TMPDIR="$E2E_DIR" HOME="$E2E_DIR"
ls=$build/bin/lodestone
d=$E2E_DIR

cat > "$d/p.lua" <<'LUA'
local policy = require "lodestone.policy"
return policy.define {
  name = "cli-e2e",
  authenticate = { policy.api_key { header = "X-API-Key", keys = "keys" } },
  rules = {
    { path = "/public/**", allow = "anyone" },
    { path = "/billing/**", roles = { "billing" } },
  },
  identity_headers = { ["X-User"] = "sub" },
}
LUA

# hash-key creates the file with a header, prints the key once, mode 0600.
key=$("$ls" policy hash-key "$d/keys" --subject svc-a --roles billing 2>"$d/err")
check "hash-key exits 0" 0 $?
check_contains "hash-key says the key is shown once" "shown once" "$(cat "$d/err")"
check "hash-key prints an lsk_ key" "lsk_" "${key:0:4}"
check "key file is 0600" 600 "$(stat -c %a "$d/keys")"
check_absent "the key file does not hold the key" "$key" "$(cat "$d/keys")"

out=$("$ls" policy check "$d/p.lua" --request "{\"path\":\"/billing/run\",\"headers\":{\"X-API-Key\":\"$key\"}}")
check "check exits 0 on a decision" 0 $?
check_contains "allowed with the new key" '"allow":true' "$out"
check_contains "identity header it would set" '"X-User":"svc-a"' "$out"
out=$("$ls" policy check "$d/p.lua" --request '{"path":"/billing/run"}')
check_contains "denied without a key" '"status":401' "$out"
check_contains "with the reason" '"reason":"not_authenticated"' "$out"
out=$("$ls" policy check "$d/p.lua" --request '{"path":"/public/x?a=1"}')
check_contains "query split from the path" '"allow":true' "$out"

# Bad input: clear errors, exit 2.
err=$("$ls" policy check "$d/p.lua" --request '{"path":' 2>&1)
check "malformed request JSON exits 2" 2 $?
check_contains "names the position" "--request: json.decode: line 1" "$err"
err=$("$ls" policy check "$d/p.lua" --request '{"path":"/","hedaers":{}}' 2>&1)
check_contains "unknown request field is named" "unknown field 'hedaers'" "$err"
err=$("$ls" policy check "$d/p.lua" --request --now 5 2>&1)
check "an option as the value of --request exits 2" 2 $?
check_contains "and says so" "--request needs a value, got the option --now (write --request=--now if that is the value)" "$err"
err=$("$ls" policy check "$d/missing.lua" --request '{"path":"/"}' 2>&1)
check "missing policy file exits 2" 2 $?
check_contains "says which file" "missing.lua" "$err"
printf 'return policy.define {' > "$d/broken.lua"
err=$("$ls" policy check "$d/broken.lua" --request '{"path":"/"}' 2>&1)
check "broken policy exits 2" 2 $?
err=$("$ls" policy frobnicate 2>&1)
check "unknown subcommand exits 2" 2 $?
check_contains "and names it" "unknown command 'frobnicate'" "$err"
err=$("$ls" policy check "$d/p.lua" --request '["/public/x"]' 2>&1)
check "a request that is an array exits 2" 2 $?
check "and says an object is expected" "lodestone policy: request: expected a JSON object" "$err"
err=$("$ls" policy check "$d/p.lua" --request '{"path":"/"}' --now nan 2>&1)
check "--now nan exits 2" 2 $?
check "and names --now" "lodestone policy: --now: expected seconds since the epoch, got nan" "$err"
err=$("$ls" policy check "$d/p.lua" 2>&1)
check "check without --request exits 2" 2 $?
check_contains "and says --request is required" "lodestone policy: --request JSON is required" "$err"
err=$("$ls" policy check "$d/p.lua" extra --request '{"path":"/"}' 2>&1)
check "check with an extra argument exits 2" 2 $?
check_contains "and names it" "lodestone policy: unexpected argument 'extra'" "$err"
out=$("$ls" policy check "$d/p.lua" --request='{"path":"/public/x"}')
check_contains "--request=JSON works as --request JSON" '"allow":true' "$out"
err=$(echo pw | "$ls" policy hash-password "$d/users" "" 2>&1)
check "hash-password with an empty USER exits 2" 2 $?
check_contains "and says so" "USER: empty" "$err"
check "and writes no user" "no" "$([ -e "$d/users" ] && echo yes || echo no)"

# --help, at the group or on a subcommand (lodestone(1): "Every command
# takes --help"): the usage on stdout, exit 0.
for args in "--help" "help" "check --help" "test -h" "hash-key --help" "hash-password -h"; do
  # shellcheck disable=SC2086 # split on purpose
  out=$("$ls" policy $args 2>"$d/err")
  check "policy $args exits 0" 0 $?
  check_contains "policy $args prints the usage" "lodestone policy check FILE --request JSON" "$out"
  check "policy $args writes nothing to stderr" "" "$(cat "$d/err")"
done
check_contains "the help shows a request" '"remote_addr": "10.0.0.5"' "$out"
check_contains "and a cases file" '"expect": {"allow": true' "$out"
err=$("$ls" policy 2>&1 >/dev/null)
check "no subcommand is a usage error" 2 $?
check_contains "that shows the usage" "lodestone policy test FILE CASES.json" "$err"
err=$("$ls" signal x 2>&1)
check "a workflow verb with missing arguments exits 2" 2 $?
check_contains "with a clear message" "expected a run ID, a signal NAME" "$err"

# test: passes, then fails on a wrong expectation with a readable diff.
cat > "$d/cases.json" <<JSON
{"cases": [
  {"name": "billing key", "request": {"path": "/billing/x", "headers": {"X-API-Key": "$key"}}, "expect": {"allow": true, "subject": "svc-a"}},
  {"name": "no key", "request": {"path": "/billing/x"}, "expect": {"status": 401}}
]}
JSON
out=$("$ls" policy test "$d/p.lua" "$d/cases.json")
check "policy test passes" 0 $?
check_contains "prints its summary" "2 passed, 0 failed" "$out"
sed -i 's/"status": 401/"status": 403/' "$d/cases.json"
out=$("$ls" policy test "$d/p.lua" "$d/cases.json")
check "a failing case exits 1" 1 $?
check_contains "and shows what differed" "decision.status: expected 403, got 401" "$out"

# test: a malformed cases file is bad input (exit 2, the field named), never
# a Lua traceback.
for doc in 5 null '"cases"'; do
  printf '%s\n' "$doc" > "$d/odd.json"
  err=$("$ls" policy test "$d/p.lua" "$d/odd.json" 2>&1)
  check "a cases file holding $doc exits 2" 2 $?
  check "and says what it expects" "lodestone policy: $d/odd.json: expected a list of cases, or {\"cases\": [...]}" "$err"
done
printf '{"now": "soon", "cases": [{"request": {"path": "/public/x"}, "expect": {"allow": true}}]}' > "$d/odd.json"
err=$("$ls" policy test "$d/p.lua" "$d/odd.json" 2>&1)
check "a \"now\" that is not a number exits 2" 2 $?
check "and names it" "lodestone policy: $d/odd.json: now: expected seconds since the epoch, got \"soon\"" "$err"
printf '{"cases": [{"now": "x", "request": {"path": "/public/x"}, "expect": {"allow": true}}]}' > "$d/odd.json"
err=$("$ls" policy test "$d/p.lua" "$d/odd.json" 2>&1)
check "a case's \"now\" that is not a number exits 2" 2 $?
check_contains "and names the case" "$d/odd.json: case 1: now: expected seconds since the epoch" "$err"
printf '[1, {"name": {}, "request": {"path": "/public/x"}, "expect": {"allow": true}}]' > "$d/odd.json"
out=$("$ls" policy test "$d/p.lua" "$d/odd.json" 2>&1)
check "a case that is not an object fails (exit 1)" 1 $?
check "it is named by its number and says what it needs; a name that is no string too" \
  "FAIL case 1|       each case needs request and expect objects|ok   case 2|1 passed, 1 failed" \
  "$(printf '%s\n' "$out" | paste -sd'|')"

e2e_finish
