#!/bin/sh
# SPOP library benchmark: spop_loadgen against `spoa_example --noop` (release build), then callgrind on the
# agent for instructions per NOTIFY (difference of two fixed frame counts, so startup and HELLO cancel out).
# Prints figures; never fails on speed. BUILD=build by default.
set -eu
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
EX=$B/spoa_example
LG=$B/bench/spop_loadgen
[ -x "$EX" ] && [ -x "$LG" ] || { echo "bench_spop: build $EX and $LG first (make)"; exit 1; }
TMP=$(mktemp -d)
AGENT=
cleanup() { [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

start_agent() { # $@: wrapper command prefix
	: >"$TMP/out"
	"$@" "$EX" --listen 127.0.0.1:0 --threads "${THREADS:-2}" --noop >"$TMP/out" 2>"$TMP/err" &
	AGENT=$!
	i=0
	while ! grep -q port "$TMP/out" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 600 ] && { echo "bench_spop: agent did not start"; cat "$TMP/err"; exit 1; }
		sleep 0.1
	done
	PORT=$(awk '{print $NF}' "$TMP/out")
}
stop_agent() { kill -TERM "$AGENT"; wait "$AGENT" || true; AGENT=; }

echo "== throughput and latency (agent: 2 worker threads, --noop; load generator on the same 2 cores)"
start_agent
for cm in "4 64" "8 16" "2 8"; do
	set -- $cm
	"$LG" -p "$PORT" -c "$1" -m "$2" -n 1000000 -w 100000 -t 30
done
stop_agent

if command -v valgrind >/dev/null; then
	echo "== callgrind: agent instructions per NOTIFY (1 worker thread)"
	ir() { # $1: frame count -> total instructions of the agent
		THREADS=1 start_agent valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$1" -q
		"$LG" -p "$PORT" -c 4 -m 32 -n "$1" -t 120 >/dev/null
		stop_agent
		callgrind_annotate "$TMP/cg.$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1; exit}'
	}
	A=$(ir 20000); Bn=$(ir 120000)
	echo "instructions: 20000 frames=$A 120000 frames=$Bn per_notify=$(( (Bn - A) / 100000 ))"
fi
