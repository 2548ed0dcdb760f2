"""kubectl auth whoami under each username/groups claim and prefix setting (the agent restarted per setting on
the same port, HAProxy unchanged)."""
import json

import pytest

import kosstack

# (agent flags, token claims, expected username (None = "<issuer>#alice"), expected groups before
#  system:authenticated)
SETTINGS = {
    "default-sub": ([], {"sub": "alice", "groups": ["dev"]}, None, []),
    "sub-with-prefix": (["--oidc-username-prefix", "oidc:"], {"sub": "alice"}, "oidc:alice", []),
    "sub-prefix-disabled": (["--oidc-username-prefix", "-"], {"sub": "alice"}, "alice", []),
    "email": (["--oidc-username-claim", "email"],
              {"sub": "a1", "email": "alice@example.com", "email_verified": True}, "alice@example.com", []),
    "groups": (["--oidc-groups-claim", "groups"], {"sub": "alice", "groups": ["dev", "ops"]}, None, ["dev", "ops"]),
    "groups-prefix": (["--oidc-groups-claim", "groups", "--oidc-groups-prefix", "oidc:"],
                      {"sub": "alice", "groups": ["dev", "ops"]}, None, ["oidc:dev", "oidc:ops"]),
    "groups-string": (["--oidc-groups-claim", "roles"], {"sub": "alice", "roles": "admins"}, None, ["admins"]),
    "custom-claims": (["--oidc-username-claim", "preferred_username", "--oidc-username-prefix", "corp-",
                       "--oidc-groups-claim", "teams", "--oidc-groups-prefix", "corp-"],
                      {"sub": "x", "preferred_username": "alice", "teams": ["a", "b"]}, "corp-alice",
                      ["corp-a", "corp-b"]),
}


@pytest.fixture(scope="module")
def stack(make_stack):
    s = make_stack()
    yield s
    kosstack.assert_all_authenticated(s)


def restart_agent(stack, args):
    port = stack.agent_port
    stack.stop_agent()
    stack.agent_args = list(args)
    stack.start_agent(port=port)
    stack.wait_agent_up_in_haproxy()


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_whoami_under_setting(stack, name):
    args, claims, user, groups = SETTINGS[name]
    restart_agent(stack, args)
    p = stack.kubectl("auth", "whoami", "-o", "json", token=stack.mint(claims))
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)["status"]["userInfo"]
    assert info["username"] == (user or f"{stack.issuer.issuer}#alice")
    assert info["groups"] == groups + ["system:authenticated"]


def test_required_claim(stack):
    restart_agent(stack, ["--oidc-required-claim", "tenant=blue"])
    p = stack.kubectl("auth", "whoami", "-o", "json", token=stack.mint({"sub": "alice", "tenant": "blue"}))
    assert p.returncode == 0, p.stderr
    for bad in ({"sub": "alice"}, {"sub": "alice", "tenant": "red"}):
        p = stack.kubectl("get", "--raw", "/api/v1/namespaces/default/pods", token=stack.mint(bad))
        assert p.returncode == 1 and "error: You must be logged in to the server (Unauthorized)" in p.stderr


def test_extra_user_headers(stack):
    restart_agent(stack, ["--extra-user-headers", "cluster=prod", "--extra-user-header-client-ip"])
    p = stack.kubectl("auth", "whoami", "-o", "json", token=stack.mint({"sub": "alice"}))
    assert p.returncode == 0, p.stderr
    extra = json.loads(p.stdout)["status"]["userInfo"].get("extra")
    assert extra == {"cluster": ["prod"], "remote-client-ip": ["127.0.0.1"]}


def test_email_not_verified_is_401(stack):
    restart_agent(stack, ["--oidc-username-claim", "email"])
    tok = stack.mint({"sub": "a1", "email": "alice@example.com", "email_verified": False})
    st, _, body = stack.request("GET", "/api", headers=[("Authorization", "Bearer " + tok)])
    assert st == 401, body
