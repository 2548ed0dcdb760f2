"""The agent binary alone: flags, --help, environment variables, --check-config, the probe/metrics endpoint, SPOP
verdicts against the test issuer, service-account token rotation, shutdown. HAProxy is not involved (that is
tests/integration/); a small python SPOP client plays HAProxy.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import kostest

HERE = os.path.dirname(os.path.abspath(__file__))
for p in (HERE, os.path.join(kostest.ROOT, "tests", "tools")):
    if p not in sys.path:
        sys.path.insert(0, p)

from issuer import TestIssuer  # noqa: E402
import spop_client  # noqa: E402

AGENT = kostest.build_path("kube-oidc-spoa")
CLIENT_ID = "kos-client"

pytestmark = pytest.mark.skipif(not os.path.exists(AGENT), reason=f"{AGENT} not built")


def run(args, env=None, timeout=30):
    full = {k: v for k, v in os.environ.items() if not k.startswith("KOS_")}
    full.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    if env:
        full.update(env)
    return subprocess.run([AGENT] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full,
                          timeout=timeout)


@pytest.fixture(scope="module")
def issuer():
    iss = TestIssuer().start()
    yield iss
    iss.stop()


class Kubelet:
    """A projected service-account token directory as kubelet writes it: token -> ..data/token, ..data -> ..<n>."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="kos-agent-sa-")
        self.path = os.path.join(self.root, "token")
        self.gen = 0

    def write(self, content):
        self.gen += 1
        d = os.path.join(self.root, f"..{self.gen}")
        os.mkdir(d)
        with open(os.path.join(d, "token"), "w") as f:
            f.write(content)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(f"..{self.gen}", tmp)
        os.rename(tmp, os.path.join(self.root, "..data"))
        if not os.path.islink(self.path):
            os.symlink("..data/token", self.path)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


class Agent:
    def __init__(self, procs, issuer, sa_path, extra=(), env=None):
        last = None
        for _ in range(3):  # ports are picked free but may be taken meanwhile: retry the start
            self.spop_port = kostest.free_port()
            self.probe_port = kostest.free_port()
            args = [AGENT, f"--oidc-issuer-url={issuer.issuer}", f"--oidc-client-id={CLIENT_ID}",
                    f"--oidc-ca-file={issuer.ca}", f"--service-account-token-file={sa_path}",
                    f"--listen=127.0.0.1:{self.spop_port}", f"--readiness-probe-port={self.probe_port}",
                    "--readiness-probe-address=127.0.0.1", "--threads=2", *extra]
            self.proc = kostest.Proc(args, env=env, name="agent")
            procs.append(self.proc)
            try:
                kostest.wait_port(self.probe_port, proc=self.proc.p, timeout=20)
                kostest.wait_port(self.spop_port, proc=self.proc.p, timeout=20)
                return
            except (RuntimeError, TimeoutError) as e:
                last = e
                self.proc.stop()
        raise RuntimeError(f"agent did not start: {last}\n{self.proc.log()}")

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_status(self, path, want, timeout=20.0):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.get(path)
            if got[0] == want:
                return got
            time.sleep(0.1)
        raise AssertionError(f"{path}: wanted {want}, last {got}")

    def log_lines(self):
        out = []
        for line in self.proc.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


@pytest.fixture
def sa():
    k = Kubelet()
    yield k
    k.cleanup()


# ---- flags, help, environment ------------------------------------------------------------------------------

def test_help_documents_every_flag_and_env():
    p = run(["--help"])
    assert p.returncode == 0
    for flag in ["--oidc-issuer-url", "--oidc-client-id", "--oidc-ca-file", "--oidc-username-claim",
                 "--oidc-username-prefix", "--oidc-groups-claim", "--oidc-groups-prefix", "--oidc-required-claim",
                 "--oidc-signing-algs", "--extra-user-header-client-ip", "--extra-user-headers",
                 "--readiness-probe-port", "--listen", "--service-account-token-file", "--threads", "--log-level",
                 "--max-groups", "--max-token-bytes", "--cache-entries", "--cache-max-bytes", "--cache-ttl",
                 "--allow-reserved-identities", "--check-config", "--version"]:
        assert flag in p.stdout, flag
    assert "KOS_OIDC_ISSUER_URL" in p.stdout
    assert "upper snake case" in p.stdout
    v = run(["--version"])
    assert v.returncode == 0 and v.stdout.startswith("kube-oidc-spoa ")


