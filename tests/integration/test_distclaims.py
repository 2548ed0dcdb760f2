"""Distributed groups (OpenID Connect Core 5.6.2, Entra ID's way of moving large group lists out of the token),
resolved exactly as kube-apiserver's OIDC authenticator does, in flags mode (--oidc-groups-claim) and in
--authentication-config mode (claimMappings.groups.claim): the token's _claim_names points its groups at a
_claim_sources entry with an endpoint — a claims source served by the test issuer over https with its own CA —
which the agent fetches (with the source's access token as bearer) without blocking a SPOP worker, verifies as a
JWT of the issuer, and maps with the groups prefix like the token's own claim. Every way the source can fail is a
401 with a clear reason in the agent's log and nothing forwarded to the API server; a token's own groups claim
wins with no fetch; an aggregated source (JWT, no endpoint) is ignored, as the API server ignores it; one fetch
serves repeated requests."""
import json
import os
import time

import pytest

import kosstack
import kostest
from issuer import TestIssuer

PREFIX = {"flags": "oidc:", "file": "f:"}


def pem(path):
    with open(path) as f:
        return f.read()


@pytest.fixture(scope="module")
def issuer_b(tmp_path_factory):
    """A second issuer, configured beside the first in file mode only."""
    b = TestIssuer(state_dir=str(tmp_path_factory.mktemp("issuer-b"))).start()
    yield b
    b.stop()


@pytest.fixture(scope="module", params=["flags", "file"])
def stack(request, make_stack, issuer_b):
    mode = request.param
    if mode == "flags":
        s = make_stack(agent_args=["--oidc-username-prefix", "-", "--oidc-groups-claim", "groups",
                                   "--oidc-groups-prefix", PREFIX["flags"]])
    else:
        def write_config(st):
            st.authcfg = os.path.join(st.dir, "authn.json")
            doc = {"apiVersion": "apiserver.config.k8s.io/v1beta1", "kind": "AuthenticationConfiguration",
                   "jwt": [{"issuer": {"url": st.issuer.issuer, "audiences": [kosstack.CLIENT_ID],
                                       "certificateAuthority": pem(st.issuer.ca)},
                            "claimMappings": {"username": {"claim": "sub", "prefix": ""},
                                              "groups": {"claim": "groups", "prefix": PREFIX["file"]}}},
                           {"issuer": {"url": issuer_b.issuer, "audiences": ["kos-b"],
                                       "certificateAuthority": pem(issuer_b.ca)},
                            "claimMappings": {"username": {"claim": "sub", "prefix": "b:"}}}]}
            with open(st.authcfg, "w") as f:
                json.dump(doc, f)
            return ["--authentication-config", st.authcfg]
        s = make_stack(oidc_flags=False, before_agent=write_config)
    s.mode = mode
    s.n = 0
    yield s
    kosstack.assert_all_authenticated(s)


def source(stack, body="", **kw):
    """A new claims source on the stack's issuer (unique per call): (name, url)."""
    stack.n += 1
    name = f"{stack.mode}-{stack.n}"
    return name, stack.issuer.set_claim_source(name, body, **kw)


def claims_jwt(stack, groups=("dev", "ops"), **claims):
    c = {"sub": "claims-source"}
    if groups is not None:
        c["groups"] = list(groups)
    c.update(claims)
    return stack.mint(c)


def distributed_token(stack, url, access_token="at-secret", sub="dana", extra=None):
    src = {"endpoint": url}
    if access_token is not None:
        src["access_token"] = access_token
    c = {"sub": sub, "_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": src}}
    c.update(extra or {})
    return stack.mint(c)


def call(stack, token):
    """(status, identity the stand-in API server acted as or None, body), the API server's log reset first."""
    stack.api_reset()
    st, _, body = stack.request("GET", "/api/v1/namespaces/default/pods",
                                headers=[("Authorization", f"Bearer {token}")])
    recs = stack.api_requests()
    return st, (recs[-1].get("identity") if recs else None), body


