"""The integration stack (tests/integration/kosstack.py) with what the security suite needs on top: agent
flags/env/wrapper (valgrind, a release binary), an agent start that does not wait for readiness, HAProxy in
master-worker mode for reloads, the agent's /metrics and RSS, and a bounded concurrent load generator that
classifies every response.

Everything listens on 127.0.0.1 on ports picked at run time; every process started here is stopped by the
stack (module fixture) or by the test that started it.
"""
import concurrent.futures
import http.client
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import kostest  # noqa: E402
import kosstack  # noqa: E402
from kosstack import header_values  # noqa: E402,F401  (re-exported for the tests)

# Short issuer timings so that faults resolve in seconds (the flags are tuning knobs; defaults are production's).
FAST = ["--oidc-retry-min-ms", "100", "--oidc-retry-max-ms", "400", "--jwks-min-refresh", "1s",
        "--jwks-unknown-kid-interval", "2s", "--oidc-http-timeout-ms", "8000"]


class SecStack(kosstack.Stack):
    def __init__(self, haproxy_bin, agent_prefix=(), agent_bin=None, agent_env=None, **kw):
        super().__init__(haproxy_bin, **kw)
        self.agent_prefix = list(agent_prefix)
        self.agent_bin = agent_bin
        self.agent_env = dict(agent_env or {})
        self.extra_procs = []

    def agent_cmd(self, port, probe_port):
        cmd = super().agent_cmd(port, probe_port)
        if self.agent_bin:
            cmd[0] = self.agent_bin
        return self.agent_prefix + cmd

    def start_agent(self, port=None, attempts=3, wait=True):
        """As kosstack's, with agent_env, and optionally without waiting for /ready (issuer down at start)."""
        for attempt in range(attempts):
            self.agent_port = port or kostest.free_port()
            self.probe_port = kostest.free_port()
            self.agent = kostest.Proc(self.agent_cmd(self.agent_port, self.probe_port), env=self.agent_env,
                                      name="kube-oidc-spoa")
            try:
                if wait:
                    self.wait_agent_ready(timeout=60.0)
                else:
                    kostest.wait_port(self.agent_port, proc=self.agent.p, timeout=60.0)
                return
            except (RuntimeError, TimeoutError):
                if attempt == attempts - 1 or "in use" not in self.agent.log():
                    raise

    def restart_agent(self, args=None, sig=signal.SIGTERM, wait=True):
        port = self.agent_port
        self.stop_agent(sig)
        if args is not None:
            self.agent_args = list(args)
        self.start_agent(port=port, wait=wait)
        if wait:
            self.wait_agent_up_in_haproxy()

    def stop(self):
        for p in self.extra_procs:
            p.stop()
        super().stop()

    # -- the agent's own endpoints ----------------------------------------------------------------------------
    def probe(self, path, timeout=5):
        """(status, body text) of GET path on the probe port; (None, error) when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}{path}", timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return None, str(e)

    def metrics(self):
        st, text = self.probe("/metrics")
        assert st == 200, text
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, val = line.rpartition(" ")
            try:
                out[name] = out.get(name, 0) + float(val)
            except ValueError:
                pass
        return out

    def metric(self, prefix):
        """Sum of every series whose name (with labels) starts with prefix."""
        return sum(v for k, v in self.metrics().items() if k == prefix or k.startswith(prefix + "{"))

    def wait_ready(self, want=200, timeout=30.0):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st, _ = self.probe("/ready", timeout=2)
            if st == want:
                return
            time.sleep(0.1)
        raise AssertionError(f"/ready stayed {st}, wanted {want}:\n{self.agent.log()[-3000:]}")

    def agent_rss_kb(self):
        return proc_rss_kb(self.agent.pid)

    # -- clients ----------------------------------------------------------------------------------------------
    def get(self, token, path="/api", headers=(), timeout=20):
        hdrs = [("Authorization", "Bearer " + token)] if token is not None else []
        return self.request("GET", path, headers=hdrs + list(headers), timeout=timeout)

    def assert_nothing_forwarded(self):
        reqs = self.api_requests()
        assert reqs == [], f"{len(reqs)} request(s) reached the API server: {reqs[:2]}"


def proc_rss_kb(pid):
    """VmRSS of pid in kB (follows a valgrind/wrapper process as it is: the agent is pid itself)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Load:
    """Bounded concurrent load through HAProxy: `workers` threads each send requests in a loop, alternating over
    `cases` [(label, token, allowed statuses)], until stop() or `max_requests` in total. Every response is
    recorded as (label, status); anything outside a case's allowed set (or a transport error where none is
    allowed) is a violation. Keep-alive connections, re-opened after any error."""

    def __init__(self, stack, cases, workers=6, max_requests=20000, allow_errors=False):
        self.stack = stack
        self.cases = cases
        self.workers = workers
        self.max_requests = max_requests
        self.allow_errors = allow_errors
        self.lock = threading.Lock()
        self.results = []
        self.errors = []
        self._stop = threading.Event()
        self.threads = []

    def _conn(self):
        ctx = ssl.create_default_context(cafile=self.stack.front_ca)
        return http.client.HTTPSConnection("127.0.0.1", self.stack.front_port, context=ctx, timeout=15)

    def _worker(self, idx):
        conn = self._conn()
        i = idx
        while not self._stop.is_set():
            with self.lock:
                if len(self.results) + len(self.errors) >= self.max_requests:
                    break
            label, token, _ = self.cases[i % len(self.cases)]
            i += 1
            try:
                conn.request("GET", "/api", headers={"Authorization": "Bearer " + token})
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.results.append((label, r.status))
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = self._conn()
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors.append((label, repr(e)))
                conn.close()
                time.sleep(0.02)
                conn = self._conn()
        conn.close()

    def start(self):
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def wait_count(self, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.results) >= n:
                    return
            time.sleep(0.05)
        raise AssertionError(f"load made fewer than {n} responses in {timeout}s")

    def stop(self):
        self._stop.set()
        for t in self.threads:
            t.join(timeout=30)
        return self

    def violations(self):
        allowed = {label: ok for label, _, ok in self.cases}
        bad = [(label, st) for label, st in self.results if st not in allowed[label]]
        if not self.allow_errors:
            bad += self.errors
        return bad

    def count(self, label=None, status=None):
        return sum(1 for lb, st in self.results if (label is None or lb == label) and (status is None or st == status))


def spop_connect(port, hello=True):
    """A raw SPOP connection to the agent (after HELLO when asked); the caller closes it."""
    sys.path.insert(0, os.path.join(kostest.ROOT, "tests", "agent"))
    import spop_client
    if hello:
        return spop_client.Client("127.0.0.1", port).s
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def count_re(pattern, text):
    return len(re.findall(pattern, text))
