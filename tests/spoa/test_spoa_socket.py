"""spoa_example over real sockets without HAProxy: hostile bytes, unix listener, SIGTERM drain."""
import os
import socket
import stat
import struct
import tempfile
import time

import pytest

import kostest

EXAMPLE = kostest.build_path("spoa_example")
pytestmark = pytest.mark.skipif(not os.path.exists(EXAMPLE), reason=f"{EXAMPLE} not built")


def rs(b):
    return bytes([len(b)]) + b


def frame(t, sid, fid, payload):
    body = bytes([t]) + struct.pack(">I", 1) + bytes([sid, fid]) + payload
    return struct.pack(">I", len(body)) + body


HELLO = frame(1, 0, 0, rs(b"supported-versions") + b"\x08" + rs(b"2.0") + rs(b"max-frame-size") + b"\x03\xfc\xf0\x06"
              + rs(b"capabilities") + b"\x08" + rs(b"pipelining"))
NOTIFY = frame(3, 7, 1, rs(b"m") + b"\x01" + rs(b"a") + b"\x08" + rs(b"hi"))


def read_frame(s):
    hdr = b""
    while len(hdr) < 4:
        c = s.recv(4 - len(hdr))
        if not c:
            return None
        hdr += c
    (n,) = struct.unpack(">I", hdr)
    assert n <= 65536
    body = b""
    while len(body) < n:
        c = s.recv(n - len(body))
        assert c, "connection closed inside a frame"
        body += c
    return body


def start(procs, listen):
    a = kostest.Proc([EXAMPLE, "--listen", listen, "--threads", "2"], name="spoa_example")
    procs.append(a)
    deadline = time.monotonic() + 10
    while "listening" not in a.log():
        assert a.poll() is None, a.log()
        assert time.monotonic() < deadline, a.log()
        time.sleep(0.05)
    return a


def tcp_agent(procs):
    # free_port() is racy; a lost race shows as a start failure, so try a few ports.
    last = None
    for _ in range(5):
        port = kostest.free_port()
        try:
            return start(procs, f"127.0.0.1:{port}"), port
        except AssertionError as e:
            last = e
    raise RuntimeError(f"agent did not start: {last}")


def test_http_request_gets_disconnect_and_agent_survives(procs):
    a, port = tcp_agent(procs)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        f = read_frame(s)
        assert f[0] == 102  # AGENT-DISCONNECT
        assert b"status-code" in f
        assert s.recv(100) == b""  # and closed
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(HELLO + NOTIFY)
        assert read_frame(s)[0] == 101
        ack = read_frame(s)
        assert ack[0] == 103 and ack[5:7] == b"\x07\x01"
    assert a.stop() == 0


def test_unix_socket_listener(procs):
    d = tempfile.mkdtemp(prefix="kos-spoa-")
    path = os.path.join(d, "agent.sock")
    a = start(procs, f"unix:{path}")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660  # owner and group only, whatever the umask
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(HELLO + NOTIFY + NOTIFY)
        assert read_frame(s)[0] == 101
        assert read_frame(s)[0] == 103
        assert read_frame(s)[0] == 103
    assert a.stop() == 0
    assert not os.path.exists(path)  # removed on exit


def test_sigterm_drains_with_disconnect(procs):
    a, port = tcp_agent(procs)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(HELLO)
        assert read_frame(s)[0] == 101
        a.send_signal(15)
        f = read_frame(s)
        assert f is not None and f[0] == 102 and b"status-code\x03\x00" in f
        assert s.recv(100) == b""
    a.p.wait(timeout=10)
    assert a.p.returncode == 0
