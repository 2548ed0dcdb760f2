"""Deployment artefacts (issue 6), checked where no container engine runs: every kustomization renders, RBAC is
exactly what the agent's flags need, probes point at real ports and endpoints, the agent accepts the manifests'
flags (--check-config), HAProxy accepts the configuration the manifests and docker-compose mount (`haproxy -c`
on every HAProxy of KOS_HAPROXY_BINS), docker-compose.yml parses and its mounts exist, and the Dockerfile builds
with scripts/build.sh and ships the libraries the binary links.
"""
import os
import re
import shutil
import subprocess

import pytest
import yaml

import kostest

ROOT = kostest.ROOT
DEPLOY = os.path.join(ROOT, "deploy")
# Every overlay under deploy/overlays, found rather than listed, so that a new one cannot escape these checks.
KUSTOMIZATIONS = (["base"] + sorted(f"overlays/{d}" for d in os.listdir(os.path.join(DEPLOY, "overlays"))
                                    if os.path.exists(os.path.join(DEPLOY, "overlays", d, "kustomization.yaml")))
                  + ["ingress-controller"])
# --allow-client-impersonation: the extras that record who acted (src/handler.c ORIG_*)
ORIGINAL_USER_KEYS = ["originaluser.jetstack.io-user", "originaluser.jetstack.io-groups", "originaluser.jetstack.io-uid"]
AGENT_BIN = next((p for p in (os.environ.get("KOS_AGENT_BIN", ""), os.path.join(ROOT, "build", "kube-oidc-spoa"),
                                 kostest.build_path("kube-oidc-spoa"))
                  if os.path.exists(p)), os.path.join(ROOT, "build", "kube-oidc-spoa"))