def refused(stack, token, needle):
    """A 401 with nothing forwarded and needle in the agent's log (the logged reason)."""
    st, ident, body = call(stack, token)
    assert st == 401, (st, body)
    assert ident is None and stack.api_requests() == [], "a refused request reached the API server"
    doc = json.loads(body)
    assert doc["kind"] == "Status" and doc["code"] == 401
    kosstack.wait_log(stack.agent, needle)


def test_groups_resolved_from_the_source_with_its_access_token(stack):
    name, url = source(stack, claims_jwt(stack, groups=["dev", "ops"]))
    st, ident, body = call(stack, distributed_token(stack, url, access_token="at-" + name))
    assert st == 200, body
    p = PREFIX[stack.mode]
    assert ident["username"] == "dana"
    assert ident["groups"] == [p + "dev", p + "ops", "system:authenticated"]
    assert stack.issuer.claim_requests(name) == [(name, "Bearer at-" + name)]


def test_no_access_token_no_authorization_header(stack):
    name, url = source(stack, claims_jwt(stack, groups=["solo"]))
    st, ident, body = call(stack, distributed_token(stack, url, access_token=None))
    assert st == 200, body
    assert ident["groups"] == [PREFIX[stack.mode] + "solo", "system:authenticated"]
    assert stack.issuer.claim_requests(name) == [(name, None)]


def test_one_fetch_serves_repeated_requests(stack):
    name, url = source(stack, claims_jwt(stack, groups=["cached"]))
    tok = distributed_token(stack, url, access_token="at-" + name)
    for _ in range(2):
        st, ident, body = call(stack, tok)
        assert st == 200, body
        assert ident["groups"] == [PREFIX[stack.mode] + "cached", "system:authenticated"]
    # a second token naming the same source (URL and access token) uses the answer fetched for the first
    st, ident, body = call(stack, distributed_token(stack, url, access_token="at-" + name, sub="dana2"))
    assert st == 200, body
    assert ident["username"] == "dana2"
    assert len(stack.issuer.claim_requests(name)) == 1


def test_groups_not_kept_past_the_claim_jwt_exp(stack):
    """The token lives 10 minutes, its claim JWT 2 seconds: once that exp has passed neither the token cache nor
    the fetched answer keeps the groups — the same token is fetched for again and refused (the source still
    answers the expired JWT). Bounded poll, no timed assertion."""
    now = int(time.time())
    name, url = source(stack, claims_jwt(stack, groups=["short"], exp=now + 2))
    tok = distributed_token(stack, url)
    st, ident, body = call(stack, tok)
    assert st == 200, body
    deadline = time.monotonic() + 20
    while True:
        st, ident, body = call(stack, tok)
        if st == 401:
            break
        assert st == 200 and ident["groups"] == [PREFIX[stack.mode] + "short", "system:authenticated"], body
        assert time.monotonic() < deadline, "groups still served long past the claim JWT's exp"
        time.sleep(0.5)
    assert stack.api_requests() == []
    kosstack.wait_log(stack.agent, "distributed claims: claims JWT: token expired")
    assert len(stack.issuer.claim_requests(name)) >= 2


def test_kubectl_parallel_requests_share_one_fetch(stack):
    name, url = source(stack, claims_jwt(stack, groups=["kube"]))
    p = stack.kubectl("auth", "whoami", "-o", "json", token=distributed_token(stack, url))
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)["status"]["userInfo"]
    assert info["groups"] == [PREFIX[stack.mode] + "kube", "system:authenticated"]
    assert len(stack.issuer.claim_requests(name)) == 1


def test_token_groups_claim_wins_without_a_fetch(stack):
    name, url = source(stack, claims_jwt(stack, groups=["from-source"]))
    tok = distributed_token(stack, url, extra={"groups": ["own"]})
    st, ident, body = call(stack, tok)
    assert st == 200, body
    assert ident["groups"] == [PREFIX[stack.mode] + "own", "system:authenticated"]
    assert stack.issuer.claim_requests(name) == []


