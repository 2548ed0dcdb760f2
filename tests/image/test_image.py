"""The container images, built from the Dockerfile and run for real (issue 17).

scripts/images.py builds both images with podman (against local stand-ins for debian:12-slim and haproxy:3.2: no
registry is reachable here; see its docstring). Then the agent image and the HAProxy image run as containers on
the host network, bound to loopback only, with the securityContext that deploy/base/deployment.yaml gives them —
read from the rendered manifests and turned into podman flags, so the manifests cannot drift from what is tested —
in front of the suite's test issuer and stand-in API server. What a user of the images relies on is checked:
`kubectl auth whoami` through both containers, 401 and 403 with Status JSON, /ready and /metrics of the agent
container, a service-account token rotated kubelet-style in the mounted volume, and an agent container restart
during which every request fails closed. SPOP runs as in the pod: over the manifest's unix socket, in a host
directory mounted into both containers that stands for the pod's emptyDir (set-group-ID, in the pod's fsGroup,
which both containers get as a supplementary group), so the images' own users (agent 65532, HAProxy 99) are what
is tested to connect.

Timings and image sizes go to build/image-report.json.
"""
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
import yaml

import kostest

sys.path.insert(0, os.path.join(kostest.ROOT, "tests", "integration"))
import kosstack  # noqa: E402
from kosstack import CLIENT_ID, Stack, assert_all_authenticated, header_values  # noqa: E402

ROOT = kostest.ROOT
REPORT = os.path.join(ROOT, "build", "image-report.json")

_spec = importlib.util.spec_from_file_location("kos_images", os.path.join(ROOT, "scripts", "images.py"))
images_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(images_mod)


def podman(*args, timeout=300, check=True):
    p = subprocess.run(images_mod.podman_cmd() + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, f"podman {' '.join(map(str, args))} exited with {p.returncode}:\n{p.stdout[-4000:]}"
    return p


def report(**kw):
    os.makedirs(os.path.dirname(REPORT), exist_ok=True)
    data = {}
    if os.path.exists(REPORT):
        with open(REPORT) as f:
            data = json.load(f)
    data.update(kw)
    with open(REPORT, "w") as f:
        json.dump(data, f, indent=1)


@pytest.fixture(scope="module")
def images():
    if os.path.exists(REPORT):
        os.remove(REPORT)  # the report describes this run only
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "images.py")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=3600)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        pytest.fail(f"scripts/images.py failed ({p.returncode}):\n{p.stderr[-8000:]}")
    info = json.loads(p.stdout.strip().splitlines()[-1])
    report(images_s=round(time.monotonic() - t0, 1), **{k: info[k] for k in ("timings", "sizes", "haproxy_version")})
    return info


# ---- the manifests' securityContext as podman flags -----------------------------------------------------------

def deployment():
    p = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "deploy", "base")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (dep,) = [d for d in yaml.safe_load_all(p.stdout) if d and d["kind"] == "Deployment"]
    return dep["spec"]["template"]["spec"]


# Every securityContext field the manifests may use must be understood here (an unknown one fails the test rather
# than being silently left out of what is tested).
SC_FIELDS = {"readOnlyRootFilesystem", "allowPrivilegeEscalation", "capabilities", "runAsUser", "runAsGroup",
             "runAsNonRoot", "seccompProfile", "fsGroup", "fsGroupChangePolicy"}