def render(path):
    p = subprocess.run(["kubectl", "kustomize", os.path.join(DEPLOY, path)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [d for d in yaml.safe_load_all(p.stdout) if d]


_cache = {}


def objects(path):
    if path not in _cache:
        _cache[path] = render(path)
    return _cache[path]


def find(objs, kind, name_prefix=""):
    return [o for o in objs if o["kind"] == kind and o["metadata"]["name"].startswith(name_prefix)]


IC = "ingress-controller"
# Ports the HAProxy Kubernetes Ingress Controller's chart uses in its pods (containerPort http/https/stat/admin and
# the controller's /healthz listener): a sidecar must not take one.
IC_CONTROLLER_PORTS = {8080, 8443, 1024, 6060, 1042}
# The chart runs the controller (and its HAProxy) as 1000:1000 (controller.unprivileged, the default) and offers no
# fsGroup: the sidecar's runAsGroup is what puts HAProxy in the SPOP socket's group.
IC_CONTROLLER_GID = 1000


def helm_values():
    with open(os.path.join(DEPLOY, IC, "helm-values.yaml")) as f:
        return yaml.safe_load(f)


def pod(path):
    """(pod spec, agent container): the Deployment's pod, or for the ingress controller the sidecar and volumes
    helm-values.yaml adds to the controller's pod."""
    if path == IC:
        ctl = helm_values()["controller"]
        spec = {"containers": ctl["extraContainers"], "volumes": ctl["extraVolumes"]}
        (c,) = [c for c in spec["containers"] if c["name"] == "kube-oidc-spoa"]
        return spec, c
    (dep,) = find(objects(path), "Deployment", "kube-oidc-spoa")
    spec = dep["spec"]["template"]["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == "agent"]
    return spec, c


def agent_container(objs):
    (dep,) = find(objs, "Deployment", "kube-oidc-spoa")
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "agent"]
    return dep, c


def agent_env(objs, c):
    """The agent's KOS_* environment: envFrom ConfigMaps, then env."""
    env = {}
    cms = {o["metadata"]["name"]: o for o in find(objs, "ConfigMap")}
    for src in c.get("envFrom", []):
        name = src["configMapRef"]["name"]
        assert name in cms, f"envFrom names a ConfigMap the kustomization does not create: {name}"
        env.update(cms[name].get("data", {}))
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("configMapKeyRef")
        if ref is None:
            env[e["name"]] = e.get("value", "")
            continue
        assert ref["name"] in cms or ref.get("optional"), f"{e['name']} names a ConfigMap not created: {ref}"
        data = cms.get(ref["name"], {}).get("data", {})
        if ref["key"] in data:  # an optional key that is absent leaves the variable unset
            env[e["name"]] = data[ref["key"]]
    return env


def flag(args, env, name, envname):
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}":
            return "true"
    return env.get(envname)


def authn_config_file(objs, spec, c, env):
    """(pod path, text) of the --authentication-config file the agent reads in this topology, from the ConfigMap
    volume mounted there, or None without one. Fails when the flag names a file nothing mounts."""
    path = flag(c.get("args", []), env, "authentication-config", "KOS_AUTHENTICATION_CONFIG")
    if not path:
        return None
    vols = {v["name"]: v for v in spec["volumes"]}
    cms = {o["metadata"]["name"]: o for o in find(objs, "ConfigMap")}
    for m in c.get("volumeMounts", []):
        if path.startswith(m["mountPath"].rstrip("/") + "/"):
            assert "subPath" not in m, "a subPath mount is never refreshed by kubelet: the agent would not reload"
            cm = vols[m["name"]]["configMap"]["name"]
            key = path[len(m["mountPath"].rstrip("/")) + 1:]
            assert cm in cms and key in cms[cm]["data"], f"{path}: no key {key} in ConfigMap {cm}"
            return path, cms[cm]["data"][key]
    raise AssertionError(f"--authentication-config {path}: no volume is mounted there")


def authn_sends(text):
    """What an AuthenticationConfiguration makes the agent send beyond a user and groups: (uid?, extra keys).
    Impersonate-Uid for any jwt[] with claimMappings.uid (claim or expression); one extra key per
    claimMappings.extra[].key (the API server requires them lower case, so they are the RBAC subresource as is)."""
    doc = yaml.safe_load(text)
    uid, keys = False, set()
    for j in doc.get("jwt") or []:
        cm = j.get("claimMappings") or {}
        u = cm.get("uid") or {}
        if u.get("claim") or u.get("expression"):
            uid = True
        for e in cm.get("extra") or []:
            keys.add(e["key"])
    return uid, keys


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_renders_every_object(path):
    objs = objects(path)
    kinds = {o["kind"] for o in objs}
    if path == IC:
        # Only what the controller's pods need next to the chart: RBAC for its service account, our ConfigMaps.
        assert kinds == {"ClusterRole", "ClusterRoleBinding", "ConfigMap"}, kinds
        assert {o["metadata"]["name"] for o in find(objs, "ConfigMap")} == {"kube-oidc-spoa-aux", "kube-oidc-spoa-oidc"}
        assert all(o["metadata"]["namespace"] == "haproxy-controller" for o in find(objs, "ConfigMap"))
    else:
        need = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
                "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "Service", "ConfigMap"}
        assert need <= kinds, need - kinds
        (dep,) = find(objs, "Deployment")
        spec = dep["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["topologySpreadConstraints"]
        (svc,) = find(objs, "Service", "kube-oidc-spoa")
        assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["ports"][0]["port"] == 443
        assert [c["name"] for c in spec["containers"]] == ["haproxy", "agent"]
    spec, agent = pod(path)
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], c["name"]
    if path == IC:
        # The controller's pod security settings are the chart's: the sidecar carries all of its own.
        sc = agent["securityContext"]
        # runAsGroup: the controller's group, the SPOP socket's (test_spop_is_a_unix_socket_in_a_pod_private_emptydir)
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532 and sc["runAsGroup"] == IC_CONTROLLER_GID, sc
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    # The agent's token is a projected, expiring service-account token.
    vols = {v["name"]: v for v in spec["volumes"]}
    (tok,) = [m for m in agent["volumeMounts"] if vols[m["name"]].get("projected")]
    assert vols[tok["name"]]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] <= 3600
    assert any(a == f"--service-account-token-file={tok['mountPath']}/token" for a in agent["args"]), agent["args"]


