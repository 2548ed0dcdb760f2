#!/usr/bin/python3
"""A scripted SPOP agent: lets the suite drive conf/haproxy.cfg through verdicts the real agent never gives.

The real agent (build/kube-oidc-spoa) only returns well-formed verdicts, so the config's fail-closed branches
(unknown status, an allow without user or sa, bad extras, more groups than lines, no answer) can only be reached
with an agent that does what the test says. The test puts the wanted answer in the token itself:

    Authorization: Bearer stub:<base64url(JSON)>
    JSON = {"vars": {"status": 0, "user": "alice", "ng": 1, "g0": "dev", ...},   # ints -> INT64, str -> STRING
            "delay": 0.0,                                                      # seconds before the ACK
            "noreply": false}                                                  # never ACK (processing timeout)

Anything else gets status 1 / reason "not a stub token". With {"echo_imp": true} the verdict shows the `imp`
argument received: status 2 (403) if it was boolean true, else status 1 (401). It speaks SPOP 2.0 with pipelining, answers health
checks, and writes each frame in one call.

Run: spop_stub.py --port N   (prints {"ready": true, "port": N} when listening)
"""
import argparse
import asyncio
import base64
import json
import signal
import sys

T_HELLO, T_DISCONNECT, T_NOTIFY = 1, 2, 3
T_AGENT_HELLO, T_AGENT_DISCONNECT, T_ACK = 101, 102, 103
MAX_FRAME = 16380


def venc(v):
    if v < 240:
        return bytes([v])
    out = bytearray([(v & 0xFF) | 0xF0])
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v & 0xFF) | 0x80)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


def vdec(b, i):
    r = b[i]
    i += 1
    if r < 240:
        return r, i
    shift = 4
    for _ in range(9):
        c = b[i]
        i += 1
        r += c << shift
        shift += 7
        if c < 128:
            return r, i
    raise ValueError("varint too long")


def rstr(b, i):
    n, i = vdec(b, i)
    if n > len(b) - i:
        raise ValueError("string past end")
    return b[i:i + n], i + n


def typed(b, i):
    t = b[i]
    i += 1
    kind = t & 0x0F
    if kind == 0:
        return None, i
    if kind == 1:
        return bool(t & 0x10), i
    if kind in (2, 3, 4, 5):
        return vdec(b, i)
    if kind == 6:
        return b[i:i + 4], i + 4
    if kind == 7:
        return b[i:i + 16], i + 16
    if kind in (8, 9):
        return rstr(b, i)
    raise ValueError("bad type")


def tenc(v):
    if v is None:
        return b"\x00"
    if isinstance(v, bool):
        return b"\x11" if v else b"\x01"
    if isinstance(v, int):
        return b"\x04" + venc(v & 0xFFFFFFFFFFFFFFFF)
    s = v.encode() if isinstance(v, str) else bytes(v)
    return b"\x08" + venc(len(s)) + s


def kv(items):
    out = b""
    for k, v in items:
        out += venc(len(k)) + k.encode() + tenc(v)
    return out


def frame(ftype, sid, fid, payload):
    body = bytes([ftype]) + (1).to_bytes(4, "big") + venc(sid) + venc(fid) + payload
    return len(body).to_bytes(4, "big") + body


def decide(auth, imp):
    """The (vars, delay, noreply) asked for by the token."""
    if isinstance(auth, bytes) and auth.startswith(b"Bearer stub:"):
        raw = auth[len(b"Bearer stub:"):]
        try:
            spec = json.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
        except (ValueError, TypeError):
            return {"status": 1, "reason": "stub: bad spec"}, 0.0, False
        v = dict(spec.get("vars", {}))
        if spec.get("echo_imp"):
            v = {"status": 2 if imp is True else 1, "reason": "imp=" + repr(imp)}
        return v, float(spec.get("delay", 0)), bool(spec.get("noreply"))
    return {"status": 1, "reason": "not a stub token"}, 0.0, False


def stub_token(vars_, delay=0.0, noreply=False, echo_imp=False):
    spec = {"vars": vars_, "delay": delay, "noreply": noreply, "echo_imp": echo_imp}
    return "stub:" + base64.urlsafe_b64encode(json.dumps(spec).encode()).decode().rstrip("=")


async def conn(reader, writer):
    wlock = asyncio.Lock()

    async def send(data):
        async with wlock:
            writer.write(data)
            await writer.drain()

    async def answer(sid, fid, msgs):
        args = msgs.get(b"kos-auth")
        if args is None:
            vars_, delay, noreply = {"status": 4, "reason": "no kos-auth message"}, 0.0, False
        else:
            vars_, delay, noreply = decide(args.get(b"auth"), args.get(b"imp"))
        if noreply:
            return
        if delay:
            await asyncio.sleep(delay)
        # The verdict goes last so that nothing after it can be lost (HAProxy stops at a malformed action).
        items = [(k, v) for k, v in vars_.items() if k != "status"]
        if "status" in vars_:
            items.append(("status", vars_["status"]))
        payload = b""
        for k, v in items:
            payload += b"\x01\x03\x02" + venc(len(k)) + k.encode() + tenc(v)
        await send(frame(T_ACK, sid, fid, payload))

    tasks = set()
    try:
        while True:
            hdr = await reader.readexactly(4)
            n = int.from_bytes(hdr, "big")
            if n > MAX_FRAME:
                break
            b = await reader.readexactly(n)
            ftype = b[0]
            i = 5
            sid, i = vdec(b, i)
            fid, i = vdec(b, i)
            if ftype == T_HELLO:
                items = {}
                while i < len(b):
                    k, i = rstr(b, i)
                    v, i = typed(b, i)
                    items[k] = v
                mfs = min(int(items.get(b"max-frame-size", MAX_FRAME)), MAX_FRAME)
                await send(frame(T_AGENT_HELLO, 0, 0, kv([("version", "2.0"), ("max-frame-size", mfs),
                                                           ("capabilities", "pipelining")])))
                if items.get(b"healthcheck"):
                    break
            elif ftype == T_DISCONNECT:
                await send(frame(T_AGENT_DISCONNECT, 0, 0, kv([("status-code", 0), ("message", "normal")])))
                break
            elif ftype == T_NOTIFY:
                msgs = {}
                while i < len(b):
                    name, i = rstr(b, i)
                    nargs = b[i]
                    i += 1
                    args = {}
                    for _ in range(nargs):
                        an, i = rstr(b, i)
                        av, i = typed(b, i)
                        args[an] = av
                    msgs[name] = args
                t = asyncio.ensure_future(answer(sid, fid, msgs))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
        pass
    finally:
        for t in tasks:
            t.cancel()
        writer.close()


async def amain(port):
    srv = await asyncio.start_server(conn, "127.0.0.1", port)
    print(json.dumps({"ready": True, "port": srv.sockets[0].getsockname()[1]}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with srv:
        await stop.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    asyncio.run(amain(a.port))


if __name__ == "__main__":
    sys.exit(main())
