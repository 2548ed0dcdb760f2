"""SPOP wire codec for the python tests: varint, typed data, KV lists, messages, actions, frames.

One copy for the python peers that speak SPOP to or for HAProxy (tests/agent/spop_client.py plays HAProxy,
tests/matrix/spop_peer.py and tests/integration/spop_stub.py play the agent, tests/spoa/test_spoa_stress.py
and tests/security drive the C agent directly). The C library (spoa/) is the reference; this only has to be
right for the frames the tests exchange. Pure functions, no I/O except recv_exact(). Layout and varint as in
docs/spop.md §1-3.

Decoders take (buf, off) and return (value, new offset); they never read past len(buf) and raise WireError on
a short or malformed buffer. WireError is both a ValueError and an IndexError, so callers written against
either (the peers catch ValueError, the stub IndexError) keep catching it.
"""
import socket
import struct

HAPROXY_HELLO, HAPROXY_DISCONNECT, NOTIFY = 1, 2, 3
AGENT_HELLO, AGENT_DISCONNECT, ACK = 101, 102, 103
T_NULL, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64, T_IPV4, T_IPV6, T_STR, T_BIN = range(10)
FIN = 1
SCOPE_PROC, SCOPE_TXN = 0, 2
SCOPE_NAMES = {0: "proc.", 1: "sess.", 2: "", 3: "req.", 4: "res."}
ACT_SET_VAR, ACT_UNSET_VAR = 1, 2
MASK64 = (1 << 64) - 1


class WireError(ValueError, IndexError):
    pass


# ---- varint (not LEB128: see docs/spop.md §2) -------------------------------------------------------------------

def varint(v):
    if v < 240:
        return bytes([v])
    out = bytearray([(v & 0xFF) | 0xF0])
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v & 0xFF) | 0x80)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


def unvarint(buf, off):
    if off >= len(buf):
        raise WireError("varint past end")
    r = buf[off]
    off += 1
    if r < 240:
        return r, off
    shift = 4
    for _ in range(9):  # 10 bytes at most for 2^64-1
        if off >= len(buf):
            raise WireError("varint past end")
        b = buf[off]
        off += 1
        r += b << shift
        shift += 7
        if b < 128:
            return r, off
    raise WireError("varint too long")


# ---- strings and typed data ----------------------------------------------------------------------------------

def rawstr(s):
    """Length-prefixed bytes (str is UTF-8 encoded)."""
    b = s.encode() if isinstance(s, str) else bytes(s)
    return varint(len(b)) + b


def getstr(buf, off):
    n, off = unvarint(buf, off)
    if n > len(buf) - off:
        raise WireError("string past end")
    return bytes(buf[off:off + n]), off + n


def typed(v, unsigned=False):
    """None, bool, int, ("ipv4"|"ipv6", text) or str/bytes (sent as STRING). Ints go as INT64, or with
    unsigned=True as UINT32 when >= 0 (how HAProxy sends max-frame-size, and status-code in DISCONNECTs)."""
    if v is None:
        return bytes([T_NULL])
    if isinstance(v, bool):
        return bytes([T_BOOL | (0x10 if v else 0)])
    if isinstance(v, int):
        return bytes([T_UINT32 if unsigned and v >= 0 else T_INT64]) + varint(v & MASK64)
    if isinstance(v, tuple) and v[0] == "ipv4":
        return bytes([T_IPV4]) + socket.inet_pton(socket.AF_INET, v[1])
    if isinstance(v, tuple) and v[0] == "ipv6":
        return bytes([T_IPV6]) + socket.inet_pton(socket.AF_INET6, v[1])
    return bytes([T_STR]) + rawstr(v)


def untyped(buf, off, raw=False):
    """One typed value. INT32/INT64 come back signed, UINT32/UINT64 unsigned. STRING is text and addresses are
    their text form, unless raw=True: then both are the bytes on the wire. BINARY is always bytes."""
    if off >= len(buf):
        raise WireError("typed data past end")
    t = buf[off] & 0x0F
    flags = buf[off] & 0xF0
    off += 1
    if t == T_NULL:
        return None, off
    if t == T_BOOL:
        return bool(flags & 0x10), off
    if t in (T_INT32, T_INT64):
        v, off = unvarint(buf, off)
        return (v - (1 << 64) if v >= 1 << 63 else v), off
    if t in (T_UINT32, T_UINT64):
        return unvarint(buf, off)
    if t in (T_IPV4, T_IPV6):
        n, fam = (4, socket.AF_INET) if t == T_IPV4 else (16, socket.AF_INET6)
        if len(buf) - off < n:
            raise WireError("address past end")
        a = bytes(buf[off:off + n])
        return (a if raw else socket.inet_ntop(fam, a)), off + n
    if t in (T_STR, T_BIN):
        s, off = getstr(buf, off)
        return (s.decode(errors="replace") if t == T_STR and not raw else s), off
    raise WireError(f"unknown data type {t}")


