#!/usr/bin/env bash
# make demo: the whole product on loopback — test OIDC issuer, stand-in API server, kube-oidc-spoa and HAProxy
# running conf/haproxy.cfg — then kubectl through the proxy: who am I, a 401 and a 403. Keeps running until
# Ctrl-C with the kubeconfig path printed; KOS_DEMO_ONCE=1 stops after the showing (used by the test suite).
# Everything lives in a temp dir (removed at exit); ~/.kube is never touched.
#
#   KOS_BUILD=build        build directory holding kube-oidc-spoa
#   KOS_HAPROXY=haproxy    HAProxy command
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3
AGENT="$ROOT/${KOS_BUILD:-build}/kube-oidc-spoa"
HAPROXY="${KOS_HAPROXY:-haproxy}"
[ -x "$AGENT" ] || { echo "demo: $AGENT not built (run make)" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "demo: kubectl not found (make deps installs it)" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/kos-demo.XXXXXX")"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }

# Waits (at most 30 s) for the JSON ready line a tool prints first.
ready_line() {
  local log=$1 pid=$2 i
  for i in $(seq 300); do
    if grep -q '"ready"' "$log" 2>/dev/null; then grep -m1 '"ready"' "$log"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "demo: process exited:" >&2; cat "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "demo: no ready line in $log" >&2; return 1
}

echo "demo: working in $TMP"

# 1. Test OIDC issuer (HTTPS, own CA).
"$PY" "$ROOT/tests/tools/issuer.py" --state-dir "$TMP/issuer" >"$TMP/issuer.log" 2>&1 &
PIDS+=($!)
line="$(ready_line "$TMP/issuer.log" $!)"
ISSUER="$(json_field issuer <<<"$line")"
ISSUER_CA="$(json_field ca <<<"$line")"

# 2. Stand-in API server (HTTPS, own CA) accepting only the service-account token.
SA_TOKEN_FILE="$TMP/sa-token"
"$PY" -c 'import secrets; print("demo-sa-" + secrets.token_urlsafe(24))' >"$SA_TOKEN_FILE"
"$PY" "$ROOT/tests/tools/apiserver.py" --dir "$TMP/api" --token-file "$SA_TOKEN_FILE" >"$TMP/apiserver.log" 2>&1 &
PIDS+=($!)
line="$(ready_line "$TMP/apiserver.log" $!)"
API_PORT="$(json_field port <<<"$line")"
API_CA="$(json_field ca <<<"$line")"

# 3. HAProxy's frontend certificate (its own CA, trusted by the demo kubeconfig).
"$PY" - "$ROOT" "$TMP/front" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "tests", "tools"))
import apiserver
d = sys.argv[2]
os.makedirs(d)
p = apiserver.make_pki(d)
with open(os.path.join(d, "front.pem"), "w") as out:
    out.write(open(p["cert"]).read() + open(p["key"]).read())
EOF

# 4. The agent.
AGENT_PORT="$(free_port)"
PROBE_PORT="$(free_port)"
"$AGENT" --oidc-issuer-url "$ISSUER" --oidc-client-id kos-client --oidc-ca-file "$ISSUER_CA" \
  --oidc-username-claim email --oidc-groups-claim groups --oidc-groups-prefix "oidc:" \
  --extra-user-header-client-ip --listen "127.0.0.1:$AGENT_PORT" \
  --readiness-probe-port "$PROBE_PORT" --readiness-probe-address 127.0.0.1 \
  --service-account-token-file "$SA_TOKEN_FILE" >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=($AGENT_PID)
for i in $(seq 300); do
  curl -sf "http://127.0.0.1:$PROBE_PORT/ready" >/dev/null 2>&1 && break
  kill -0 "$AGENT_PID" 2>/dev/null || { echo "demo: agent exited:" >&2; cat "$TMP/agent.log" >&2; exit 1; }
  [ "$i" = 300 ] && { echo "demo: agent not ready after 30 s" >&2; cat "$TMP/agent.log" >&2; exit 1; }
  sleep 0.1
done

