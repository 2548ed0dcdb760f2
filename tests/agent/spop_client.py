"""A minimal SPOP client that plays HAProxy towards the agent: HELLO, NOTIFY with the kos-auth message, ACK decode.

Only what the agent tests need; the C library (spoa/) is the reference implementation. One frame per sendall().
"""
import socket
import struct

HAPROXY_HELLO, HAPROXY_DISCONNECT, NOTIFY = 1, 2, 3
AGENT_HELLO, AGENT_DISCONNECT, ACK = 101, 102, 103
T_NULL, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64, T_IPV4, T_IPV6, T_STR, T_BIN = range(10)
FIN = 1


def varint(v):
    if v < 240:
        return bytes([v])
    out = [(v & 0xFF) | 0xF0]
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v & 0xFF) | 0x80)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


def unvarint(b, o):
    r = b[o]
    o += 1
    if r < 240:
        return r, o
    shift = 4
    while True:
        x = b[o]
        o += 1
        r += x << shift
        shift += 7
        if x < 128:
            return r, o


def rawstr(s):
    s = s.encode() if isinstance(s, str) else s
    return varint(len(s)) + s


def typed(v):
    if v is None:
        return bytes([T_NULL])
    if isinstance(v, bool):
        return bytes([T_BOOL | (0x10 if v else 0)])
    if isinstance(v, int):
        return bytes([T_INT64]) + varint(v)
    if isinstance(v, tuple) and v[0] == "ipv4":
        return bytes([T_IPV4]) + socket.inet_pton(socket.AF_INET, v[1])
    if isinstance(v, tuple) and v[0] == "ipv6":
        return bytes([T_IPV6]) + socket.inet_pton(socket.AF_INET6, v[1])
    return bytes([T_STR]) + rawstr(v)


def untyped(b, o):
    t = b[o] & 0x0F
    flags = b[o] & 0xF0
    o += 1
    if t == T_NULL:
        return None, o
    if t == T_BOOL:
        return bool(flags & 0x10), o
    if t in (T_INT32, T_INT64):
        v, o = unvarint(b, o)
        return (v - (1 << 64) if v >= 1 << 63 else v), o
    if t in (T_UINT32, T_UINT64):
        return unvarint(b, o)
    if t == T_IPV4:
        return socket.inet_ntop(socket.AF_INET, b[o:o + 4]), o + 4
    if t == T_IPV6:
        return socket.inet_ntop(socket.AF_INET6, b[o:o + 16]), o + 16
    n, o = unvarint(b, o)
    return b[o:o + n].decode("utf-8", "replace"), o + n


def frame(ftype, sid, fid, payload):
    body = bytes([ftype]) + struct.pack(">I", FIN) + varint(sid) + varint(fid) + payload
    return struct.pack(">I", len(body)) + body


class Client:
    def __init__(self, host, port, timeout=10.0):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.settimeout(timeout)
        hello = (rawstr("supported-versions") + typed("2.0") + rawstr("max-frame-size") +
                 bytes([T_UINT32]) + varint(16380) + rawstr("capabilities") + typed("pipelining") +
                 rawstr("engine-id") + typed("agent-test"))
        self.s.sendall(frame(HAPROXY_HELLO, 0, 0, hello))
        ftype, _, _, _ = self._read()
        if ftype != AGENT_HELLO:
            raise RuntimeError(f"expected AGENT-HELLO, got frame type {ftype}")
        self.sid = 0

    def _recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise ConnectionError("agent closed the connection")
            b += c
        return b

    def _read(self):
        (n,) = struct.unpack(">I", self._recv(4))
        b = self._recv(n)
        ftype = b[0]
        o = 5
        sid, o = unvarint(b, o)
        fid, o = unvarint(b, o)
        return ftype, sid, fid, b[o:]

    def notify(self, args, msg_name="kos-auth"):
        """Sends one NOTIFY with one message (args: list of (name, value)); returns the ACK's set-vars as a
        list of (name, value) in order."""
        self.sid += 1
        payload = rawstr(msg_name) + bytes([len(args)])
        for k, v in args:
            payload += rawstr(k) + typed(v)
        self.s.sendall(frame(NOTIFY, self.sid, 1, payload))
        ftype, sid, fid, p = self._read()
        if ftype != ACK or sid != self.sid:
            raise RuntimeError(f"expected ACK for stream {self.sid}, got type {ftype} stream {sid}")
        out, o = [], 0
        while o < len(p):
            act, nargs = p[o], p[o + 1]
            o += 2
            if act == 1:  # set-var: scope, name, value
                o += 1
                n, o = unvarint(p, o)
                name = p[o:o + n].decode()
                o += n
                v, o = untyped(p, o)
                out.append((name, v))
            else:  # unset-var: scope, name
                o += 1
                n, o = unvarint(p, o)
                o += n
        return out

    def auth(self, authorization, src=("ipv4", "192.0.2.10"), imp=None):
        """The contract's three arguments; returns the ACK's variables as a dict."""
        return dict(self.notify([("auth", authorization), ("src", src), ("imp", imp)]))

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