@pytest.mark.parametrize("args,needle", [
    (["--oidc-client-id=x"], "--oidc-issuer-url is required"),
    (["--oidc-issuer-url=http://insecure", "--oidc-client-id=x"], "https"),
    (["--oidc-issuer-url=https://i", "--oidc-client-id=x", "--bogus"], "unknown flag --bogus"),
    (["--oidc-issuer-url=https://i", "--oidc-client-id=x", "--tls-cert-file=a.pem"], "HAProxy terminates TLS"),
    (["--oidc-issuer-url=https://i", "--oidc-client-id=x", "--secure-port", "443"], "bind"),
    (["--oidc-issuer-url=https://i", "--oidc-client-id=x", "--max-groups=5000"], "1..4096"),
    (["--oidc-issuer-url=https://i", "--oidc-client-id=x", "--oidc-signing-algs=HS256"], "never accepted"),
    # the SPOP port hands out the service-account token: never on a network address (issue 14, finding 2)
    (["--oidc-issuer-url=https://i", "--oidc-client-id=x", "--listen=:12345"], "listens only on loopback"),
    (["--oidc-issuer-url=https://i", "--oidc-client-id=x", "--listen=0.0.0.0:12345"], "listens only on loopback"),
    (["--oidc-issuer-url=https://i", "--oidc-client-id=x", "--listen=[::]:12345"], "listens only on loopback"),
])
def test_wrong_flag_exits_2_with_one_line(args, needle):
    p = run(args)
    assert p.returncode == 2
    assert needle in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_environment_and_check_config(sa):
    sa.write("tok\n")
    env = {"KOS_OIDC_ISSUER_URL": "https://env-issuer.example", "KOS_OIDC_CLIENT_ID": "from-env",
           "KOS_OIDC_GROUPS_CLAIM": "groups", "KOS_EXTRA_USER_HEADERS": "a=1,b=2", "KOS_MAX_GROUPS": "10",
           "KOS_SERVICE_ACCOUNT_TOKEN_FILE": sa.path, "KOS_LISTEN": "127.0.0.1:1"}
    p = run(["--check-config", "--oidc-client-id=from-flag"], env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "oidc-issuer-url: https://env-issuer.example\n" in out
    assert "oidc-client-id: from-flag\n" in out          # the flag wins over KOS_OIDC_CLIENT_ID
    assert "oidc-groups-claim: groups\n" in out
    assert "extra-user-headers: a=1\nextra-user-headers: b=2\n" in out
    assert "max-groups: 10\n" in out
    assert "listen: 127.0.0.1:12345\n" in out            # KOS_LISTEN is HAProxy's, not read by the agent
    assert "configuration ok" in out
    bad = run(["--check-config"], env=dict(env, KOS_MAX_GROUPS="lots"))
    assert bad.returncode == 2 and "KOS_MAX_GROUPS" in bad.stderr


def test_check_config_fails_on_missing_files(sa):
    p = run(["--check-config", "--oidc-issuer-url=https://i.example", "--oidc-client-id=x",
             f"--service-account-token-file={sa.root}/absent"])
    assert p.returncode == 1
    assert "--service-account-token-file" in p.stderr
    sa.write("tok")
    p = run(["--check-config", "--oidc-issuer-url=https://i.example", "--oidc-client-id=x",
             f"--service-account-token-file={sa.path}", f"--oidc-ca-file={sa.root}/no-ca.pem"])
    assert p.returncode == 1 and "--oidc-ca-file" in p.stderr


# ---- running agent -----------------------------------------------------------------------------------------

def test_ready_follows_sa_token_and_metrics(procs, issuer, sa):
    a = Agent(procs, issuer, sa.path)
    assert a.get("/healthz") == (200, "ok\n")
    code, body = a.wait_status("/ready", 503)
    assert "service-account token not loaded" in json.loads(body)["missing"]
    sa.write("sa-one\n")
    a.wait_status("/ready", 200)
    code, m = a.get("/metrics")
    assert code == 200
    lines = set(m.splitlines())
    assert "kos_ready 1" in lines
    assert "kos_issuer_ready 1" in lines
    assert "kos_service_account_token_loaded 1" in lines
    assert any(l.startswith("kos_jwks_keys ") and int(float(l.split()[1])) >= 1 for l in lines)
    assert "# TYPE kos_verify_duration_seconds histogram" in lines
    assert a.get("/nope")[0] == 404


def test_not_ready_while_issuer_down(procs, sa):
    iss = TestIssuer().start()
    try:
        iss.set_mode("down")
        sa.write("sa")
        a = Agent(procs, iss, sa.path)
        code, body = a.wait_status("/ready", 503)
        assert "issuer keys not loaded" in body
        c = spop_client.Client("127.0.0.1", a.spop_port)
        v = c.auth("Bearer " + iss.mint({"sub": "alice"}))
        c.close()
        assert v["status"] == 4 and "user" not in v
        iss.set_mode("ok")
        a.wait_status("/ready", 200, timeout=60)  # the provider retries with backoff
    finally:
        iss.stop()


XK = "|cluster" + "|" * 6  # HAProxy's 8 slots, the second for "cluster" (conf/spoe-kos.conf's xk)


def test_spop_verdicts(procs, issuer, sa):
    sa.write("the-sa-token\n")
    a = Agent(procs, issuer, sa.path, extra=["--oidc-groups-claim=groups", "--extra-user-header-client-ip",
                                             "--extra-user-headers=cluster=prod", "--max-groups=64"])
    a.wait_status("/ready", 200)
    good = issuer.mint({"sub": "alice", "groups": ["dev", "ops"]})
    c = spop_client.Client("127.0.0.1", a.spop_port)
    try:
        acts = c.notify([("auth", "Bearer " + good), ("src", ("ipv4", "192.0.2.10")), ("imp", None),
                         ("xk", XK)])
        assert acts[-1] == ("status", 0)  # the verdict is the last action
        v = dict(acts)
        assert v["user"] == f"{issuer.issuer}#alice"
        assert v["ng"] == 2 and v["g0"] == "dev" and v["g1"] == "ops"
        # no sv from HAProxy: the token, process-wide, with its version
        assert v["proc.sa"] == v["sv"] + "|Bearer the-sa-token" and len(v["sv"]) == 16 and "sa" not in v
        assert v["cip"] == "192.0.2.10"
        assert v["x2v0"] == "prod"  # --extra-user-headers in HAProxy's second slot
        assert "reason" not in v
        # HAProxy holds that version: the ACK carries no token
        v2 = dict(c.notify([("auth", "Bearer " + good), ("src", ("ipv4", "192.0.2.10")), ("sv", v["sv"]),
                            ("xk", XK)]))
        assert v2["status"] == 0 and "proc.sa" not in v2 and v2["sv"] == v["sv"]
        # an extra HAProxy has no slot for: refused (500 at HAProxy), the key named in the log
        v3 = c.auth("Bearer " + good)
        assert v3["status"] == 7 and v3["reason"] == "extra key without a HAProxy slot" and "user" not in v3
        # a slot list that is not 8 well-formed keys ('|' inside a KOS_EXTRA_n value would shift the slots, so
        # one key's values would go out under another's name): a malformed message, 503
        for bad in ("|cluster", "a|b|cluster" + "|" * 6, "|clu ster" + "|" * 6, "|%zz" + "|" * 6):
            v4 = dict(c.notify([("auth", "Bearer " + good), ("src", ("ipv4", "192.0.2.10")), ("xk", bad)]))
            assert v4["status"] == 4 and v4["reason"] == "malformed kos-auth message", bad

        v = c.auth(None)
        assert v["status"] == 1 and v["reason"] == "missing bearer token" and "proc.sa" not in v
        v = c.auth("Basic abc")
        assert v["status"] == 1 and v["reason"] == "malformed Authorization header"
        expired = issuer.mint({"sub": "bob", "exp": int(time.time()) - 100})
        v = c.auth("Bearer " + expired)
        assert v["status"] == 1 and v["reason"] == "token expired"
        v = c.auth("Bearer " + issuer.mint({"sub": "carol", "aud": "someone-else"}))
        assert v["status"] == 1 and v["reason"] == "audience mismatch"
        v = c.auth("Bearer " + good, imp=True)
        assert v["status"] == 2 and "user" not in v
        v = c.auth("Bearer " + expired, imp=True)  # 401 wins over 403
        assert v["status"] == 1
        many = issuer.mint({"sub": "dave", "groups": [f"g{i}" for i in range(65)]})
        v = c.auth("Bearer " + many)
        assert v["status"] == 3 and v["reason"] == "too many groups"
        v = dict(c.notify([("auth", "Bearer " + good), ("src", ("ipv6", "2001:db8::7")), ("xk", XK)]))
        assert v["status"] == 0 and v["cip"] == "2001:db8::7"
        v = dict(c.notify([("auth", "Bearer " + good)], msg_name="other-message"))
        assert v["status"] == 4 and v["reason"] == "no kos-auth message"
    finally:
        c.close()

    logs = a.log_lines()
    rejects = [l for l in logs if l.get("event") == "reject"]
    reasons = {l["reason"] for l in rejects}
    assert {"missing bearer token", "token expired", "audience mismatch", "too many groups",
            "impersonation requests are disabled"} <= reasons
    assert all(l.get("client_ip") for l in rejects if l["reason"] != "no kos-auth message")
    assert any(l.get("user") == f"{issuer.issuer}#dave" for l in rejects)
    text = a.proc.log()
    # never a token, never the service-account token
    for secret in (good, expired, many, "the-sa-token", good.split(".")[2]):
        assert secret not in text
    code, m = a.get("/metrics")
    assert 'kos_requests_total{verdict="unauthenticated",reason="token expired"} 2' in m  # alone and with imp
    assert 'kos_requests_total{verdict="too_many_groups",reason="too many groups"} 1' in m
    assert "kos_spop_notify_total" in m


def test_sa_token_rotation(procs, issuer, sa):
    sa.write("old-token\n")
    a = Agent(procs, issuer, sa.path)
    a.wait_status("/ready", 200)
    tok = "Bearer " + issuer.mint({"sub": "erin"})
    c = spop_client.Client("127.0.0.1", a.spop_port)
    try:
        first = c.auth(tok)
        assert first["proc.sa"] == first["sv"] + "|Bearer old-token"
        held = first["sv"]  # what HAProxy would now hold and send as sv
        sa.write("new-token\n")
        deadline = time.monotonic() + 15
        got = None
        while time.monotonic() < deadline:
            v = dict(c.notify([("auth", tok), ("sv", held)]))
            got = v.get("proc.sa")  # sent only once the version HAProxy holds is stale
            if got is not None:
                break
            assert v["sv"] == held
            time.sleep(0.2)
        assert got is not None and got.endswith("|Bearer new-token")
        held = got[:16]
        assert held != first["sv"]
        # a broken rotation (empty file) keeps the last good token and readiness
        sa.write("")
        time.sleep(2.5)
        v = dict(c.notify([("auth", tok), ("sv", held)]))
        assert v["sv"] == held and "proc.sa" not in v
        assert a.get("/ready")[0] == 200
    finally:
        c.close()
    assert "new-token" not in a.proc.log()


def test_sigterm_exits_0(procs, issuer, sa):
    sa.write("t")
    a = Agent(procs, issuer, sa.path)
    a.wait_status("/ready", 200)
    assert a.proc.stop(sig=signal.SIGTERM) == 0
    assert any(l.get("event") == "stop" for l in a.log_lines())
