"""Fault injection through the real HAProxy: the issuer down (at start and later), slow, serving garbage / an
empty key set / a 50 MB body; a flood of random kids; the service-account token missing, empty, rotated; the
agent SIGKILLed and SIGTERMed under load; HAProxy reloaded under load; many idle SPOP connections; slow-loris
clients on the SPOP and probe ports; garbage and HTTP on the SPOP port; memory across 100,000 requests.

Every test ends by checking that no request reached the stand-in API server without our service-account token
and exactly one impersonated user (the module fixture checks it once more at the end). Waits are bounded loops
on observable state (issuer request counts, /ready, /metrics), never sleeps that a slow machine could beat."""
import os
import random
import signal
import socket
import struct
import threading
import time
import uuid

import pytest

import kostest
import kosstack
import secstack
from secstack import FAST, Load, header_values

ASAN_SMALL_QUARANTINE = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16"}


@pytest.fixture(scope="module")
def stack(make_sec_stack, figures):
    s = make_sec_stack(agent_args=FAST, agent_env=ASAN_SMALL_QUARANTINE)
    s.figures = figures
    yield s
    kosstack.assert_all_authenticated(s)


@pytest.fixture(autouse=True)
def _all_forwards_authenticated(stack):
    """Per test: issuer back to normal afterwards; every forward of the test authenticated."""
    stack.api_reset()
    yield
    stack.issuer.set_mode("ok", max_age=300)
    kosstack.assert_all_authenticated(stack)
    stack.figures["fault_forwards_checked"] = stack.figures.get("fault_forwards_checked", 0) + \
        len(stack.api_requests())


def fresh(stack, **claims):
    """A valid token never seen before (not in the agent's cache): verifying it needs the keys."""
    c = {"sub": "u-" + uuid.uuid4().hex[:10]}
    c.update(claims)
    return stack.mint(c)


def random_kid(stack):
    return stack.mint({"sub": "flood"}, kid="kid-" + uuid.uuid4().hex)


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def keys_fetches(stack):
    return stack.issuer.stats()["requests"].get("/keys", 0)


def force_jwks_fetch(stack, timeout=20):
    """Makes the agent download the JWKS (tokens with unknown kids, which are rate-limited) and waits until the
    issuer saw the request and the agent finished with it (a refresh or a failure counted)."""
    before_fetch = keys_fetches(stack)
    before = stack.metric("kos_jwks_failures_total") + stack.metric("kos_jwks_refreshes_total")

    def fetched():
        st, _, _ = stack.get(random_kid(stack))
        assert st in (401, 503), st
        return keys_fetches(stack) > before_fetch
    wait_until(fetched, timeout, "a JWKS download")
    wait_until(lambda: stack.metric("kos_jwks_failures_total") + stack.metric("kos_jwks_refreshes_total") > before,
               timeout, "the agent to finish the JWKS download")


def assert_valid_tokens_work(stack, n=5):
    for _ in range(n):
        st, _, body = stack.get(fresh(stack))
        assert st == 200, body


# ---- the issuer -------------------------------------------------------------------------------------------------

def test_issuer_down_at_start_then_ready_without_restart(stack):
    stack.stop_agent()
    stack.issuer.set_mode("down")
    stack.start_agent(port=stack.agent_port, wait=False)
    pid = stack.agent.pid
    wait_until(lambda: stack.probe("/ready")[0] == 503, 20, "/ready 503")
    tok = fresh(stack)
    for _ in range(5):
        st, _, body = stack.get(tok)
        assert st == 503, body
    stack.assert_nothing_forwarded()
    assert stack.metric("kos_jwks_failures_total") >= 1
    stack.issuer.set_mode("ok")
    stack.wait_ready(200, timeout=30)
    stack.wait_agent_up_in_haproxy()
    st, _, body = stack.get(tok)
    assert st == 200, body
    assert stack.agent.pid == pid and stack.agent.poll() is None


