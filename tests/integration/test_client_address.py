"""The client's address behind load balancers (issue 21, item 2), judged by the Impersonate-Extra-Remote-Client-Ip
the stand-in API server receives.

One stack: HAProxy with KOS_PROXY_PROTOCOL_FROM=127.0.0.2 (a "load balancer" that speaks the PROXY protocol, v1 or
v2), the agent with --extra-user-header-client-ip and --trusted-proxies 10.0.0.0/8,fd00::/8,127.0.0.3 (127.0.0.3
plays an L7 load balancer that appends X-Forwarded-For, like an ALB), and the same list as KOS_TRUSTED_PROXIES in
HAProxy's environment, which makes conf/spoe-kos.conf send the X-Forwarded-For entries. Tests connect from
127.0.0.1 (a client reaching HAProxy directly), 127.0.0.2 or 127.0.0.3 — all loopback."""
import http.client
import json
import socket
import struct
import time

import pytest

from kosstack import header_values

LB_PROXY = "127.0.0.2"   # may send a PROXY header (HAProxy's KOS_PROXY_PROTOCOL_FROM)
LB_XFF = "127.0.0.3"     # trusted for X-Forwarded-For (the agent's --trusted-proxies)
TRUSTED = "10.0.0.0/8,fd00::/8," + LB_XFF


@pytest.fixture(scope="module")
def stack(make_stack):
    return make_stack(agent_args=["--extra-user-header-client-ip", "--trusted-proxies", TRUSTED], env=HAPROXY_ENV)


HAPROXY_ENV = {"KOS_PROXY_PROTOCOL_FROM": LB_PROXY, "KOS_TRUSTED_PROXIES": TRUSTED}


def proxy_v1(src, dst="127.0.0.1", sport=40000, dport=6443):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def proxy_v2(src, dst, sport=40000, dport=6443):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if ":" in src:
        addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        fam = 0x21
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x11
    body = addrs + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def send(stack, source, preface=b"", xff=(), token=None):
    """One HTTPS request from the loopback address `source`, after `preface` (a PROXY header) in clear.
    Returns (status, body)."""
    tok = token or stack.mint({"sub": "alice"})
    raw = socket.create_connection(("127.0.0.1", stack.front_port), timeout=20, source_address=(source, 0))
    try:
        if preface:
            raw.sendall(preface)
        s = stack.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
        lines = ["GET /api/v1/namespaces/default/pods HTTP/1.1", "Host: 127.0.0.1",
                 f"Authorization: Bearer {tok}", "Connection: close"] + [f"X-Forwarded-For: {v}" for v in xff]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        r = http.client.HTTPResponse(s)
        r.begin()
        body = r.read()
        s.close()
        return r.status, body
    finally:
        raw.close()


def client_ip(stack, **kw):
    """The remote-client-ip the API server received for one request (asserts exactly one was forwarded)."""
    stack.api_reset()
    status, body = send(stack, **kw)
    assert status == 200, body
    fw = stack.api_requests()
    assert len(fw) == 1, fw
    vals = header_values(fw[0]["headers"], "Impersonate-Extra-Remote-Client-Ip")
    assert len(vals) == 1, fw[0]["headers"]
    return vals[0]