def security_flags(pod_spec, name, image):
    """podman flags equivalent to what the kubelet does with this container's (and the pod's) securityContext."""
    (c,) = [c for c in pod_spec["containers"] if c["name"] == name]
    sc = dict(pod_spec.get("securityContext", {}))
    sc.update(c.get("securityContext", {}))
    assert set(sc) <= SC_FIELDS, f"{name}: securityContext fields this test does not apply: {set(sc) - SC_FIELDS}"
    flags = []
    if "fsGroup" in sc:
        # kubelet adds the pod's fsGroup to every container's supplementary groups (and owns volumes by it: the
        # socket directory, ImageStack._make_spop_dir).
        flags += ["--group-add", str(sc["fsGroup"])]
    if sc.get("readOnlyRootFilesystem"):
        # Kubernetes adds no writable tmpfs of its own; podman's --read-only would (/tmp, /var/tmp, /run).
        flags += ["--read-only", "--read-only-tmpfs=false"]
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    caps = sc.get("capabilities", {})
    assert not caps.get("add"), caps
    if caps.get("drop") == ["ALL"]:
        flags += ["--cap-drop", "all"]
    seccomp = sc.get("seccompProfile", {}).get("type", "RuntimeDefault")
    assert seccomp == "RuntimeDefault", seccomp  # podman's default profile
    user = podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    if "runAsUser" in sc:
        user = f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"
        flags += ["--user", user]
    if sc.get("runAsNonRoot"):
        # The kubelet refuses to start a container whose user is not a numeric uid other than 0.
        assert re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user), f"{name}: user {user!r} fails runAsNonRoot"
    return flags, c


class ImageStack(Stack):
    """kosstack.Stack with the agent and HAProxy as containers of the images under test. The issuer, the stand-in
    API server and kubectl stay on the host; every port is on 127.0.0.1 (host network)."""

    def __init__(self, info):
        super().__init__("unused", transport="unix")
        self.info = info
        self.pod = deployment()
        self.SPOP_GID = self.pod["securityContext"]["fsGroup"]  # the emptyDir's group, as kubelet sets it
        self.agent_flags, self.agent_spec = security_flags(self.pod, "agent", info["agent_image"])
        self.haproxy_flags, self.haproxy_spec = security_flags(self.pod, "haproxy", info["haproxy_image"])
        self.names = []

    def _run(self, name, args):
        full = f"kos-image-test-{name}-{uuid.uuid4().hex[:8]}"
        self.names.append(full)
        cmd = images_mod.podman_cmd() + ["run", "--rm", "--name", full, "--network", "host"] + \
            images_mod.ULIMITS + args
        return kostest.Proc(cmd, name=f"podman-{name}"), full

    def sa_mount(self):
        (m,) = [m for m in self.agent_spec["volumeMounts"] if m["name"] == "sa-token"]
        return m["mountPath"]

    def spop_mount(self, spec):
        """(-v flag, socket path in the container) for the manifest's socket volume in this container."""
        (listen,) = [a.split("=", 1)[1] for a in self.agent_spec["args"] if a.startswith("--listen=")]
        assert listen.startswith("unix:"), listen
        sock = listen[len("unix:"):]
        (m,) = [m for m in spec["volumeMounts"] if m["mountPath"].rstrip("/") == os.path.dirname(sock)]
        return ["-v", f"{self.spop_dir}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")], sock

    def start_agent(self, port=None, attempts=3):
        for attempt in range(attempts):
            self.agent_port = port or kostest.free_port()
            self.probe_port = kostest.free_port()
            # The manifest's arguments (its unix socket too), with the probe port picked here (host network) and
            # on loopback only.
            args = []
            for a in self.agent_spec["args"]:
                a = re.sub(r"^--readiness-probe-port=.*", f"--readiness-probe-port={self.probe_port}", a)
                args.append(a)
            args += ["--readiness-probe-address=127.0.0.1", "--threads=2"]
            env = {"KOS_OIDC_ISSUER_URL": self.issuer.issuer, "KOS_OIDC_CLIENT_ID": CLIENT_ID,
                   "KOS_OIDC_CA_FILE": "/etc/kube-oidc-spoa/issuer-ca.pem", "KOS_OIDC_GROUPS_CLAIM": "groups"}
            run = list(self.agent_flags)
            run += ["-v", f"{self.sa_dir}:{self.sa_mount()}:ro", "-v", f"{self.issuer.ca}:{env['KOS_OIDC_CA_FILE']}:ro"]
            run += self.spop_mount(self.agent_spec)[0]
            for k, v in env.items():
                run += ["-e", f"{k}={v}"]
            self.agent, self.agent_name = self._run("agent", run + [self.info["agent_image"]] + args)
            try:
                self.wait_agent_ready(timeout=60)
                return
            except (RuntimeError, TimeoutError):
                if attempt == attempts - 1 or "in use" not in self.agent.log():
                    raise
                self.stop_agent()

    def stop_agent(self, sig=None):
        if self.agent is not None:
            self.agent.stop()
            podman("rm", "-f", "-t", "5", self.agent_name, check=False)

    def start_haproxy(self, attempts=3):
        env = {}
        for e in self.haproxy_spec["env"]:
            if "value" in e:
                env[e["name"]] = e["value"]
                continue
            # A key of the agent's ConfigMap (KOS_TRUSTED_PROXIES): this test gives the agent no such key, so
            # kubelet would leave the optional variable unset for HAProxy too, and the two agree.
            ref = e["valueFrom"]["configMapKeyRef"]
            agent_maps = [f["configMapRef"]["name"] for f in self.agent_spec.get("envFrom", []) if "configMapRef" in f]
            assert ref["name"] in agent_maps and ref.get("optional"), (e, agent_maps)
        for attempt in range(attempts):
            self.front_port = kostest.free_port()
            # KOS_AGENT stays the manifest's unix@ path, on the mounted socket directory.
            env.update(KOS_LISTEN=f"127.0.0.1:{self.front_port}",
                       KOS_APISERVER=f"127.0.0.1:{self.api_port}", KOS_APISERVER_NAME="localhost",
                       KOS_SPOE_TIMEOUT=self.spoe_timeout)
            env.pop("KOS_CONF_DIR")  # the image's own (conf/ baked in at /usr/local/etc/haproxy)
            run = list(self.haproxy_flags)
            run += ["-v", f"{self.front_pem}:{env['KOS_TLS_CERT']}:ro",
                    "-v", f"{self.api_ca}:{env['KOS_APISERVER_CA']}:ro"]
            run += self.spop_mount(self.haproxy_spec)[0]
            assert env["KOS_AGENT"] == "unix@" + self.spop_mount(self.haproxy_spec)[1], env["KOS_AGENT"]
            for k, v in env.items():
                run += ["-e", f"{k}={v}"]
            self.haproxy, self.haproxy_name = self._run("haproxy", run + [self.info["haproxy_image"]])
            try:
                kostest.wait_port(self.front_port, timeout=60, proc=self.haproxy.p)
                break
            except (RuntimeError, TimeoutError) as e:
                log = self.haproxy.log()
                self.haproxy.stop()
                podman("rm", "-f", "-t", "5", self.haproxy_name, check=False)
                if attempt == attempts - 1 or "bind" not in log.lower():
                    raise RuntimeError(f"HAProxy container did not start: {e}\n{log[-3000:]}") from e
        self.wait_agent_up_in_haproxy(timeout=30)

    def stop(self):
        super().stop()
        for n in self.names:
            podman("rm", "-f", "-t", "5", n, check=False)

    def exec(self, name, *cmd):
        return podman("exec", name, *cmd, check=False)