def pct_key(key):
    """An extra key as the agent writes it into a header name (src/handler.c pct_key, after the lower-casing of
    --extra-user-headers keys): a-z 0-9 - _ . ~ stay, every other byte is %XX."""
    ok = set("abcdefghijklmnopqrstuvwxyz0123456789-_.~")
    return "".join(ch if ch in ok else "".join(f"%{b:02X}" for b in ch.encode()) for ch in key)


def haproxy_env(path):
    """The KOS_* environment HAProxy runs with in this topology: the haproxy container's env (Deployment), or the
    ingress controller's setenv lines in haproxy-aux.cfg plus the controller's own environment."""
    if path == IC:
        with open(os.path.join(DEPLOY, IC, "controller", "haproxy-aux.cfg")) as f:
            env = dict(re.findall(r"^\s*setenv\s+(KOS_\w+)\s+(\S+)", f.read(), re.M))
        env.update(agent_env(objects(IC), {"env": helm_values()["controller"].get("extraEnvs", []) or []}))
        return env
    objs = objects(path)
    (dep,) = find(objs, "Deployment", "kube-oidc-spoa")
    (h,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "haproxy"]
    return agent_env(objs, h)


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_haproxy_has_a_slot_for_every_extra_key(path):
    """Every extra key the agent sends (--extra-user-headers, --credential-id-extra) has a KOS_EXTRA_<n> slot in
    HAProxy's environment, or every allowed request of that deployment would be a 500 (status 7)."""
    objs = objects(path) if path != IC else []
    _, c = pod(path)
    env = agent_env(objs, c) if path != IC else {}
    if path == IC:
        cms = {o["metadata"]["name"]: o for o in find(objects(IC), "ConfigMap")}
        for src in c.get("envFrom", []):
            env.update(cms.get(src["configMapRef"]["name"], {}).get("data", {}))
    args = c.get("args", [])
    keys = [kv.split("=", 1)[0].lower() for kv in filter(None, (flag(args, env, "extra-user-headers",
                                                                        "KOS_EXTRA_USER_HEADERS") or "").split(","))]
    if (flag(args, env, "credential-id-extra", "KOS_CREDENTIAL_ID_EXTRA") or "false") == "true":
        keys.append("authentication.kubernetes.io/credential-id")
    if path != IC:
        spec, _ = pod(path)
        f = authn_config_file(objs, spec, c, env)
        if f is not None:
            keys += sorted(authn_sends(f[1])[1])
    if (flag(args, env, "allow-client-impersonation", "KOS_ALLOW_CLIENT_IMPERSONATION") or "false") == "true":
        keys += ORIGINAL_USER_KEYS
    henv = haproxy_env(path)
    slots = {henv[f"KOS_EXTRA_{n}"].lower() for n in range(1, 9) if henv.get(f"KOS_EXTRA_{n}")}
    for k in keys:
        assert pct_key(k).lower() in slots, f"{path}: extra key {k!r} has no KOS_EXTRA_<n> in HAProxy's environment"


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_haproxy_sends_x_forwarded_for_exactly_when_the_agent_reads_it(path):
    """conf/spoe-kos.conf sends the X-Forwarded-For entries only when HAProxy's environment defines
    KOS_TRUSTED_PROXIES, and an agent with --trusted-proxies answers 503 without them: HAProxy's variable must come
    from the agent's own ConfigMap key, so that setting it there sets both, and the rendered pair must agree."""
    objs = objects(path)
    spec, c = pod(path)
    if path == IC:
        henv_list = helm_values()["controller"].get("extraEnvs", []) or []
    else:
        (dep,) = find(objs, "Deployment", "kube-oidc-spoa")
        (h,) = [x for x in dep["spec"]["template"]["spec"]["containers"] if x["name"] == "haproxy"]
        henv_list = h.get("env", [])
    agent_cms = [src["configMapRef"]["name"] for src in c.get("envFrom", [])]
    refs = [e["valueFrom"]["configMapKeyRef"] for e in henv_list
            if e["name"] == "KOS_TRUSTED_PROXIES" and "configMapKeyRef" in e.get("valueFrom", {})]
    assert len(refs) == 1 and refs[0]["name"] in agent_cms and refs[0]["key"] == "KOS_TRUSTED_PROXIES", \
        f"{path}: HAProxy's KOS_TRUSTED_PROXIES is not the agent's ConfigMap key: {henv_list}"
    env = agent_env(objs, c)
    agent_list = flag(c.get("args", []), env, "trusted-proxies", "KOS_TRUSTED_PROXIES")
    assert (agent_list is not None) == ("KOS_TRUSTED_PROXIES" in haproxy_env(path)), path


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_clusterrole_is_exactly_what_the_configuration_can_send(path):
    objs = objects(path)
    spec, c = pod(path)
    env = agent_env(objs, c)
    args = c.get("args", [])
    # The API server's impersonation checks: Impersonate-User -> users (serviceaccounts for a
    # system:serviceaccount:* name, which the agent only emits with --allow-reserved-identities), each
    # Impersonate-Group -> groups, Impersonate-Uid -> uids (only with an --authentication-config that maps uid: the
    # --oidc-* flags map none), Impersonate-Extra-<key> ->
    # userextras/<lower-cased key> in authentication.k8s.io (the decoded key is the subresource, slashes included:
    # --credential-id-extra -> userextras/authentication.kubernetes.io/credential-id). --token-passthrough: the
    # agent creates TokenReviews.
    imp = "impersonate"
    need = {("", "users", imp), ("", "groups", imp)}
    if (flag(args, env, "allow-reserved-identities", "KOS_ALLOW_RESERVED_IDENTITIES") or "false") == "true":
        need.add(("", "serviceaccounts", imp))
    if (flag(args, env, "extra-user-header-client-ip", "KOS_EXTRA_USER_HEADER_CLIENT_IP") or "false") == "true":
        need.add(("authentication.k8s.io", "userextras/remote-client-ip", imp))
    extras = flag(args, env, "extra-user-headers", "KOS_EXTRA_USER_HEADERS") or ""
    for kv in filter(None, extras.split(",")):
        need.add(("authentication.k8s.io", "userextras/" + kv.split("=", 1)[0].lower(), imp))
    if (flag(args, env, "credential-id-extra", "KOS_CREDENTIAL_ID_EXTRA") or "false") == "true":
        need.add(("authentication.k8s.io", "userextras/authentication.kubernetes.io/credential-id", imp))
    if (flag(args, env, "token-passthrough", "KOS_TOKEN_PASSTHROUGH") or "false") == "true":
        need.add(("authentication.k8s.io", "tokenreviews", "create"))
    f = authn_config_file(objs, spec, c, env)
    if f is not None:
        uid, keys = authn_sends(f[1])
        if uid:
            need.add(("authentication.k8s.io", "uids", imp))
        for k in keys:
            need.add(("authentication.k8s.io", "userextras/" + k, imp))
    # --allow-client-impersonation: SubjectAccessReviews, and whatever a permitted client may ask for beyond users
    # and groups (service accounts, uids) plus the extras that record who acted; only with the switch on.
    if (flag(args, env, "allow-client-impersonation", "KOS_ALLOW_CLIENT_IMPERSONATION") or "false") == "true":
        need.add(("authorization.k8s.io", "subjectaccessreviews", "create"))
        need.add(("", "serviceaccounts", imp))
        need.add(("authentication.k8s.io", "uids", imp))
        for k in ORIGINAL_USER_KEYS:
            need.add(("authentication.k8s.io", "userextras/" + k, imp))
    (role,) = find(objs, "ClusterRole")
    have = set()
    for r in role["rules"]:
        assert len(r["verbs"]) == 1 and r["verbs"][0] in (imp, "create"), r
        assert "resourceNames" not in r and "nonResourceURLs" not in r, r
        for g in r["apiGroups"]:
            for res in r["resources"]:
                assert "*" not in res and g != "*", r
                have.add((g, res, r["verbs"][0]))
    assert have - need == set(), f"{path}: the ClusterRole grants what the agent never sends"
    assert need - have == set(), f"{path}: the agent can send what the ClusterRole does not grant (403)"
    (binding,) = find(objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    if path == IC:
        # The sidecar's projected token is the controller pod's service account's.
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": helm_values()["serviceAccount"]["name"],
                                        "namespace": "haproxy-controller"}]
        return
    (sa,) = find(objs, "ServiceAccount")
    dep, _ = agent_container(objs)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_probes_and_ports_are_real(path):
    objs = objects(path)
    spec, agent = pod(path)
    env = agent_env(objs, agent)
    args = agent.get("args", [])
    probe_port = int(flag(args, env, "readiness-probe-port", "KOS_READINESS_PROBE_PORT") or 8080)
    listen = flag(args, env, "listen", "KOS_AGENT_LISTEN") or "127.0.0.1:12345"
    # SPOP on loopback or a unix socket only, in every topology: nothing in it is authenticated and the agent's
    # answers carry its service-account token. HAProxy is always in the same pod.
    assert listen.startswith("127.0.0.1:") or listen.startswith("unix:"), listen
    spop_port = None if listen.startswith("unix:") else int(listen.rsplit(":", 1)[1])
    all_ports = {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}
    assert spop_port not in all_ports.values()  # not declared as a pod port either
    for c in spec["containers"]:
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

        def port_of(p):
            return ports[p] if isinstance(p, str) else p
        for kind in ("readinessProbe", "livenessProbe"):
            if c is agent and path == IC and kind == "readinessProbe":
                assert kind not in c  # see helm-values.yaml: it would gate the whole controller
                continue
            pr = c[kind]
            if c is agent:
                assert pr["httpGet"]["path"] == {"readinessProbe": "/ready", "livenessProbe": "/healthz"}[kind]
                assert port_of(pr["httpGet"]["port"]) == probe_port
            else:
                kos_listen = {e["name"]: e.get("value") for e in c["env"]}["KOS_LISTEN"]
                assert port_of(pr["tcpSocket"]["port"]) == int(kos_listen.rsplit(":", 1)[1])
    if path == IC:
        assert probe_port not in IC_CONTROLLER_PORTS and spop_port not in IC_CONTROLLER_PORTS
        (aux,) = find(objs, "ConfigMap", "kube-oidc-spoa-aux")
        m = re.search(r"(?m)^\s*setenv KOS_AGENT\s+(\S+)$", aux["data"]["haproxy-aux.cfg"])
        assert m and m.group(1) == haproxy_addr(listen)
        return
    # Every Service and NetworkPolicy port names a port some selected container really has.
    (dep,) = find(objs, "Deployment", "kube-oidc-spoa")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    for svc in find(objs, "Service"):
        assert set(svc["spec"]["selector"].items()) <= set(labels.items())
        for p in svc["spec"]["ports"]:
            assert port_of_any(p["targetPort"], all_ports)
    for np in find(objs, "NetworkPolicy"):
        assert set(np["spec"]["podSelector"]["matchLabels"].items()) <= set(labels.items())
        for rule in np["spec"]["ingress"]:
            for p in rule["ports"]:
                assert port_of_any(p["port"], all_ports)
    (haproxy,) = [c for c in spec["containers"] if c["name"] == "haproxy"]
    assert {e["name"]: e.get("value") for e in haproxy["env"]}["KOS_AGENT"] == haproxy_addr(listen)


