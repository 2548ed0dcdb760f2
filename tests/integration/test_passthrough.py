"""--token-passthrough and --credential-id-extra end to end (issue 9): tokens that are not OIDC tokens of our issuer are checked with a
TokenReview at the stand-in API server and, when authenticated, forwarded by HAProxy (contract status 5) with the
client's own Authorization and no Impersonate-*; everything else stays fail-closed."""
import json
import urllib.request

import pytest

import kosstack
from kosstack import header_values

SA_ISS = "https://kubernetes.default.svc.cluster.local"
AUDS = ["https://kubernetes.default.svc", "kos-test"]


def sa_like(stack, name):
    """A signed JWT as the API server issues for service accounts: another issuer, a key we do not know."""
    return stack.mint({"iss": SA_ISS, "sub": f"system:serviceaccount:ci:{name}", "aud": AUDS[:1]}, key="unknown")


def passthrough_args(stack):
    return ["--token-passthrough", "--apiserver-url", f"https://127.0.0.1:{stack.api_port}",
            "--apiserver-ca-file", stack.api_ca, "--token-passthrough-audiences", ",".join(AUDS),
            "--token-passthrough-timeout-ms", "700", "--credential-id-extra"]


@pytest.fixture(scope="module")
def stack(make_stack):
    return make_stack(agent_args=["--oidc-groups-claim", "groups"], before_agent=passthrough_args)


@pytest.fixture(scope="module")
def plain(make_stack):
    """The same product without --token-passthrough."""
    return make_stack(agent_args=["--oidc-groups-claim", "groups"])


_n = [0]


def review_token(stack, kind="jwt", audiences=None, user=None):
    """A new token the stand-in authenticates (by TokenReview and as a direct bearer); returns (token, user)."""
    _n[0] += 1
    name = user or f"deployer-{_n[0]}"
    tok = sa_like(stack, name) if kind == "jwt" else f"abc{_n[0]:03d}.0123456789abcdef"
    entry = {"username": f"system:serviceaccount:ci:{name}", "groups": ["system:serviceaccounts"]}
    if audiences is not None:
        entry["audiences"] = audiences
    stack.api_config(review_tokens={**getattr(stack, "_review_tokens", {}), tok: entry})
    stack._review_tokens = {**getattr(stack, "_review_tokens", {}), tok: entry}
    return tok, entry["username"]


def reviews(stack):
    return [r for r in stack.api_requests() if r.get("tokenreview")]


def forwarded_with(stack, tok):
    return [r for r in stack.api_requests() if not r.get("tokenreview")
            and header_values(r["headers"], "Authorization") == ["Bearer " + tok]]


def get(stack, tok, path="/api/v1/namespaces/default/pods", extra=()):
    return stack.request("GET", path, headers=[("Authorization", "Bearer " + tok)] + list(extra))


def test_kubectl_whoami_passes_through_unchanged(stack):
    tok, user = review_token(stack)
    stack.api_reset()
    p = stack.kubectl("auth", "whoami", "-o", "json", token=tok)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"]["userInfo"]["username"] == user
    fw = forwarded_with(stack, tok)
    assert fw, "the request did not reach the API server with the client's own token"
    for r in fw:
        assert [k for k, _ in r["headers"] if k.lower().startswith("impersonate-")] == []
        assert r["passthrough_user"] == user
    # the service-account token went only into the TokenReview, never into a forwarded request
    assert not [r for r in stack.api_requests() if r.get("auth_ok") and not r.get("tokenreview")]
    kosstack.wait_log(stack.haproxy, "kos_status=5 ")


def test_kubectl_get_pods_opaque_token(stack):
    tok, _ = review_token(stack, kind="opaque")
    p = stack.kubectl("get", "pods", "-o", "name", token=tok)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["pod/web-1", "pod/web-2"]


def test_review_answers_are_cached(stack):
    tok, _ = review_token(stack)
    stack.api_reset()
    for _ in range(5):
        st, _, _ = get(stack, tok)
        assert st == 200
    assert len(reviews(stack)) == 1
    assert len(forwarded_with(stack, tok)) == 5


def test_invalid_passthrough_token_is_401(stack):
    bogus = sa_like(stack, "nobody")  # the stand-in does not know it
    stack.api_reset()
    st, _, body = get(stack, bogus)
    assert st == 401 and json.loads(body)["reason"] == "Unauthorized"
    assert [r["review_authenticated"] for r in reviews(stack)] == [False]
    assert forwarded_with(stack, bogus) == []
    st, _, _ = get(stack, "not-a-jwt-at-all")
    assert st == 401
    assert forwarded_with(stack, "not-a-jwt-at-all") == []


