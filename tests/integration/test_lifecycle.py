"""Streams and time: quiet watches and `logs -f` outlive short client/server timeouts; the agent killed and
restarted (503 in between, never a forward); issuer key rotation and service-account token rotation without any
restart."""
import json
import signal
import time
import urllib.request

import pytest

import kosstack
from kosstack import header_values

GAP = 3.5  # seconds of silence in the watch, longer than the client and server timeouts below
UNKNOWN_KID_INTERVAL = 1  # --jwks-unknown-kid-interval for this module's agent, seconds


@pytest.fixture(scope="module")
def stack(make_stack):
    # A 1 s unknown-kid rate limit (default 10 s) lets the rotation test step out of the window of the agent's
    # previous JWKS download quickly; the hold itself runs with its production default (--unknown-kid-wait-ms).
    s = make_stack(watch_gaps=[GAP], env={"KOS_TIMEOUT_CLIENT": "2s", "KOS_TIMEOUT_SERVER": "2s",
                                          "KOS_TIMEOUT_STREAM": "30s", "KOS_TIMEOUT_TUNNEL": "30s"},
                   agent_args=["--jwks-unknown-kid-interval", f"{UNKNOWN_KID_INTERVAL}s"])
    yield s
    kosstack.assert_all_authenticated(s)


def tok(stack, sub="alice"):
    return stack.mint({"sub": sub})


@pytest.mark.parametrize("http1", [False, True], ids=["h2", "http1.1"])
def test_quiet_watch_survives_short_timeouts(stack, http1):
    p = stack.kubectl("get", "--raw", "/api/v1/namespaces/default/pods?watch=1", token=tok(stack), http1=http1,
                      timeout=60)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line)["type"] for line in p.stdout.splitlines() if line.strip()]
    assert events == ["ADDED", "ADDED", "MODIFIED"]


def test_quiet_follow_survives_short_timeouts(stack):
    p = stack.kubectl("logs", "-f", "web-1", token=tok(stack), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "web-1 line 0\nweb-1 line 1\n"


def test_short_server_timeout_is_really_short(stack):
    # Control for the two tests above: the same silence before an ordinary (non-watch) answer is cut by the
    # short "timeout server" (504), so it is the stream timeout that keeps watches alive.
    st, _, _ = stack.request("GET", "/api/v1/namespaces/default/pods?_slow=1",
                             headers=[("Authorization", "Bearer " + tok(stack))])
    assert st == 504


def test_exec_tunnel_idle_longer_than_timeouts(stack):
    # kubectl exec -i with stdin that stays open past the client/server timeouts: the tunnel timeout applies.
    import subprocess
    env_home = stack._mkdir("home")
    cmd = ["kubectl", "--kubeconfig", stack.kubeconfig, "--cache-dir", env_home + "/cache", "--token", tok(stack),
           "exec", "-i", "web-1", "--", "cat"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": env_home})
    try:
        p.stdin.write("before\n")
        p.stdin.flush()
        time.sleep(GAP)
        out, err = p.communicate("after\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 0, err
    assert out == "exec in web-1: cat\nbefore\nafter\n"


def agent_metric(stack, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.probe_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"metric {name} missing")


def out_of_rate_limit_window(stack):
    """Precondition, not a speed check: waits until the agent's last JWKS download is older than the unknown-kid
    rate limit, or no download could start while a request is held (that case is in the unit tests)."""
    last = agent_metric(stack, "kos_jwks_last_success_timestamp_seconds")
    assert last > 0
    for _ in range(100):
        if time.time() >= last + 1 + UNKNOWN_KID_INTERVAL + 0.3:  # +1: the timestamp is in whole seconds
            return
        time.sleep(0.05)
    raise AssertionError("clock did not advance past the rate-limit window")


def test_key_rotation_first_request_succeeds(stack):
    """Regression: the first request with a token signed by a just-rotated key succeeds. The agent holds it while
    the JWKS download its unknown kid triggered runs (as the API server's authenticator waits for its remote key
    set), instead of answering 401 so that the user's first kubectl call after a rotation failed."""
    old = tok(stack)
    st, _, _ = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + old)])
    assert st == 200
    pid = stack.agent.pid

    out_of_rate_limit_window(stack)
    refreshes = agent_metric(stack, "kos_jwks_refreshes_total")
    stack.issuer.rotate(keep_old=False)
    new = tok(stack, "carol")
    # The FIRST request with the new key: no retry loop.
    st, _, body = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + new)])
    assert st == 200, body
    assert stack.api_requests()[-1]["user"] == f"{stack.issuer.issuer}#carol"
    assert agent_metric(stack, "kos_jwks_refreshes_total") == refreshes + 1
    # The old key left the JWKS: its token, valid a moment ago (and cached), is refused now.
    st, _, body = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + old)])
    assert st == 401, body

    # The user's story: kubectl's first call after another rotation just works.
    out_of_rate_limit_window(stack)
    stack.issuer.rotate(keep_old=False)
    p = stack.kubectl("auth", "whoami", "-o", "json", token=tok(stack, "dave"))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"]["userInfo"]["username"] == f"{stack.issuer.issuer}#dave"
    assert stack.agent.pid == pid and stack.agent.poll() is None


