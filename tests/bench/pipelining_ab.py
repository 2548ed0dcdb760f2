#!/usr/bin/python3
"""What SPOP pipelining would buy on HAProxy 3.1+ with small ACKs (issue 16): B3 and B4 of `make bench`
(tests/bench/bench_kos.py) run back to back with conf/spoe-kos.conf as shipped (`no option pipelining` on 3.1+) and
with that line removed, on each HAProxy given. Figures only; never fails on speed.

    /usr/bin/python3 tests/bench/pipelining_ab.py [--haproxy BIN]... [--rounds N] [--secs S] [--conns C]
                                                  [--nbthread N] [--build DIR] [--syscalls]

B3: the SPOE round trip with the shipped message and the no-op agent (spoa_example --noop). B4: the shipped
frontend rules with kube-oidc-spoa answering from its cache (USERS users, two short groups each: the typical
~150-250-byte allow ACK). Per run: wrk's rate, HAProxy's and the agent's CPU per request (from /proc), and for B4
the SPOP connections the agent accepted and the bytes per ACK; with --syscalls, B4's system calls per request of
the agent and of HAProxy (strace -c), which unlike the rates do not depend on how busy the machine is. The pipelined variant is safe here only because
every ACK is small (20 x ~250 B << tune.bufsize): that is not a configuration to ship (docs/spop.md §10).

Everything on 127.0.0.1, ports picked at run time, every run bounded; each process started here is stopped by its pid.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import kosstack  # noqa: E402
import kostest  # noqa: E402
import bench_kos  # noqa: E402  (tests/bench: the bench's HAProxy config pieces)
from issuer import TestIssuer  # noqa: E402

USERS = 200
PIPELINING_OFF = re.compile(r"^\.if version_atleast\(3\.1\)\n\s+no option pipelining\n\.endif\n", re.M)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# Processes, ports and CPU time as the main bench does them.
start, stop_all, free_port, cpu_s = bench_kos.start, bench_kos.stop_all, bench_kos.free_port, bench_kos.cpu_s


def wait_http(url, proc, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def metrics(probe):
    with urllib.request.urlopen(f"http://127.0.0.1:{probe}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+) ([0-9.e+]+)$", text, re.M)}


def haproxy_cfg(tmp, ports, agent_port, noop_port, nbthread):
    with open(os.path.join(ROOT, "conf", "haproxy.cfg")) as f:
        shipped = f.read()
    with open(os.path.join(ROOT, "conf", "spoe-kos.conf")) as f:
        spoe = f.read()
    assert PIPELINING_OFF.search(spoe), "conf/spoe-kos.conf has no 'no option pipelining' block for 3.1+"
    for agent in ("hit", "noop"):
        for mode, text in (("off", spoe), ("on", PIPELINING_OFF.sub("", spoe))):
            with open(os.path.join(tmp, f"spoe-{agent}-{mode}.conf"), "w") as f:
                f.write(text.replace("use-backend kos_agents", f"use-backend be_agent_{agent}"))
    front = kostest.haproxy_section(shipped, "frontend kos_front")

    def b4(mode):
        return bench_kos.bench_frontend(f"fe_b4_{mode}", front, ports["B4-" + mode], f"{tmp}/spoe-hit-{mode}.conf")

    def b3(mode):
        return (f"frontend fe_b3_{mode}\n    bind 127.0.0.1:{ports['B3-' + mode]}\n"
                f"    filter spoe engine kos config {tmp}/spoe-noop-{mode}.conf\n"
                "    http-request send-spoe-group kos kos-auth\n    default_backend be_up\n")

    agents = kostest.haproxy_section(shipped, "backend kos_agents")
    verdict = kostest.haproxy_section(shipped, "backend kos_verdict")
    return bench_kos.haproxy_head(shipped, ports["up"], nbthread=nbthread) + f"""
{b3("off")}
{b3("on")}
{b4("off")}
{b4("on")}
backend be_agent_hit
{agents.replace('"${KOS_AGENT}"', f"127.0.0.1:{agent_port}")}
backend be_agent_noop
{agents.replace('"${KOS_AGENT}"', f"127.0.0.1:{noop_port}")}
{"backend kos_verdict" + chr(10) + verdict if verdict else ""}
"""


def wrk(port, tokens, secs, conns):
    r = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", f"{secs:g}s", "-s",
                        os.path.join(HERE, "tokens.lua"), f"http://127.0.0.1:{port}/", "--", tokens, "2"],
                       capture_output=True, text=True, timeout=secs + 30)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    n = re.search(r"(\d+) requests in", r.stdout)
    non2 = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if not rps:
        raise RuntimeError(f"wrk failed: {r.stdout} {r.stderr}")
    return {"rps": float(rps.group(1)), "n": int(n.group(1)), "bad": int(non2.group(1)) if non2 else 0}


def strace_counts(path):
    """{syscall: calls} from an `strace -c` summary."""
    out = {}
    with open(path) as f:
        for line in f:
            fl = line.split()
            if len(fl) >= 5 and fl[0][0].isdigit() and fl[-1] != "total":
                out[fl[-1]] = int(fl[3])
    return out


def syscalls(port, tokens, a, pids, tmp, tag):
    """Syscalls per request of each pid in `pids` ({name: pid}) during one 2 s wrk run, under strace -c (strace
    slows the process down: the counts per request are the figure, not the rate)."""
    st = {}
    for name, pid in pids.items():
        out = os.path.join(tmp, f"strace-{tag}-{name}.txt")
        st[name] = (start(["strace", "-c", "-f", "-p", str(pid), "-o", out], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL), out)
    time.sleep(1)
    w = wrk(port, tokens, 2, a.conns)
    res = {}
    for name, (p, out) in st.items():
        p.send_signal(signal.SIGINT)
        p.wait(20)
        c = strace_counts(out)
        res[name] = (sum(c.values()) / max(1, w["n"]),
                     {k: v / max(1, w["n"]) for k, v in sorted(c.items(), key=lambda kv: -kv[1])[:5]})
    return res


def bench(hap_bin, a, tmp, tokens, agent, probe, noop):
    ver = kostest.haproxy_version(hap_bin)
    names = ["B3-off", "B3-on", "B4-off", "B4-on"]
    ports = {n: free_port() for n in names + ["up"]}
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(haproxy_cfg(tmp, ports, agent[1], noop[1], a.nbthread))
    hap = start([hap_bin, "-db", "-f", cfg], stdout=open(os.path.join(tmp, "haproxy.log"), "w"),
                stderr=subprocess.STDOUT, env=dict(os.environ, KOS_SPOE_TIMEOUT="2s"))
    try:
        end = time.monotonic() + 20
        while True:
            if hap.poll() is not None or time.monotonic() > end:
                raise RuntimeError("HAProxy did not start: " + open(os.path.join(tmp, "haproxy.log")).read()[-3000:])
            try:
                socket.create_connection(("127.0.0.1", ports["B4-on"]), 0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        end = time.monotonic() + 20
        while time.monotonic() < end:  # spop-checks up, B4's cache warm with every user
            if all(wrk(ports[n], tokens, 1, a.conns)["bad"] == 0 for n in names):
                break
            time.sleep(0.5)
        rounds = []
        for r in range(a.rounds):
            rd = {}
            for n in names:
                apid = agent[0].pid if n.startswith("B4") else noop[0].pid
                m0 = metrics(probe) if n.startswith("B4") else None
                h0, a0 = cpu_s(hap.pid), cpu_s(apid)
                rd[n] = wrk(ports[n], tokens, a.secs, a.conns)
                k = max(1, rd[n]["n"])
                rd[n]["hap_us"] = (cpu_s(hap.pid) - h0) * 1e6 / k
                rd[n]["agent_us"] = (cpu_s(apid) - a0) * 1e6 / k
                if m0 is not None:
                    m1 = metrics(probe)
                    d = {x: m1.get(x, 0) - m0.get(x, 0) for x in ("kos_spop_connections_accepted_total",
                                                                  "kos_spop_bytes_sent_total", "kos_spop_notify_total")}
                    rd[n]["conns"] = d["kos_spop_connections_accepted_total"]
                    rd[n]["ack"] = d["kos_spop_bytes_sent_total"] / max(1, d["kos_spop_notify_total"])
            rounds.append(rd)
            log(f"  {ver} round {r}: " + ", ".join(f"{n} {rd[n]['rps']:.0f}" + (f" ({rd[n]['bad']} bad)"
                                                                                  if rd[n]["bad"] else "")
                                                   for n in names))
        sc = {}
        if a.syscalls and shutil.which("strace"):
            for n in ("B4-off", "B4-on"):
                sc[n] = syscalls(ports[n], tokens, a, {"agent": agent[0].pid, "HAProxy": hap.pid}, tmp, n)
    finally:
        hap.send_signal(signal.SIGTERM)
        hap.wait(20)
    med = statistics.median
    print(f"\n### HAProxy {ver} ({a.rounds} rounds x {a.secs:g} s, wrk -c {a.conns}"
          + (f", nbthread {a.nbthread}" if a.nbthread else "") + ")\n")
    print("| run | req/s | HAProxy µs/req | agent µs/req | SPOP conns | ACK bytes | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in names:
        v = [rd[n] for rd in rounds]
        print(f"| {n} | {med(x['rps'] for x in v):,.0f} | {med(x['hap_us'] for x in v):.1f} | "
              f"{med(x['agent_us'] for x in v):.1f} | "
              + (f"{med(x['conns'] for x in v):.0f} | {med(x['ack'] for x in v):.0f}" if n.startswith("B4")
                 else "- | -") + f" | {sum(x['bad'] for x in v)} |")
    for b in ("B3", "B4"):
        rr = [rd[f"{b}-on"]["rps"] / rd[f"{b}-off"]["rps"] for rd in rounds]
        ha = [rd[f"{b}-on"]["hap_us"] / rd[f"{b}-off"]["hap_us"] for rd in rounds]
        ag = [rd[f"{b}-on"]["agent_us"] / rd[f"{b}-off"]["agent_us"] for rd in rounds]
        print(f"\n{b} pipelining on / off (median of per-round ratios): req/s {med(rr):.2f}, HAProxy CPU/req "
              f"{med(ha):.2f}, agent CPU/req {med(ag):.2f}")
    for n, r in sc.items():
        for who, (tot, top) in r.items():
            print(f"\n{n} syscalls per request, {who}: {tot:.2f} (" +
                  ", ".join(f"{k} {v:.2f}" for k, v in top.items()) + ")")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--haproxy", action="append",
                    help="HAProxy binary (repeatable); default build/haproxy/sid/haproxy and experimental")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=3)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--nbthread", type=int, default=0, help="HAProxy nbthread (0: HAProxy's default)")
    ap.add_argument("--syscalls", action="store_true", help="also B4's syscalls per request (strace -c), off and on")
    a = ap.parse_args()
    bins = a.haproxy or [os.path.join(ROOT, "build", "haproxy", s, "haproxy") for s in ("sid", "experimental")]
    tmp = tempfile.mkdtemp(prefix="kos-pipe-ab-")
    iss = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        iss = TestIssuer(state_dir=os.path.join(tmp, "issuer")).start()
        tokens = os.path.join(tmp, "tokens.txt")
        with open(tokens, "w") as f:
            for i in range(USERS):
                f.write(iss.mint({"sub": f"user-{i}", "groups": ["dev", "ops"], "exp": int(time.time()) + 7200})
                        + "\n")
        sa_dir = os.path.join(tmp, "sa")
        os.makedirs(sa_dir)
        sa = kosstack.write_sa_token(sa_dir, kosstack.SA_TOKEN, 1)
        port, probe = free_port(), free_port()
        agent = start([os.path.join(a.build, "kube-oidc-spoa"), "--oidc-issuer-url", iss.issuer,
                       "--oidc-client-id", kosstack.CLIENT_ID, "--oidc-ca-file", iss.ca,
                       "--oidc-groups-claim", "groups", "--listen", f"127.0.0.1:{port}",
                       "--readiness-probe-port", str(probe), "--readiness-probe-address", "127.0.0.1",
                       "--service-account-token-file", sa, "--threads", "2", "--log-level", "warning"],
                      stdout=open(os.path.join(tmp, "agent.log"), "w"), stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{probe}/ready", agent)
        noop_out = os.path.join(tmp, "noop.out")
        noop = start([os.path.join(a.build, "spoa_example"), "--listen", "127.0.0.1:0", "--threads", "2", "--noop"],
                     stdout=open(noop_out, "w"), stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while "port" not in open(noop_out).read() and time.monotonic() < end:
            time.sleep(0.05)
        noop_port = int(open(noop_out).read().split()[-1])
        for b in bins:
            bench(b, a, tmp, tokens, (agent, port), probe, (noop, noop_port))
    finally:
        stop_all()
        if iss is not None:
            iss.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