def haproxy_addr(listen):
    """HAProxy's name for the agent's --listen address (unix:PATH is unix@PATH on a server line)."""
    return "unix@" + listen[len("unix:"):] if listen.startswith("unix:") else listen


def haproxy_container(path):
    """HAProxy's container in this topology: "haproxy" in the Deployment; for the ingress controller, the chart's
    controller container, of which helm-values.yaml sets only the extra mounts."""
    if path == IC:
        return {"name": "controller", "volumeMounts": helm_values()["controller"]["extraVolumeMounts"]}
    spec, _ = pod(path)
    (h,) = [c for c in spec["containers"] if c["name"] == "haproxy"]
    return h


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_spop_is_a_unix_socket_in_a_pod_private_emptydir(path):
    """Every topology runs SPOP over a unix socket (one recv/send fewer per request than loopback TCP on HAProxy
    3.1+, docs/spop.md): its directory is an in-memory emptyDir mounted by exactly the agent (writable: it creates
    the socket) and HAProxy (at the same path, read-only: connecting needs write permission on the socket only),
    and both containers share the socket's group (the agent makes it 0660): the pod's fsGroup, or for the ingress
    controller, whose chart has no fsGroup, the controller's own group as the sidecar's runAsGroup."""
    spec, agent = pod(path)
    env = agent_env(objects(path), agent)
    listen = flag(agent.get("args", []), env, "listen", "KOS_AGENT_LISTEN")
    assert listen and listen.startswith("unix:/"), listen
    sock = listen[len("unix:"):]
    assert haproxy_env(path)["KOS_AGENT"] == "unix@" + sock
    sock_dir = os.path.dirname(sock)
    (am,) = [m for m in agent["volumeMounts"] if m["mountPath"].rstrip("/") == sock_dir]
    assert not am.get("readOnly") and "subPath" not in am, am
    (vol,) = [v for v in spec["volumes"] if v["name"] == am["name"]]
    assert set(vol) == {"name", "emptyDir"} and vol["emptyDir"].get("medium") == "Memory", vol
    h = haproxy_container(path)
    (hm,) = [m for m in h["volumeMounts"] if m["name"] == am["name"]]
    assert hm["mountPath"].rstrip("/") == sock_dir and hm.get("readOnly") is True and "subPath" not in hm, hm
    # No third container mounts it (the ingress controller's chart adds only its own container and ours).
    others = [c["name"] for c in spec["containers"] + spec.get("initContainers", [])
              if c is not agent and c["name"] != "haproxy"
              and any(m["name"] == am["name"] for m in c.get("volumeMounts", []))]
    assert others == [], others
    if path == IC:
        assert agent["securityContext"]["runAsGroup"] == IC_CONTROLLER_GID
    else:
        fs_group = spec["securityContext"].get("fsGroup")
        assert isinstance(fs_group, int) and fs_group not in (0, 99, 65532), fs_group  # a group of its own