# 5. HAProxy with conf/haproxy.cfg as shipped; only the KOS_* variables differ from a cluster.
FRONT_PORT="$(free_port)"
KOS_LISTEN="127.0.0.1:$FRONT_PORT" KOS_TLS_CERT="$TMP/front/front.pem" KOS_AGENT="127.0.0.1:$AGENT_PORT" \
KOS_APISERVER="127.0.0.1:$API_PORT" KOS_APISERVER_NAME=localhost KOS_APISERVER_CA="$API_CA" \
KOS_CONF_DIR="$ROOT/conf" "$HAPROXY" -db -f "$ROOT/conf/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=($HAPROXY_PID)
# Up when a request gets a verdict rather than a 503 (the agent's health check has passed).
for i in $(seq 150); do
  code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TMP/front/ca.pem" "https://127.0.0.1:$FRONT_PORT/api" || true)"
  [ "$code" = 401 ] && break
  kill -0 "$HAPROXY_PID" 2>/dev/null || { echo "demo: HAProxy exited:" >&2; cat "$TMP/haproxy.log" >&2; exit 1; }
  [ "$i" = 150 ] && { echo "demo: HAProxy not answering" >&2; cat "$TMP/haproxy.log" >&2; exit 1; }
  sleep 0.2
done

# 6. A token for alice, and a kubeconfig that points kubectl at HAProxy.
TOKEN="$(curl -sf --cacert "$ISSUER_CA" -X POST "$ISSUER/_test/mint" \
  -d '{"claims":{"sub":"alice","email":"alice@example.com","email_verified":true,"groups":["developers","oncall"]},"alg":"RS256"}' \
  | json_field token)"
export KUBECONFIG="$TMP/kubeconfig"
export KUBECACHEDIR="$TMP/kube-cache"
kubectl config set-cluster demo --server="https://127.0.0.1:$FRONT_PORT" --certificate-authority="$TMP/front/ca.pem" >/dev/null
kubectl config set-credentials alice --token="$TOKEN" >/dev/null
kubectl config set-context demo --cluster=demo --user=alice --namespace=default >/dev/null
kubectl config use-context demo >/dev/null

fail=0
show() {  # prints the command and its output; $1 = text the output must contain
  local want=$1; shift
  echo
  echo "\$ $*"
  local out
  out="$("$@" 2>&1)" || true
  echo "$out"
  if ! grep -qF -- "$want" <<<"$out"; then echo "demo: expected \"$want\"" >&2; fail=1; fi
}
echo
echo "=== kube-oidc-spoa demo: kubectl -> HAProxy :$FRONT_PORT -> (agent :$AGENT_PORT) -> API server :$API_PORT ==="
show "alice@example.com" kubectl auth whoami
show "pod/web-1" kubectl get pods -o name
show "error: You must be logged in to the server (Unauthorized)" kubectl --token=not-a-valid-token get pods
show "Error from server (Forbidden): Impersonation requests are disabled when using this proxy" \
  kubectl get pods --as=bob
show '"code":401' curl -s --cacert "$TMP/front/ca.pem" "https://127.0.0.1:$FRONT_PORT/api/v1/namespaces/default/pods"
echo
echo "What the API server received for alice's request (its stand-in recorded the headers):"
curl -s --cacert "$API_CA" "https://127.0.0.1:$API_PORT/_test/requests" | "$PY" -c '
import json, sys
for r in json.load(sys.stdin):
    if r["auth_ok"] and r["path"].startswith("/api/v1/namespaces/default/pods"):
        for k, v in r["headers"]:
            if k.lower() == "authorization":
                print(f"  {k}: Bearer <the service-account token>")
            elif k.lower().startswith("impersonate-"):
                print(f"  {k}: {v}")
        break
'
if [ "$fail" != 0 ]; then
  echo "demo: FAILED (logs below)" >&2
  tail -n 20 "$TMP/agent.log" "$TMP/haproxy.log" >&2
  exit 1
fi
echo
echo "kubeconfig: $KUBECONFIG"
echo "try:        KUBECONFIG=$KUBECONFIG kubectl auth whoami"
echo "logs:       $TMP/{agent,haproxy,issuer,apiserver}.log"
if [ "${KOS_DEMO_ONCE:-0}" = 1 ]; then
  echo "demo: done (KOS_DEMO_ONCE=1)"
  exit 0
fi
echo "running; Ctrl-C stops everything"
while kill -0 "$AGENT_PID" 2>/dev/null && kill -0 "$HAPROXY_PID" 2>/dev/null; do sleep 1; done
echo "demo: a component exited" >&2
exit 1
