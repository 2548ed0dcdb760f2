#!/usr/bin/env bash
# Identity-core crypto figures: our verifications/s per core per algorithm next to `openssl speed` verify
# rates for the same key sizes on this machine (as ratios; target >= 0.9 uncached), and a cache hit next to one
# SHA-256 of the same 1 KiB token (target <= 2x). Figures only, never pass/fail. Bounded: about 30 s, one core.
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
printf '%-8s %12s %12s %12s %8s %8s\n' alg openssl/s verify/s uncached/s ratio uncached
for a in RS256:$rsa PS256:$rsa ES256:$ec EdDSA:$ed; do
  alg=${a%%:*}; ref=${a#*:}
  v=$(get verify_$alg); u=$(get uncached_$alg)
  printf '%-8s %12.0f %12.0f %12.0f %8.2f %8.2f\n' "$alg" "$ref" "$v" "$u" \
    "$(echo "$v / $ref" | bc -l)" "$(echo "$u / $ref" | bc -l)"
done
echo "(PS256 is compared with openssl's rsa2048 PKCS#1 v1.5 verify rate: openssl speed has no PSS figure)"
echo "sha256 of a 1 KiB token:     $(get sha256_1k) ns"
echo "cache hit on that token:     $(get cache_hit_1k) ns  ($(get cache_hit_over_sha256) x one SHA-256; target <= 2)"
