#!/usr/bin/env bash
# The release build of the agent, and nothing else: the one set of build steps shared by the Dockerfile, the
# README and CI, so the image cannot drift from what is tested.
#
#   scripts/build.sh                  build build/kube-oidc-spoa (needs the build packages below)
#   scripts/build.sh --install-deps   first install the build packages (Debian 12; used by the Dockerfile)
#   scripts/build.sh --deps-only      only install the build packages (the Dockerfile's cached layer)
#
# BUILD=dir puts the output in dir/kube-oidc-spoa; JOBS=n sets make's parallelism (default: all CPUs).
set -euo pipefail
cd "$(dirname "$0")/.."

# Keep in step with the "build" line of scripts/deps.sh (tests/deploy checks it). libc6-dev is only a
# Recommends of gcc: without it --no-install-recommends leaves a compiler with no C library headers.
BUILD_PACKAGES=(gcc libc6-dev make pkg-config libev-dev libssl-dev libcjson-dev libcurl4-openssl-dev libyaml-dev)

case "${1:-}" in
--install-deps | --deps-only)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${BUILD_PACKAGES[@]}"
  [ "$1" = "--deps-only" ] && exit 0
  shift
  ;;
esac
BUILD="${BUILD:-build}"
make -j"${JOBS:-$(nproc)}" BUILD="$BUILD" "$BUILD/kube-oidc-spoa"
"$BUILD/kube-oidc-spoa" --version