def test_issuer_down_later_keys_kept(stack):
    # max-age 1 with --jwks-min-refresh 1s: the agent tries to refresh every second and fails while down.
    stack.issuer.set_mode("ok", max_age=1)
    force_jwks_fetch(stack)
    failures = stack.metric("kos_jwks_failures_total")
    stack.issuer.set_mode("down", max_age=1)
    wait_until(lambda: stack.metric("kos_jwks_failures_total") >= failures + 3, 30, "three failed refreshes")
    assert_valid_tokens_work(stack)
    assert stack.probe("/ready")[0] == 200
    assert stack.metric("kos_jwks_keys") >= 1


def test_issuer_slow_does_not_block_other_requests(stack):
    # A JWKS download that hangs 4 s (past HAProxy's 1 s SPOE processing timeout): if verification of other
    # requests waited for it, they would get 503 from HAProxy.
    time.sleep(2.1)  # let the unknown-kid window of earlier tests pass, so the next unknown kid downloads
    stack.issuer.set_mode("slow", delay_ms=4000, target="keys")
    before = keys_fetches(stack)
    st, _, _ = stack.get(random_kid(stack))
    assert st == 401
    wait_until(lambda: keys_fetches(stack) > before, 10, "the slow JWKS download to start")
    done = 0
    while done < 10:
        st, _, body = stack.get(fresh(stack))
        assert st == 200, body
        done += 1
    stack.issuer.set_mode("ok")


@pytest.mark.parametrize("mode", ["garbage", "empty", "huge"])
def test_bad_jwks_keeps_old_keys(stack, mode):
    stack.issuer.set_mode(mode, huge_bytes=50 * 1024 * 1024, chunked=False)
    time.sleep(2.1)  # unknown-kid window of the previous test
    force_jwks_fetch(stack)
    assert_valid_tokens_work(stack)
    assert stack.probe("/ready")[0] == 200
    if mode == "huge":
        sent = stack.issuer.stats()["huge_bytes_sent"]
        assert 0 < sent < 50 * 1024 * 1024, sent  # the agent cut the body short
        stack.figures["jwks_huge_bytes_accepted"] = sent


def test_random_kid_flood_is_rate_limited(stack):
    stack.issuer.set_mode("ok", max_age=300)
    time.sleep(2.1)
    stack.issuer.reset_stats()
    t0 = time.monotonic()
    tokens = [random_kid(stack) for _ in range(300)]
    load = Load(stack, [(f"k{i}", t, {401}) for i, t in enumerate(tokens)], workers=6, max_requests=300).start()
    load.wait_count(300, timeout=120)
    load.stop()
    elapsed = time.monotonic() - t0
    fetches = keys_fetches(stack)
    assert load.violations() == []
    # --jwks-unknown-kid-interval 2s: at most one download per started 2 s window.
    assert 1 <= fetches <= int(elapsed / 2.0) + 1, (fetches, elapsed)
    stack.figures["random_kid_flood"] = {"tokens": 300, "seconds": round(elapsed, 1), "jwks_fetches": fetches}


# ---- the service-account token ----------------------------------------------------------------------------------

def test_sa_token_missing_at_start_then_appears(stack):
    d = os.path.join(stack.dir, "sa-late")
    os.makedirs(d)
    old_file = stack.sa_file
    stack.sa_file = os.path.join(d, "token")
    try:
        stack.restart_agent(wait=False)
        wait_until(lambda: stack.probe("/ready")[0] == 503, 20, "/ready 503")
        tok = fresh(stack)
        for _ in range(3):
            st, _, body = stack.get(tok)
            assert st == 503, body
        stack.assert_nothing_forwarded()
        kosstack.write_sa_token(d, "sa-token-late", 1)
        stack.api_config(tokens=[kosstack.SA_TOKEN, "sa-token-late"])
        stack.wait_ready(200, timeout=20)
        stack.wait_agent_up_in_haproxy()
        st, _, body = stack.get(tok)
        assert st == 200, body
        assert header_values(stack.api_requests()[-1]["headers"], "Authorization") == ["Bearer sa-token-late"]
    finally:
        stack.sa_file = old_file
        stack.restart_agent()


