#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: Debian's lighttpd (mod_magnet, Lua 5.4) on 127.0.0.1 enforces
# a Lodestone policy through the gate script, with two workers. Checks each
# allow path, deny reasons with status and headers, identity headers set and
# forged ones stripped, a rate limit shared by the workers, hot reload, a
# broken policy failing closed, webhook bodies, and the audit log.
# usage: tests/e2e/policy_gate.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT

SECRET=0123456789abcdef0123456789abcdef
port=$(e2e_free_port)
d=$E2E_DIR
mkdir -p "$d/www" "$d/rl"
printf '%s' "$SECRET" > "$d/hs.key"
printf "It's a Secret to Everybody" > "$d/gh.secret"
chmod 600 "$d/hs.key" "$d/gh.secret"

write_policy() { # $1: extra rule text
  cat > "$d/policy.tmp" <<LUA
local policy = require "lodestone.policy"
return policy.define {
  name = "e2e",
  authenticate = {
    policy.jwt { secret_file = "hs.key", algorithms = { "HS256" }, audience = "e2e" },
    policy.webhook { provider = "github", secret_file = "gh.secret" },
  },
  rules = {
    { path = "/healthz", allow = "anyone" },
    { path = "/me" },
    { path = "/admin/**", roles = { "admin" } },
    { path = "/hooks/github", methods = { "POST" } },
    { path = "/limited/**", allow = "anyone" },
    $1
  },
  rate_limit = { by = "ip", rate = 1, per = "1m", burst = 5 },
  identity_headers = { ["X-User"] = "sub", ["X-Roles"] = "roles" },
  audit = { path = "audit.log", log = "all" },
  assertion = { key_file = "assert.key", ttl = "60s" },
}
LUA
  mv "$d/policy.tmp" "$d/policy.lua"
}
write_policy ""
printf 'return 42 -- not a policy\n' > "$d/broken.lua"
# The same without the webhook: a policy that never reads the body, which
# the gate decides in one call (pol:gate). Chosen by a request header.
cat > "$d/nobody.lua" <<LUA
local policy = require "lodestone.policy"
return policy.define {
  name = "e2e-nobody",
  authenticate = { policy.jwt { secret_file = "hs.key", algorithms = { "HS256" }, audience = "e2e" } },
  rules = {
    { path = "/healthz", allow = "anyone" },
    { path = "/me" },
    { path = "/admin/**", roles = { "admin" } },
  },
  identity_headers = { ["X-User"] = "sub", ["X-Roles"] = "roles" },
  assertion = { key_file = "assert.key", ttl = "60s" },
  audit = { path = "audit-nobody.log", log = "deny" },
}
LUA

# A webhook that authenticates on its own path only: elsewhere its
# signature is no credential and the gate reads no body.
cat > "$d/scoped.lua" <<LUA
local policy = require "lodestone.policy"
return policy.define {
  name = "e2e-scoped",
  authenticate = {
    policy.webhook { provider = "github", secret_file = "gh.secret", roles = { "github-hook" },
                     paths = { "/hooks/**" } },
    policy.jwt { secret_file = "hs.key", algorithms = { "HS256" }, audience = "e2e" },
  },
  rules = {
    { path = "/me" },
    { path = "/hooks/github", methods = { "POST" }, roles = { "github-hook" } },
  },
  identity_headers = { ["X-User"] = "sub", ["X-Roles"] = "roles" },
}
LUA

cat > "$d/gate.lua" <<LUA
package.path = "$root/lua/?.lua;$root/lua/?/init.lua;" .. package.path
package.cpath = "$build/lib/lua/5.4/?.so;" .. package.cpath
local file = "$d/policy.lua"
if lighty.r.req_attr["uri.path"]:find("^/broken/") then file = "$d/broken.lua" end
if lighty.r.req_header["X-E2E-Policy"] == "nobody" then file = "$d/nobody.lua" end
if lighty.r.req_header["X-E2E-Policy"] == "scoped" then file = "$d/scoped.lua" end
return require("lodestone.policy").enforce(lighty, file, { rl_dir = "$d/rl" })
LUA
# The backend: a second lighttpd that echoes what reached it. The front
# lighttpd proxies to it with mod_proxy, as in production.
bport=$(e2e_free_port)
mkdir -p "$d/backend"
cat > "$d/backend/echo.lua" <<'LUA'
local r = lighty.r
local h = r.req_header
local body = ""
if (r.req_body.len or 0) > 0 then
  if not r.req_body.collect then return 0 end
  body = " body=" .. tostring(r.req_body.len)
