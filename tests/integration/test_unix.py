"""The SPOP link over a unix socket, as deploy/ runs it (issue 16): the real agent on --listen unix:PATH behind
the real HAProxy (KOS_AGENT unix@PATH, conf/haproxy.cfg unchanged) — a kubectl request authenticated, a bad token
401, the agent down 503 and back; and the socket's permissions: mode 0660 in the group of its set-group-ID
directory (the pod's fsGroup on its emptyDir), so a process of another uid connects with that group and is refused
without it, whatever the agent's umask."""
import json
import os
import signal
import stat
import subprocess
import sys

import pytest

import kosstack

OTHER_UID = 65534  # "nobody": neither the agent's nor HAProxy's user, and not in the socket's group


@pytest.fixture(scope="module")
def stack(make_stack):
    s = make_stack(transport="unix")
    yield s
    kosstack.assert_all_authenticated(s)


def bearer(tok):
    return [("Authorization", "Bearer " + tok)]


def connect_as(path, uid, groups):
    """Connects to the unix socket `path` from a process of uid/gid `uid` with exactly the supplementary
    `groups`: "ok", or the errno name of the failure."""
    code = ("import errno, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "try:\n"
            "    s.connect(sys.argv[1])\n"
            "    print('ok')\n"
            "except OSError as e:\n"
            "    print(errno.errorcode.get(e.errno, str(e.errno)))\n")
    p = subprocess.run([sys.executable, "-c", code, path], user=uid, group=uid, extra_groups=list(groups), cwd="/",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def need_root():
    if os.geteuid() != 0:
        pytest.skip("running a process as another uid needs root")


def test_haproxy_talks_to_the_agent_over_the_socket(stack):
    assert stack.haproxy_env()["KOS_AGENT"] == "unix@" + stack.spop_sock
    assert "--listen" in stack.agent.args and stack.agent.args[stack.agent.args.index("--listen") + 1] == \
        "unix:" + stack.spop_sock
    stack.api_reset()
    p = stack.kubectl("auth", "whoami", "-o", "json", token=stack.mint({"sub": "alice"}))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"]["userInfo"]["username"] == f"{stack.issuer.issuer}#alice"
    (r,) = [r for r in stack.api_requests() if "selfsubjectreviews" in r["path"]]
    assert kosstack.header_values(r["headers"], "Authorization") == ["Bearer " + kosstack.SA_TOKEN]
    assert kosstack.header_values(r["headers"], "Impersonate-User") == [f"{stack.issuer.issuer}#alice"]


def test_bad_token_is_401(stack):
    stack.api_reset()
    tok = stack.mint({"sub": "alice"})
    st, _, body = stack.request("GET", "/api", headers=bearer(tok[:-4] + "AAAA"))
    assert st == 401, body
    assert json.loads(body)["reason"] == "Unauthorized"
    assert stack.api_requests() == []


def test_socket_is_0660_in_the_directory_group(stack):
    st = os.lstat(stack.spop_sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == stack.spop_gid  # inherited from the set-group-ID directory, as on the pod's emptyDir


def test_other_uid_connects_only_with_the_group(stack):
    need_root()
    assert connect_as(stack.spop_sock, OTHER_UID, []) == "EACCES"
    # The same user with the socket's group (HAProxy's uid 99 with the pod's fsGroup) gets in: the group bits.
    assert connect_as(stack.spop_sock, OTHER_UID, [stack.spop_gid]) == "ok"


def test_agent_down_is_503_and_restart_over_the_stale_socket_recovers(stack):
    """SIGKILL leaves the socket file behind (nobody listens: HAProxy gets ECONNREFUSED and answers 503); the new
    agent replaces it. Restarted with umask 0, where bind() alone would leave the socket 0777: others must still be
    refused, which only the agent's chmod gives."""
    stack.api_reset()
    good = stack.mint({"sub": "alice"})
    stack.stop_agent(signal.SIGKILL)
    assert stat.S_ISSOCK(os.lstat(stack.spop_sock).st_mode)
    for _ in range(5):
        st, _, body = stack.request("GET", "/api", headers=bearer(good))
        assert st == 503, body
        assert json.loads(body)["reason"] == "ServiceUnavailable"
    assert stack.api_requests() == []
    old = os.umask(0)
    try:
        stack.start_agent()
    finally:
        os.umask(old)
    stack.wait_agent_up_in_haproxy()
    st, _, body = stack.request("GET", "/api", headers=bearer(good))
    assert st == 200, body
    assert stat.S_IMODE(os.lstat(stack.spop_sock).st_mode) == 0o660
    if os.geteuid() == 0:
        assert connect_as(stack.spop_sock, OTHER_UID, []) == "EACCES"


def test_clean_stop_removes_the_socket(stack):
    stack.stop_agent(signal.SIGTERM)
    assert not os.path.lexists(stack.spop_sock)
    stack.start_agent()
    stack.wait_agent_up_in_haproxy()