@pytest.fixture(scope="module")
def stack(images):
    t0 = time.monotonic()
    os.umask(0o022)  # the mounted files must be readable by the containers' non-root users
    s = ImageStack(images)
    s.start()
    report(stack_start_s=round(time.monotonic() - t0, 1))
    yield s
    s.stop()
    for p in (s.agent, s.haproxy, s.api):
        if p is not None and "Traceback" in p.log():
            sys.stderr.write(f"{p!r}:\n{p.log()[-3000:]}\n")
    s.cleanup()


def tok(stack, sub="alice", groups=("dev", "ops")):
    return stack.mint({"sub": sub, "groups": list(groups)})


# ---- the images as built ----------------------------------------------------------------------------------------

def test_dockerfile_bases_are_what_the_stand_ins_stand_for(images):
    # The Dockerfile names the registry images in full; the stand-ins carry exactly those names, so the file that
    # is tested here is the one that builds against the real images elsewhere.
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        bases = {m for m in re.findall(r"(?m)^FROM (\S+)", f.read()) if "/" in m}
    assert bases == {images["debian"], images["haproxy"]}, bases
    for name in bases:
        assert podman("image", "inspect", "--format", "{{index .Labels \"org.kube-oidc-spoa.stand-in\"}}",
                      name).stdout.strip(), f"{name} is not a labelled stand-in"