end
local a = h["X-Lodestone-Assertion"]
local rid = h["X-E2E-Rid"] and " rid=" .. tostring(h["X-Request-Id"]) or ""
r.resp_body:set({ "user=", tostring(h["X-User"]), " roles=", tostring(h["X-Roles"]),
  " asrt=", a and a:sub(1, 3) or "nil", body, rid, "\n" })
return 200
LUA
e2e_gate_behind_proxy "$d" "$port" "$bport" "server.max-worker = 2"
front=$E2E_FRONT
base="http://127.0.0.1:$port"

mint() { e2e_mint_hs256 "$1" "${2:-$SECRET}"; } # $1 claims JSON, $2 key
exp=$(( $(date +%s) + 600 ))
alice=$(mint "{\"sub\":\"alice\",\"aud\":\"e2e\",\"exp\":$exp,\"roles\":[\"admin\",\"ops\"]}")
bob=$(mint "{\"sub\":\"bob\",\"aud\":\"e2e\",\"exp\":$exp,\"roles\":[\"user\"]}")
forged=$(mint "{\"sub\":\"mallory\",\"aud\":\"e2e\",\"exp\":$exp}" "wrong-wrong-wrong-wrong-wrong-00")

# status URL [curl args...]
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

check "public route is open" 200 "$(status "$base/healthz")"
check "no token on /me is 401" 401 "$(status "$base/me")"
hdrs=$(curl -s -D - -o /dev/null "$base/me")
check_contains "401 carries a Bearer challenge" 'WWW-Authenticate: Bearer realm="e2e"' "$hdrs"
body=$(curl -s -H "Authorization: Bearer $alice" -H "X-User: root" -H "X-Roles: admin" -H "X-Lodestone-Assertion: forged" "$base/me")
check "token reaches backend with identity headers and a signed assertion" "user=alice roles=admin,ops asrt=eyJ" "$body"
body=$(curl -s -H "X-User: root" -H "X-Lodestone-Assertion: forged" "$base/healthz")
check "forged identity headers are stripped on public routes" "user=nil roles=nil asrt=nil" "$body"
# The one-call gate (a policy without body): the same answers.
nb=(-H "X-E2E-Policy: nobody")
body=$(curl -s "${nb[@]}" -H "Authorization: Bearer $alice" -H "X-User: root" -H "X-Roles: admin" -H "X-Lodestone-Assertion: forged" "$base/me")
check "one-call gate: identity headers and a signed assertion reach the backend" "user=alice roles=admin,ops asrt=eyJ" "$body"
body=$(curl -s "${nb[@]}" -H "X-User: root" -H "X-Lodestone-Assertion: forged" "$base/healthz")
check "one-call gate: forged identity headers are stripped on public routes" "user=nil roles=nil asrt=nil" "$body"
hdrs=$(curl -s -D - -o /dev/null "${nb[@]}" "$base/me")
check_contains "one-call gate: no token is 401 with a Bearer challenge" 'WWW-Authenticate: Bearer realm="e2e-nobody"' "$hdrs"
check "one-call gate: a role short is 403" 403 "$(status "${nb[@]}" -H "Authorization: Bearer $bob" "$base/admin/x")"
check_contains "one-call gate: the assertion keys are served" '"crv":"Ed25519"' "$(curl -s "${nb[@]}" "$base/.well-known/lodestone/jwks.json")"
noroles=$(mint "{\"sub\":\"carol\",\"aud\":\"e2e\",\"exp\":$exp}")
body=$(curl -s "${nb[@]}" -H "Authorization: Bearer $noroles" -H "X-Roles: admin" "$base/me")
check "one-call gate: a forged header the token has no value for is stripped" "user=carol roles=nil asrt=eyJ" "$body"
body=$(curl -s --interface 127.0.0.9 -H "Authorization: Bearer $noroles" -H "X-User: root" -H "X-User: root2" -H "X-Roles: admin" "$base/me")
check "a forged header the token has no value for is stripped, repeated ones replaced" "user=carol roles=nil asrt=eyJ" "$body"
jwks=$(curl -s "$base/.well-known/lodestone/jwks.json")
check_contains "the assertion keys are served as a JWKS" '"crv":"Ed25519"' "$jwks"
check "bad signature is 401" 401 "$(status -H "Authorization: Bearer $forged" "$base/me")"
hdrs=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $forged" "$base/me")
check_contains "bad token challenge says invalid_token" 'error="invalid_token"' "$hdrs"
check "missing role is 403" 403 "$(status -H "Authorization: Bearer $bob" "$base/admin/panel")"
check "admin role passes" 200 "$(status -H "Authorization: Bearer $alice" "$base/admin/panel")"
check "dot segments cannot dodge a rule" 403 "$(status --path-as-is -H "Authorization: Bearer $bob" "$base/me/../admin/panel")"
check "no matching rule is 403" 403 "$(status -H "Authorization: Bearer $alice" "$base/elsewhere")"
body=$(curl -s "$base/elsewhere")
check "deny body names no internals" '{"error":"forbidden"}' "$body"

