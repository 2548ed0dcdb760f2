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
checks, and writes each frame in one call. The codec is tests/spopwire.py.

Run: spop_stub.py --port N   (prints {"ready": true, "port": N} when listening)
"""
import argparse
import asyncio
import base64
import json
import os
import signal
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:  # run as a script: tests/ (for spopwire) is not on the path yet
    sys.path.insert(0, TESTS)
from spopwire import (ACK, AGENT_DISCONNECT, AGENT_HELLO, HAPROXY_DISCONNECT, HAPROXY_HELLO, NOTIFY,  # noqa: E402
                      SCOPE_PROC, SCOPE_TXN, frame, kv, kv_list, messages, parse_frame, set_var)

MAX_FRAME = 16380


def decide(auth, imp, xk=None, sv=None):
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
        if spec.get("echo_args"):  # an allow whose user shows the xk and sv arguments HAProxy sent
            text = lambda b: b.decode() if isinstance(b, bytes) else repr(b)  # noqa: E731
            v.update({"user": f"xk={text(xk)} sv={text(sv)}"})
        return v, float(spec.get("delay", 0)), bool(spec.get("noreply"))
    return {"status": 1, "reason": "not a stub token"}, 0.0, False


def stub_token(vars_, delay=0.0, noreply=False, echo_imp=False, echo_args=False):
    spec = {"vars": vars_, "delay": delay, "noreply": noreply, "echo_imp": echo_imp, "echo_args": echo_args}
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
            vars_, delay, noreply = decide(args.get(b"auth"), args.get(b"imp"), args.get(b"xk"), args.get(b"sv"))
        if noreply:
            return
        if delay:
            await asyncio.sleep(delay)
        # The verdict goes last so that nothing after it can be lost (HAProxy stops at a malformed action).
        items = [(k, v) for k, v in vars_.items() if k != "status"]
        if "status" in vars_:
            items.append(("status", vars_["status"]))
        # "proc.<name>" is a process-scope variable (the service-account token), every other a transaction's
        await send(frame(ACK, sid, fid, b"".join(
            set_var(k[5:], v, scope=SCOPE_PROC) if k.startswith("proc.") else set_var(k, v, scope=SCOPE_TXN)
            for k, v in items)))

    tasks = set()
    try:
        while True:
            hdr = await reader.readexactly(4)
            n = int.from_bytes(hdr, "big")
            if n > MAX_FRAME:
                break
            b = await reader.readexactly(n)
            ftype, _, sid, fid, payload = parse_frame(b)
            if ftype == HAPROXY_HELLO:
                items = kv_list(payload, raw=True)
                mfs = min(int(items.get(b"max-frame-size", MAX_FRAME)), MAX_FRAME)
                await send(frame(AGENT_HELLO, 0, 0, kv([("version", "2.0"), ("max-frame-size", mfs),
                                                        ("capabilities", "pipelining")])))
                if items.get(b"healthcheck"):
                    break
            elif ftype == HAPROXY_DISCONNECT:
                await send(frame(AGENT_DISCONNECT, 0, 0, kv([("status-code", 0), ("message", "normal")])))
                break
            elif ftype == NOTIFY:
                msgs = messages(payload, raw=True)
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