def test_aggregated_source_is_ignored_like_the_api_server(stack):
    """A source with a JWT and no endpoint (aggregated claims): the API server skips it and judges the token
    without the claim — no groups, no fetch, no refusal."""
    tok = stack.mint({"sub": "agg", "_claim_names": {"groups": "a1"},
                      "_claim_sources": {"a1": {"JWT": claims_jwt(stack, groups=["never"])}}})
    st, ident, body = call(stack, tok)
    assert st == 200, body
    assert ident["username"] == "agg" and ident["groups"] == ["system:authenticated"]


def test_claim_names_without_groups_and_no_sources_is_refused(stack):
    """The API server refuses _claim_names without _claim_sources even when it names another claim."""
    refused(stack, stack.mint({"sub": "x", "_claim_names": {"roles": "s"}}),
            "distributed claims: _claim_names without _claim_sources")


def test_missing_source_refused_without_a_fetch(stack):
    name, url = source(stack, claims_jwt(stack))
    tok = stack.mint({"sub": "x", "_claim_names": {"groups": "nope"},
                      "_claim_sources": {"src1": {"endpoint": url}}})
    refused(stack, tok, "_claim_names names a source missing from _claim_sources")
    assert stack.issuer.claim_requests(name) == []


def test_unreachable_source(stack):
    port = kostest.free_port()
    refused(stack, distributed_token(stack, f"https://127.0.0.1:{port}/claims/none"),
            "distributed claims: source unreachable")


def test_fetch_failure_log_keeps_secrets_out(stack):
    """The failure is logged with the endpoint, but not its user info or query, and never the access token."""
    port = kostest.free_port()
    url = f"https://usr:pw-s3cret@127.0.0.1:{port}/claims/gone?code=q-s3cret"
    refused(stack, distributed_token(stack, url, access_token="at-s3cret"),
            f'"endpoint":"https://127.0.0.1:{port}/claims/gone"')
    assert "s3cret" not in stack.agent.log()


def test_answer_with_a_trailing_newline(stack):
    _, url = source(stack, claims_jwt(stack, groups=["nl"]) + "\n")
    st, ident, body = call(stack, distributed_token(stack, url))
    assert st == 200, body
    assert ident["groups"] == [PREFIX[stack.mode] + "nl", "system:authenticated"]


def test_source_connection_reset(stack):
    _, url = source(stack, mode="down")
    refused(stack, distributed_token(stack, url), "distributed claims: source unreachable")


@pytest.mark.parametrize("status", [500, 403, 404])
def test_non_2xx_answer(stack, status):
    _, url = source(stack, claims_jwt(stack), status=status)
    refused(stack, distributed_token(stack, url), f"distributed claims: the source answered HTTP {status}")


def test_redirect_not_followed(stack):
    name, url = source(stack, mode="redirect")
    refused(stack, distributed_token(stack, url), "distributed claims: the source answered HTTP 302")
    assert [n for n, _ in stack.issuer.claim_requests() if n == name + "-moved"] == []


def test_answer_not_a_jwt(stack):
    _, url = source(stack, "<html>not a token</html>")
    refused(stack, distributed_token(stack, url), "distributed claims: the source's answer is not a JWT")


def test_answer_signed_by_an_unknown_key(stack):
    _, url = source(stack, stack.mint({"sub": "s", "groups": ["evil"]}, key="unknown"))
    refused(stack, distributed_token(stack, url), "distributed claims: claims JWT: unknown key id")


def test_answer_for_another_audience(stack):
    _, url = source(stack, claims_jwt(stack, aud="someone-else"))
    refused(stack, distributed_token(stack, url), "distributed claims: claims JWT: ")


def test_answer_expired(stack):
    now = int(time.time())
    _, url = source(stack, claims_jwt(stack, iat=now - 700, exp=now - 100))
    refused(stack, distributed_token(stack, url), "distributed claims: claims JWT: ")


def test_answer_of_an_unconfigured_issuer(stack):
    _, url = source(stack, claims_jwt(stack, iss="https://elsewhere.example"))
    refused(stack, distributed_token(stack, url), "distributed claims: the claims JWT's iss is none of the "
            "configured issuers")