# Request ids: every audit record has one; the backend gets it in place of
# the client's copy (every decision is logged), a denial names it.
# (a source address of their own: the rate limit budget is per address)
body=$(curl -s --interface 127.0.0.10 -H "X-E2E-Rid: 1" -H "X-Request-Id: chosen-by-client" -H "Authorization: Bearer $alice" "$base/me")
rid_allow=$(sed -n 's/.* rid=\([0-9a-f]\{32\}\)$/\1/p' <<<"$body")
[ -n "$rid_allow" ] && ok "the backend gets a request id made by the gate" || not_ok "request id to the backend" "$body"
hdrs=$(curl -s -D - -o /dev/null --interface 127.0.0.10 -H "Authorization: Bearer $bob" "$base/admin/rid")
rid_deny=$(sed -n 's/^X-Request-Id: \([0-9a-f]\{32\}\)\r$/\1/p' <<<"$hdrs")
[ -n "$rid_deny" ] && ok "a denial names its request id" || not_ok "request id of a denial" "$hdrs"
hdrs=$(curl -s -D - -o /dev/null "${nb[@]}" -H "Authorization: Bearer $bob" "$base/admin/rid")
rid_nobody=$(sed -n 's/^X-Request-Id: \([0-9a-f]\{32\}\)\r$/\1/p' <<<"$hdrs")
[ -n "$rid_nobody" ] && ok "one-call gate: a denial names its request id" || not_ok "one-call gate: request id of a denial" "$hdrs"
body=$(curl -s "${nb[@]}" -H "X-E2E-Rid: 1" -H "X-Request-Id: chosen-by-client" -H "Authorization: Bearer $alice" "$base/me")
check "one-call gate, only denials logged: an allowed request's id is left alone" "user=alice roles=admin,ops asrt=eyJ rid=chosen-by-client" "$body"

