# kube-oidc-spoa images.
#   docker build -t kube-oidc-spoa .                  the agent (default target)
#   docker build --target haproxy -t kos-haproxy .    the official HAProxy image with our conf/ baked in
# The build steps are scripts/build.sh, the same script the README and CI run.

FROM debian:12-slim AS build
WORKDIR /src
COPY . .
RUN scripts/build.sh --install-deps

# Runtime: only the shared libraries the binary links (libev, OpenSSL 3, cJSON, libcurl, libyaml) and CA certificates.
FROM debian:12-slim AS agent
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends libev4 libssl3 libcjson1 libcurl4 libyaml-0-2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/kube-oidc-spoa /usr/local/bin/kube-oidc-spoa
# A numeric, non-root user so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# SPOP for HAProxy, and /ready, /healthz, /metrics.
EXPOSE 12345 8080
ENTRYPOINT ["/usr/local/bin/kube-oidc-spoa"]

# HAProxy with our configuration; every setting comes from the KOS_* variables documented in conf/haproxy.cfg.
FROM haproxy:3.2 AS haproxy
COPY conf/haproxy.cfg conf/spoe-kos.conf /usr/local/etc/haproxy/
ENV KOS_CONF_DIR=/usr/local/etc/haproxy
EXPOSE 6443

# The agent is the default target.
FROM agent
