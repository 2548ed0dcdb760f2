#!/bin/sh
# One-shot: a demo CA and the certificates Dex (https://dex:5556) and HAProxy (https://localhost:6443) serve.
set -eu
apk add --no-cache openssl >/dev/null
d=/shared/certs
mkdir -p "$d"
[ -f "$d/haproxy.pem" ] && exit 0
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=kube-oidc-spoa-demo-ca \
  -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
for name in dex haproxy; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n' "$name" > "$d/$name.ext"
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
    -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
done
cat "$d/haproxy.crt" "$d/haproxy.key" > "$d/haproxy.pem"
# Demo only: the HAProxy (uid 99), Dex and agent (uid 65532) containers read these.
chmod 0644 "$d"/*