def test_sa_token_empty_keeps_last_good_then_rotation(stack):
    fails = stack.metric("kos_service_account_token_failures_total")
    stack.rotate_sa_token("")
    wait_until(lambda: stack.metric("kos_service_account_token_failures_total") > fails, 20,
               "the agent to notice the empty token file")
    st, _, body = stack.get(fresh(stack))
    assert st == 200, body
    assert header_values(stack.api_requests()[-1]["headers"], "Authorization") == ["Bearer " + kosstack.SA_TOKEN]
    stack.api_config(tokens=[kosstack.SA_TOKEN, "sa-token-rot"])
    stack.rotate_sa_token("sa-token-rot")

    def rotated():
        st, _, _ = stack.get(fresh(stack))
        assert st == 200
        return header_values(stack.api_requests()[-1]["headers"], "Authorization") == ["Bearer sa-token-rot"]
    wait_until(rotated, 20, "the rotated service-account token")
    stack.rotate_sa_token(kosstack.SA_TOKEN)
    wait_until(lambda: stack.get(fresh(stack))[0] == 200 and header_values(
        stack.api_requests()[-1]["headers"], "Authorization") == ["Bearer " + kosstack.SA_TOKEN], 20, "rotation back")


# ---- the agent and HAProxy restarting under load ------------------------------------------------------------------

def load_cases(stack):
    good = [stack.mint({"sub": f"load{i}"}) for i in range(4)]
    bad = [stack.mint({"sub": "x", "aud": "other"}), stack.mint({"sub": "y"}, key="unknown"), "not.a.token"]
    return [(f"good{i}", t, {200, 503}) for i, t in enumerate(good)] + \
        [(f"bad{i}", t, {401, 503}) for i, t in enumerate(bad)]


def check_load(stack, load, name):
    assert load.violations() == [], load.violations()[:5]
    reqs = stack.api_requests()
    assert len(reqs) == load.count(status=200), (len(reqs), load.count(status=200))
    assert all(r["auth_ok"] and r["user"] and r["user"].endswith(tuple(f"#load{i}" for i in range(4)))
               for r in reqs)
    stack.figures[name] = {"responses": len(load.results), "forwarded": len(reqs),
                           "503": load.count(status=503), "401": load.count(status=401),
                           "unauthenticated_forwards": 0}


def test_agent_sigkill_under_load_then_restart(stack):
    load = Load(stack, load_cases(stack), workers=6, max_requests=60000).start()
    try:
        load.wait_count(300)
        stack.stop_agent(signal.SIGKILL)
        n = len(load.results)
        # all 503 now, but for the (at most one per worker) requests whose answer was on its way at the kill
        load.wait_count(n + 200 + 6)
        stack.start_agent(port=stack.agent_port)
        stack.wait_agent_up_in_haproxy()
        n = len(load.results)
        load.wait_count(n + 300)
    finally:
        load.stop()
    assert load.count(status=503) >= 200 and load.count(status=200) > 0
    check_load(stack, load, "sigkill_under_load")


def test_agent_sigterm_under_load_is_graceful(stack):
    load = Load(stack, load_cases(stack), workers=6, max_requests=6000).start()
    try:
        load.wait_count(300)
        rc = stack.agent.stop(signal.SIGTERM, timeout=20)
        assert rc == 0, stack.agent.log()[-2000:]
        stack.check_sanitizer(stack.agent)
        stack.start_agent(port=stack.agent_port)
        stack.wait_agent_up_in_haproxy()
        n = len(load.results)
        load.wait_count(n + 300)
    finally:
        load.stop()
    check_load(stack, load, "sigterm_under_load")