def test_service_account_token_rotation(stack):
    stack.api_reset()
    st, _, _ = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + tok(stack))])
    assert st == 200
    # The API server now accepts only the new token; the agent must pick up the kubelet-style symlink swap.
    stack.api_config(tokens=["sa-token-two"])
    stack.rotate_sa_token("sa-token-two")
    deadline = time.monotonic() + 30
    st = None
    while time.monotonic() < deadline:
        st, _, _ = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + tok(stack))])
        if st == 200:
            break
        assert st == 401  # the stand-in's refusal of the old token, never anything else
        time.sleep(0.25)
    assert st == 200
    assert header_values(stack.api_requests()[-1]["headers"], "Authorization") == ["Bearer sa-token-two"]
    # Every refusal during the swap was of our old service-account token, with a verified user.
    for r in stack.api_requests():
        assert len(header_values(r["headers"], "Impersonate-User")) == 1
        assert header_values(r["headers"], "Authorization") in (["Bearer " + kosstack.SA_TOKEN], ["Bearer sa-token-two"])
    stack.api_config(tokens=[kosstack.SA_TOKEN, "sa-token-two"])
    stack.api_reset()  # the module's final check (nothing unauthenticated reached the API server) covers the rest


def test_agent_killed_is_503_and_restart_recovers(stack):
    stack.api_reset()
    good = tok(stack)
    port = stack.agent_port
    stack.stop_agent(signal.SIGKILL)
    for _ in range(10):
        st, _, body = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
        assert st == 503, body
        doc = json.loads(body)
        assert doc["reason"] == "ServiceUnavailable" and doc["code"] == 503
    p = stack.kubectl("get", "pods", token=good)
    assert p.returncode == 1 and "ServiceUnavailable" in p.stderr or "unavailable" in p.stderr, p.stderr
    assert stack.api_requests() == []
    stack.start_agent(port=port)
    stack.wait_agent_up_in_haproxy()
    st, _, _ = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
    assert st == 200


def spop_counters(stack):
    """(bytes of SPOP frames the agent sent, NOTIFYs it answered) from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.probe_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    val = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
           if line.startswith(("kos_spop_bytes_sent_total ", "kos_spop_notify_total "))}
    return val["kos_spop_bytes_sent_total"], val["kos_spop_notify_total"]


def test_acks_carry_the_service_account_token_only_when_haproxy_lacks_it(stack):
    """Contract v2: HAProxy keeps the token process-wide; a normal allow carries its version (16 bytes), not the
    ~1 KB token. A fresh HAProxy process holds none: its first request fetches it and is forwarded with it."""
    good = tok(stack)
    for _ in range(3):  # HAProxy holds the current token after these
        st, _, _ = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
        assert st == 200
    b0, n0 = spop_counters(stack)
    for _ in range(50):
        st, _, _ = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
        assert st == 200
    b1, n1 = spop_counters(stack)
    per_ack = (b1 - b0) / max(1, n1 - n0)  # health checks add a few tiny frames
    assert n1 - n0 >= 50
    assert per_ack < 300, f"{per_ack:.0f} bytes per ACK: the service-account token ({len(kosstack.SA_TOKEN)} " \
                          "bytes) is still in every answer"
    # a new HAProxy process (empty proc.kos.sa) gets the token with its first allow
    stack.restart_haproxy()
    stack.api_reset()
    st, _, body = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
    assert st == 200, body
    assert header_values(stack.api_requests()[-1]["headers"], "Authorization") == ["Bearer " + stack.sa_token]


def test_agent_restarted_with_a_rotated_token_replaces_haproxys_copy(stack):
    """The token's version comes from its content: an agent that restarts on a rotated file names a new version,
    and HAProxy's copy of the old one is never forwarded again."""
    good = tok(stack)
    st, _, _ = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
    assert st == 200
    port = stack.agent_port
    stack.stop_agent()
    stack.api_config(tokens=[kosstack.SA_TOKEN, "sa-token-three"])
    stack.rotate_sa_token("sa-token-three")
    stack.start_agent(port=port)
    stack.wait_agent_up_in_haproxy()
    stack.api_reset()
    st, _, body = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
    assert st == 200, body
    assert header_values(stack.api_requests()[-1]["headers"], "Authorization") == ["Bearer sa-token-three"]
    stack.rotate_sa_token(kosstack.SA_TOKEN)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stack.api_reset()
        stack.request("GET", "/api", headers=[("Authorization", "Bearer " + good)])
        if header_values(stack.api_requests()[-1]["headers"], "Authorization") == ["Bearer " + kosstack.SA_TOKEN]:
            break
        time.sleep(0.25)
    else:
        raise AssertionError("the agent never went back to the first token")