CASES = {
    # name: (source, preface, X-Forwarded-For lines, expected remote-client-ip)
    "direct client": ("127.0.0.1", b"", (), "127.0.0.1"),
    "direct client forging X-Forwarded-For": ("127.0.0.1", b"", ("10.0.0.9", "203.0.113.9, 10.0.0.7"),
                                              "127.0.0.1"),
    "PROXY v1 from the load balancer": (LB_PROXY, proxy_v1("198.51.100.7"), (), "198.51.100.7"),
    "PROXY v2 from the load balancer": (LB_PROXY, proxy_v2("198.51.100.8", "127.0.0.1"), (), "198.51.100.8"),
    "PROXY v2, IPv6 client": (LB_PROXY, proxy_v2("2001:db8::7", "2001:db8::1"), (), "2001:db8::7"),
    "PROXY v1, IPv6 client": (LB_PROXY, proxy_v1("2001:db8::8", "2001:db8::1"), (), "2001:db8::8"),
    "PROXY client forging X-Forwarded-For": (LB_PROXY, proxy_v2("198.51.100.9", "127.0.0.1"), ("10.1.1.1",),
                                             "198.51.100.9"),
    "trusted L7 hop (ALB)": (LB_XFF, b"", ("203.0.113.10",), "203.0.113.10"),
    "ALB: entries the client wrote are not read": (LB_XFF, b"", ("6.6.6.6, 10.9.9.9, 203.0.113.11",),
                                                   "203.0.113.11"),
    "PROXY declares a trusted hop, then XFF": (LB_PROXY, proxy_v2("10.0.0.5", "127.0.0.1"), ("203.0.113.12",),
                                               "203.0.113.12"),
    "several lines: the last line's last entry is nearest": (
        LB_XFF, b"", ("6.6.6.6, 203.0.113.13", "10.0.0.6"), "203.0.113.13"),
    "IPv6 entries with brackets and ports": (LB_XFF, b"", ("[2001:db8::9]:4444, [fd00::1]:80",), "2001:db8::9"),
    "IPv4 entry with a port": (LB_XFF, b"", ("203.0.113.14:51000",), "203.0.113.14"),
    "malformed nearest entry: the trusted hop": (LB_XFF, b"", ("203.0.113.15, unknown",), LB_XFF),
    "malformed entry behind trusted ones: the last trusted": (LB_XFF, b"", ("203.0.113.16, bogus, 10.0.0.8",),
                                                               "10.0.0.8"),
    "empty elements are skipped": (LB_XFF, b"", ("203.0.113.17, , ",), "203.0.113.17"),
    "an entry longer than any address (HAProxy passes 64 bytes): malformed": (
        LB_XFF, b"", ("203.0.113.18" + " " * 60 + "x",), LB_XFF),
    "every entry trusted: the left-most": (LB_XFF, b"", ("10.0.0.1, 10.0.0.2",), "10.0.0.1"),
    "trusted hop without X-Forwarded-For: its own address": (LB_XFF, b"", (), LB_XFF),
}


@pytest.mark.parametrize("name", list(CASES))
def test_remote_client_ip(stack, name):
    source, preface, xff, want = CASES[name]
    assert client_ip(stack, source=source, preface=preface, xff=xff) == want


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_header_from_an_unlisted_peer_is_refused(stack, version):
    """A client that reaches HAProxy directly cannot declare another address: its PROXY header is not expected,
    so HAProxy reads it as a bad HTTP request (TLS never starts) and nothing is forwarded."""
    stack.api_reset()
    pre = proxy_v1("198.51.100.66") if version == "v1" else proxy_v2("198.51.100.66", "127.0.0.1")
    with pytest.raises((OSError, http.client.HTTPException)):
        send(stack, source="127.0.0.1", preface=pre)
    assert stack.api_requests() == []


def test_listed_load_balancer_must_send_a_proxy_header(stack):
    """From a listed peer the header is mandatory: a bare TLS connection is not taken as the client's own."""
    stack.api_reset()
    with pytest.raises((OSError, http.client.HTTPException)):
        send(stack, source=LB_PROXY)
    assert stack.api_requests() == []


def test_bad_token_is_still_401_whatever_the_address(stack):
    stack.api_reset()
    status, _ = send(stack, source=LB_XFF, xff=("203.0.113.20",), token="not-a-token")
    assert status == 401
    assert stack.api_requests() == []


def test_agent_with_trusted_proxies_refuses_haproxy_without_them(stack):
    """HAProxy sends the X-Forwarded-For entries only when its environment has KOS_TRUSTED_PROXIES (eight header
    scans a request otherwise). An agent started with --trusted-proxies behind an HAProxy without it would take
    the load balancer for every client: it answers 503 instead, says why in its log, and nothing is forwarded.
    Runs last in this module: HAProxy is put back as it was at the end."""
    stack.restart_haproxy(env={"KOS_PROXY_PROTOCOL_FROM": LB_PROXY}, wait=False)
    try:
        stack.api_reset()
        before = stack.agent.log().count("no X-Forwarded-For arguments")
        deadline = time.monotonic() + 20
        while True:  # the first requests may be HAProxy's own 503 until its spop-check marks the agent up
            status, body = send(stack, source=LB_XFF, xff=("203.0.113.30",))
            if stack.agent.log().count("no X-Forwarded-For arguments") > before or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 503, body
        assert json.loads(body)["reason"] == "ServiceUnavailable"
        # direct clients too: the agent cannot tell, so no request is judged without the entries
        status, _ = send(stack, source="127.0.0.1")
        assert status == 503
        assert stack.api_requests() == []
        lines = [json.loads(l) for l in stack.agent.log().splitlines()
                 if l.startswith("{") and "no X-Forwarded-For arguments" in l]
        assert len(lines) >= 2 and lines[-1]["status"] == 4, lines[-3:]
        assert "KOS_TRUSTED_PROXIES" in lines[-1]["detail"], lines[-1]
    finally:
        stack.restart_haproxy(env=HAPROXY_ENV)
    assert client_ip(stack, source=LB_XFF, xff=("203.0.113.31",)) == "203.0.113.31"