def test_haproxy_reload_under_load(stack):
    # HAProxy in master-worker mode (-W); SIGUSR2 to the master re-reads the config and starts new workers,
    # which take over the listening sockets while the old ones finish their connections.
    stack.haproxy.stop()
    with open(os.path.join(kosstack.CONF, "haproxy.cfg")) as f:
        cfg = f.read()
    path = os.path.join(stack.dir, "haproxy-mw.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    mw = kostest.Proc([stack.haproxy_bin, "-W", "-db", "-f", path], env=stack.haproxy_env(), name="haproxy-mw")
    stack.haproxy = mw
    kostest.wait_port(stack.front_port, proc=mw.p)
    stack.wait_agent_up_in_haproxy()
    # New connection per request would be a fairer "burst"; keep-alive clients see at most a closed connection
    # at a reload (an HTTP client retries those), which Load counts as a transport error, not as a response.
    load = Load(stack, load_cases(stack), workers=8, max_requests=8000, allow_errors=True).start()
    try:
        load.wait_count(300)
        for _ in range(3):
            n = len(load.results)
            mw.send_signal(signal.SIGUSR2)
            load.wait_count(n + 300)
    finally:
        load.stop()
    assert "Reexecuting Master process" in mw.log() or "reload" in mw.log().lower(), mw.log()[-2000:]
    # after the reloads every answer must still be a correct verdict
    assert all(st in (200, 401) for _, st in load.results[-200:]), load.results[-20:]
    check_load(stack, load, "haproxy_reload_under_load")
    stack.figures["haproxy_reload_under_load"]["transport_errors"] = len(load.errors)


# ---- the agent's sockets -----------------------------------------------------------------------------------------

IDLE_CONNS = int(os.environ.get("KOS_SEC_IDLE_CONNS", "2000"))


def test_many_idle_spop_connections(stack):
    socks = []
    rss0 = stack.agent_rss_kb()
    try:
        for _ in range(IDLE_CONNS):
            socks.append(secstack.spop_connect(stack.agent_port, hello=True))
        wait_until(lambda: stack.metric("kos_spop_connections_open") >= IDLE_CONNS, 30, "connections counted")
        rss1 = stack.agent_rss_kb()
        assert_valid_tokens_work(stack, 3)
        assert stack.probe("/ready")[0] == 200
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: stack.metric("kos_spop_connections_open") < 50, 30, "idle connections released")
    assert_valid_tokens_work(stack, 2)
    stack.figures["idle_spop_connections"] = {"connections": IDLE_CONNS,
                                              "rss_kb_per_connection": round((rss1 - rss0) / IDLE_CONNS, 1)}


def trickle(port, payload, conns, seconds, stop):
    """Slow-loris: `conns` connections each sending one byte of payload every 0.2 s for `seconds`."""
    socks = []
    for _ in range(conns):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            pass
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end and not stop.is_set():
        for s in socks:
            try:
                s.send(payload[i % len(payload):i % len(payload) + 1])
            except OSError:
                pass
        i += 1
        time.sleep(0.2)
    for s in socks:
        s.close()
    return len(socks)


def test_slowloris_on_spop_port(stack):
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(stack.agent_port, b"\x00\x00\x00\x30\x01" + b"\x00" * 60, 200, 4,
                                               stop), daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        assert_valid_tokens_work(stack, 10)
        assert stack.probe("/ready")[0] == 200
    finally:
        stop.set()
        t.join(timeout=20)


def test_slowloris_on_probe_port(stack):
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(stack.probe_port, b"GET /ready HTTP/1.1\r\nHost: x\r\n", 64, 4,
                                               stop), daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        # kubelet's probe must still get through while slow clients hold connections
        oks = sum(1 for _ in range(5) if stack.probe("/ready", timeout=3)[0] == 200)
        assert_valid_tokens_work(stack, 3)
    finally:
        stop.set()
        t.join(timeout=20)
    assert oks == 5, f"/ready answered {oks}/5 times during a slow-loris on the probe port"


def read_until_closed(s, limit=1 << 16, timeout=10):
    s.settimeout(timeout)
    got = b""
    while len(got) < limit:
        try:
            b = s.recv(4096)
        except socket.timeout:
            return got, False
        except OSError:
            return got, True
        if not b:
            return got, True
        got += b
    return got, False


PROBE_FLOOD_SECONDS = float(os.environ.get("KOS_SEC_PROBE_FLOOD_SECONDS", "5"))


def connection_flood(port, src, rate, hold, stop, stats):
    """New TCP connections from loopback address `src` at about `rate` per second until stop, each left idle
    (it never sends a byte); this side keeps at most `hold` open and closes the oldest beyond that."""
    socks = []
    nxt = time.monotonic()
    while not stop.is_set():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            socks.append(s)
            stats["opened"] += 1
        except OSError:
            s.close()
            stats["errors"] += 1
        while len(socks) > hold:
            socks.pop(0).close()
        nxt += 1.0 / rate
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            nxt = time.monotonic()  # slower than rate (a loaded machine): as fast as it can, no catch-up burst
    for s in socks:
        s.close()


