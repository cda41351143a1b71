#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Mints an RS256 JWT with openssl: scripts/dev/mint-rs256.sh KEY.pem KID 'CLAIMS-JSON'
# For demos and test cases only (`lodestone dev token` will replace it).
set -euo pipefail
key=$1 kid=$2 claims=$3
b64() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
input="$(printf '{"alg":"RS256","typ":"JWT","kid":"%s"}' "$kid" | b64).$(printf '%s' "$claims" | b64)"
sig=$(printf '%s' "$input" | openssl dgst -sha256 -sign "$key" -binary | b64)
printf '%s.%s\n' "$input" "$sig"
