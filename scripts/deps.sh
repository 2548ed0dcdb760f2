#!/usr/bin/env bash
# Installs the Debian packages that building, testing, benchmarking and the demo need, and only those that are
# missing, so `make test` works on a fresh Debian 12 machine and costs nothing on a prepared one.
set -euo pipefail

pkgs=(
  # build
  gcc libc6-dev make pkg-config libev-dev libssl-dev libcjson-dev libcurl4-openssl-dev libyaml-dev
  # tests: unit, fuzz, integration, bench
  libcmocka-dev clang libclang-rt-14-dev haproxy openssl curl
  python3 python3-pytest python3-cryptography python3-jwcrypto python3-yaml wrk valgrind
  strace  # tests/matrix/test_hello_one_write.py: the agent's AGENT-HELLO leaves in one syscall
  # tests/image: build and run the images (runc: crun refuses hybrid cgroup hosts; debootstrap makes the base image;
  # ss from iproute2 checks that the containers listen on loopback only)
  podman runc debootstrap iproute2
  # scripts/haproxy-nolua.py: HAProxy built from Debian's source package without Lua (dpkg-source, PCRE2)
  dpkg-dev libpcre2-dev
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# kubectl: any kubectl on PATH will do; otherwise Debian's kubernetes-client.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts the packaged HAProxy service where systemd runs; the tests start their own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet haproxy 2>/dev/null; then
  $SUDO systemctl stop haproxy || true
fi
