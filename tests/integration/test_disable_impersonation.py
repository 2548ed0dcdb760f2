"""--disable-impersonation end to end (issue 21, item 3): for an API server that validates the same OIDC tokens
itself, the agent authenticates the token as usual and HAProxy forwards the client's own Authorization untouched,
with no Impersonate-* and no service-account token (contract status 5). The stand-in API server plays that
API server: it authenticates the minted token directly (its review_tokens table) and records what it received."""
import json
import time

import pytest

import kosstack
from kosstack import header_values


@pytest.fixture(scope="module")
def stack(make_stack):
    return make_stack(agent_args=["--oidc-groups-claim", "groups", "--disable-impersonation"])


_n = [0]


def direct_token(stack, **claims):
    """An OIDC token of the test issuer that the stand-in API server also accepts as a bearer token itself."""
    _n[0] += 1
    sub = f"alice-{_n[0]}"
    tok = stack.mint({"sub": sub, "groups": ["dev"], **claims})
    user = f"{stack.issuer.issuer}#{sub}"
    known = {**getattr(stack, "_direct", {}), tok: {"username": user, "groups": ["dev"]}}
    stack._direct = known
    stack.api_config(review_tokens=known)
    return tok, user


def forwarded(stack):
    return [r for r in stack.api_requests() if not r.get("tokenreview")]


def test_kubectl_goes_through_with_its_own_token(stack):
    tok, user = direct_token(stack)
    stack.api_reset()
    p = stack.kubectl("auth", "whoami", "-o", "json", token=tok)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"]["userInfo"]["username"] == user
    p = stack.kubectl("get", "pods", token=tok)
    assert p.returncode == 0, p.stderr
    fw = forwarded(stack)
    assert len(fw) >= 2
    for r in fw:
        assert header_values(r["headers"], "Authorization") == ["Bearer " + tok]
        assert [k for k, _ in r["headers"] if k.lower().startswith("impersonate-")] == []
        assert r["passthrough_user"] == user
        assert not r["auth_ok"]  # the service-account token never went upstream
    assert not [r for r in stack.api_requests() if r.get("tokenreview")]  # no TokenReview either
    kosstack.wait_log(stack.haproxy, "kos_status=5 ")


@pytest.mark.parametrize("case", ["expired", "bad-signature", "wrong-audience", "garbage"])
def test_a_bad_token_is_still_401_and_nothing_is_forwarded(stack, case):
    now = int(time.time())
    if case == "garbage":
        tok = "not-a-jwt"
    elif case == "expired":
        tok = stack.mint({"sub": "mallory", "iat": now - 7200, "exp": now - 3600})
    elif case == "bad-signature":
        tok = stack.mint({"sub": "mallory"}, key="unknown")
    else:
        tok = stack.mint({"sub": "mallory", "aud": "someone-else"})
    # even a token the API server itself would take: the agent's verdict comes first
    stack.api_config(review_tokens={**getattr(stack, "_direct", {}), tok: {"username": "mallory"}})
    stack.api_reset()
    status, _, body = stack.request("GET", "/api/v1/namespaces/default/pods",
                                    headers=[("Authorization", "Bearer " + tok)])
    assert status == 401, body
    assert json.loads(body)["reason"] == "Unauthorized"
    assert forwarded(stack) == []


def test_impersonation_headers_are_refused(stack):
    tok, _ = direct_token(stack)
    stack.api_reset()
    status, _, body = stack.request("GET", "/api/v1/namespaces/default/pods",
                                    headers=[("Authorization", "Bearer " + tok), ("Impersonate-User", "admin")])
    assert status == 403, body
    assert forwarded(stack) == []
