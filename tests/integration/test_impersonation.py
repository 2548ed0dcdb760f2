"""--allow-client-impersonation end to end (issue 21, item 1): kubectl --as / --as-group / --as-uid through the
shipped conf/, authorized by SubjectAccessReviews at the stand-in API server (a small RBAC-like policy), forwarded
as asked with the original user recorded in originaluser.jetstack.io-* extras; every refused shape answered with
the API server's wording and nothing forwarded; an authorizer that fails closes; the switch off keeps today's 403."""
import concurrent.futures
import json
import time
import urllib.request

import pytest

import kosstack
from kosstack import header_values

ORIG = {"KOS_EXTRA_6": "originaluser.jetstack.io-user", "KOS_EXTRA_7": "originaluser.jetstack.io-groups",
        "KOS_EXTRA_8": "originaluser.jetstack.io-uid"}
DISABLED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Impersonation requests are disabled when using this proxy", "reason": "Forbidden",
            "code": 403}
# alice may act as carol, as the group "support" and the uid "u-carol", with scopes=read, and as the service
# account ci/deployer; the group "breakglass" may act as anyone.
POLICY = [
    {"subject": "oidc:alice", "resource": "users", "names": ["oidc:carol"]},
    {"subject": "oidc:alice", "resource": "groups", "names": ["support", "a,b"]},
    {"subject": "oidc:alice", "resource": "uids", "group": "authentication.k8s.io", "names": ["u-carol"]},
    {"subject": "oidc:alice", "resource": "userextras", "group": "authentication.k8s.io", "subresource": "scopes",
     "names": ["read"]},
    {"subject": "oidc:alice", "resource": "serviceaccounts", "namespace": "ci", "names": ["deployer"]},
    {"subject": "group:breakglass", "resource": "users", "names": ["*"]},
    {"subject": "group:bulk", "resource": "groups", "names": ["*"]},
]


def args(stack):
    return ["--allow-client-impersonation", "--apiserver-url", f"https://127.0.0.1:{stack.api_port}",
            "--apiserver-ca-file", stack.api_ca, "--client-impersonation-cache-ttl", "0"]


@pytest.fixture(scope="module")
def stack(make_stack):
    s = make_stack(agent_args=["--oidc-groups-claim", "groups", "--oidc-username-prefix", "oidc:"],
                   before_agent=args, env=ORIG)
    s.api_config(sar_policy=POLICY)
    return s


@pytest.fixture(scope="module")
def off(make_stack):
    """The same product and conf/ without the switch."""
    return make_stack(agent_args=["--oidc-groups-claim", "groups", "--oidc-username-prefix", "oidc:"], env=ORIG)


@pytest.fixture(scope="module")
def cached(make_stack):
    """The switch on with the default cache (10 s), and the original user's groups in two slots (16 lines);
    --max-groups 40 (under IMP_MAX_ITEMS, so an impersonation can ask for more groups than that)."""
    env = dict(ORIG, KOS_EXTRA_5="originaluser.jetstack.io-groups")
    s = make_stack(agent_args=["--oidc-groups-claim", "groups", "--oidc-username-prefix", "oidc:",
                               "--jwks-unknown-kid-interval", "1s", "--max-groups", "40"],
                   before_agent=lambda st: args(st)[:-2], env=env)
    s.api_config(sar_policy=POLICY)
    return s


def alice(stack, groups=("dev", "ops")):
    return stack.mint({"sub": "alice", "groups": list(groups)})


def forwarded(stack):
    return [r for r in stack.api_requests() if not r.get("sar")]


def sars(stack):
    return [r for r in stack.api_requests() if r.get("sar")]


def get(stack, tok, headers=()):
    st, _, body = stack.request("GET", "/api/v1/namespaces/default/pods",
                                headers=[("Authorization", "Bearer " + tok)] + list(headers))
    try:
        return st, json.loads(body) if body else None
    except ValueError:
        raise AssertionError(f"{st}: {body[:300]!r}")