def port_of_any(p, ports):
    return p in ports if isinstance(p, str) else p in ports.values()


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_agent_accepts_the_manifest_flags(path, tmp_path):
    assert os.access(AGENT_BIN, os.X_OK), f"{AGENT_BIN} not built yet"
    objs = objects(path)
    _, c = pod(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOS_")}
    env.update(agent_env(objs, c))
    # Files the pod mounts do not exist here: point file flags at stand-ins.
    token = tmp_path / "token"
    token.write_text("stand-in")
    if "KOS_APISERVER_CA_FILE" in env:  # --token-passthrough checks the API server CA it names
        ca = tmp_path / "ca.crt"
        ca.write_text("stand-in")
        env["KOS_APISERVER_CA_FILE"] = str(ca)
    if path != IC:
        spec, _ = pod(path)
        f = authn_config_file(objs, spec, c, agent_env(objs, c))
        if f is not None:  # the ConfigMap's file, parsed and every expression compiled by --check-config
            cfg = tmp_path / "authentication-config.yaml"
            cfg.write_text(f[1])
            env["KOS_AUTHENTICATION_CONFIG"] = str(cfg)
    args = [re.sub(r"^(--service-account-token-file=).*", lambda m: m.group(1) + str(token), a)
            for a in c.get("args", [])]
    p = subprocess.run([AGENT_BIN, "--check-config"] + args, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert p.returncode == 0, p.stdout


def self_signed(tmp_path):
    pem = tmp_path / "tls.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kos",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    pem.write_text((tmp_path / "c.pem").read_text() + (tmp_path / "k.pem").read_text())
    return pem, tmp_path / "c.pem"


def haproxy_c(haproxy_bin, files, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("KOS_")}
    full.update(env)
    args = [haproxy_bin, "-c"]
    for f in files:
        args += ["-f", str(f)]
    p = subprocess.run(args, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert p.returncode == 0, p.stdout
    assert "WARNING" not in p.stdout.upper(), p.stdout


def test_haproxy_accepts_the_mounted_config(haproxy_bin, tmp_path):
    objs = objects("base")
    (cm,) = find(objs, "ConfigMap", "kube-oidc-spoa-haproxy")
    conf = tmp_path / "conf"
    conf.mkdir()
    for name, text in cm["data"].items():
        (conf / name).write_text(text)
    (dep,) = find(objs, "Deployment")
    (h,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "haproxy"]
    env = {e["name"]: e["value"] for e in h["env"] if "value" in e}
    assert h["args"] == ["-f", "/etc/haproxy/haproxy.cfg"] and env["KOS_CONF_DIR"] == "/etc/haproxy"
    pem, ca = self_signed(tmp_path)
    # Same variables, with the pod's paths mapped to this machine (kubernetes.default.svc does not resolve here).
    env.update(KOS_CONF_DIR=str(conf), KOS_TLS_CERT=str(pem), KOS_APISERVER_CA=str(ca),
               KOS_APISERVER="127.0.0.1:6443", KOS_LISTEN=f"127.0.0.1:{kostest.free_port()}")
    haproxy_c(haproxy_bin, [conf / "haproxy.cfg"], env)


def test_haproxy_accepts_the_ingress_controller_aux_config(haproxy_bin, tmp_path):
    objs = objects("ingress-controller")
    (cm,) = find(objs, "ConfigMap", "kube-oidc-spoa-aux")
    d = tmp_path / "kos"
    d.mkdir()
    pem, ca = self_signed(tmp_path)
    aux = cm["data"]["haproxy-aux.cfg"]
    # KOS_AGENT stays the pod's unix@ path: HAProxy resolves a unix socket only when it connects.
    for var, val in (("KOS_CONF_DIR", str(d)), ("KOS_TLS_CERT", str(pem)),
                     ("KOS_LISTEN", f"127.0.0.1:{kostest.free_port()}")):
        aux, n = re.subn(rf"(?m)^(\s*setenv {var}\s+).*$", lambda m: m.group(1) + val, aux)
        assert n == 1, var
    for name, text in cm["data"].items():
        (d / name).write_text(text if name != "haproxy-aux.cfg" else aux)
    # A stand-in for the controller's own haproxy.cfg, loaded first as the controller does.
    main = tmp_path / "haproxy.cfg"
    main.write_text("global\n    log stderr format raw local0 err\ndefaults\n    mode http\n    timeout connect 5s\n"
                    "    timeout client 50s\n    timeout server 50s\n"
                    f"frontend http\n    bind 127.0.0.1:{kostest.free_port()}\n"
                    "    http-request return status 404\n")
    haproxy_c(haproxy_bin, [main, d / "haproxy-aux.cfg"],
              {"KOS_APISERVER": "127.0.0.1:6443", "KOS_APISERVER_CA": str(ca)})


def test_haproxy_accepts_the_compose_config(haproxy_bin, tmp_path):
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    h = compose["services"]["haproxy"]
    env = dict(h["environment"])
    (conf_mount,) = [v for v in h["volumes"] if v.startswith("./conf:")]
    conf_dir = os.path.join(ROOT, conf_mount.split(":")[0])
    assert h["command"] == ["haproxy", "-f", env["KOS_CONF_DIR"] + "/haproxy.cfg"]
    assert conf_mount.split(":")[1] == env["KOS_CONF_DIR"]
    pem, ca = self_signed(tmp_path)
    env.update(KOS_CONF_DIR=conf_dir, KOS_TLS_CERT=str(pem), KOS_APISERVER_CA=str(ca),
               KOS_APISERVER="127.0.0.1:6443", KOS_AGENT="127.0.0.1:12345",
               KOS_LISTEN=f"127.0.0.1:{kostest.free_port()}")
    haproxy_c(haproxy_bin, [os.path.join(conf_dir, "haproxy.cfg")], env)


def test_conf_copies_are_current():
    # deploy/sync-conf.sh is the one definition of every copy (and of the ingress controller's fixed settings):
    # its --check mode regenerates them aside and fails on any difference.
    p = subprocess.run([os.path.join(DEPLOY, "sync-conf.sh"), "--check"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert p.returncode == 0, p.stdout
    ic = os.path.join(DEPLOY, IC, "controller")
    with open(os.path.join(ROOT, "conf", "haproxy.cfg")) as a, open(os.path.join(ic, "haproxy-aux.cfg")) as b:
        src, aux = a.read().splitlines(), b.read().splitlines()
    # The aux file differs from conf/haproxy.cfg only in fixed settings (presetenv -> setenv of the same variable).
    assert len(src) == len(aux)
    for x, y in zip(src, aux):
        if x != y:
            assert re.match(r"^\s*presetenv KOS_\w+", x) and re.match(r"^\s*setenv KOS_\w+", y), (x, y)
            assert x.split()[1] == y.split()[1]


def test_compose_parses_and_mounts_exist():
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    assert {"haproxy", "agent", "dex", "k3s", "client"} <= set(services)
    named = set(compose.get("volumes", {}))
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith((".", "/")):
                assert os.path.exists(os.path.join(ROOT, src)), f"{name}: {src} does not exist"
            else:
                assert src in named, f"{name}: volume {src} not declared"
        for arg in (svc.get("command") or []) + (svc.get("entrypoint") or []):
            if isinstance(arg, str) and arg.startswith("/compose/"):
                assert os.path.exists(os.path.join(DEPLOY, "compose", arg[len("/compose/"):])), arg
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
    # SPOP on loopback: the agent shares HAProxy's network namespace and listens on 127.0.0.1 only.
    agent, haproxy = services["agent"], services["haproxy"]
    assert agent["network_mode"] == "service:haproxy" and "ports" not in agent
    listen = agent["environment"]["KOS_AGENT_LISTEN"]
    assert listen.startswith("127.0.0.1:") and haproxy["environment"]["KOS_AGENT"] == listen
    for svc in (agent, haproxy):
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in svc["security_opt"]
    build = services["agent"]["build"]
    with open(os.path.join(ROOT, build["context"], "Dockerfile")) as f:
        assert re.search(rf"(?im)^FROM .* AS {build['target']}$", f.read())
    # The demo agent's settings are flags it accepts.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOS_")}
    env.update(services["agent"]["environment"])
    for var in [k for k, v in env.items() if k.startswith("KOS_") and str(v).startswith("/shared/")]:
        env[var] = os.path.join(DEPLOY, "compose", "dex.yaml")  # any readable file stands in
    if os.access(AGENT_BIN, os.X_OK):
        p = subprocess.run([AGENT_BIN, "--check-config"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        assert p.returncode == 0, p.stdout


def test_dockerfile_builds_with_the_shared_script():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        df = f.read()
    runs = re.findall(r"(?m)^RUN (.*)$", df)
    assert any(r.strip().startswith("scripts/build.sh") for r in runs), runs
    # Nothing else compiles in the image: no make or cc outside the script.
    assert not any(re.search(r"\b(make|gcc|cc|clang)\b", r) for r in runs), runs
    (copy,) = re.findall(r"(?m)^COPY --from=build (\S+) ", df)
    assert copy == "/src/build/kube-oidc-spoa"  # scripts/build.sh's default output, under WORKDIR /src
    with open(os.path.join(ROOT, "scripts", "build.sh")) as f:
        build_sh = f.read()
    pkgs = re.search(r"BUILD_PACKAGES=\(([^)]*)\)", build_sh).group(1).split()
    with open(os.path.join(ROOT, "scripts", "deps.sh")) as f:
        deps = f.read()
    build_line = re.search(r"# build\n\s*(.*)\n", deps).group(1).split()
    assert pkgs == build_line


def test_runtime_image_has_every_linked_library():
    assert os.access(AGENT_BIN, os.X_OK), f"{AGENT_BIN} not built yet"
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        df = f.read()
    stage = df.split(" AS agent", 1)[1].split("\nFROM ", 1)[0]
    installed = set(re.search(r"--no-install-recommends ([^\\&\n]*)", stage).group(1).split())
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", AGENT_BIN], stdout=subprocess.PIPE, text=True,
                                       timeout=60).stdout)
    assert needed
    for lib in needed:
        out = subprocess.run(["dpkg", "-S", f"*/{lib}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, timeout=60).stdout
        # The package of the native library (not e.g. libc6-i386's copy).
        native = [ln for ln in out.splitlines() if "-linux-gnu/" in ln]
        assert native, lib
        pkg = native[0].split(":", 1)[0].strip()
        if pkg in ("libc6",):
            continue  # in every Debian image
        assert pkg in installed, f"{lib} comes from {pkg}, which the agent image does not install"
    assert shutil.which("readelf")
