"""A small SPOP agent in python for the HAProxy version-matrix tests: it answers HELLOs and NOTIFYs the way
`conf/CONTRACT.md` says the real agent does (status 0 + user for `Bearer good…`, status 1 otherwise), and records
what HAProxy put on the wire — per connection: the HELLO's key/values, every NOTIFY's stream and frame ids, how
many NOTIFYs were in flight at once, whether HAProxy sent a DISCONNECT or closed.

It listens on 127.0.0.1 on a port picked by the kernel. Every frame is written with one sendall() of a small
buffer (HAProxy 3.2.x resets connections whose AGENT-HELLO arrives in pieces). Not a reference implementation:
the C library is; this peer only has to be correct for the frames HAProxy sends in these tests.
"""
import socket
import struct
import threading
import time

HAPROXY_HELLO, HAPROXY_DISCONNECT, NOTIFY = 1, 2, 3
AGENT_HELLO, AGENT_DISCONNECT, ACK = 101, 102, 103
T_NULL, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64, T_IPV4, T_IPV6, T_STR, T_BIN = range(10)
SCOPE_TXN = 2
MAX_FRAME = 16380


def enc_varint(v):
    if v < 240:
        return bytes([v])
    out = [(v & 0xFF) | 0xF0]
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v & 0xFF) | 0x80)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


def dec_varint(buf, off):
    if off >= len(buf):
        raise ValueError("varint past end")
    r = buf[off]
    off += 1
    if r < 240:
        return r, off
    shift = 4
    for _ in range(9):
        if off >= len(buf):
            raise ValueError("varint past end")
        b = buf[off]
        off += 1
        r += b << shift
        shift += 7
        if b < 128:
            return r, off
    raise ValueError("varint too long")


def enc_str(s):
    b = s.encode() if isinstance(s, str) else s
    return enc_varint(len(b)) + b


def dec_str(buf, off):
    n, off = dec_varint(buf, off)
    if n > len(buf) - off:
        raise ValueError("string past end")
    return bytes(buf[off:off + n]), off + n


def enc_typed(v):
    if v is None:
        return bytes([T_NULL])
    if isinstance(v, bool):
        return bytes([T_BOOL | (0x10 if v else 0)])
    if isinstance(v, int):
        return bytes([T_UINT32 if v >= 0 else T_INT64]) + enc_varint(v & 0xFFFFFFFFFFFFFFFF)
    return bytes([T_STR]) + enc_str(v)


def dec_typed(buf, off):
    if off >= len(buf):
        raise ValueError("typed data past end")
    t = buf[off] & 0x0F
    flags = buf[off] & 0xF0
    off += 1
    if t == T_NULL:
        return None, off
    if t == T_BOOL:
        return bool(flags & 0x10), off
    if t in (T_INT32, T_UINT32, T_INT64, T_UINT64):
        return dec_varint(buf, off)
    if t == T_IPV4:
        if len(buf) - off < 4:
            raise ValueError("ipv4 past end")
        return socket.inet_ntop(socket.AF_INET, bytes(buf[off:off + 4])), off + 4
    if t == T_IPV6:
        if len(buf) - off < 16:
            raise ValueError("ipv6 past end")
        return socket.inet_ntop(socket.AF_INET6, bytes(buf[off:off + 16])), off + 16
    if t in (T_STR, T_BIN):
        s, off = dec_str(buf, off)
        return (s.decode(errors="replace") if t == T_STR else s), off
    raise ValueError(f"unknown data type {t}")


def frame(ftype, sid, fid, payload):
    body = bytes([ftype]) + struct.pack(">I", 1) + enc_varint(sid) + enc_varint(fid) + payload
    return struct.pack(">I", len(body)) + body


def kv_list(buf, off):
    out = {}
    while off < len(buf):
        k, off = dec_str(buf, off)
        v, off = dec_typed(buf, off)
        out[k.decode(errors="replace")] = v
    return out


def messages(buf, off):
    """NOTIFY payload -> {message name: {arg name: value}}."""
    out = {}
    while off < len(buf):
        name, off = dec_str(buf, off)
        if off >= len(buf):
            raise ValueError("nb-args past end")
        nargs = buf[off]
        off += 1
        args = {}
        for _ in range(nargs):
            k, off = dec_str(buf, off)
            v, off = dec_typed(buf, off)
            args[k.decode(errors="replace")] = v
        out[name.decode(errors="replace")] = args
    return out


def set_var(name, value):
    return bytes([1, 3, SCOPE_TXN]) + enc_str(name) + enc_typed(value)


