#!/usr/bin/env bash
# Copies conf/ into the places the manifests generate ConfigMaps from (kustomize refuses files outside a
# kustomization's directory, symlinks included) and writes the HAProxy Kubernetes Ingress Controller's auxiliary
# config from conf/haproxy.cfg. Run after changing conf/; tests/deploy fails while the copies differ.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in haproxy.cfg spoe-kos.conf; do
  cp "conf/$f" "deploy/base/conf/$f"
done
for f in spoe-kos.conf; do
  cp "conf/$f" "deploy/ingress-controller/controller/$f"
done
# In the ingress controller, HAProxy's environment is the controller's: the settings are fixed in the file instead
# (setenv replaces conf/'s presetenv defaults), everything else is conf/haproxy.cfg unchanged.
sed -e 's|^\(    \)presetenv KOS_LISTEN .*|\1setenv KOS_LISTEN         :6443|' \
    -e 's|^\(    \)presetenv KOS_TLS_CERT .*|\1setenv KOS_TLS_CERT       /etc/haproxy/kos/tls/tls.pem|' \
    -e 's|^\(    \)presetenv KOS_AGENT .*|\1setenv KOS_AGENT          kube-oidc-spoa-agent.kube-oidc-spoa.svc:12345|' \
    -e 's|^\(    \)presetenv KOS_CONF_DIR .*|\1setenv KOS_CONF_DIR       /etc/haproxy/kos|' \
    conf/haproxy.cfg > deploy/ingress-controller/controller/haproxy-aux.cfg
