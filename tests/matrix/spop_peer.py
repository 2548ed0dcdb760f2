"""A small SPOP agent in python for the HAProxy version-matrix tests: it answers HELLOs and NOTIFYs the way
`conf/CONTRACT.md` says the real agent does (status 0 + user for `Bearer good…`, status 1 otherwise), and records
what HAProxy put on the wire — per connection: the HELLO's key/values, every NOTIFY's stream and frame ids, how
many NOTIFYs were in flight at once, whether HAProxy sent a DISCONNECT or closed.

It listens on 127.0.0.1 on a port picked by the kernel. Every frame is written with one sendall() of a small
buffer (HAProxy 3.2.x resets connections whose AGENT-HELLO arrives in pieces). Not a reference implementation:
the C library is; this peer only has to be correct for the frames HAProxy sends in these tests. The codec is
tests/spopwire.py.
"""
import socket
import struct
import threading
import time

from spopwire import (ACK, AGENT_DISCONNECT, AGENT_HELLO, HAPROXY_DISCONNECT, HAPROXY_HELLO, NOTIFY, frame, kv,
                      kv_list, messages, parse_frame, recv_exact)
from spopwire import set_var as _set_var

MAX_FRAME = 16380


def set_var(name, value):
    return _set_var(name, value, unsigned=True)  # non-negative ints as UINT32


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

    def _serve(self, s, c):
        wlock = threading.Lock()
        try:
            while not self.stopping:
                head = recv_exact(s, 4)
                if head is None:
                    with self.lock:
                        c.closed_by_haproxy = not self.stopping
                    return
                (n,) = struct.unpack(">I", head)
                if n > MAX_FRAME or n < 7:
                    raise ValueError(f"frame length {n}")
                body = recv_exact(s, n)
                if body is None:
                    return
                ftype, _, sid, fid, payload = parse_frame(body)
                if ftype == HAPROXY_HELLO:
                    hello = kv_list(payload)
                    with self.lock:
                        c.hello = hello
                    size = min(int(hello.get("max-frame-size", MAX_FRAME)), MAX_FRAME)
                    with wlock:
                        s.sendall(frame(AGENT_HELLO, 0, 0, kv([("version", "2.0"), ("max-frame-size", size),
                                                               ("capabilities", "pipelining")], unsigned=True)))
                    if hello.get("healthcheck"):
                        return
                elif ftype == HAPROXY_DISCONNECT:
                    with self.lock:
                        c.disconnect = kv_list(payload)
                    payload = kv([("status-code", 0), ("message", "normal")], unsigned=True)
                    try:
                        with wlock:
                            s.sendall(frame(AGENT_DISCONNECT, 0, 0, payload))
                    except OSError:
                        pass  # 3.0 may close right after its DISCONNECT, without waiting for ours
                    return
                elif ftype == NOTIFY:
                    msgs = messages(payload)
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