def test_audience_mismatch_is_401(stack):
    tok, _ = review_token(stack, audiences=["some-other-audience"])
    stack.api_reset()
    st, _, _ = get(stack, tok)
    assert st == 401
    assert len(reviews(stack)) == 1 and forwarded_with(stack, tok) == []


def test_impersonation_with_passthrough_token_is_403(stack):
    tok, _ = review_token(stack)
    stack.api_reset()
    st, _, body = get(stack, tok, extra=[("Impersonate-User", "admin")])
    assert st == 403 and "Impersonation requests are disabled" in json.loads(body)["message"]
    assert forwarded_with(stack, tok) == []


@pytest.mark.parametrize("case", ["expired", "bad-signature", "unknown-kid", "audience"])
def test_our_issuers_tokens_never_pass_through(stack, case):
    """A JWT naming our issuer is ours to judge: refused as before, no TokenReview, nothing forwarded."""
    if case == "expired":
        tok = stack.mint({"sub": "alice", "exp": 1000, "iat": 900})
    elif case == "bad-signature":
        good = stack.mint({"sub": "alice"})
        h, p, s = good.split(".")
        tok = ".".join([h, p, ("A" if s[0] != "A" else "B") + s[1:]])
    elif case == "unknown-kid":
        tok = stack.mint({"sub": "alice"}, key="unknown")
    else:
        tok = stack.mint({"sub": "alice", "aud": "someone-else"})
    stack.api_reset()
    st, _, _ = get(stack, tok)
    assert st == 401
    assert reviews(stack) == [] and forwarded_with(stack, tok) == []


def test_oidc_tokens_still_impersonated(stack):
    tok = stack.mint({"sub": "alice", "groups": ["dev"]})
    stack.api_reset()
    st, _, _ = get(stack, tok)
    assert st == 200
    (r,) = stack.api_requests()
    assert header_values(r["headers"], "Authorization") == ["Bearer " + stack.sa_token]
    assert header_values(r["headers"], "Impersonate-User") == [f"{stack.issuer.issuer}#alice"]
    assert reviews(stack) == []


@pytest.mark.parametrize("failure", [{"review_status": 500}, {"review_delay": 1.5}], ids=["http-500", "timeout"])
def test_api_server_trouble_fails_closed(stack, failure):
    tok, _ = review_token(stack)
    stack.api_reset()
    stack.api_config(**failure)
    try:
        st, _, body = get(stack, tok)
    finally:
        stack.api_config(review_status=0, review_delay=0)
    assert st == 503 and json.loads(body)["reason"] == "ServiceUnavailable"
    assert forwarded_with(stack, tok) == []
    # not cached: once the API server answers again, the same token passes
    st, _, _ = get(stack, tok)
    assert st == 200


def test_metrics_count_passthrough(stack):
    tok, _ = review_token(stack)
    assert get(stack, tok)[0] == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.probe_port}/metrics", timeout=5) as r:
        m = r.read().decode()
    assert 'kos_requests_total{verdict="passthrough",reason="token passthrough"}' in m
    line = [x for x in m.splitlines() if x.startswith('kos_tokenreviews_total{result="authenticated"}')]
    assert line and int(line[0].split()[-1]) >= 1


def test_without_the_flag_it_is_401(plain):
    tok, _ = review_token(plain)
    plain.api_reset()
    st, _, _ = get(plain, tok)
    assert st == 401
    assert reviews(plain) == [] and forwarded_with(plain, tok) == []


def test_credential_id_extra(stack):
    """--credential-id-extra: a token with a jti carries authentication.kubernetes.io/credential-id = JTI=<jti>,
    percent-encoded in the header name as the API server expects; without a jti there is no such extra."""
    stack.api_reset()
    p = stack.kubectl("auth", "whoami", "-o", "json", token=stack.mint({"sub": "alice", "jti": "4f1c-77"}))
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)["status"]["userInfo"]
    assert info["extra"] == {"authentication.kubernetes.io/credential-id": ["JTI=4f1c-77"]}
    (r,) = [r for r in stack.api_requests() if "selfsubjectreviews" in r["path"]]
    assert header_values(r["headers"], "Impersonate-Extra-authentication.kubernetes.io%2Fcredential-id") == \
        ["JTI=4f1c-77"]
    p = stack.kubectl("auth", "whoami", "-o", "json", token=stack.mint({"sub": "alice"}))
    assert p.returncode == 0, p.stderr
    assert "extra" not in json.loads(p.stdout)["status"]["userInfo"]