def test_kubectl_as_user_group_uid_forwarded_with_original_user(stack):
    stack.api_reset()
    p = stack.kubectl("auth", "whoami", "-o", "json", "--as", "oidc:carol", "--as-group", "support",
                      "--as-uid", "u-carol", token=alice(stack))
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)["status"]["userInfo"]
    assert info["username"] == "oidc:carol"
    assert info["uid"] == "u-carol"
    assert info["groups"] == ["support", "system:authenticated"]
    assert info["extra"] == {"originaluser.jetstack.io-user": ["oidc:alice"],
                             "originaluser.jetstack.io-groups": ["dev", "ops"]}
    fw = forwarded(stack)
    assert fw and all(header_values(r["headers"], "Authorization") == ["Bearer " + kosstack.SA_TOKEN] for r in fw)
    # one review per item, each naming the authenticated user with her groups (system:authenticated added, as
    # the API server's authenticator does before its impersonation filter runs)
    specs = [r["sar_spec"] for r in sars(stack)]
    got = {(s["resourceAttributes"]["resource"], s["resourceAttributes"]["name"]) for s in specs}
    assert got == {("groups", "support"), ("uids", "u-carol"), ("users", "oidc:carol")}
    assert len(specs) == 3 * len(fw)  # the cache is off here: three reviews for each request kubectl made
    for s in specs:
        assert s["user"] == "oidc:alice"
        assert s["groups"] == ["dev", "ops", "system:authenticated"]
        assert s["resourceAttributes"]["verb"] == "impersonate"
    kosstack.wait_log(stack.haproxy, "kos_status=0 ")


def test_service_account_and_extra(stack):
    stack.api_reset()
    p = stack.kubectl("auth", "whoami", "-o", "json", "--as", "system:serviceaccount:ci:deployer",
                      token=alice(stack))
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:ci:deployer"
    # no group asked: the API server gives the service account its own groups
    assert info["groups"] == ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]
    assert info["extra"]["originaluser.jetstack.io-user"] == ["oidc:alice"]
    ra = [r["sar_spec"]["resourceAttributes"] for r in sars(stack)]
    assert ra and all(a == {"verb": "impersonate", "group": "", "resource": "serviceaccounts", "namespace": "ci",
                            "name": "deployer"} for a in ra)
    # an extra value, and a group whose name has a comma: one header line is one value, as the API server reads it
    stack.api_reset()
    st, _ = get(stack, alice(stack), [("Impersonate-User", "oidc:carol"), ("Impersonate-Group", "a,b"),
                                      ("Impersonate-Extra-Scopes", "read")])
    assert st == 200
    r = forwarded(stack)[-1]
    assert header_values(r["headers"], "Impersonate-Group") == ["a,b"]
    assert r["identity"]["extra"]["scopes"] == ["read"]
    assert {(s["sar_spec"]["resourceAttributes"]["resource"], s["sar_spec"]["resourceAttributes"].get("subresource"))
            for s in sars(stack)} == {("users", None), ("groups", None), ("userextras", "scopes")}


@pytest.mark.parametrize("hdrs,code,message", [
    ([("Impersonate-User", "oidc:mallory")], 403,
     'users "oidc:mallory" is forbidden: User "oidc:alice" cannot impersonate resource "users" in API group "" '
     'at the cluster scope'),
    ([("Impersonate-User", "oidc:carol"), ("Impersonate-Group", "system:masters")], 403,
     'groups "system:masters" is forbidden: User "oidc:alice" cannot impersonate resource "groups" in API group '
     '"" at the cluster scope'),
    ([("Impersonate-User", "oidc:carol"), ("Impersonate-Uid", "u-other")], 403,
     'uids.authentication.k8s.io "u-other" is forbidden: User "oidc:alice" cannot impersonate resource "uids" in '
     'API group "authentication.k8s.io" at the cluster scope'),
    ([("Impersonate-User", "oidc:carol"), ("Impersonate-Extra-Scopes", "write")], 403,
     'userextras.authentication.k8s.io "write" is forbidden: User "oidc:alice" cannot impersonate resource '
     '"userextras/scopes" in API group "authentication.k8s.io" at the cluster scope'),
    ([("Impersonate-User", "system:serviceaccount:kube-system:admin")], 403,
     'serviceaccounts "admin" is forbidden: User "oidc:alice" cannot impersonate resource "serviceaccounts" in API '
     'group "" in the namespace "kube-system"'),
    # the API server's BadRequest, word for word (Go's %v of the references it built)
    ([("Impersonate-Group", "support"), ("Impersonate-Extra-Scopes", "read"), ("Impersonate-Uid", "u-1")], 400,
     "requested [{Group  support    } {UserExtra  read  authentication.k8s.io/v1  scopes} "
     "{UID  u-1  authentication.k8s.io/v1  }] without impersonating a user"),
    ([("Impersonate-User", "oidc:carol"), ("Impersonate-User", "oidc:dave")], 400,
     "more than one Impersonate-User header"),
    ([("Impersonate-User", "oidc:carol"), ("Impersonate-Extra-originaluser.jetstack.io-user", "x")], 400,
     "the extras originaluser.jetstack.io-* are set by this proxy (they record who impersonates)"),
], ids=["user", "group", "uid", "extra", "serviceaccount", "group-without-user", "two-users", "own-extra"])
def test_refused_shapes(stack, hdrs, code, message):
    stack.api_reset()
    st, body = get(stack, alice(stack), hdrs)
    assert (st, body["message"], body["code"]) == (code, message, code)
    assert body["reason"] == ("Forbidden" if code == 403 else "BadRequest")
    assert forwarded(stack) == []


