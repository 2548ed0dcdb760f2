# kube-oidc-spoa images.
#   docker build -t kube-oidc-spoa .                          the agent (default target)
#   docker build --target haproxy -t kube-oidc-spoa-haproxy .  the official HAProxy image with our conf/ baked in
# (podman build takes the same arguments.) The build steps are scripts/build.sh, the same script the README and CI
# run; tests/image builds this file unchanged and runs both images (README, "Container images"). Base images are
# named in full: podman, unlike docker, resolves no short name without an alias, and haproxy has none.

FROM docker.io/library/debian:12-slim AS build
WORKDIR /src
# The build packages first, in a layer of their own: a source change does not download them again.
COPY scripts/build.sh scripts/build.sh
RUN scripts/build.sh --deps-only
COPY . .
RUN scripts/build.sh

# Runtime: only the shared libraries the binary links (libev, OpenSSL 3, cJSON, libcurl, libyaml) and CA certificates.
FROM docker.io/library/debian:12-slim AS agent
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libev4 libssl3 libcjson1 libcurl4 libyaml-0-2 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=build /src/build/kube-oidc-spoa /usr/local/bin/kube-oidc-spoa
# A numeric, non-root user so Kubernetes' runAsNonRoot can verify it. The agent writes no file: it runs with a
# read-only root filesystem and no capabilities (deploy/base/deployment.yaml, tests/image).
USER 65532:65532
# SPOP for HAProxy (loopback or a unix socket only: it hands out the service-account token; deploy/ uses a socket on
# an emptyDir shared with HAProxy), and /ready, /healthz, /metrics.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kube-oidc-spoa"]

# HAProxy with our configuration; every setting comes from the KOS_* variables documented in conf/haproxy.cfg.
# The official image starts `haproxy -W -db <args>` as its "haproxy" user, uid/gid 99: named here by number so
# that Kubernetes' runAsNonRoot can verify it without a runAsUser.
FROM docker.io/library/haproxy:3.2 AS haproxy
COPY conf/haproxy.cfg conf/spoe-kos.conf /usr/local/etc/haproxy/
ENV KOS_CONF_DIR=/usr/local/etc/haproxy
USER 99:99
EXPOSE 6443

# The agent is the default target.
FROM agent
