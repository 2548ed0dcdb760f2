#!/usr/bin/env bash
# Issue 7's table (agent alone, end to end through HAProxy vs its own baselines, memory, instruction counts,
# flatness): tests/bench/bench_kos.py against the release build in BUILD (default build); writes bench/RESULTS.md.
# Figures only, never pass/fail on speed. Bounded: about 5 minutes, loopback only.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
for f in "$B/kube-oidc-spoa" "$B/spoa_example" "$B/bench/spop_loadgen" "$B/bench/cache_flat"; do
  [ -x "$f" ] || { echo "bench_kos: missing $f (make first)"; exit 1; }
done
for t in haproxy wrk valgrind openssl; do
  command -v "$t" >/dev/null || { echo "bench_kos: $t not installed (scripts/deps.sh)"; exit 1; }
done
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec /usr/bin/python3 tests/bench/bench_kos.py --build "$B" --results "${KOS_BENCH_RESULTS:-bench/RESULTS.md}" "$@"
