"""The agent process under valgrind memcheck, once, behind the real HAProxy: start, valid and invalid tokens,
a key download on demand, a few attack rows, garbage on the SPOP port, SIGTERM. Any memcheck error (exit code
99) or definitely/indirectly lost block fails the test.

valgrind cannot run an ASan binary, so this uses the release build (KOS_VALGRIND_BUILD, default build/, which
`make test` builds before running the tests). Skipped, saying why, when valgrind or that binary is missing."""
import os
import re
import shutil
import signal
import socket

import pytest

import kostest
import secstack

VG_BUILD = os.path.join(kostest.ROOT, os.environ.get("KOS_VALGRIND_BUILD", "build"))
AGENT = os.path.join(VG_BUILD, "kube-oidc-spoa")


@pytest.fixture(scope="module")
def vg_stack(make_sec_stack):
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (scripts/deps.sh installs it)")
    if not os.access(AGENT, os.X_OK):
        pytest.skip(f"no release agent at {AGENT} (make all builds it)")
    vg = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--show-leak-kinds=definite,indirect",
          "--errors-for-leak-kinds=definite,indirect", "--track-fds=no", "--num-callers=30"]
    # valgrind slows the agent ~20-50x: a generous SPOE processing timeout, everything else as in production
    return make_sec_stack(agent_bin=AGENT, agent_prefix=vg, agent_args=secstack.FAST, spoe_timeout="10s")


def test_agent_under_valgrind_memcheck(vg_stack, figures):
    s = vg_stack
    iss = s.issuer
    assert s.get(s.mint({"sub": "alice"}))[0] == 200
    assert s.get(s.mint({"sub": "alice"}))[0] == 200  # cache hit
    assert s.get(s.mint({"sub": "bob"}, alg="RS256"))[0] == 200
    for bad in (s.mint({"sub": "x", "aud": "other"}), s.mint({"sub": "x"}, key="unknown"),
                s.mint({"sub": "x"}, kid="kid-unknown"), s.mint({"sub": "x"}, alg="none"),
                s.mint({"sub": "x"}, alg="HS256"), s.mint({"sub": ""}), "a.b.c", ""):
        assert s.get(bad)[0] == 401
    iss.rotate(keep_old=True)
    st = 401
    for _ in range(40):  # the new kid triggers a download on demand (rate-limited to one per 2 s)
        st = s.get(s.mint({"sub": "carol"}))[0]
        if st == 200:
            break
        import time
        time.sleep(0.25)
    assert st == 200
    c = socket.create_connection(("127.0.0.1", s.agent_port), timeout=10)
    c.sendall(b"GET / HTTP/1.1\r\n\r\n" + b"\xff" * 100)
    c.settimeout(30)
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
    assert s.probe("/metrics")[0] == 200
    rc = s.agent.stop(signal.SIGTERM, timeout=120)
    log = s.agent.log()
    m = re.search(r"ERROR SUMMARY: (\d+) errors", log)
    lost = re.findall(r"(definitely|indirectly) lost: ([\d,]+) bytes", log)
    figures["valgrind"] = {"exit_code": rc, "errors": int(m.group(1)) if m else None,
                           "lost": {k: v for k, v in lost}}
    assert m is not None, log[-3000:]
    assert rc == 0 and m.group(1) == "0", log[-6000:]
    assert all(v == "0" for _, v in lost), lost