class Conn:
    """What one HAProxy connection did; read by the tests once the peer is stopped or quiet."""

    def __init__(self, n):
        self.n = n
        self.hello = None
        self.notifies = []        # (stream_id, frame_id, {message: args})
        self.inflight = 0
        self.max_inflight = 0
        self.disconnect = None    # HAPROXY-DISCONNECT key/values, if HAProxy sent one
        self.closed_by_haproxy = False
        self.opened = time.monotonic()
        self.closed = None


class Peer:
    """SPOP agent on 127.0.0.1:<port>. hold_until=N keeps every ACK back until N NOTIFYs are in flight in total
    (or hold_max seconds passed), so a test can see how many streams HAProxy puts on one connection."""

    def __init__(self, hold_until=0, hold_max=5.0):
        self.hold_until = hold_until
        self.hold_max = hold_max
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.conns = []
        self.received = 0
        self.errors = []
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        self.stopping = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    # -- lifecycle
    def stop(self):
        """Closes the listener and every connection (like a killed agent); joins the threads (bounded)."""
        self.stopping = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            socks = list(self.socks)
            self.cond.notify_all()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait_for(self, pred, timeout=10.0):
        """Waits (bounded) until pred(self) is true; returns its last value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred(self) and time.monotonic() < deadline:
                self.cond.wait(timeout=0.05)
            return pred(self)

    # -- internals
    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                c = Conn(len(self.conns))
                self.conns.append(c)
                self.socks.append(s)
            t = threading.Thread(target=self._serve, args=(s, c), daemon=True)
            self.threads.append(t)
            t.start()

    def _recv_exact(self, s, n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self, s, c):
        wlock = threading.Lock()
        try:
            while not self.stopping:
                head = self._recv_exact(s, 4)
                if head is None:
                    with self.lock:
                        c.closed_by_haproxy = not self.stopping
                    return
                (n,) = struct.unpack(">I", head)
                if n > MAX_FRAME or n < 7:
                    raise ValueError(f"frame length {n}")
                body = self._recv_exact(s, n)
                if body is None:
                    return
                ftype = body[0]
                sid, off = dec_varint(body, 5)
                fid, off = dec_varint(body, off)
                if ftype == HAPROXY_HELLO:
                    kv = kv_list(body, off)
                    with self.lock:
                        c.hello = kv
                    size = min(int(kv.get("max-frame-size", MAX_FRAME)), MAX_FRAME)
                    payload = (enc_str("version") + enc_typed("2.0") + enc_str("max-frame-size")
                               + bytes([T_UINT32]) + enc_varint(size)
                               + enc_str("capabilities") + enc_typed("pipelining"))
                    with wlock:
                        s.sendall(frame(AGENT_HELLO, 0, 0, payload))
                    if kv.get("healthcheck"):
                        return
                elif ftype == HAPROXY_DISCONNECT:
                    with self.lock:
                        c.disconnect = kv_list(body, off)
                    payload = enc_str("status-code") + bytes([T_UINT32]) + enc_varint(0) + \
                        enc_str("message") + enc_typed("normal")
                    try:
                        with wlock:
                            s.sendall(frame(AGENT_DISCONNECT, 0, 0, payload))
                    except OSError:
                        pass  # 3.0 may close right after its DISCONNECT, without waiting for ours
                    return
                elif ftype == NOTIFY:
                    msgs = messages(body, off)
                    with self.lock:
                        c.notifies.append((sid, fid, msgs))
                        c.inflight += 1
                        c.max_inflight = max(c.max_inflight, c.inflight)
                        self.received += 1
                        self.cond.notify_all()
                    t = threading.Thread(target=self._answer, args=(s, wlock, c, sid, fid, msgs), daemon=True)
                    self.threads.append(t)
                    t.start()
        except (OSError, ValueError) as e:
            if not self.stopping:
                with self.lock:
                    self.errors.append(f"conn {c.n}: {e}")
        finally:
            with self.lock:
                c.closed = time.monotonic()
                self.cond.notify_all()
            s.close()

    def _answer(self, s, wlock, c, sid, fid, msgs):
        if self.hold_until:
            deadline = time.monotonic() + self.hold_max
            with self.lock:
                while self.received < self.hold_until and time.monotonic() < deadline and not self.stopping:
                    self.cond.wait(timeout=0.05)
        args = msgs.get("kos-auth")
        if args is None:
            actions = set_var("reason", "no kos-auth message") + set_var("status", 4)
        elif isinstance(args.get("auth"), str) and args["auth"].startswith("Bearer good"):
            actions = set_var("user", args["auth"][len("Bearer "):]) + set_var("status", 0)
        else:
            actions = set_var("reason", "bad token") + set_var("status", 1)
        with self.lock:
            c.inflight -= 1
            self.cond.notify_all()
        try:
            with wlock:
                s.sendall(frame(ACK, sid, fid, actions))
        except OSError:
            pass