def test_agent_image_prints_its_version(images):
    with open(os.path.join(ROOT, "src", "config.h")) as f:
        version = re.search(r'#define KOS_VERSION "([^"]+)"', f.read()).group(1)
    p = podman("run", "--rm", *images_mod.ULIMITS, images["agent_image"], "--version")
    assert p.stdout.strip() == f"kube-oidc-spoa {version}"


def test_agent_image_is_runtime_only_and_non_root(images):
    img = images["agent_image"]
    cfg = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", img).stdout)
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["/usr/local/bin/kube-oidc-spoa"]
    # No compiler, no headers, no build tools: the runtime stage has the shared libraries and CA certificates.
    pkgs = podman("run", "--rm", *images_mod.ULIMITS, "--entrypoint", "dpkg-query", img, "-W",
                  "-f", "${Package}\n").stdout.split()
    base = podman("run", "--rm", *images_mod.ULIMITS, "--entrypoint", "dpkg-query", images["debian"], "-W",
                  "-f", "${Package}\n").stdout.split()
    added = sorted(set(pkgs) - set(base))
    assert "ca-certificates" in added and "libev4" in added, added
    build_only = [p for p in added if p.endswith("-dev") or p in ("gcc", "gcc-12", "cpp", "make", "pkg-config",
                                                                   "binutils", "libc6-dev")]
    assert not build_only, build_only
    # Every library the binary links resolves inside the image.
    ldd = podman("run", "--rm", *images_mod.ULIMITS, "--entrypoint", "ldd", img,
                 "/usr/local/bin/kube-oidc-spoa").stdout
    assert "not found" not in ldd and "libev.so" in ldd, ldd
    # The CA bundle the agent (libcurl) verifies issuers with when no --oidc-ca-file is given.
    p = podman("run", "--rm", *images_mod.ULIMITS, "--entrypoint", "grep", img, "-c", "BEGIN CERTIFICATE",
               "/etc/ssl/certs/ca-certificates.crt")
    assert int(p.stdout.strip()) > 100, p.stdout
    # Small: the agent adds the binary and its libraries to the slim base, nothing else (measured: ~16 MB).
    sizes = images["sizes"]
    assert sizes[img] - sizes[images["debian"]] < 30_000_000, sizes


def test_haproxy_image_carries_conf_unchanged(images):
    img = images["haproxy_image"]
    cfg = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", img).stdout)
    assert "KOS_CONF_DIR=/usr/local/etc/haproxy" in cfg["Env"]
    assert cfg["User"] == "99:99"  # numeric, for runAsNonRoot; the official image's haproxy user
    ident = podman("run", "--rm", *images_mod.ULIMITS, "--entrypoint", "id", img).stdout
    assert ident.startswith("uid=99(haproxy) gid=99(haproxy)"), ident
    for name in ("haproxy.cfg", "spoe-kos.conf"):
        inside = podman("run", "--rm", *images_mod.ULIMITS, "--entrypoint", "cat", img,
                        f"/usr/local/etc/haproxy/{name}").stdout
        with open(os.path.join(ROOT, "conf", name)) as f:
            assert inside == f.read(), name
    v = podman("run", "--rm", *images_mod.ULIMITS, img, "haproxy", "-v").stdout
    assert v.startswith("HAProxy version 3.2."), v


# ---- the containers at work ---------------------------------------------------------------------------------------