def probe_after(port, path, delay, timeout=3):
    """kubelet's probe on a busy node: connect, `delay` seconds, then the request. The status, or None when the
    connection was closed or timed out without an answer."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None
    try:
        time.sleep(delay)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.30\r\n\r\n".encode())
        got, _ = read_until_closed(s, timeout=timeout)
    except OSError:
        return None
    finally:
        s.close()
    parts = got.split(b" ", 2)
    return int(parts[1]) if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit() else None


def test_probe_port_connection_flood(stack):
    """Issue 14 finding 5: a flood of new idle connections on the probe port (from two other loopback addresses,
    as another pod would) must not make a single /ready or /healthz probe fail — including probes that wait up
    to 0.2 s between connect and request. Before the fix the 33rd newer connection closed the probe's."""
    stop = threading.Event()
    stats = {"opened": 0, "errors": 0}
    floods = [threading.Thread(target=connection_flood, args=(stack.probe_port, src, 600, 200, stop, stats),
                               daemon=True) for src in ("127.0.0.2", "127.0.0.3")]
    results = []
    for t in floods:
        t.start()
    t0 = time.monotonic()
    try:
        time.sleep(0.3)
        i = 0
        while time.monotonic() - t0 < PROBE_FLOOD_SECONDS:
            path = ("/ready", "/healthz")[i % 2]
            delay = (0.0, 0.05, 0.2)[i % 3]
            results.append((path, delay, probe_after(stack.probe_port, path, delay)))
            i += 1
    finally:
        stop.set()
        for t in floods:
            t.join(timeout=20)
    elapsed = time.monotonic() - t0
    failed = [r for r in results if r[2] != 200]
    stack.figures["probe_port_flood"] = {"connections": stats["opened"], "seconds": round(elapsed, 1),
                                         "probes": len(results), "failed": len(failed)}
    # the flood was a flood: far more connections than the endpoint keeps (32) within one probe's delay
    assert stats["opened"] > 20 * PROBE_FLOOD_SECONDS * 2, stats
    assert len(results) >= 10, results
    assert not failed, f"{len(failed)} of {len(results)} probes failed during the flood " \
        f"({stats['opened']} connections): {failed[:5]}"
    assert stack.probe("/ready")[0] == 200


def test_garbage_and_http_on_spop_port(stack):
    errs = stack.metric("kos_spop_protocol_errors_total")
    rnd = random.Random(8)
    payloads = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello start
                struct.pack(">I", 0x7FFFFFFF) + b"\x01", struct.pack(">I", 0) + b"\x01" * 8,
                struct.pack(">I", 5) + b"\x03\x00\x00\x00\x01"]  # NOTIFY before HELLO
    payloads += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 2048))) for _ in range(20)]
    closed = 0
    for p in payloads:
        s = socket.create_connection(("127.0.0.1", stack.agent_port), timeout=5)
        try:
            s.sendall(p)
            _, c = read_until_closed(s)
            closed += c
        finally:
            s.close()
    assert closed == len(payloads)
    assert stack.metric("kos_spop_protocol_errors_total") > errs
    assert stack.agent.poll() is None
    assert_valid_tokens_work(stack, 3)


# ---- memory ----------------------------------------------------------------------------------------------------

MEM_REQUESTS = int(os.environ.get("KOS_SEC_MEM_REQUESTS", "100000"))


