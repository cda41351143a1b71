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
err=$("$ls" policy check "$d/missing.lua" --request '{"path":"/"}' 2>&1)
check "missing policy file exits 2" 2 $?
check_contains "says which file" "missing.lua" "$err"
printf 'return policy.define {' > "$d/broken.lua"
err=$("$ls" policy check "$d/broken.lua" --request '{"path":"/"}' 2>&1)
check "broken policy exits 2" 2 $?
err=$("$ls" policy frobnicate 2>&1)
check "unknown subcommand exits 2" 2 $?
check_contains "and names it" "unknown command 'frobnicate'" "$err"

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

e2e_finish