def _name(b, raw):
    return b if raw else b.decode(errors="replace")


# ---- KV lists (HELLO, DISCONNECT), messages (NOTIFY), actions (ACK) -------------------------------------------

def kv(items, unsigned=False):
    """[(name, value)] -> KV list payload."""
    return b"".join(rawstr(k) + typed(v, unsigned) for k, v in items)


def kv_list(buf, off=0, raw=False):
    """KV list payload -> {name: value}; with raw=True names and values are bytes as in untyped()."""
    out = {}
    while off < len(buf):
        k, off = getstr(buf, off)
        v, off = untyped(buf, off, raw)
        out[_name(k, raw)] = v
    return out


def message(name, args, unsigned=False):
    """One NOTIFY message: name, nb-args, then (arg name, typed value) for each of args [(name, value)]."""
    return rawstr(name) + bytes([len(args)]) + kv(args, unsigned)


def messages(buf, off=0, raw=False):
    """NOTIFY payload -> {message name: {arg name: value}}."""
    out = {}
    while off < len(buf):
        name, off = getstr(buf, off)
        if off >= len(buf):
            raise WireError("nb-args past end")
        nargs = buf[off]
        off += 1
        args = {}
        for _ in range(nargs):
            k, off = getstr(buf, off)
            v, off = untyped(buf, off, raw)
            args[_name(k, raw)] = v
        out[_name(name, raw)] = args
    return out


def set_var(name, value, unsigned=False, scope=SCOPE_TXN):
    """One set-var action (3 args: scope, name, value)."""
    return bytes([ACT_SET_VAR, 3, scope]) + rawstr(name) + typed(value, unsigned)


def ack_vars(buf, off=0):
    """ACK payload -> [(name, value)] of its set-var actions in order (unset-var actions are skipped). A
    transaction variable is its bare name; another scope's is prefixed ("proc.sa")."""
    out = []
    while off < len(buf):
        if len(buf) - off < 3:
            raise WireError("action past end")
        act, scope = buf[off], buf[off + 2]
        off += 3  # action type, nb-args, scope
        name, off = getstr(buf, off)
        if act == ACT_SET_VAR:
            v, off = untyped(buf, off)
            out.append((SCOPE_NAMES.get(scope, f"scope{scope}.") + name.decode(errors="replace"), v))
    return out


# ---- frames --------------------------------------------------------------------------------------------------

def frame(ftype, sid, fid, payload, flags=FIN):
    """A whole frame with its length prefix (write it with one sendall)."""
    body = bytes([ftype]) + struct.pack(">I", flags) + varint(sid) + varint(fid) + payload
    return struct.pack(">I", len(body)) + body


def parse_frame(body):
    """A frame without its length prefix -> (type, flags, stream-id, frame-id, payload)."""
    if len(body) < 7:
        raise WireError(f"frame of {len(body)} bytes")
    (flags,) = struct.unpack(">I", body[1:5])
    sid, off = unvarint(body, 5)
    fid, off = unvarint(body, off)
    return body[0], flags, sid, fid, body[off:]


def split_frames(buf, max_len=65536):
    """Splits the whole frames off the front of buf: ([(type, stream-id, frame-id, payload)], rest). Every frame
    must carry FIN and a length in 7..max_len."""
    out = []
    while len(buf) >= 4:
        (n,) = struct.unpack(">I", buf[:4])
        if not 7 <= n <= max_len:
            raise WireError(f"bad frame length {n}")
        if len(buf) < 4 + n:
            break
        ftype, flags, sid, fid, payload = parse_frame(buf[4:4 + n])
        if not flags & FIN:
            raise WireError("frame without FIN")
        out.append((ftype, sid, fid, payload))
        buf = buf[4 + n:]
    return out, buf


def recv_exact(sock, n):
    """n bytes from a blocking socket, or None if the peer closed first."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf
