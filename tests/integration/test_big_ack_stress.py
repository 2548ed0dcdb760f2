"""Worst-case ACKs at full rate through the product as shipped, on HAProxy 3.2 and 3.4 (issue 16).

On 3.1+ HAProxy's SPOP multiplexer stops reading a connection for good once one read fills its demux buffer
(tune.bufsize) exactly, and every request on that connection then ends in a 503 at the SPOE processing timeout
(docs/spop.md §10, bench/big-ack-stall.md). conf/spoe-kos.conf therefore turns pipelining off on 3.1+, so a
connection never holds more than the one ACK the agent keeps under a frame. These tests push the largest ACK the
shipped configuration carries — --max-groups (256) groups with long names, all 8 Impersonate-Extra slots with their
8 values each, the client address — through the real agent (the release build, build/kube-oidc-spoa), the shipped
conf/haproxy.cfg (its generated rules) and conf/spoe-kos.conf, at full rate (wrk, 64 TLS keep-alive connections):

- test_worst_case_acks_never_wedge_the_shipped_conf: every request is a 200 whose forwarded request carries every
  group and extra value in order (an upstream HAProxy checks each one and answers 500 otherwise; a token with one
  group a letter off must get that 500, so the check can fail), no SPOE error in HAProxy's log, and no SPOP
  connection left wedged (a full demux buffer in `show fd`);
- test_pipelining_forced_on_wedges: the same load with the `no option pipelining` line removed must wedge a
  connection. That is what shows the first test can fail; the day it fails, HAProxy has fixed its multiplexer
  and pipelining can be reconsidered (docs/spop.md §10).

Not covered (not deterministic; by hand with big_ack_aborts.py): clients that abandon requests, whose ACKs can
still wedge the shipped configuration when one ACK exceeds half the buffer, as this one does (bench/big-ack-stall.md).

HAProxy: KOS_STRESS_HAPROXY_BINS ("label=command;…", `make test` sets it from scripts/haproxy-versions.py --suites
sid,experimental, i.e. 3.2 and 3.4), else the 3.1+ entries of KOS_HAPROXY_BINS plus build/haproxy/sid/haproxy when
it is there. 2.6 and 3.0 have no SPOP multiplexer and are left out. Loopback only; every wait is bounded.
"""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest

import kosstack
import kostest
from apiserver import make_pki
from issuer import TestIssuer

AGENT = os.path.join(kostest.ROOT, "build", "kube-oidc-spoa")  # release build: full rate is the point
MAX_GROUPS = 256                   # the agent's default --max-groups = conf/haproxy.cfg's generated lines
MAX_TOKEN_BYTES = 16384            # the agent's default --max-token-bytes: the token (hence its groups) fits it
GROUPS_PREFIX = "oidc:tenant-0f3c9a2e-7d41-4b8e-9a65-2c1d0e8f7b34:"  # --oidc-groups-prefix: lengthens every group
EXTRA_KEYS = [f"stress.example/x{i}" for i in range(1, 9)]           # one for each KOS_EXTRA_1…8 slot
EXTRA_VALUES = 8                   # conf/haproxy.cfg's lines per slot (gen-rules.py)
EXTRA_VALUE_LEN = 250
CONNS = 64
LOAD_SECS = 4
WEDGE_SECS = 2
PIPELINING_OFF = re.compile(r"^\.if version_atleast\(3\.1\)\n\s+no option pipelining\n\.endif\n", re.M)


def _stress_bins():
    spec = os.environ.get("KOS_STRESS_HAPROXY_BINS", "").strip()
    if spec:
        cands = []
        for item in spec.split(";"):
            label, _, cmd = item.strip().partition("=")
            if label:
                cands.append((label.strip(), cmd.strip() or label.strip()))
    else:
        cands = list(kostest.haproxy_binaries())
        sid = os.path.join(kostest.ROOT, "build", "haproxy", "sid", "haproxy")
        if os.path.exists(sid):
            cands.append(("3.2", sid))
    out, seen = [], set()
    for label, cmd in cands:
        if not (os.path.exists(cmd) or shutil.which(cmd)):
            continue
        try:
            ver = kostest.haproxy_version(cmd)
        except (OSError, subprocess.SubprocessError):
            continue
        if ver in seen or not kostest.haproxy_at_least(cmd, 3, 1):
            continue
        seen.add(ver)
        out.append((label, cmd))
    return out


STRESS_BINS = _stress_bins()
pytestmark = [pytest.mark.skipif(not os.path.exists(AGENT), reason=f"{AGENT} not built (make all)"),
              pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (scripts/deps.sh)")]


def group_names(room):
    """MAX_GROUPS distinct group names as long as a token of `room` bytes can carry."""
    n = 8
    while True:
        g = [f"g{i:03d}-" + "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36] * (n + 1) for i in range(MAX_GROUPS)]
        if len(json.dumps(g)) > room:
            return [x[:-1] for x in g]
        n += 1


class World:
    """Issuer, PKI, service-account token and the agent, shared by every HAProxy of the module."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kos-stress-")
        self.agent = self.issuer = None

    def start(self):
        self.issuer = TestIssuer(state_dir=os.path.join(self.dir, "issuer")).start()
        os.makedirs(os.path.join(self.dir, "pki"))
        pki = make_pki(os.path.join(self.dir, "pki"))
        self.ca = pki["ca"]
        self.pem = os.path.join(self.dir, "pki", "front.pem")
        with open(self.pem, "w") as out:
            for p in (pki["cert"], pki["key"]):
                with open(p) as f:
                    out.write(f.read())
        sa_dir = os.path.join(self.dir, "sa")
        os.makedirs(sa_dir)
        self.sa_file = kosstack.write_sa_token(sa_dir, kosstack.SA_TOKEN, 1)
        # The longest group names a token within --max-token-bytes can carry (JSON, then base64: 4/3, plus the
        # header and an RS256 signature), each lengthened by the groups prefix.
        room = (MAX_TOKEN_BYTES - 600) * 3 // 4 - 200
        while True:
            groups = group_names(room)
            self.token = self.issuer.mint({"sub": "stress-user", "groups": groups})
            if len(self.token) <= MAX_TOKEN_BYTES:
                break
            room -= 256
        self.groups = [GROUPS_PREFIX + g for g in groups]
        # The same identity but one group one letter off: the upstream must refuse it (the check can fail).
        self.wrong_token = self.issuer.mint({"sub": "stress-user", "groups": groups[:200] + [groups[200][:-1] + "#"]
                                             + groups[201:]})
        self.extras = {k: [f"x{i}v{j}-" + "x" * EXTRA_VALUE_LEN for j in range(EXTRA_VALUES)]
                       for i, k in enumerate(EXTRA_KEYS, start=1)}
        # Extras come from the AuthenticationConfiguration (CEL lists: the flags' static extras have one value a
        # key), so every slot gets all its lines without growing the token.
        with open(self.issuer.ca) as f:
            ca = f.read()
        authn = os.path.join(self.dir, "authn.json")
        with open(authn, "w") as f:
            json.dump({"apiVersion": "apiserver.config.k8s.io/v1beta1", "kind": "AuthenticationConfiguration",
                       "jwt": [{"issuer": {"url": self.issuer.issuer, "audiences": [kosstack.CLIENT_ID],
                                           "certificateAuthority": ca},
                                "claimMappings": {
                                    "username": {"claim": "sub", "prefix": ""},
                                    "groups": {"claim": "groups", "prefix": GROUPS_PREFIX},
                                    "extra": [{"key": k, "valueExpression": json.dumps(vs)}
                                              for k, vs in self.extras.items()]}}]}, f)
        self.port = kostest.free_port()
        self.probe = kostest.free_port()
        self.agent = kostest.Proc([
            AGENT, "--authentication-config", authn, "--extra-user-header-client-ip",
            "--listen", f"127.0.0.1:{self.port}", "--readiness-probe-port", str(self.probe),
            "--readiness-probe-address", "127.0.0.1", "--service-account-token-file", self.sa_file,
            "--threads", "2", "--log-level", "warning"], name="kube-oidc-spoa")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.probe}/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent not ready:\n{self.agent.log()[-3000:]}")
            time.sleep(0.1)

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.probe}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+) ([0-9.e+]+)$", text, re.M)}

    def stop(self):
        if self.agent is not None:
            self.agent.stop()
        if self.issuer is not None:
            self.issuer.stop()


@pytest.fixture(scope="module")
def world():
    w = World()
    try:
        w.start()
        yield w
    finally:
        w.stop()
        shutil.rmtree(w.dir, ignore_errors=True)


def upstream_cfg(w, port):
    """The stand-in API server, another HAProxy: 200 only for a request carrying our service-account token, the
    user, and every group and extra value in order (one line each); 500 otherwise. Its own buffers: the forwarded
    head (~50 KB here) is larger than what the shipped tune.bufsize - tune.maxrewrite lets HAProxy receive, and
    kube-apiserver (Go's net/http) takes up to 1 MB of headers."""
    def lines(conds):
        # HAProxy reads configuration lines of at most 2048 bytes and 64 words: 8 conditions (6 words each) a
        # line at most, within 1,500 bytes
        out, cur = [], []
        for c in conds:
            if cur and (len(cur) == 8 or len(" ".join(cur + [c])) > 1500):
                out.append(cur)
                cur = []
            cur.append(c)
        # the body names the first condition of the line that failed
        return ["    http-request return status 500 content-type text/plain string mismatch:"
                + re.sub(r"[^a-z0-9.-]", "_", x[0])[:80] + " unless " + " ".join(x) for x in out + [cur]]

    conds = ['{ req.fhdr(authorization) -m str "Bearer ' + kosstack.SA_TOKEN + '" }']
    rules = lines(conds) + lines(["{ req.fhdr(impersonate-user) -m str stress-user }",
                                  "{ req.fhdr_cnt(impersonate-user) eq 1 }",
                                  "{ req.fhdr(impersonate-extra-remote-client-ip) -m str 127.0.0.1 }",
                                  f"{{ req.fhdr_cnt(impersonate-group) eq {len(w.groups)} }}"] +
                                 [f"{{ req.fhdr_cnt(impersonate-extra-{k.replace('/', '%2F')}) eq {len(vs)} }}"
                                  for k, vs in w.extras.items()])
    rules += lines([f"{{ req.fhdr(impersonate-group,{j + 1}) -m str {g} }}" for j, g in enumerate(w.groups)])
    rules += lines([f"{{ req.fhdr(impersonate-extra-{k.replace('/', '%2F')},{j + 1}) -m str {v} }}"
                    for k, vs in w.extras.items() for j, v in enumerate(vs)])
    return ("global\n    nbthread 1\n    tune.bufsize 131072\n    tune.maxrewrite 1024\n    tune.http.maxhdr 1000\n"
            "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"
            f"frontend kos_stress_upstream\n    bind 127.0.0.1:{port} ssl crt {w.pem}\n" + "\n".join(rules) +
            "\n    http-request return status 200 content-type text/plain string ok\n")


def show_fd(sock):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(b"show fd\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def wedged(fds):
    """SPOP connections whose demux buffer is full with the DFULL flag (0x40) set: never read again."""
    out = []
    for ln in fds.splitlines():
        m = re.search(r"spop_conn\.st0=\d+ .*?\.flg=(0x[0-9a-f]+).*?\.dbuf=(\d+)@\S+?\+\d+/(\d+)", ln)
        if m and int(m.group(1), 16) & 0x40 and m.group(2) == m.group(3) and int(m.group(3)) > 0:
            out.append(ln.strip()[:300])
    return out


def run_load(w, hap_bin, tmp, spoe_text, secs, alongside=None):
    """The shipped haproxy.cfg (plus a stats socket and the checking upstream) with spoe_text as spoe-kos.conf,
    `secs` of wrk; returns the figures."""
    conf = os.path.join(tmp, "conf")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "spoe-kos.conf"), "w") as f:
        f.write(spoe_text)
    with open(os.path.join(kosstack.CONF, "haproxy.cfg")) as f:
        shipped = f.read()
    sock = os.path.join(tmp, "stats.sock")
    ups = hap = last = None
    for _ in range(3):  # a free port can be taken before HAProxy binds it
        try:
            up = kostest.free_port()
            ups = kostest.HAProxy(hap_bin, upstream_cfg(w, up), wait_ports=(up,), name="upstream")
            break
        except (RuntimeError, TimeoutError) as e:
            last = e
    else:
        raise RuntimeError(f"the upstream HAProxy did not start: {last}")
    for _ in range(3):
        front = kostest.free_port()
        cfg = shipped.replace("\nglobal\n", f"\nglobal\n    stats socket {sock} level admin\n", 1)
        env = {"KOS_LISTEN": f"127.0.0.1:{front}", "KOS_TLS_CERT": w.pem, "KOS_AGENT": f"127.0.0.1:{w.port}",
               "KOS_APISERVER": f"127.0.0.1:{up}", "KOS_APISERVER_NAME": "localhost", "KOS_APISERVER_CA": w.ca,
               "KOS_CONF_DIR": conf}
        env.update({f"KOS_EXTRA_{i + 1}": k.replace("/", "%2F") for i, k in enumerate(EXTRA_KEYS)})
        try:
            hap = kostest.HAProxy(hap_bin, cfg, env=env, wait_ports=(front,))
            break
        except (RuntimeError, TimeoutError) as e:
            last = e
    else:
        ups.stop()
        raise RuntimeError(f"HAProxy did not start: {last}")
    try:
        ctx = ssl.create_default_context(cafile=w.ca)
        deadline = time.monotonic() + 15
        while True:  # the spop-check marks the agent up; the first allow also hands HAProxy the SA token
            c = http.client.HTTPSConnection("127.0.0.1", front, context=ctx, timeout=10)
            try:
                c.request("GET", "/api", headers={"Authorization": f"Bearer {w.token}"})
                r = c.getresponse()
                st, body = r.status, r.read()
            finally:
                c.close()
            if st == 200:
                break
            assert st == 503 and time.monotonic() < deadline, (st, body[:300], hap.log()[-2000:])
            time.sleep(0.2)
        c = http.client.HTTPSConnection("127.0.0.1", front, context=ctx, timeout=10)
        try:
            c.request("GET", "/api", headers={"Authorization": f"Bearer {w.wrong_token}"})
            r = c.getresponse()
            wrong = (r.status, r.read())
        finally:
            c.close()
        m0 = w.metrics()
        side = alongside(front) if alongside else None  # a Popen running beside wrk (by hand: abort storms)
        r = subprocess.run(["wrk", "-t", "2", "-c", str(CONNS), "-d", f"{secs}s", "--timeout", "5s",
                            "-H", f"Authorization: Bearer {w.token}", f"https://127.0.0.1:{front}/api"],
                           capture_output=True, text=True, timeout=secs + 60)
        if side is not None:
            side.wait(secs + 60)
        m1 = w.metrics()
        time.sleep(1.5)  # past the SPOE processing timeout (1 s): streams stuck on a wedged connection are logged
        fds = show_fd(sock)
        log = hap.log()
    finally:
        hap.stop()
        ups.stop()
    out = r.stdout
    n = re.search(r"(\d+) requests in", out)
    non2 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    err = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    notifies = m1.get("kos_spop_notify_total", 0) - m0.get("kos_spop_notify_total", 0)
    return {"wrk": out + r.stderr, "requests": int(n.group(1)) if n else 0,
            "non2xx": int(non2.group(1)) if non2 else 0, "sock_errors": sum(map(int, err.groups())) if err else 0,
            "spoe_errors": spoe_errors(log), "logged": len(re.findall(r"kos_status=", log)),
            "ack_bytes": (m1.get("kos_spop_bytes_sent_total", 0) - m0.get("kos_spop_bytes_sent_total", 0))
            / max(1, notifies), "wedged": wedged(fds), "wrong": wrong, "version": kostest.haproxy_version(hap_bin)}


def spoe_errors(log):
    """txn.kos.err of each logged request with an SPOE error, except the requests the client abandoned: 4 is
    SPOE_CTX_ERR_INTERRUPT on 3.1+ (the client's side closed or failed while the SPOE waited: wrk closes its
    connections mid-request when it stops), and a termination state starting with C is a client abort."""
    out = []
    for m in re.finditer(r" -?\d+ \d+ (\S{4}) \d+/\d+/\d+/\d+/\d+ .*? spoe_err=(\d+)$", log, re.M):
        if not m.group(1).startswith("C") and m.group(2) != "4":
            out.append(m.group(2))
    return out


def shipped_spoe():
    with open(os.path.join(kosstack.CONF, "spoe-kos.conf")) as f:
        return f.read()


@pytest.mark.parametrize("stress_bin", [c for _, c in STRESS_BINS], ids=[lb for lb, _ in STRESS_BINS])
def test_worst_case_acks_never_wedge_the_shipped_conf(world, stress_bin, tmp_path):
    text = shipped_spoe()
    assert PIPELINING_OFF.search(text), "conf/spoe-kos.conf lost its 'no option pipelining' block for 3.1+"
    res = run_load(world, stress_bin, str(tmp_path), text, LOAD_SECS)
    print(f"{res['version']}: {res['requests']} requests, ACK {res['ack_bytes']:.0f} bytes")
    # The ACK really is the worst case: more than half of the 64 KiB demux buffer (conf/haproxy.cfg's
    # tune.bufsize), so that two of them in one read would wedge a connection (see the forced-on test).
    assert res["ack_bytes"] > 32768, res
    assert res["wrong"][0] == 500 and b"impersonate-group" in res["wrong"][1], res["wrong"]
    assert res["requests"] > 200, res["wrk"]
    assert res["non2xx"] == 0 and res["sock_errors"] == 0, res["wrk"]
    assert res["spoe_errors"] == [], res["spoe_errors"][:10]
    assert res["wedged"] == [], res["wedged"]


@pytest.mark.parametrize("stress_bin", [c for _, c in STRESS_BINS], ids=[lb for lb, _ in STRESS_BINS])
def test_pipelining_forced_on_wedges(world, stress_bin, tmp_path):
    text, n = PIPELINING_OFF.subn("", shipped_spoe())
    assert n == 1
    res = run_load(world, stress_bin, str(tmp_path), text, WEDGE_SECS)
    print(f"{res['version']} with pipelining: {res['requests']} requests, {res['non2xx']} non-2xx, "
          f"SPOE errors {len(res['spoe_errors'])}, wedged connections {len(res['wedged'])}")
    # If this fails, HAProxy no longer wedges a connection whose demux buffer fills: pipelining can be
    # reconsidered (docs/spop.md §10, bench/big-ack-stall.md).
    assert res["wedged"], (res["version"], res["wrk"])
    assert "1" in res["spoe_errors"], res["spoe_errors"][:10]  # requests timed out on the wedged connections