def test_containers_run_with_the_manifests_security_context(stack):
    for name, spec in ((stack.agent_name, stack.agent_spec), (stack.haproxy_name, stack.haproxy_spec)):
        st = json.loads(podman("inspect", "--format", "{{json .HostConfig}}", name).stdout)
        assert st["ReadonlyRootfs"] is True, name
        status = stack.exec(name, "cat", "/proc/1/status").stdout
        assert re.search(r"(?m)^CapEff:\s+0+$", status) and re.search(r"(?m)^CapPrm:\s+0+$", status), status
        assert re.search(r"(?m)^NoNewPrivs:\s+1$", status), status
        uid = re.search(r"(?m)^Uid:\s+(\d+)", status).group(1)
        assert uid != "0", (name, uid)
        if "runAsUser" in spec.get("securityContext", {}):
            assert uid == str(spec["securityContext"]["runAsUser"]), (name, uid)
        w = stack.exec(name, "sh", "-c", "echo x > /kos-probe")
        assert w.returncode != 0 and "Read-only file system" in w.stdout, w.stdout
        groups = re.search(r"(?m)^Groups:\s*(.*)$", status).group(1).split()
        assert str(stack.SPOP_GID) in groups, (name, groups)  # the pod's fsGroup, as kubelet adds it
    # The agent's socket: its user's, in the fsGroup handed down by the directory, 0660 (HAProxy's uid 99 connects
    # through the group: the requests of the tests below).
    st = os.lstat(stack.spop_sock)
    agent_uid = int(re.search(r"(?m)^Uid:\s+(\d+)", stack.exec(stack.agent_name, "cat", "/proc/1/status").stdout).group(1))
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (agent_uid, stack.SPOP_GID)
    # Loopback only: nothing of either container listens on another address (host network); SPOP on no port.
    ss = subprocess.run(["ss", "-Htlnp"], stdout=subprocess.PIPE, text=True, timeout=30).stdout
    for port in (stack.probe_port, stack.front_port):
        lines = [ln for ln in ss.splitlines() if re.search(rf"[:\]]{port}\s", ln)]
        assert lines, (port, ss)
        for ln in lines:
            assert re.search(rf"\s(127\.0\.0\.1|\[::1\]):{port}\s", ln), ln


def test_kubectl_whoami_through_the_containers(stack):
    stack.api_reset()
    p = stack.kubectl("auth", "whoami", "-o", "json", token=tok(stack))
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)["status"]["userInfo"]
    assert info["username"] == f"{stack.issuer.issuer}#alice"
    assert set(info["groups"]) >= {"dev", "ops"}
    reqs = stack.api_requests()
    assert reqs
    for r in reqs:  # kubectl's discovery requests and the SelfSubjectReview
        assert header_values(r["headers"], "Authorization") == ["Bearer " + kosstack.SA_TOKEN]
        assert header_values(r["headers"], "Impersonate-User") == [f"{stack.issuer.issuer}#alice"]
        assert sorted(header_values(r["headers"], "Impersonate-Group")) == ["dev", "ops"]


def test_401_with_status_json(stack):
    stack.api_reset()
    st, hdrs, body = stack.request("GET", "/api", headers=[("Authorization", "Bearer not-a-jwt")])
    assert st == 401
    assert header_values(hdrs, "Content-Type") == ["application/json"]
    doc = json.loads(body)
    assert doc["kind"] == "Status" and doc["code"] == 401 and doc["reason"] == "Unauthorized"
    p = stack.kubectl("get", "pods", token="not-a-jwt")
    assert p.returncode == 1 and "You must be logged in to the server" in p.stderr, p.stderr
    assert stack.api_requests() == []


def test_403_with_status_json(stack):
    # kubectl's discovery first (with impersonation it would be refused too, and kubectl would say less).
    assert stack.kubectl("get", "pods", token=tok(stack)).returncode == 0
    stack.api_reset()
    st, _, body = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + tok(stack)),
                                                        ("Impersonate-User", "admin")])
    assert st == 403
    doc = json.loads(body)
    assert doc["kind"] == "Status" and doc["code"] == 403
    assert doc["message"] == "Impersonation requests are disabled when using this proxy"
    p = stack.kubectl("get", "pods", "--as", "admin", token=tok(stack))
    assert p.returncode == 1, p.stderr
    assert "Error from server (Forbidden): Impersonation requests are disabled when using this proxy" in p.stderr
    assert stack.api_requests() == []


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def metric(text, name):
    m = re.search(rf"(?m)^{name}(?:\{{[^}}]*\}})? (\S+)$", text)
    return float(m.group(1)) if m else None