# Webhook: the body is signed.
sig=sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17
check "signed webhook passes" 200 "$(status -X POST -H "X-Hub-Signature-256: $sig" --data-binary 'Hello, World!' "$base/hooks/github")"
check "the backend gets the body" "user=github roles=nil asrt=eyJ body=13" "$(curl -s --interface 127.0.0.3 -X POST -H "X-Hub-Signature-256: $sig" --data-binary 'Hello, World!' "$base/hooks/github")"
check "tampered webhook body is 401" 401 "$(status -X POST -H "X-Hub-Signature-256: $sig" --data-binary 'Hello, World?' "$base/hooks/github")"
big=$(head -c 300000 /dev/zero | tr '\0' a)
bigsig=$(printf '%s' "$big" | LS_KEY="It's a Secret to Everybody" "${E2E_SAN_ENV[@]}" lua5.4 -e "
    package.cpath = '$build/lib/lua/5.4/?.so;' .. package.cpath
    local c = require 'lodestone.core'
    local mac = c.hmac_sha256(os.getenv('LS_KEY'), io.read('a'))
    io.write((mac:gsub('.', function(ch) return string.format('%02x', ch:byte()) end)))")
check "large signed webhook body passes" 200 "$(printf '%s' "$big" | status --interface 127.0.0.4 -X POST -H "X-Hub-Signature-256: sha256=$bigsig" --data-binary @- "$base/hooks/github")"

# A webhook with paths: its signature opens its own path only.
sc=(-H "X-E2E-Policy: scoped")
check "scoped webhook: the signed body passes on its path" "user=github roles=github-hook asrt=nil body=13" "$(curl -s "${sc[@]}" -X POST -H "X-Hub-Signature-256: $sig" --data-binary 'Hello, World!' "$base/hooks/github")"
check "scoped webhook: the same signed body is no credential on /me" 401 "$(status "${sc[@]}" -X POST -H "X-Hub-Signature-256: $sig" --data-binary 'Hello, World!' "$base/me")"
check "scoped webhook: a token on /me still passes, body and all" "user=alice roles=admin,ops asrt=nil body=13" "$(curl -s "${sc[@]}" -X POST -H "Authorization: Bearer $alice" -H "X-Hub-Signature-256: $sig" --data-binary 'Hello, World!' "$base/me")"
check "scoped webhook: a token without a signature is refused on the hook" 403 "$(status "${sc[@]}" -X POST -H "Authorization: Bearer $alice" --data-binary 'forged' "$base/hooks/github")"
check "scoped webhook: a large signed body passes on its path" "user=github roles=github-hook asrt=nil body=300000" "$(printf '%s' "$big" | curl -s "${sc[@]}" -X POST -H "X-Hub-Signature-256: sha256=$bigsig" --data-binary @- "$base/hooks/github")"
check_contains "a webhook without paths next to a JWT is said in the error log" "authenticate[2]: a webhook without paths authenticates on every path" "$(cat "$d/error.log")"

# Rate limit: burst 5 per client address, shared by both workers (a new
# connection per request, so requests spread over the workers). A fresh
# source address on loopback gives a fresh budget.
codes=""
for i in 1 2 3 4 5 6 7; do codes="$codes $(status --interface 127.0.0.5 "$base/limited/x")"; done
check "rate limit: 5 allowed then 429, across workers" " 200 200 200 200 200 429 429" "$codes"
hdrs=$(curl -s -D - -o /dev/null --interface 127.0.0.5 "$base/limited/x")
check_contains "429 has Retry-After" "Retry-After:" "$hdrs"
check_contains "429 has RateLimit-Limit" "RateLimit-Limit: 5" "$hdrs"
check_contains "429 body" '{"error":"too_many_requests"}' "$(curl -s --interface 127.0.0.5 "$base/limited/x")"
check "other clients keep their budget" 200 "$(status --interface 127.0.0.6 "$base/limited/x")"

# Hot reload: a new rule appears within a second or so.
check "route unknown before reload" 403 "$(status --interface 127.0.0.7 "$base/new")"
write_policy '{ path = "/new", allow = "anyone" },'
sleep 1.2
check "reloaded policy knows the new route" 200 "$(status --interface 127.0.0.7 "$base/new")"

# A broken policy keeps the last good version.
printf 'return policy.define {' > "$d/policy.tmp" && mv "$d/policy.tmp" "$d/policy.lua"
sleep 1.2
# (each worker keeps the version it last loaded; /healthz is in all of them)
check "broken policy keeps serving the last good version" 200 "$(status --interface 127.0.0.8 "$base/healthz")"
sleep 0.3
check_contains "error log says why" "keeping the last good version" "$(cat "$d/error.log")"

# A FIFO in the policy's place is refused, not waited on: opening one for
# reading would block a worker until someone writes to it.
rm -f "$d/policy.lua" && mkfifo "$d/policy.lua"
sleep 1.2
check "a FIFO in the policy's place: the last good version goes on" 200 "$(status --max-time 10 --interface 127.0.0.8 "$base/healthz")"
check "... in every worker" "200 200 200 200" "$(for i in 1 2 3 4; do printf '%s ' "$(status --max-time 10 --interface 127.0.0.9 "$base/healthz")"; done | sed 's/ $//')"
sleep 0.3
check_contains "and the error log says why" "policy.lua: not a regular file" "$(cat "$d/error.log")"
rm -f "$d/policy.lua"
write_policy ""

# A policy that never loaded denies everything (fails closed).
check "a policy with no good version is 503" 503 "$(status "$base/broken/x")"
check_contains "with a body that names no internals" '{"error":"policy_unavailable"}' "$(curl -s "$base/broken/x")"
check_contains "and, as every denial, not to be cached" "Cache-Control: no-store" "$(curl -s -D - -o /dev/null "$base/broken/x")"
check_contains "and the reason in the error log" "not a policy" "$(cat "$d/error.log")"

# Audit: lines for allow and deny, never a token.
kill -TERM "$front"
for _ in $(seq 50); do kill -0 "$front" 2>/dev/null || break; sleep 0.1; done
audit=$(cat "$d/audit.log" 2>/dev/null)
check_contains "audit has allow lines" '"decision":"allow"' "$audit"
check_contains "audit has deny lines with reasons" '"reason":"missing_role' "$audit"
check_contains "audit names the subject" '"subject":"alice"' "$audit"
check_absent "audit holds no token" "$alice" "$audit"
check_absent "audit holds no forged token" "$forged" "$audit"
lines=$(wc -l < "$d/audit.log")
bad=$(grep -cv '^{.*}$' "$d/audit.log")
check "every audit line is one JSON object" 0 "$bad"
[ "$lines" -gt 10 ] && ok "audit has a line per decision ($lines)" || not_ok "audit line count" "$lines"
bad=$(grep -cv '"request_id":"' "$d/audit.log")
check "every audit line has a request id" 0 "$bad"
check_contains "the backend's request id names the allow line" "\"request_id\":\"$rid_allow\",\"method\":\"GET\",\"path\":\"/me\"" "$audit"
check_contains "the denial's request id names its line" "\"request_id\":\"$rid_deny\",\"method\":\"GET\",\"path\":\"/admin/rid\"" "$audit"
check_contains "one-call gate: the denial's request id names its line" "\"request_id\":\"$rid_nobody\"" "$(cat "$d/audit-nobody.log" 2>/dev/null)"

e2e_finish