def test_answer_of_another_configured_issuer(stack, issuer_b):
    """As the API server: a claim JWT of another issuer is verified with that issuer's keys, for the token's
    authenticator's audiences. Only a configured issuer is trusted (file mode: issuer B; flags: none)."""
    _, url = source(stack, issuer_b.mint({"sub": "b-src", "groups": ["b-grp"], "aud": kosstack.CLIENT_ID}))
    tok = distributed_token(stack, url)
    if stack.mode == "flags":
        refused(stack, tok, "distributed claims: the claims JWT's iss is none of the configured issuers")
        return
    st, ident, body = call(stack, tok)
    assert st == 200, body
    assert ident["groups"] == [PREFIX["file"] + "b-grp", "system:authenticated"]
    # B's own audience is not enough: the audiences are those of the token's authenticator
    _, url = source(stack, issuer_b.mint({"sub": "b-src", "groups": ["b-grp"], "aud": "kos-b"}))
    refused(stack, distributed_token(stack, url), "distributed claims: claims JWT: ")


def test_answer_of_another_configured_issuer_signed_by_the_first(stack, issuer_b):
    """A JWT claiming issuer B but signed with issuer A's key: B's keys do not verify it (flags: B is not
    configured at all)."""
    _, url = source(stack, claims_jwt(stack, iss=issuer_b.issuer))
    refused(stack, distributed_token(stack, url), "distributed claims: claims JWT: unknown key id"
            if stack.mode == "file" else "distributed claims: the claims JWT's iss is none of the configured issuers")


def test_answer_without_the_claim(stack):
    _, url = source(stack, claims_jwt(stack, groups=None))
    refused(stack, distributed_token(stack, url), 'distributed claims: the claims JWT has no \\"groups\\" claim')


def test_over_size_answer(stack):
    _, url = source(stack, mode="huge")
    refused(stack, distributed_token(stack, url), "distributed claims: the source's answer is larger than")


def test_slow_answer(stack):
    _, url = source(stack, claims_jwt(stack), mode="slow", delay_ms=2500)
    refused(stack, distributed_token(stack, url), "distributed claims: the source did not answer within")


def test_http_endpoint_refused(stack):
    name, _ = source(stack, claims_jwt(stack))
    url = stack.issuer.issuer.replace("https://", "http://") + "/claims/" + name
    refused(stack, distributed_token(stack, url), "not an https URL")


def test_expired_token_makes_no_fetch(stack):
    name, url = source(stack, claims_jwt(stack))
    now = int(time.time())
    st, _, _ = call(stack, distributed_token(stack, url, extra={"iat": now - 700, "exp": now - 100}))
    assert st == 401
    assert stack.issuer.claim_requests(name) == []


def test_explain_fetches_and_shows_the_source(stack):
    """kube-oidc-spoa explain resolves distributed groups like the agent and says so in its checks."""
    import subprocess
    name, url = source(stack, claims_jwt(stack, groups=["explained"]))
    if stack.mode == "flags":
        cfg = ["--oidc-issuer-url", stack.issuer.issuer, "--oidc-client-id", kosstack.CLIENT_ID, "--oidc-ca-file",
               stack.issuer.ca, "--oidc-username-prefix", "-", "--oidc-groups-claim", "groups",
               "--oidc-groups-prefix", PREFIX["flags"]]
    else:
        cfg = ["--authentication-config", stack.authcfg]
    p = subprocess.run([kostest.build_path("kube-oidc-spoa"), "explain"] + cfg,
                       input=distributed_token(stack, url), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert '"groups" resolved from its source' in p.stdout
    assert PREFIX[stack.mode] + "explained" in p.stdout
    assert "verdict: ACCEPTED" in p.stdout
    assert len(stack.issuer.claim_requests(name)) == 1


def test_metrics(stack):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.probe_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for needle in ('kos_distributed_claims_fetches_total{result="ok"}',
                   'kos_distributed_claims_fetches_total{result="http_status"}',
                   'kos_distributed_claims_refusals_total{reason="jwt"}',
                   "kos_distributed_claims_fetch_duration_seconds_count"):
        assert needle in text
    ok = [ln for ln in text.splitlines() if ln.startswith('kos_distributed_claims_fetches_total{result="ok"}')]
    assert int(ok[0].split()[-1]) >= 1
