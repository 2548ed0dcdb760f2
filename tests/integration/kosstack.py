"""The whole product on loopback for the integration tests: test issuer, stand-in API server, agent, HAProxy.

Stack(haproxy_bin, ...).start() brings everything up on ports picked at run time in a private temp dir, and
stop() takes it down. The agent is the real binary (kostest.build_path("kube-oidc-spoa")) unless agent="stub",
which runs tests/integration/spop_stub.py (scripted verdicts, for the config's fail-closed branches).
transport="unix" puts the SPOP link on a unix socket (agent --listen unix:PATH, HAProxy KOS_AGENT unix@PATH) as
deploy/ does, in a directory of its own shaped like the pod's emptyDir (see spop_dir); "tcp" (default) on loopback.
HAProxy runs conf/haproxy.cfg unchanged; only the KOS_* environment variables differ from production.
kubectl runs with a kubeconfig and HOME inside the temp dir: ~/.kube is never touched.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import kostest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(kostest.ROOT, "tests", "tools")
CONF = os.path.join(kostest.ROOT, "conf")
for p in (TOOLS, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

import apiserver  # noqa: E402  (tests/tools)
from issuer import TestIssuer  # noqa: E402

CLIENT_ID = "kos-client"


def _sa_token_like(n=1000):
    """n bytes shaped like a projected service-account token (a ~1 KB RS256 JWT: header.payload.signature).
    Its size matters: HAProxy carries it in every allow ACK and every forwarded request (see the pipelining note
    in conf/spoe-kos.conf), so the tests use one as long as the real thing."""
    import base64

    def b64(k, seed):
        return base64.urlsafe_b64encode(bytes((seed + i * 7) & 0xFF for i in range(k))).decode().rstrip("=")
    return ".".join((b64(75, 1), b64(465, 2), b64(256, 3)))[:n]


SA_TOKEN = _sa_token_like()


# The Impersonate-Extra slots of the test HAProxy (KOS_EXTRA_<n>, percent-encoded as in the header name): every
# extra key the suites map. A key outside them is refused by the agent (status 7), as in production.
EXTRA_SLOTS = ["example.com%2Ftenant", "example.com%2Fidp", "authentication.kubernetes.io%2Fcredential-id",
               "cluster", "scopes", "foo%2Fbar", "example.com%2Fteam", "example.com%2Fpolicy"]


def read_ready_line(proc, timeout=20.0):
    """The JSON ready line a tool prints first, read from its log; raises if it dies or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.log().splitlines():
            if line.startswith("{") and '"ready"' in line:
                return json.loads(line)
        if proc.poll() is not None:
            raise RuntimeError(f"{proc!r} exited with {proc.poll()}:\n{proc.log()[-3000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"{proc!r} printed no ready line:\n{proc.log()[-3000:]}")


def write_sa_token(sa_dir, token, n):
    """Writes the token the way the kubelet updates a projected volume: a new timestamped dir, then an atomic
    rename of the ..data symlink; `token` is a symlink to ..data/token."""
    d = os.path.join(sa_dir, f"..2026_{n:04d}")
    os.makedirs(d)
    with open(os.path.join(d, "token"), "w") as f:
        f.write(token)
    tmp = os.path.join(sa_dir, "..data_tmp")
    os.symlink(os.path.basename(d), tmp)
    os.replace(tmp, os.path.join(sa_dir, "..data"))
    link = os.path.join(sa_dir, "token")
    if not os.path.islink(link):
        os.symlink("..data/token", link)
    return link


class Stack:
    def __init__(self, haproxy_bin, agent="real", agent_args=(), env=None, watch_gaps=(0.2,),
                 spoe_timeout="1s", oidc_flags=True, before_agent=None, conf_dir=None, transport="tcp"):
        """oidc_flags=False leaves out the --oidc-* flags (e.g. for --authentication-config in agent_args);
        before_agent(stack), if given, runs once the issuer is up and before the agent starts (to write files
        that name the issuer) and may return more agent arguments."""
        self.oidc_flags = oidc_flags
        self.before_agent = before_agent
        self.conf_dir = conf_dir or CONF  # haproxy.cfg and spoe-kos.conf (a test may pass a regenerated copy)
        self.haproxy_bin = haproxy_bin
        self.agent_kind = agent
        self.agent_args = list(agent_args)
        self.extra_env = dict(env or {})
        self.watch_gaps = list(watch_gaps)
        self.spoe_timeout = spoe_timeout
        self.dir = tempfile.mkdtemp(prefix="kos-it-")
        self.issuer = None
        self.api = None
        self.agent = None
        self.haproxy = None
        self.sa_gen = 0
        self.sa_token = SA_TOKEN
        assert transport in ("tcp", "unix") and (transport == "tcp" or agent == "real"), transport
        self.transport = transport
        self.spop_dir = self.spop_sock = None
        self.spop_gid = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        if self.agent_kind == "real":
            self.issuer = TestIssuer(state_dir=os.path.join(self.dir, "issuer")).start()
        self.sa_dir = os.path.join(self.dir, "sa")
        os.makedirs(self.sa_dir)
        self.sa_file = self.rotate_sa_token(SA_TOKEN)
        self.api = kostest.Proc([kostest.PYTHON, os.path.join(TOOLS, "apiserver.py"), "--dir",
                                 os.path.join(self.dir, "api"), "--token", SA_TOKEN,
                                 "--watch-gaps", ",".join(str(g) for g in self.watch_gaps)], name="apiserver")
        info = read_ready_line(self.api)
        self.api_port, self.api_ca = info["port"], info["ca"]
        front = apiserver.make_pki(self._mkdir("front"))
        self.front_ca = front["ca"]
        self.front_pem = os.path.join(self.dir, "front", "front.pem")
        with open(self.front_pem, "w") as out:
            for p in (front["cert"], front["key"]):
                with open(p) as f:
                    out.write(f.read())
        if self.before_agent is not None:
            self.agent_args += list(self.before_agent(self) or ())
        if self.transport == "unix":
            self._make_spop_dir()
        self.start_agent()
        self.start_haproxy()
        self.kubeconfig = self.write_kubeconfig()

    # The group the socket's directory hands down, standing for the pod's fsGroup (deploy/base): neither the
    # agent's nor HAProxy's own group, and not a group of the test's "other" user (tests/integration/test_unix.py).
    SPOP_GID = 4242

    def _make_spop_dir(self):
        """A directory like the pod's emptyDir with an fsGroup: mode 2777 (anyone may reach the socket, so only the
        socket's own mode keeps others out), group SPOP_GID when we may chown (root), set-group-ID so the socket
        bind() creates there takes that group. Outside self.dir (mkdtemp's 0700 would keep out the other uids the
        permission tests run as); sockaddr_un limits the path to 107 bytes, /tmp keeps it short."""
        self.spop_dir = tempfile.mkdtemp(prefix="kos-spop-")
        try:
            os.chown(self.spop_dir, -1, self.SPOP_GID)
            self.spop_gid = self.SPOP_GID
        except PermissionError:
            self.spop_gid = os.getgid()
        os.chmod(self.spop_dir, 0o2777)
        self.spop_sock = os.path.join(self.spop_dir, "spop.sock")

    def agent_listen(self):
        """The agent's --listen and HAProxy's KOS_AGENT for this stack's transport."""
        if self.transport == "unix":
            return f"unix:{self.spop_sock}", f"unix@{self.spop_sock}"
        return f"127.0.0.1:{self.agent_port}", f"127.0.0.1:{self.agent_port}"

    def _mkdir(self, name):
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        return d

    def rotate_sa_token(self, token):
        self.sa_gen += 1
        self.sa_token = token
        return write_sa_token(self.sa_dir, token, self.sa_gen)

    def agent_cmd(self, port, probe_port):
        oidc = ["--oidc-issuer-url", self.issuer.issuer, "--oidc-client-id", CLIENT_ID,
                "--oidc-ca-file", self.issuer.ca] if self.oidc_flags else []
        return [kostest.build_path("kube-oidc-spoa")] + oidc + [
                "--listen", self.agent_listen()[0], "--readiness-probe-port", str(probe_port),
                "--readiness-probe-address", "127.0.0.1", "--service-account-token-file", self.sa_file,
                "--threads", "2", "--log-level", "info"] + self.agent_args

    def start_agent(self, port=None, attempts=3):
        """Starts the agent (on `port`, or a new free one) and waits until it is ready."""
        for attempt in range(attempts):
            self.agent_port = port or kostest.free_port()
            if self.agent_kind == "stub":
                self.agent = kostest.Proc([kostest.PYTHON, os.path.join(HERE, "spop_stub.py"), "--port",
                                           str(self.agent_port)], name="spop-stub")
                try:
                    read_ready_line(self.agent)
                    return
                except RuntimeError:
                    if attempt == attempts - 1:
                        raise
                    continue
            self.probe_port = kostest.free_port()
            self.agent = kostest.Proc(self.agent_cmd(self.agent_port, self.probe_port), name="kube-oidc-spoa")
            try:
                self.wait_agent_ready()
                return
            except RuntimeError:
                if attempt == attempts - 1 or "in use" not in self.agent.log():
                    raise

    def wait_agent_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.agent.poll() is not None:
                raise RuntimeError(f"agent exited with {self.agent.poll()}:\n{self.agent.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception as e:  # noqa: BLE001 — not up yet
                last = e
            time.sleep(0.1)
        raise TimeoutError(f"agent not ready after {timeout}s ({last}):\n{self.agent.log()[-4000:]}")

    def stop_agent(self, sig=signal.SIGTERM):
        if self.agent is not None:
            self.agent.stop(sig)
            self.check_sanitizer(self.agent)

    def haproxy_env(self):
        env = {"KOS_LISTEN": f"127.0.0.1:{self.front_port}", "KOS_TLS_CERT": self.front_pem,
               "KOS_AGENT": self.agent_listen()[1], "KOS_APISERVER": f"127.0.0.1:{self.api_port}",
               "KOS_APISERVER_NAME": "localhost", "KOS_APISERVER_CA": self.api_ca, "KOS_CONF_DIR": self.conf_dir,
               "KOS_SPOE_TIMEOUT": self.spoe_timeout}
        env.update({f"KOS_EXTRA_{i + 1}": k for i, k in enumerate(EXTRA_SLOTS)})
        env.update(self.extra_env)
        return {k: v for k, v in env.items() if v is not None}  # None in extra_env: unset

    def restart_haproxy(self, env=None, wait=True):
        """HAProxy again with extra_env replaced by env (None: as it was), once the agent is up in it (wait=False:
        at once, for a pairing the agent answers 503 to every request)."""
        if env is not None:
            self.extra_env = dict(env)
        self.haproxy.stop()
        self.start_haproxy(port=self.front_port, wait=wait)

    def start_haproxy(self, attempts=3, port=None, wait=True):
        """HAProxy on `port` (a restart keeps its port, so kubeconfigs stay valid), or on a new free one."""
        with open(os.path.join(self.conf_dir, "haproxy.cfg")) as f:
            cfg = f.read()
        for attempt in range(attempts):
            self.front_port = port if port is not None and attempt == 0 else kostest.free_port()
            try:
                self.haproxy = kostest.HAProxy(self.haproxy_bin, cfg, env=self.haproxy_env(),
                                               wait_ports=(self.front_port,))
                break
            except (RuntimeError, TimeoutError) as e:
                log = open(e.__traceback__ and self._last_haproxy_log()).read() if self._last_haproxy_log() else ""
                if attempt == attempts - 1 or "Cannot bind" not in log and "cannot bind" not in log.lower():
                    raise RuntimeError(f"HAProxy did not start: {e}\n{log[-3000:]}") from e
        if wait:
            self.wait_agent_up_in_haproxy()

    def _last_haproxy_log(self):
        import glob
        logs = sorted(glob.glob(os.path.join(tempfile.gettempdir(), "kos-haproxy-*.log")), key=os.path.getmtime)
        return logs[-1] if logs else None

    def wait_agent_up_in_haproxy(self, timeout=15.0):
        """Waits (bounded) until a request gets a verdict instead of a 503 (the spop-check marked it up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st, _, _ = self.request("GET", "/version", headers=[("Authorization", "Bearer x")])
            if st != 503:
                return
            time.sleep(0.2)
        raise TimeoutError("HAProxy still answers 503 (agent not up)")

    def stop(self):
        for p in (self.haproxy, self.agent, self.api):
            if p is not None:
                p.stop()
        if self.issuer is not None:
            self.issuer.stop()
            self.issuer = None

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.spop_dir:
            shutil.rmtree(self.spop_dir, ignore_errors=True)

    def check_sanitizer(self, proc):
        rep = proc.sanitizer_report()
        if rep:
            raise AssertionError(f"sanitizer report from {proc!r}:\n{rep}")

    # -- tokens ---------------------------------------------------------------------------------------------
    def mint(self, claims=None, **kw):
        return self.issuer.mint(claims, **kw)

    # -- clients --------------------------------------------------------------------------------------------
    def ssl_context(self, alpn=("http/1.1",)):
        ctx = ssl.create_default_context(cafile=self.front_ca)
        ctx.set_alpn_protocols(list(alpn))
        return ctx

    def request(self, method, path, headers=(), body=None, timeout=20):
        """One HTTP/1.1 request to HAProxy; header lines are sent exactly as given (duplicates too).
        Returns (status, [(name, value)], body bytes)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.front_port, context=self.ssl_context(),
                                           timeout=timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            conn.close()

    def curl(self, *args, timeout=30):
        """curl against HAProxy (for HTTP/2); returns CompletedProcess (text)."""
        cmd = ["curl", "-sS", "--cacert", self.front_ca, "--max-time", str(timeout)] + list(args)
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout + 10)

    def url(self, path):
        return f"https://127.0.0.1:{self.front_port}{path}"

    def write_kubeconfig(self, token=None):
        path = os.path.join(self.dir, "kubeconfig")
        user = {"token": token} if token else {}
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "kos",
               "clusters": [{"name": "kos", "cluster": {"server": self.url(""),
                                                        "certificate-authority": self.front_ca}}],
               "users": [{"name": "kos", "user": user}],
               "contexts": [{"name": "kos", "context": {"cluster": "kos", "user": "kos", "namespace": "default"}}]}
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def kubectl(self, *args, token=None, http1=False, timeout=60, input=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self._mkdir("home"),
               "KUBECONFIG": self.kubeconfig}
        if http1:
            env["DISABLE_HTTP2"] = "true"
        cmd = ["kubectl", "--kubeconfig", self.kubeconfig, "--cache-dir", os.path.join(self.dir, "home", "cache")]
        if token is not None:
            cmd += ["--token", token]
        cmd += list(args)
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              timeout=timeout, input=input)

    # -- the stand-in API server's view ---------------------------------------------------------------------
    def _api(self, method, path, body=None):
        ctx = ssl.create_default_context(cafile=self.api_ca)
        conn = http.client.HTTPSConnection("127.0.0.1", self.api_port, context=ctx, timeout=20)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None)
            r = conn.getresponse()
            return json.loads(r.read())
        finally:
            conn.close()

    def api_requests(self):
        return self._api("GET", "/_test/requests")

    def api_reset(self):
        self._api("POST", "/_test/reset", {})

    def api_config(self, **cfg):
        self._api("POST", "/_test/config", cfg)


def wait_log(proc, needle, timeout=10.0):
    """proc's log once it contains needle (bounded wait); raises AssertionError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        log = proc.log()
        if needle in log:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not in the log of {proc!r}:\n{log[-3000:]}")
        time.sleep(0.1)


def header_values(lines, name):
    return [v for k, v in lines if k.lower() == name.lower()]


def assert_all_authenticated(stack):
    """No request reached the stand-in API server without our service-account token and an impersonated user."""
    bad = [r for r in stack.api_requests()
           if not r["auth_ok"] or len(header_values(r["headers"], "Impersonate-User")) != 1]
    assert not bad, f"unauthenticated request(s) reached the API server: {bad[:3]}"
