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
check "and names --now" "lodestone policy: --now: expected seconds since the epoch, 0 to 253402300799 (the end of year 9999), got nan" "$err"
# check's request fields are type-checked; an option is given once; --now
# is in range.
bad_check() { # description, expected message, arguments...
  local what=$1 msg=$2
  shift 2
  err=$("$ls" policy check "$d/p.lua" "$@" 2>&1)
  check "$what exits 2" 2 $?
  check "$what: the message" "lodestone policy: $msg" "$err"
}
bad_check "a method that is a number" "request.method: expected a string, got number" \
  --request '{"path":"/public/x","method":5}'
bad_check "headers that are a list" "request.headers: expected an object of names and values, got array" \
  --request '{"path":"/public/x","headers":[]}'
for f in query remote_addr body host; do
  bad_check "a $f that is not a string" "request.$f: expected a string, got boolean" \
    --request "{\"path\":\"/public/x\",\"$f\":true}"
done
bad_check "a repeated --request" "--request given twice" \
  --request '{"path":"/public/x"}' --request '{"path":"/billing/x"}'
for n in -5 1e30 253402300800; do
  bad_check "--now $n" \
    "--now: expected seconds since the epoch, 0 to 253402300799 (the end of year 9999), got $n" \
    --request '{"path":"/public/x"}' --now "$n"
done
out=$("$ls" policy check "$d/p.lua" --request '{"path":"/public/x"}' --now 253402300799)
check "--now at the end of year 9999 is taken" 0 $?
err=$("$ls" policy check "$d/p.lua" 2>&1)
check "check without --request exits 2" 2 $?
check_contains "and says --request is required" "lodestone policy: --request JSON is required" "$err"
err=$("$ls" policy check "$d/p.lua" extra --request '{"path":"/"}' 2>&1)
check "check with an extra argument exits 2" 2 $?
check_contains "and names it" "lodestone policy: unexpected argument 'extra'" "$err"
out=$("$ls" policy check "$d/p.lua" --request='{"path":"/public/x"}')
check_contains "--request=JSON works as --request JSON" '"allow":true' "$out"
# hash-key says which option holds what is not allowed, and what it is
# (a space is printable ASCII, yet no name may hold one).
for args in "--subject|a b|--subject: the subject has a space" \
            "--roles|a, b|--roles: the roles list has a space (names are separated by a comma alone: a,b)" \
            "--scopes|x,|--scopes: the scopes list has an empty name"; do
  IFS='|' read -r opt val msg <<<"$args"
  if [ "$opt" = --subject ]; then set -- --subject "$val"; else set -- --subject svc "$opt" "$val"; fi
  err=$("$ls" policy hash-key "$d/keys2" "$@" 2>&1)
  check "hash-key $opt '$val' exits 2" 2 $?
  check "and says so, without internal names" "lodestone policy: $msg" "$err"
done
check "and writes no key file" "no" "$([ -e "$d/keys2" ] && echo yes || echo no)"
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
check "and names it" "lodestone policy: $d/odd.json: now: expected seconds since the epoch, 0 to 253402300799 (the end of year 9999), got \"soon\"" "$err"
printf '{"cases": [{"now": "x", "request": {"path": "/public/x"}, "expect": {"allow": true}}]}' > "$d/odd.json"
err=$("$ls" policy test "$d/p.lua" "$d/odd.json" 2>&1)
check "a case's \"now\" that is not a number exits 2" 2 $?
check_contains "and names the case" "$d/odd.json: case 1: now: expected seconds since the epoch" "$err"
# A malformed case is bad input too: exit 2 before any case runs, naming
# the case and the field (never a FAIL and exit 1, as for a wrong decision).
bad_case() { # description, cases JSON, message
  printf '%s\n' "$2" > "$d/odd.json"
  out=$("$ls" policy test "$d/p.lua" "$d/odd.json" 2>&1)
  check "$1 exits 2" 2 $?
  check "$1: the message" "lodestone policy: $d/odd.json: $3" "$out"
}
ok='{"request": {"path": "/public/x"}, "expect": {"allow": true}}'
bad_case "a case that is not an object" "[$ok, 5]" \
  "case 2: expected an object with request and expect, got number"
check_absent "and the good case before it did not run" "ok   " "$out"
bad_case "a name that is no string" '[{"name": {}, "request": {"path": "/public/x"}, "expect": {"allow": true}}]' \
  "case 1.name: expected a string, got object"
printf '%s\n' '[{"name": null, "request": {"path": "/public/x"}, "expect": {"allow": true}}]' > "$d/odd.json"
"$ls" policy test "$d/p.lua" "$d/odd.json" >/dev/null 2>&1
check 'a "name": null is no name, as "now": null is no time' 0 $?
bad_case "a request without path" '{"cases":[{"name":"a","request":{},"expect":{"allow":true}}]}' \
  'case 1 ("a"): request.path: required, a string such as "/orders/7"'
bad_case "a case without expect" "[$ok, {\"request\": {\"path\": \"/\"}}]" \
  "case 2: expect: required, the decision's fields to compare"
bad_case "an empty expect" '[{"request": {"path": "/"}, "expect": {}}]' \
  "case 1: expect: empty, so the case would pass whatever the decision (name a field such as allow or status)"
bad_case "an empty object inside expect" '[{"request": {"path": "/"}, "expect": {"allow": true, "headers": {}}}]' \
  "case 1: expect.headers: empty, so the case would pass whatever the decision"
bad_case "a header given twice, in two cases of its name" \
  '[{"request": {"path": "/", "headers": {"X-API-Key": "a", "x-api-key": "b"}}, "expect": {"allow": true}}]' \
  "case 1: request.headers: x-api-key given twice (names are case-insensitive; join the values with a comma, as a proxy would)"
bad_case "an expect that is a list" '[{"request": {"path": "/"}, "expect": []}]' \
  "case 1: expect: expected an object, got array"
bad_case "an unknown expect field" '[{"request": {"path": "/"}, "expect": {"alow": true}}]' \
  "case 1: expect: unknown field 'alow' (allow, status, reason, detail, subject, rule, headers, response_headers, body, notice)"
bad_case "an unknown case field" '[{"request": {"path": "/"}, "expect": {"allow": true}, "nwo": 5}]' \
  "case 1: unknown field 'nwo' (name, request, expect, now)"
bad_case "an unknown top-level field" "{\"cases\": [$ok], \"now\": 5, \"case\": []}" \
  "unknown field 'case' (cases, now)"
bad_case "a request field of the wrong type" '[{"request": {"path": "/", "method": 5}, "expect": {"allow": true}}]' \
  "case 1: request.method: expected a string, got number"
bad_case "a file now out of range" "{\"now\": -5, \"cases\": [$ok]}" \
  "now: expected seconds since the epoch, 0 to 253402300799 (the end of year 9999), got -5"

e2e_finish
