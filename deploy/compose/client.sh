#!/bin/sh
# One-shot: log in to Dex as alice (password grant), then run kubectl through HAProxy with that ID token.
set -eu
apk add --no-cache curl jq kubectl >/dev/null
i=0
until tok=$(curl -sf --cacert /shared/certs/ca.crt -u kubectl:kube-oidc-spoa-demo https://dex:5556/dex/token \
        -d grant_type=password -d username=alice@example.com -d password=password \
        -d 'scope=openid email groups' | jq -r .id_token) && [ -n "$tok" ] && [ "$tok" != null ]; do
  i=$((i + 1)); [ "$i" -le 60 ] || { echo "no token from Dex after 60 s" >&2; exit 1; }
  sleep 1
done
k() { kubectl --server=https://haproxy:6443 --certificate-authority=/shared/certs/ca.crt --token="$tok" "$@"; }
i=0
until k auth whoami >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -le 60 ] || { k auth whoami; exit 1; }
  sleep 1
done
echo "== kubectl auth whoami (through HAProxy + kube-oidc-spoa)"
k auth whoami
echo "== kubectl get ns"
k get ns
echo "== a bad token is refused"
kubectl --server=https://haproxy:6443 --certificate-authority=/shared/certs/ca.crt --token=not-a-jwt get ns || true
