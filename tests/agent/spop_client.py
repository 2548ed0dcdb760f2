"""A minimal SPOP client that plays HAProxy towards the agent: HELLO, NOTIFY with the kos-auth message, ACK decode.

Only what the agent tests need; the C library (spoa/) is the reference implementation. One frame per sendall().
The codec is tests/spopwire.py; its names used by other suites (rawstr, typed, untyped, frame, NOTIFY, ACK…) are
re-exported here.
"""
import socket
import struct

from spopwire import (ACK, AGENT_DISCONNECT, AGENT_HELLO, FIN, HAPROXY_DISCONNECT, HAPROXY_HELLO,  # noqa: F401
                      NOTIFY, T_BIN, T_BOOL, T_INT32, T_INT64, T_IPV4, T_IPV6, T_NULL, T_STR, T_UINT32,
                      T_UINT64, ack_vars, frame, kv, message, parse_frame, rawstr, recv_exact, typed, untyped,
                      unvarint, varint)


class Client:
    def __init__(self, host, port, timeout=10.0):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.settimeout(timeout)
        hello = kv([("supported-versions", "2.0"), ("max-frame-size", 16380), ("capabilities", "pipelining"),
                    ("engine-id", "agent-test")], unsigned=True)
        self.s.sendall(frame(HAPROXY_HELLO, 0, 0, hello))
        ftype, _, _, _ = self._read()
        if ftype != AGENT_HELLO:
            raise RuntimeError(f"expected AGENT-HELLO, got frame type {ftype}")
        self.sid = 0

    def _recv(self, n):
        b = recv_exact(self.s, n)
        if b is None:
            raise ConnectionError("agent closed the connection")
        return b

    def _read(self):
        (n,) = struct.unpack(">I", self._recv(4))
        ftype, _, sid, fid, payload = parse_frame(self._recv(n))
        return ftype, sid, fid, payload

    def notify(self, args, msg_name="kos-auth"):
        """Sends one NOTIFY with one message (args: list of (name, value)); returns the ACK's set-vars as a
        list of (name, value) in order."""
        self.sid += 1
        self.s.sendall(frame(NOTIFY, self.sid, 1, message(msg_name, args)))
        ftype, sid, fid, p = self._read()
        if ftype != ACK or sid != self.sid:
            raise RuntimeError(f"expected ACK for stream {self.sid}, got type {ftype} stream {sid}")
        return ack_vars(p)

    def auth(self, authorization, src=("ipv4", "192.0.2.10"), imp=None):
        """The contract's three arguments; returns the ACK's variables as a dict."""
        return dict(self.notify([("auth", authorization), ("src", src), ("imp", imp)]))

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
