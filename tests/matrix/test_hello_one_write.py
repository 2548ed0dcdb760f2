"""The agent's AGENT-HELLO leaves in one write, on every HAProxy of KOS_HAPROXY_BINS (issue 5).

HAProxy 3.1+ parses the agent's HELLO from what one read returned (docs/spop.md §5): a HELLO split over two
segments can fail the handshake there while 2.6 waits for the rest. The agent's write path is the SPOP library's
(spoa/spoa_server.c), which spoa_example uses unchanged, so spoa_example runs under strace here; HAProxy connects
to it twice over — an SPOP health check (`option spop-check`) and the SPOE filter of one HTTP request — and the
test then reads from strace's record that the first bytes written on every accepted connection were one whole
AGENT-HELLO frame: one syscall whose data starts with the 4-byte length, then frame type 101, and which carried at
least 4 + length bytes.
"""
import http.client
import os
import re
import shutil
import time

import pytest

import kostest

EXAMPLE = kostest.build_path("spoa_example")
STRACE = shutil.which("strace")
pytestmark = [pytest.mark.skipif(not os.path.exists(EXAMPLE), reason=f"{EXAMPLE} not built"),
              pytest.mark.skipif(STRACE is None, reason="strace not installed (scripts/deps.sh installs it)")]

AGENT_HELLO = 101

SPOE = """[ex]
spoe-agent ex-agent
    groups grp
    option var-prefix ex
    option set-on-error err
    timeout hello 5s
    timeout idle 30s
    timeout processing 10s
    use-backend spoe_agents

spoe-message msg
    args s=str(hello)

spoe-group grp
    messages msg
"""

CFG = """global
    nbthread 1
    stats socket {stats} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend fe
    bind 127.0.0.1:{port}
    filter spoe engine ex config {spoe}
    http-request send-spoe-group ex grp
    http-request return status 503 content-type text/plain lf-string "err=%[var(txn.ex.err)]" if {{ var(txn.ex.err) -m found }}
    http-request return status 200 content-type text/plain lf-string "%[var(txn.ex.s)]"

backend spoe_agents
    mode tcp
    timeout connect 2s
    timeout server 30s
    option spop-check
    server agent1 127.0.0.1:{agent_port} check inter 300ms rise 1 fall 1
"""

CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+)")
STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def parse_strace(text):
    """[(syscall, fd, bytes or None, return value)] in strace's order. Lines split by another thread's syscall
    ("<unfinished ...>" / "<... name resumed>") are joined and placed where the call finished."""
    pending, calls = {}, []
    for line in text.splitlines():
        pid, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest[:-len("<unfinished ...>")]
            continue
        m = re.match(r"<\.\.\. \w+ resumed>(.*)", rest)
        if m:
            rest = pending.pop(pid, "") + m.group(1)
        m = CALL.match(rest)
        if not m:
            continue  # signals, exits
        name, args, ret = m.group(1), m.group(2), int(m.group(3))
        fd = int(args.split(",", 1)[0]) if args[:1].isdigit() else -1
        data = None
        if name in ("write", "writev", "sendto", "sendmsg"):
            # -xx: every byte is \xHH; writev/sendmsg: the iov_base strings in order.
            data = b"".join(bytes.fromhex(s.replace("\\x", "")) for s in STRING.findall(args))
        calls.append((name, fd, data, ret))
    return calls


def first_writes(calls):
    """The first data-carrying syscall on each accepted connection: [(syscall, bytes written)]."""
    fresh, out = set(), []
    for name, fd, data, ret in calls:
        if name in ("accept", "accept4") and ret >= 0:
            fresh.add(ret)
        elif name == "close":
            fresh.discard(fd)
        elif data is not None and fd in fresh and ret > 0:
            fresh.discard(fd)
            out.append((name, data[:ret]))
    return out


def test_parse_strace_joins_and_orders():
    # The parser itself, on the shapes strace -f -xx prints (a split hello must be caught, not missed).
    text = "\n".join([
        '10 accept4(3, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK) = 7',
        '11 write(2, "\\x61", 1) = 1',
        '10 sendto(7, "\\x00\\x00\\x00\\x02\\x65\\x00", 6, MSG_DONTWAIT|MSG_NOSIGNAL, NULL, 0 <unfinished ...>',
        '11 accept4(3, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK) = 8',
        '10 <... sendto resumed>) = 6',
        '11 writev(8, [{iov_base="\\x00\\x00\\x00\\x02", iov_len=4}, {iov_base="\\x65\\x00", iov_len=2}], 2) = 4',
        '10 close(7) = 0',
        '--- SIGTERM {si_signo=SIGTERM} ---',
    ])
    assert first_writes(parse_strace(text)) == [("sendto", b"\x00\x00\x00\x02\x65\x00"),
                                                ("writev", b"\x00\x00\x00\x02")]


def test_agent_hello_in_one_write(haproxy_bin, procs, tmp_path):
    trace = tmp_path / "strace.txt"
    agent = None
    for _ in range(5):  # a free port can be taken by another run between probe and bind
        agent_port = kostest.free_port()
        # LeakSanitizer cannot run under ptrace; the other suites run spoa_example with it.
        agent = kostest.Proc([STRACE, "-f", "-xx", "-s", "65536", "-o", trace,
                              "-e", "trace=write,writev,sendto,sendmsg,accept,accept4,close",
                              EXAMPLE, "--listen", f"127.0.0.1:{agent_port}", "--threads", "2"],
                             env={"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}, name="spoa_example")
        procs.append(agent)
        try:
            kostest.wait_port(agent_port, proc=agent.p, timeout=30)
            break
        except (RuntimeError, TimeoutError):
            agent.stop()
    else:
        pytest.fail(f"spoa_example did not start:\n{agent.log()}")

    spoe = tmp_path / "spoe.conf"
    spoe.write_text(SPOE)
    stats = str(tmp_path / "stats.sock")
    for _ in range(5):
        port = kostest.free_port()
        cfg = CFG.format(port=port, spoe=spoe, agent_port=agent_port, stats=stats)
        ok, out = kostest.HAProxy.check(haproxy_bin, cfg)
        assert ok, out
        try:
            procs.append(kostest.HAProxy(haproxy_bin, cfg, wait_ports=[port]))
            break
        except (RuntimeError, TimeoutError):
            continue
    else:
        pytest.fail("HAProxy did not start")

    # One passed health check (a whole SPOP handshake of its own), bounded in time.
    deadline = time.monotonic() + 30
    while kostest.server_status(stats) != "UP" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kostest.server_status(stats) == "UP"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"hello")
    finally:
        c.close()

    assert agent.stop() is not None  # strace has written and closed its record once it exits
    firsts = first_writes(parse_strace(trace.read_text(errors="replace")))
    assert len(firsts) >= 2, firsts  # the health check's connection and the SPOE filter's
    for name, data in firsts:
        assert len(data) >= 5 and data[4] == AGENT_HELLO, (name, data[:16].hex())
        frame_len = int.from_bytes(data[:4], "big")
        assert len(data) >= 4 + frame_len, f"{name} wrote {len(data)} of the {4 + frame_len}-byte AGENT-HELLO"
