#!/usr/bin/env bash
# HAProxy 3.1+ (seen on 3.2.26 and 3.4.7; the code is the same up to 3.5-dev; not 2.6 or 3.0, whose SPOE has no
# SPOP multiplexer): when one read fills the multiplexer's demux buffer exactly, that SPOP connection is never
# read again, and every request waiting on it is answered 503 at the SPOE processing timeout (txn.kos.err = 1).
# Root cause and evidence: bench/big-ack-stall.md. With pipelining (up to 20 streams per connection) that takes
# ~16 KiB of queued ACKs, i.e. 16 allow ACKs of ~1 KB — kube-oidc-spoa's carry the service-account token — which
# sustained keep-alive load produces. conf/spoe-kos.conf turns pipelining off on 3.1+ (one ACK per connection).
#
# This runs it without our agent: the agent is tests/integration/spop_stub.py (an independent Python SPOP
# implementation) answering with a service-account variable of SA_LEN bytes, behind conf/spoe-kos.conf and
# conf/haproxy.cfg's agent backend as shipped; KOS_SPOE_PIPELINING=on drops the "no option pipelining" line (the reproduction, for HAProxy's issue
# tracker). tests/matrix/test_spoe_matrix.py runs it as shipped on every branch.
#
#   tests/matrix/big_ack_stall.sh HAPROXY [SA_LEN=1000] [CONNS=32]
#
# KOS_EXTRA_GLOBAL, if set, is added to the global section.
#
# Prints wrk's rate, the SPOP connections HAProxy established, the first SPOE-error log lines ("%ST %Ta err= st=")
# and how many requests ended with an SPOE error. Measured here (2 cores), SA_LEN 1000, 32
# clients: with pipelining, 16 or 32 errors a run on 3.2/3.4 (one or two wedged connections), 0 on 2.6/3.0; as
# shipped, 0 on 3.2 in 10 runs and 3 in ~314,000 requests on 3.4 (cause unknown, not this: one ACK per
# connection cannot fill the buffer). SA_LEN 400: 20 ACKs never fill 16 KiB, 0 errors either way.
# HAProxy for 3.x: scripts/haproxy-versions.py --bins. Listens on 127.0.0.1 only; runs 2 s of bounded load.
set -u
H=${1:?usage: big_ack_stall.sh HAPROXY [SA_LEN] [CONNS]}
SA=${2:-1000}
C=${3:-32}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
D=$(mktemp -d)
trap 'kill $HP $STUB 2>/dev/null; rm -rf "$D"' EXIT
# The stub binds port 0 and prints the port it got (no window for another process to take it).
$PY -u "$ROOT/tests/integration/spop_stub.py" --port 0 > "$D/stub.out" 2>&1 &
STUB=$!
SP=
for _ in $(seq 100); do
    SP=$(sed -n 's/.*"port": \([0-9]*\).*/\1/p' "$D/stub.out")
    [ -n "$SP" ] && break
    kill -0 $STUB 2>/dev/null || break
    sleep 0.1
done
[ -n "$SP" ] || { echo "the stub agent did not start:"; cat "$D/stub.out"; exit 1; }
TOK=$($PY -c "import base64,json;print('stub:'+base64.urlsafe_b64encode(json.dumps({'vars':{'status':0,'user':'alice','sa':'e'*$SA}}).encode()).decode().rstrip('='))")
if [ "${KOS_SPOE_PIPELINING:-}" = on ]; then
    sed -e "/^ *no option pipelining/d" "$ROOT/conf/spoe-kos.conf"
else
    cat "$ROOT/conf/spoe-kos.conf"
fi > "$D/spoe.conf"
# The agent backend as shipped (conf/haproxy.cfg's kos_agents: SPOP health checks, idle pooling, maxconn).
AGENTS=$($PY -c 'import sys; sys.path.insert(0, sys.argv[1] + "/tests"); import kostest
body = kostest.haproxy_section(open(sys.argv[1] + "/conf/haproxy.cfg").read(), "backend kos_agents")
print("backend kos_agents\n" + body.replace("\"${KOS_AGENT}\"", sys.argv[2]))' "$ROOT" "127.0.0.1:$SP")
# A port picked free and released can be taken again before HAProxy binds it (by the stub, or by anything else on the
# machine; wrk would then talk to that): HAProxy failing to start is retried on another port, three times at most.
HP=
NONCE=$($PY -c 'import secrets;print(secrets.token_hex(8))')
for attempt in 1 2 3; do
FP=$SP
while [ "$FP" = "$SP" ]; do
    FP=$($PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
done
cat > "$D/h.cfg" <<EOC
global
    maxconn 8000
    # never share the port with another process's listener (SO_REUSEPORT): the probe below must reach this one
    noreuseport
    stats socket $D/stats.sock
    log stdout format raw local0 info
${KOS_EXTRA_GLOBAL:-}
defaults
    mode http
    log global
    option dontlognull
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend f
    bind 127.0.0.1:$FP
    log-format "%ST %Ta err=%[var(txn.kos.err)] st=%[var(txn.kos.status)]"
    filter spoe engine kos config $D/spoe.conf
    http-request set-log-level silent if { path /kos-probe }
    http-request return status 200 content-type text/plain string "$NONCE" if { path /kos-probe }
    http-request send-spoe-group kos kos-auth
    http-request return status 200 content-type text/plain string "ok"
$AGENTS
EOC
KOS_SPOE_TIMEOUT=2s "$H" -db -f "$D/h.cfg" > "$D/h.log" 2>&1 &
HP=$!
# Wait until this HAProxy answers (its nonce, not just any listener on the port; the probe is not logged).
UP=
for _ in $(seq 100); do
    kill -0 $HP 2>/dev/null || break
    $PY -c "import urllib.request,sys;sys.exit(urllib.request.urlopen('http://127.0.0.1:$FP/kos-probe',timeout=0.5).read().decode()!='$NONCE')" 2>/dev/null && { UP=1; break; }
    sleep 0.1
done
[ -n "$UP" ] && break
echo "HAProxy did not come up on port $FP (attempt $attempt):"; cat "$D/h.log"
kill $HP 2>/dev/null; wait $HP 2>/dev/null
[ $attempt = 3 ] && exit 1
done
"$H" -v | head -1
wrk -t 2 -c "$C" -d 2s -H "Authorization: Bearer $TOK" "http://127.0.0.1:$FP/" | grep -E "Requests/sec|Socket|Non-2xx"
sleep 2.5
kill -0 $HP 2>/dev/null || { echo "HAProxy exited during the load:"; tail -20 "$D/h.log"; }
# SPOP connections HAProxy established to the agent (a connection per request would mean idle-pool churn)
$PY -c "import sys; sys.path.insert(0, '$ROOT/tests'); import kostest
print('SPOP connections established:', kostest.server_stat('$D/stats.sock', 'kos_agents', 'agent1', 'connect'))" || true
grep 'err=[0-9]' "$D/h.log" | head -5
echo "SA_LEN=$SA CONNS=$C: requests with an SPOE error: $(grep -c 'err=[0-9]' "$D/h.log") of $(grep -c '^[0-9]' "$D/h.log")"
