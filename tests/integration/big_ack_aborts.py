#!/usr/bin/python3
"""By hand, not in `make test`: abandoned requests against the shipped configuration with the worst-case ACK of
test_big_ack_stress.py — the case pipelining-off does not cover (docs/spop.md §10, bench/big-ack-stall.md).

    /usr/bin/python3 tests/integration/big_ack_aborts.py HAPROXY [RUNS=5] [SECS=5] [CLIENTS=8] [--pipelining]
    env: KOS_ABORT_EXTRA_LEN (bytes per extra value, default 250), KOS_ABORT_GROUPS_PREFIX (default the test's)

Each run starts HAProxy with conf/ as shipped (or pipelining forced on) beside the test's agent, and for SECS
seconds CLIENTS threads open a TLS connection, send five requests with the token and reset the connection after
each, so HAProxy abandons SPOE streams whose ACKs are still to come; a light wrk (2 connections) runs beside them.
Prints per run the requests, the SPOE errors of requests the client did not abandon (1 = timeout: a request
stuck on a wedged connection) and the SPOP connections left wedged (`show fd`: DFULL and a full demux buffer).
"""
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, ".."), os.path.join(HERE, "..", "tools")]
import test_big_ack_stress as t  # noqa: E402


def storm(port, token, secs, clients):
    """Runs in a child process (python3 big_ack_aborts.py --storm ...)."""
    req = f"GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    done = [0]

    def loop():
        end = time.monotonic() + secs
        while time.monotonic() < end:
            try:
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
                for _ in range(5):
                    s.sendall(req)
                    time.sleep(random.random() * 0.002)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
                s.close()
                done[0] += 1
            except OSError:
                pass
    ts = [threading.Thread(target=loop) for _ in range(clients)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    print("connections reset:", done[0], flush=True)


def main():
    if sys.argv[1] == "--storm":
        storm(int(sys.argv[2]), open(sys.argv[3]).read().strip(), float(sys.argv[4]), int(sys.argv[5]))
        return
    args = [a for a in sys.argv[1:] if a != "--pipelining"]
    hap = args[0]
    runs, secs, clients = (int(args[i]) if len(args) > i else d for i, d in ((1, 5), (2, 5), (3, 8)))
    t.EXTRA_VALUE_LEN = int(os.environ.get("KOS_ABORT_EXTRA_LEN", t.EXTRA_VALUE_LEN))
    t.GROUPS_PREFIX = os.environ.get("KOS_ABORT_GROUPS_PREFIX", t.GROUPS_PREFIX)
    t.CONNS = 2
    text = t.shipped_spoe()
    if "--pipelining" in sys.argv:
        text = t.PIPELINING_OFF.sub("", text)
    w = t.World()
    try:
        w.start()
        tok = os.path.join(w.dir, "token")
        with open(tok, "w") as f:
            f.write(w.token)
        for _ in range(runs):
            res = t.run_load(w, hap, tempfile.mkdtemp(dir=w.dir), text, secs, alongside=lambda port: subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--storm", str(port), tok, str(secs), str(clients)]))
            errs = {e: res["spoe_errors"].count(e) for e in sorted(set(res["spoe_errors"]))}
            print(f"{res['version']} ACK {res['ack_bytes']:.0f} B: wrk {res['requests']} requests, "
                  f"{res['non2xx']} non-2xx; logged {res['logged']}, SPOE errors {errs}; "
                  f"wedged connections {len(res['wedged'])}", flush=True)
    finally:
        w.stop()


if __name__ == "__main__":
    main()