def test_kubectl_as_denied_prints_the_api_servers_message(stack):
    stack.api_reset()
    p = stack.kubectl("get", "--raw", "/api/v1/namespaces/default/pods", "--as", "oidc:mallory", token=alice(stack))
    assert p.returncode != 0
    assert ('Error from server (Forbidden): users "oidc:mallory" is forbidden: User "oidc:alice" cannot impersonate '
            'resource "users" in API group "" at the cluster scope') in p.stderr
    assert forwarded(stack) == []


def test_group_binding_and_reason(stack):
    """A rule for one of her groups allows; a denial's status.reason follows the API server's wording."""
    stack.api_reset()
    st, _ = get(stack, alice(stack, groups=["breakglass"]), [("Impersonate-User", "oidc:root")])
    assert st == 200
    assert forwarded(stack)[-1]["identity"]["extra"]["originaluser.jetstack.io-groups"] == ["breakglass"]
    stack.api_config(sar_reason="no RBAC policy matched")
    try:
        st, body = get(stack, alice(stack), [("Impersonate-User", "oidc:root")])
    finally:
        stack.api_config(sar_reason="")
    assert st == 403 and body["message"].endswith("at the cluster scope: no RBAC policy matched")


def test_401_wins_and_authorizer_failure_fails_closed(stack):
    stack.api_reset()
    st, body = get(stack, stack.mint({"sub": "alice", "exp": 1}), [("Impersonate-User", "oidc:carol")])
    assert (st, body["message"]) == (401, "Unauthorized")
    assert stack.api_requests() == []  # not even a review for an unauthenticated caller
    stack.api_config(sar_status=500)
    try:
        st, body = get(stack, alice(stack), [("Impersonate-User", "oidc:carol")])
    finally:
        stack.api_config(sar_status=0)
    assert st == 503 and body["reason"] == "ServiceUnavailable"
    assert forwarded(stack) == []
    # no impersonation header: unchanged, no review
    stack.api_reset()
    st, _ = get(stack, alice(stack))
    assert st == 200 and sars(stack) == []
    assert header_values(forwarded(stack)[-1]["headers"], "Impersonate-User") == ["oidc:alice"]


def test_large_group_list_forwarded_whole(stack):
    """20 groups of 1000 bytes (~21 KB of header lines, under the 24576 bytes HAProxy sends): every line is
    reviewed and forwarded, in order."""
    stack.api_reset()
    groups = [f"team-{i:02d}-" + "y" * 992 for i in range(20)]
    st, _ = get(stack, alice(stack, groups=["bulk", "breakglass"]),
                [("Impersonate-User", "oidc:root")] + [("Impersonate-Group", g) for g in groups])
    assert st == 200
    assert header_values(forwarded(stack)[-1]["headers"], "Impersonate-Group") == groups
    assert len(sars(stack)) == 21


def test_oversized_header_block_is_400_not_a_cut_list(stack):
    stack.api_reset()
    # 36 lines of ~700 bytes: over the 24576 bytes HAProxy sends, under its 32 KiB head and 101 header lines
    hdrs = [("Impersonate-User", "oidc:carol")] + [("Impersonate-Group", f"g-{i:04d}-" + "x" * 700)
                                                  for i in range(36)]
    st, body = get(stack, alice(stack), hdrs)
    assert st == 400 and "too large for impersonation" in body["message"]
    assert stack.api_requests() == []


def test_switch_off_is_todays_403(off):
    off.api_reset()
    p = off.kubectl("get", "--raw", "/api/v1/namespaces/default/pods", "--as", "oidc:carol", token=alice(off))
    assert p.returncode != 0
    assert "Error from server (Forbidden): Impersonation requests are disabled when using this proxy" in p.stderr
    st, body = get(off, alice(off), [("Impersonate-User", "oidc:carol"), ("Impersonate-Group", "support")])
    assert (st, body) == (403, DISABLED)
    assert off.api_requests() == []


