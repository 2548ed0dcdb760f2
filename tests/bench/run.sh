#!/usr/bin/env bash
# `make bench`: runs every tests/bench/bench_*.sh in turn against the release build in BUILD (default build/).
# Benchmarks print figures and ratios; they never fail on speed. Each script bounds its own load in count and time
# and uses loopback only.
set -uo pipefail
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
export KOS_BUILD=${KOS_BUILD:-$BUILD} # bench_jwt.sh's name for it
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "haproxy: $(haproxy -v 2>/dev/null | head -1)"
echo "openssl: $(openssl version)"
rc=0
for b in tests/bench/bench_*.sh; do
  [ -e "$b" ] || continue
  echo
  echo "=== $b"
  bash "$b" || { echo "bench $b exited with $?"; rc=1; }
done
exit $rc
