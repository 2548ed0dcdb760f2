"""The agent binary holding a request whose kid is not in the JWKS (--unknown-kid-wait-ms) until the download that
kid triggered ends: a kid that stays unknown is still 401 (and the unknown-kid rate limit still holds), and
SIGTERM answers a held request 503 ("agent shutting down") and exits 0. A python SPOP client plays HAProxy; the
key-rotation success case through HAProxy is tests/integration/test_lifecycle.py."""
import os
import signal
import threading
import time

import pytest

from test_agent import AGENT, Agent, Kubelet  # also puts tests/tools on sys.path
import spop_client  # noqa: E402
from issuer import TestIssuer  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(AGENT), reason=f"{AGENT} not built")


@pytest.fixture
def issuer():
    iss = TestIssuer().start()
    yield iss
    iss.stop()


@pytest.fixture
def sa():
    k = Kubelet()
    k.write("the-sa-token\n")
    yield k
    k.cleanup()


def metric(agent, name):
    code, body = agent.get("/metrics")
    assert code == 200
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} missing")


def wait_for(pred, what, bound=20.0):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {bound} s: {what}")


def ready_agent_outside_rate_limit(procs, issuer, sa):
    """An agent with a 1 s unknown-kid rate limit, once that window after its first JWKS download has passed (so
    the next unknown kid may download); returns it and its JWKS download count."""
    a = Agent(procs, issuer, sa.path, extra=["--jwks-unknown-kid-interval=1s"])
    a.wait_status("/ready", 200)
    last = metric(a, "kos_jwks_last_success_timestamp_seconds")
    wait_for(lambda: time.time() >= last + 2.3, "out of the 1 s rate-limit window")
    return a, metric(a, "kos_jwks_refreshes_total")


def test_unknown_kid_stays_401_and_rate_limit_holds(procs, issuer, sa):
    a, refreshes = ready_agent_outside_rate_limit(procs, issuer, sa)
    tok = "Bearer " + issuer.mint({"sub": "mallory"}, key="unknown")  # a kid the issuer never publishes
    c = spop_client.Client("127.0.0.1", a.spop_port)
    try:
        v = c.auth(tok)  # held while the download runs, then judged again: still unknown
        assert v["status"] == 1 and v["reason"] == "unknown key id" and "user" not in v and "sa" not in v
        v = c.auth(tok)  # inside the rate-limit window: no download can come, so no hold either
        assert v["status"] == 1 and v["reason"] == "unknown key id"
    finally:
        c.close()
    assert metric(a, "kos_jwks_refreshes_total") == refreshes + 1


def test_unknown_kid_of_another_issuer_is_not_held_and_fetches_nothing(procs, issuer, sa):
    # A token of another issuer (a cluster's service-account token sent to an OIDC-only agent, say) whose kid our
    # JWKS lacks: the API server routes a JWT by its unverified iss and would not look at our keys; the agent
    # answers 401 without a JWKS download (an outsider cannot make it poll the issuer).
    a, refreshes = ready_agent_outside_rate_limit(procs, issuer, sa)
    c = spop_client.Client("127.0.0.1", a.spop_port)
    try:
        for iss in ("https://kubernetes.default.svc.cluster.local", issuer.issuer + "/", None):
            v = c.auth("Bearer " + issuer.mint({"sub": "mallory", "iss": iss}, key="unknown"))
            assert v["status"] == 1 and v["reason"] == "issuer mismatch" and "user" not in v, (iss, v)
        # Past the 1 s rate-limit window of anything those could have started, so that a download they caused
        # would show as one more below instead of swallowing the next one.
        time.sleep(1.3)
        v = c.auth("Bearer " + issuer.mint({"sub": "mallory"}, key="unknown"))  # our iss: that one does fetch
        assert v["status"] == 1 and v["reason"] == "unknown key id"
    finally:
        c.close()
    assert metric(a, "kos_jwks_refreshes_total") == refreshes + 1


def test_sigterm_answers_held_request_503(procs, issuer, sa):
    a = Agent(procs, issuer, sa.path, extra=["--jwks-unknown-kid-interval=1s", "--unknown-kid-wait-ms=8000"])
    a.wait_status("/ready", 200)
    last = metric(a, "kos_jwks_last_success_timestamp_seconds")
    wait_for(lambda: time.time() >= last + 2.3, "out of the 1 s rate-limit window")
    issuer.set_mode("slow", delay_ms=6000, target="keys")  # the download the kid triggers hangs
    before = issuer.stats()["total"]
    tok = "Bearer " + issuer.mint({"sub": "mallory"}, key="unknown")
    c = spop_client.Client("127.0.0.1", a.spop_port, timeout=20)
    got = {}

    def ask():
        try:
            got["v"] = c.auth(tok)
        except Exception as e:  # noqa: BLE001 — reported by the assertion below
            got["e"] = e

    t = threading.Thread(target=ask)
    t.start()
    try:
        wait_for(lambda: issuer.stats()["total"] > before, "the agent starts the JWKS download")
        time.sleep(0.2)  # the request is held right after it asked for the download (no speed requirement)
        a.proc.p.send_signal(signal.SIGTERM)
        t.join(20)
        assert not t.is_alive()
        assert "e" not in got, got.get("e")
        v = got["v"]
        assert v["status"] == 4 and v["reason"] == "agent shutting down" and "user" not in v
    finally:
        c.close()
        t.join(5)
        issuer.set_mode("ok")
    assert a.proc.p.wait(timeout=20) == 0  # the hung download is aborted, the drain does not wait for it
