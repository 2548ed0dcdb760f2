#!/usr/bin/env bash
# Identity-core crypto figures, per algorithm on one core: the whole uncached path (parse + verify + payload
# JSON + claim rules) next to (1) OpenSSL's bare verification of the same token with the same key measured in
# the same process (a context prepared once, digest precomputed: what `openssl speed` times, the limit of
# OpenSSL's EVP path — ES256 beats it, src/ecverify.c precomputes multiples of the issuer's key) and (2) the
# `openssl speed` figure for the same key size; both ratios printed (target >= 0.9 uncached).
# Also a cache hit next to one SHA-256 of the same 1 KiB token (target <= 2x). Figures only, never pass/fail.
# Bounded: about 40 s, one core.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${KOS_BUILD:-build}/bench/jwt_bench
[ -x "$BIN" ] || { echo "missing $BIN (make first)"; exit 1; }

ours=$("$BIN" 1.5) || { echo "jwt_bench failed"; exit 1; }
speed=$(openssl speed -seconds 3 rsa2048 ecdsap256 ed25519 2>/dev/null)
# openssl prints "rsa 2048 bits  sign  verify  sign/s verify/s", "256 bits ecdsa (nistp256) … sign/s verify/s",
# "253 bits EdDSA (Ed25519) … sign/s verify/s": the verify rate is the last column.
rsa=$(echo "$speed" | awk '/^rsa +2048 bits/ {print $NF}')
ec=$(echo "$speed" | awk '/ecdsa \(nistp256\)/ {print $NF}')
ed=$(echo "$speed" | awk '/EdDSA \(Ed25519\)/ {print $NF}')
get() { echo "$ours" | awk -v k="$1" '$1 == k {print $2}'; }
printf '%-6s %10s %10s %10s %10s %10s %9s %9s\n' alg speed/s bare/s evpinit/s verify/s uncached/s unc/bare unc/speed
for a in RS256:$rsa PS256:$rsa ES256:$ec EdDSA:$ed; do
  alg=${a%%:*}; ref=${a#*:}
  b=$(get bare_$alg); e=$(get evp_$alg); v=$(get verify_$alg); u=$(get uncached_$alg)
  printf '%-6s %10.0f %10.0f %10.0f %10.0f %10.0f %9.2f %9.2f\n' "$alg" "$ref" "$b" "$e" "$v" "$u" \
    "$(echo "$u / $b" | bc -l)" "$(echo "$u / $ref" | bc -l)"
done
cat <<'TXT'
  speed/s    `openssl speed` verify rate for the key size (PS256 against rsa2048 PKCS#1 v1.5: no PSS figure there)
  bare/s     same process, same key and token: EVP_PKEY_verify on a prepared context, digest precomputed
             (Ed25519: EVP_DigestVerify on a reused context) — OpenSSL's own best (src/ecverify.c beats it
             for ES256 with a table for the issuer's key)
  evpinit/s  same, the way a naive verifier does it: EVP_DigestVerifyInit + EVP_DigestVerify per token
  verify/s   our jws_verify alone (digest + signature)
  uncached/s our whole uncached path: parse + key lookup + verify + payload JSON + claim rules + identity
TXT
echo "sha256 of a 1 KiB token:     $(get sha256_1k) ns"
echo "cache hit on that token:     $(get cache_hit_1k) ns  ($(get cache_hit_over_sha256) x one SHA-256; target <= 2)"
