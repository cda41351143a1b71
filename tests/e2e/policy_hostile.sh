#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: hostile requests against the policy gate in Debian's lighttpd
# (mod_magnet, Lua 5.4) in front of a backend lighttpd that echoes what
# reached it. Each check is a wrong decision or a leak that was found by
# sending such requests and then fixed: what the client gets back, what the
# backend sees, and what the audit log says.
# usage: tests/e2e/policy_hostile.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT

SECRET=0123456789abcdef0123456789abcdef
d=$E2E_DIR
mkdir -p "$d/www" "$d/rl" "$d/backend"
printf '%s' "$SECRET" > "$d/hs.key"
chmod 600 "$d/hs.key"

cat > "$d/policy.lua" <<LUA
local policy = require "lodestone.policy"
return policy.define {
  name = "hostile",
  authenticate = {
    policy.jwt { secret_file = "hs.key", algorithms = { "HS256" }, audience = "e2e" },
  },
  rules = {
    { path = "/healthz", allow = "anyone" },
    { path = "/me" },
    { path = "/dav/**", methods = { "BASELINE-CONTROL", "UPDATEREDIRECTREF" }, deny = true },
    { path = "/dav/**", allow = "anyone" },
  },
  ip = { trusted_proxies = { "127.0.0.2" } },
  identity_headers = { ["X-User"] = "sub", ["X-Roles"] = "roles" },
  audit = { path = "audit.log", log = "all" },
}
LUA
cat > "$d/gate.lua" <<LUA
package.path = "$root/lua/?.lua;$root/lua/?/init.lua;" .. package.path
package.cpath = "$build/lib/lua/5.4/?.so;" .. package.cpath
return require("lodestone.policy").enforce(lighty, "$d/policy.lua", { rl_dir = "$d/rl" })
LUA
# The backend echoes the request line and every header that reached it.
cat > "$d/backend/echo.lua" <<'LUA'
local r = lighty.r
local out = { "backend ", r.req_attr["request.method"], " ", r.req_attr["request.uri"], "\n" }
for k, v in pairs(r.req_header) do out[#out + 1] = k .. ": " .. v .. "\n" end
r.resp_body:set(out)
return 200
LUA
port=$(e2e_free_port)
bport=$(e2e_free_port)
e2e_gate_behind_proxy "$d" "$port" "$bport"
front=$E2E_FRONT

# raw REQUEST [SOURCE_ADDRESS]: sends REQUEST (printf escapes) as it is
# and prints the whole answer.
raw() {
  python3 - "$port" "${2:-127.0.0.1}" "$1" <<'PY'
import socket, sys
port, src, text = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = text.encode().decode("unicode_escape").encode("latin-1")
s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
s.sendall(data)
out = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode("latin-1"))
PY
}
status_of() { head -1 <<<"$1" | cut -d' ' -f2; }
mint() { e2e_mint_hs256 "$1" "$SECRET"; } # $1 claims JSON
exp=$(( $(date +%s) + 600 ))
alice=$(mint "{\"sub\":\"alice\",\"aud\":\"e2e\",\"exp\":$exp,\"roles\":[\"admin\"]}")
req() { printf '%s /%s HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n%s\\r\\n' "$1" "$2" "${3:-}"; }

# ---- methods longer than 15 bytes (lighttpd knows a few) ----
# A deny rule naming them was skipped: the method was cut to nothing.
for m in BASELINE-CONTROL UPDATEREDIRECTREF; do
  check "$m is denied by the rule that names it" 403 "$(status_of "$(raw "$(req $m dav/x)")")"
done
check "GET on the same path is public" 200 "$(status_of "$(raw "$(req GET dav/x)")")"

# ---- identity headers under other spellings ----
# A backend that reads headers the CGI way (lighttpd's own mod_fastcgi,
# PHP, many frameworks) takes X_User and X.User for X-User.
fakes='X_User: root\r\nX.Roles: admin\r\nx_user: r2\r\nX~USER: r3\r\n'
out=$(raw "$(req GET me "Authorization: Bearer $alice\\r\\n$fakes")")
check "an allowed request reaches the backend" 200 "$(status_of "$out")"
check_contains "with the caller's X-User" "X-User: alice" "$out"
for h in X_User X.Roles x_user 'X~USER'; do
  check_absent "and without the client's $h" "$h:" "$out"
done
out=$(raw "$(req GET dav/x "$fakes")")
check "a public route reaches the backend" 200 "$(status_of "$out")"
for h in X_User X.Roles x_user 'X~USER'; do
  check_absent "without the client's $h" "$h:" "$out"
done
check_contains "other headers pass" "Host: a" "$out"

# ---- decision metrics behind a proxy ----
# The gate serves them to loopback clients; a request a local reverse proxy
# forwarded (here from 127.0.0.2, a trusted proxy) is some other client's.
out=$(raw "$(req GET _lodestone/metrics)")
check "metrics are served to a loopback client" 200 "$(status_of "$out")"
check_contains "as Prometheus text" "lodestone_policy_decisions_total" "$out"
for h in "X-Forwarded-For: 203.0.113.7" "Forwarded: for=203.0.113.7" "X-Real-IP: 203.0.113.7"; do
  out=$(raw "$(req GET _lodestone/metrics "$h\\r\\n")" 127.0.0.2)
  check "a forwarded request ($h) is not served the metrics" 403 "$(status_of "$out")"
  check_absent "nor are they in its body ($h)" "lodestone_policy" "$out"
done

# ---- the audit log: one JSON object per line, no token ----
kill -TERM "$front"
for _ in $(seq 50); do e2e_alive "$front" || break; sleep 0.1; done
audit=$(cat "$d/audit.log" 2>/dev/null)
check_contains "the audit record names the whole method" '"method":"UPDATEREDIRECTREF"' "$audit"
check_absent "the audit log holds no token" "$alice" "$audit"
check "every audit line is one JSON object" 0 \
  "$(python3 -c 'import json,sys
n = 0
for line in open(sys.argv[1], "rb"):
    try: json.loads(line)
    except ValueError: n += 1
print(n)' "$d/audit.log")"

e2e_finish
