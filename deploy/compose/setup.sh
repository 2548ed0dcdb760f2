#!/bin/sh
# One-shot, in the k3s image: wait for the API server, apply k8s-demo.yaml, hand the proxy's token and the API
# server's CA to the other containers through the shared volume.
set -eu
export KUBECONFIG=/shared/kubeconfig.yaml
i=0
until [ -s "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -le 120 ] || { echo "k3s not ready after 120 s" >&2; exit 1; }
  sleep 1
done
kubectl apply -f /compose/k8s-demo.yaml
i=0
until tok=$(kubectl -n kube-oidc-spoa get secret kube-oidc-spoa-token -o jsonpath='{.data.token}') && [ -n "$tok" ]; do
  i=$((i + 1)); [ "$i" -le 60 ] || { echo "no service-account token after 60 s" >&2; exit 1; }
  sleep 1
done
echo "$tok" | base64 -d > /shared/sa-token
kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d > /shared/k3s-ca.crt
chmod 0644 /shared/sa-token /shared/k3s-ca.crt
echo "setup done"