def spop_burst(stack, tokens, total, batch=200):
    """Pipelined NOTIFYs straight to the agent (HAProxy's framing), `batch` in flight; returns statuses seen."""
    cl = secstack.spop_connect(stack.agent_port, hello=True)
    import spop_client as sc
    frames = []
    for i, t in enumerate(tokens):
        payload = sc.rawstr("kos-auth") + bytes([3]) + sc.rawstr("auth") + sc.typed("Bearer " + t) + \
            sc.rawstr("src") + sc.typed(("ipv4", "192.0.2.7")) + sc.rawstr("imp") + sc.typed(None)
        frames.append(payload)
    statuses = {}
    buf = b""
    sent = done = 0
    sid = 0
    try:
        cl.settimeout(30)
        while done < total:
            out = []
            while sent < total and sent - done < batch:
                sid += 1
                out.append(sc.frame(sc.NOTIFY, sid, 1, frames[sent % len(frames)]))
                sent += 1
            if out:
                cl.sendall(b"".join(out))
            while done < sent:
                while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
                    b = cl.recv(1 << 16)
                    if not b:
                        raise ConnectionError("agent closed the connection")
                    buf += b
                n = struct.unpack(">I", buf[:4])[0]
                fr, buf = buf[4:4 + n], buf[4 + n:]
                assert fr[0] == sc.ACK, fr[:8]
                # status is the last set-var; its value is an int after the name "status"
                i = fr.rfind(b"\x06status")
                st, _ = sc.untyped(fr, i + 7)
                statuses[st] = statuses.get(st, 0) + 1
                done += 1
                if sent - done < batch // 2:
                    break
    finally:
        cl.close()
    return statuses


def test_same_bad_token_answered_from_memory(stack):
    """Issue 14 finding 6: the same bad token again is refused from the agent's short memory of refused tokens
    (same 401, same reason), and the good token it was made from is still accepted."""
    good = fresh(stack)
    bad = resign(good, 7)
    reason = 'kos_requests_total{verdict="unauthenticated",reason="invalid signature"}'
    hits0, refused0 = stack.metric("kos_negative_cache_hits_total"), stack.metrics().get(reason, 0)
    for _ in range(5):
        st, _, _ = stack.get(bad)
        assert st == 401
    assert stack.metric("kos_negative_cache_hits_total") - hits0 >= 3
    assert stack.metrics().get(reason, 0) - refused0 == 5
    st, _, body = stack.get(good)
    assert st == 200, body


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def resign(token, i):
    """token with signature characters -6 and -5 set from i: a distinct token whose signature fails (never the
    original: i is mapped past the combination the token already has)."""
    head, _, sig = token.rpartition(".")
    orig = B64URL.index(sig[-6]) + 64 * B64URL.index(sig[-5])
    j = i if i < orig else i + 1
    return f"{head}.{sig[:-6]}{B64URL[j % 64]}{B64URL[(j // 64) % 64]}{sig[-4:]}"


def test_memory_stable_across_requests(stack):
    good = [stack.mint({"sub": f"mem{i}"}) for i in range(8)]
    wrong_aud, unknown_kid = stack.mint({"sub": "m", "aud": "other"}), stack.mint({"sub": "m"}, key="unknown")
    # 16 in 17 cache hits, 1 in 17 a full verification that fails. The agent remembers a refused token for a few
    # seconds (issue 14), so the signature-checked failures are distinct tokens (a changed signature character),
    # each back only after 1,500 others.
    tokens = []
    for i in range(1500):
        tokens += good * 4 + [resign(wrong_aud, i), unknown_kid]
    # Warm-up until the allocator (and ASan's 16 MB quarantine) reaches its steady state: measured with these
    # tokens, RSS still grew 4-6 MB after a 120,000-request warm-up and stays within ~2 MB after 300,000.
    warm = spop_burst(stack, tokens, 300000)
    assert warm.get(0, 0) > 0 and warm.get(1, 0) > 0, warm
    rss0 = stack.agent_rss_kb()
    res = spop_burst(stack, tokens, MEM_REQUESTS)
    rss1 = stack.agent_rss_kb()
    assert sum(res.values()) == MEM_REQUESTS
    assert set(res) <= {0, 1}, res
    growth_mb = (rss1 - rss0) / 1024.0
    stack.figures["memory"] = {"requests": MEM_REQUESTS, "rss_before_kb": rss0, "rss_after_kb": rss1,
                               "growth_mb": round(growth_mb, 1), "build": os.path.basename(kostest.BUILD)}
    assert growth_mb < 4, f"agent RSS grew {growth_mb:.1f} MB over {MEM_REQUESTS} requests"
