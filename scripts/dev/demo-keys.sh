#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Makes the DEMO keys under policies/demo-keys/ that the example policies and
# their test cases use, and mints the demo tokens in the cases. Run once by
# hand; CI never runs it (the cases hold tokens signed with these keys).
# Demo keys are public: never use them for anything real.
set -euo pipefail
out=${1:-policies/demo-keys}
mkdir -p "$out"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out/demo-signing-key.pem" 2>/dev/null
openssl pkey -in "$out/demo-signing-key.pem" -pubout -out "$out/demo-signing-key.pub.pem"
python3 - "$out" <<'PY'
import base64, json, re, subprocess, sys
out = sys.argv[1]
txt = subprocess.run(["openssl", "rsa", "-pubin", "-in", f"{out}/demo-signing-key.pub.pem", "-noout", "-modulus"],
                     capture_output=True, text=True, check=True).stdout
n = bytes.fromhex(re.search(r"Modulus=([0-9A-F]+)", txt).group(1))
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
jwks = {"keys": [{"kty": "RSA", "kid": "demo-2026", "alg": "RS256", "use": "sig", "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}]}
open(f"{out}/jwks.json", "w").write(json.dumps(jwks, indent=2) + "\n")
PY
printf 'demo-webhook-secret-change-me\n' > "$out/github-webhook.secret"
chmod 600 "$out/github-webhook.secret"