def test_ready_and_metrics_from_the_agent_container(stack):
    st, body = get(f"http://127.0.0.1:{stack.probe_port}/ready")
    assert st == 200, body
    st, _ = get(f"http://127.0.0.1:{stack.probe_port}/healthz")
    assert st == 200
    st, text = get(f"http://127.0.0.1:{stack.probe_port}/metrics")
    assert st == 200
    assert metric(text, "kos_ready") == 1
    assert metric(text, "kos_service_account_token_loaded") == 1
    assert re.search(r'(?m)^kos_requests_total\{[^}]*\} [1-9]', text), text[:3000]


def test_service_account_token_rotated_in_the_mounted_volume(stack):
    _, text = get(f"http://127.0.0.1:{stack.probe_port}/metrics")
    loads = metric(text, "kos_service_account_token_loads_total")
    stack.api_reset()
    good = tok(stack)
    assert stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])[0] == 200
    new = kosstack._sa_token_like(1000)[::-1]  # another token of the same shape and size
    # The stand-in API server now accepts only the new token; the agent must pick up the kubelet-style swap
    # (..data symlink renamed in the directory the container has mounted read-only).
    stack.api_config(tokens=[new])
    stack.rotate_sa_token(new)
    deadline = time.monotonic() + 30
    st = None
    for _ in range(200):
        st, _, _ = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
        if st == 200 or time.monotonic() > deadline:
            break
        assert st == 401  # the stand-in's refusal of the old token, never anything else
        time.sleep(0.2)
    assert st == 200
    assert header_values(stack.api_requests()[-1]["headers"], "Authorization") == ["Bearer " + new]
    _, text = get(f"http://127.0.0.1:{stack.probe_port}/metrics")
    assert metric(text, "kos_service_account_token_loads_total") > loads
    stack.api_config(tokens=[kosstack.SA_TOKEN, new])
    stack.api_reset()


def test_agent_container_restart_fails_closed(stack):
    import socket
    import threading

    stack.api_reset()
    good = tok(stack)
    port, probe = stack.agent_port, stack.probe_port
    old = stack.agent_name
    stack.stop_agent()
    with pytest.raises(OSError):  # really gone: nothing answers on its probe port
        socket.create_connection(("127.0.0.1", probe), timeout=2).close()
    for _ in range(10):
        st, _, body = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
        assert st == 503, body
        doc = json.loads(body)
        assert doc["kind"] == "Status" and doc["reason"] == "ServiceUnavailable" and doc["code"] == 503
    # A new container on the same address, as the kubelet restarts one. Requests keep coming while it starts:
    # each is refused (503) until the agent is ready and HAProxy's health check has seen it, then allowed.
    seen, done = [], threading.Event()

    def traffic():
        deadline = time.monotonic() + 90
        for _ in range(2000):
            if done.is_set() or time.monotonic() > deadline:
                return
            seen.append(stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])[0])
            time.sleep(0.02)

    t = threading.Thread(target=traffic)
    t.start()
    t0 = time.monotonic()
    try:
        stack.start_agent(port=port)
        stack.wait_agent_up_in_haproxy(timeout=30)
        report(agent_restart_s=round(time.monotonic() - t0, 1))
    finally:
        done.set()
        t.join(timeout=30)
    report(restart_traffic={str(st): seen.count(st) for st in sorted(set(seen))})
    assert stack.agent_name != old
    assert seen and set(seen) <= {200, 503}, seen
    assert seen[0] == 503, seen  # the new container was not answering yet: refused, not let through
    # Once allowed, never refused again (no flapping while HAProxy's check settles).
    first_ok = seen.index(200) if 200 in seen else len(seen)
    assert all(st == 200 for st in seen[first_ok:]), seen
    p = stack.kubectl("auth", "whoami", "-o", "json", token=good)
    assert p.returncode == 0, p.stderr
    assert_all_authenticated(stack)
    assert all(r["auth_ok"] for r in stack.api_requests())