def test_verdicts_cached_and_single_flight(cached):
    """Allow and deny are both reused (10 s), and concurrent requests asking the same share one review."""
    cached.api_reset()
    tok = alice(cached)
    for _ in range(3):
        assert get(cached, tok, [("Impersonate-User", "oidc:carol")])[0] == 200
        assert get(cached, tok, [("Impersonate-User", "oidc:mallory")])[0] == 403
    assert sorted(r["sar_spec"]["resourceAttributes"]["name"] for r in sars(cached)) == ["oidc:carol", "oidc:mallory"]
    # other groups are another question (the review names them): asked again
    assert get(cached, alice(cached, groups=["qa"]), [("Impersonate-User", "oidc:carol")])[0] == 200
    assert len(sars(cached)) == 3
    cached.api_reset()
    cached.api_config(sar_delay=0.3)
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            res = list(ex.map(lambda _: get(cached, tok, [("Impersonate-User", "oidc:carol"),
                                                          ("Impersonate-Group", "support")])[0], range(8)))
    finally:
        cached.api_config(sar_delay=0)
    assert res == [200] * 8
    assert len(sars(cached)) == 1  # "users carol" came from the cache, "groups support" was asked once for all


def test_original_groups_fill_two_slots_then_refused(cached):
    """The original groups travel as originaluser.jetstack.io-groups lines, one per group: a key may have several
    HAProxy slots (here 2 x 8 lines); past them the request is refused (403), never forwarded with a cut list."""
    cached.api_reset()
    groups = [f"g{i:02d}" for i in range(16)]
    st, _ = get(cached, alice(cached, groups=groups[:15] + ["breakglass"]), [("Impersonate-User", "oidc:root")])
    assert st == 200
    assert forwarded(cached)[-1]["identity"]["extra"]["originaluser.jetstack.io-groups"] == groups[:15] + ["breakglass"]
    cached.api_reset()
    st, body = get(cached, alice(cached, groups=groups + ["breakglass"]), [("Impersonate-User", "oidc:root")])
    assert st == 403 and "at most 8 per key" in body["message"]
    assert forwarded(cached) == []


def test_impersonated_groups_past_max_groups_are_403_not_cut(cached):
    """An authorized impersonation asking for more groups than --max-groups is refused like a token with too many
    groups (status 3, 403) after its reviews: never forwarded with a cut list, never a 503."""
    cached.api_reset()
    groups = [f"team-{i:02d}" for i in range(41)]
    st, body = get(cached, alice(cached, groups=["bulk", "breakglass"]),
                   [("Impersonate-User", "oidc:root")] + [("Impersonate-Group", g) for g in groups])
    assert st == 403 and "more groups than this proxy forwards" in body["message"], (st, body)
    assert forwarded(cached) == []
    cached.api_reset()
    st, _ = get(cached, alice(cached, groups=["bulk", "breakglass"]),
                [("Impersonate-User", "oidc:root")] + [("Impersonate-Group", g) for g in groups[:40]])
    assert st == 200
    assert header_values(forwarded(cached)[-1]["headers"], "Impersonate-Group") == groups[:40]


def test_after_a_key_rotation_the_held_request_is_reviewed(cached):
    """The first token of a just-rotated key is held for the JWKS refresh (as without impersonation); once it
    verifies, the reviews run from the holding thread and answer the request. Then the reviews' metrics."""
    def metrics():
        with urllib.request.urlopen(f"http://127.0.0.1:{cached.probe_port}/metrics", timeout=5) as r:
            return r.read().decode()

    # precondition, not a speed check: past the agent's 1 s unknown-kid rate limit since its last JWKS download
    last = [float(ln.split()[1]) for ln in metrics().splitlines()
            if ln.startswith("kos_jwks_last_success_timestamp_seconds ")][0]
    for _ in range(100):
        if time.time() >= last + 2.3:  # +1: the timestamp is in whole seconds
            break
        time.sleep(0.05)
    cached.issuer.rotate(keep_old=False)
    cached.api_reset()
    st, _ = get(cached, alice(cached), [("Impersonate-User", "oidc:carol"), ("Impersonate-Group", "a,b")])
    assert st == 200
    assert header_values(forwarded(cached)[-1]["headers"], "Impersonate-Group") == ["a,b"]
    assert [r["sar_spec"]["resourceAttributes"]["name"] for r in sars(cached)] == ["a,b"]  # carol: from the cache
    m = metrics()
    assert 'kos_subjectaccessreviews_total{result="allowed"}' in m
    assert 'kos_requests_total{verdict="impersonation_denied",reason="impersonation not allowed"}' in m
