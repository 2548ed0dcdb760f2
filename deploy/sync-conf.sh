#!/usr/bin/env bash
# Writes deploy/'s copies of conf/: the places the manifests generate ConfigMaps from (kustomize refuses files
# outside a kustomization's directory, symlinks included), and the HAProxy Kubernetes Ingress Controller's
# auxiliary config, which is conf/haproxy.cfg with its settings fixed.
#
#   deploy/sync-conf.sh           rewrite the copies (run after changing conf/)
#   deploy/sync-conf.sh --check   write them to a scratch directory and compare: exit 1 and show the difference
#                                 when a committed copy is not exactly what this script makes (tests/deploy runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

generate() { # $1: the directory that stands for deploy/
  local out="$1"
  mkdir -p "$out/base/conf" "$out/ingress-controller/controller"
  for f in haproxy.cfg spoe-kos.conf; do
    cp "conf/$f" "$out/base/conf/$f"
  done
  for f in spoe-kos.conf; do
    cp "conf/$f" "$out/ingress-controller/controller/$f"
  done
  # In the ingress controller, HAProxy's environment is the controller's: the settings are fixed in the file
  # instead (setenv replaces conf/'s presetenv defaults), everything else is conf/haproxy.cfg unchanged. The agent
  # is a sidecar in the controller's pod, on a unix socket in an emptyDir the two containers share (helm-values.yaml;
  # an exposed SPOP port would hand out its token).
  sed -e 's|^\(    \)presetenv KOS_LISTEN .*|\1setenv KOS_LISTEN         :6443|' \
      -e 's|^\(    \)presetenv KOS_TLS_CERT .*|\1setenv KOS_TLS_CERT       /etc/haproxy/kos/tls/tls.pem|' \
      -e 's|^\(    \)presetenv KOS_AGENT .*|\1setenv KOS_AGENT          unix@/run/kube-oidc-spoa/spop.sock|' \
      -e 's|^\(    \)presetenv KOS_CONF_DIR .*|\1setenv KOS_CONF_DIR       /etc/haproxy/kos|' \
      conf/haproxy.cfg > "$out/ingress-controller/controller/haproxy-aux.cfg"
}

FILES=(base/conf/haproxy.cfg base/conf/spoe-kos.conf
       ingress-controller/controller/spoe-kos.conf
       ingress-controller/controller/haproxy-aux.cfg)

if [ "${1:-}" = "--check" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  generate "$tmp"
  stale=0
  for f in "${FILES[@]}"; do
    if ! diff -u "deploy/$f" "$tmp/$f"; then
      stale=1
    fi
  done
  if [ "$stale" -ne 0 ]; then
    echo "deploy/'s copies of conf/ are stale: run deploy/sync-conf.sh" >&2
    exit 1
  fi
  exit 0
fi
generate deploy
