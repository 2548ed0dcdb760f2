#!/usr/bin/env bash
# Issue 7's and issue 16's table (agent alone, end to end through HAProxy vs its own baselines on HAProxy 2.6, 3.2
# and 3.4, memory, instruction counts, what each element of conf/ costs HAProxy per branch, flatness):
# tests/bench/bench_kos.py against the release build in BUILD (default build); writes the table at the top of
# bench/RESULTS.md (notes below it are kept). Figures only, never pass/fail on speed. Bounded: about 19 minutes
# (E: about a minute per branch), loopback only.
# KOS_HAPROXY_BINS (LABEL=PATH;...) picks the branches; by default the machine's 2.6 plus Debian sid's 3.2 and
# experimental's 3.4, fetched once into build/haproxy/ by scripts/haproxy-versions.py.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
for f in "$B/kube-oidc-spoa" "$B/spoa_example" "$B/bench/spop_loadgen" "$B/bench/cache_flat"; do
  [ -x "$f" ] || { echo "bench_kos: missing $f (make first)"; exit 1; }
done
for t in haproxy wrk valgrind openssl; do
  command -v "$t" >/dev/null || { echo "bench_kos: $t not installed (scripts/deps.sh)"; exit 1; }
done
if [ -z "${KOS_HAPROXY_BINS:-}" ]; then
  KOS_HAPROXY_BINS=$(/usr/bin/python3 scripts/haproxy-versions.py --bins --suites sid,experimental) || {
    echo "bench_kos: could not fetch HAProxy 3.2/3.4; B runs on the machine's HAProxy only"; KOS_HAPROXY_BINS=haproxy; }
fi
export KOS_HAPROXY_BINS
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec /usr/bin/python3 tests/bench/bench_kos.py --build "$B" --results "${KOS_BENCH_RESULTS:-bench/RESULTS.md}" "$@"
