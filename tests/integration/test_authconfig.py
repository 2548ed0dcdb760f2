"""--authentication-config end to end: two test issuers at once (different keys, CAs, audiences and mappings),
CEL mappings and rules, uid and extra headers as the stand-in API server sees them, readiness and metrics per
issuer, `kube-oidc-spoa explain` for a good and several bad tokens, refused configurations, and SIGHUP reload
with a valid and an invalid new file."""
import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

import apiserver
import kosstack
import kostest
from issuer import TestIssuer

AGENT = kostest.build_path("kube-oidc-spoa")


def pem(path):
    with open(path) as f:
        return f.read()


def config_doc(a, b, b_prefix="b:"):
    """Issuer A: claim mappings, two audiences (MatchAny), a CEL claim rule. Issuer B: an explicit discoveryURL,
    CEL username/groups/uid/extra and a user rule."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1beta1",
        "kind": "AuthenticationConfiguration",
        "jwt": [
            {"issuer": {"url": a.issuer, "audiences": ["kos-a", "kos-a2"], "audienceMatchPolicy": "MatchAny",
                        "certificateAuthority": pem(a.ca)},
             "claimValidationRules": [{"expression": 'claims.?tier.orValue("") != "banned"',
                                       "message": "tier banned"}],
             "claimMappings": {"username": {"claim": "sub", "prefix": "a:"},
                               "groups": {"claim": "groups", "prefix": "a:"},
                               "uid": {"claim": "oid"},
                               "extra": [{"key": "example.com/tenant", "valueExpression": "claims.tid"}]}},
            {"issuer": {"url": b.issuer, "discoveryURL": b.issuer + "/.well-known/openid-configuration",
                        "audiences": ["kos-b"], "certificateAuthority": pem(b.ca)},
             "claimMappings": {"username": {"expression": f'"{b_prefix}" + claims.preferred_username'},
                               "groups": {"expression": 'claims.roles.map(r, "b-" + r)'},
                               "uid": {"expression": '"uid-" + claims.sub'},
                               "extra": [{"key": "example.com/idp", "valueExpression": '"b"'},
                                         {"key": "example.com/none", "valueExpression": '""'}]},
             "userValidationRules": [{"expression": '!user.username.startsWith("b:admin")',
                                      "message": "no admins"}]},
        ],
    }


@pytest.fixture(scope="module")
def issuer_b(tmp_path_factory):
    b = TestIssuer(state_dir=str(tmp_path_factory.mktemp("issuer-b"))).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def stack(make_stack, issuer_b):
    def write_config(s):
        s.authcfg = os.path.join(s.dir, "authn.json")
        with open(s.authcfg, "w") as f:
            json.dump(config_doc(s.issuer, issuer_b), f)
        return ["--authentication-config", s.authcfg]

    s = make_stack(oidc_flags=False, before_agent=write_config)
    yield s
    kosstack.assert_all_authenticated(s)


def identity_seen(stack, token):
    """(HTTP status, the identity the stand-in API server acted as or None) for one request with token."""
    stack.api_reset()
    st, _, body = stack.request("GET", "/api/v1/namespaces/default/pods",
                                headers=[("Authorization", f"Bearer {token}")])
    recs = stack.api_requests()
    return st, (recs[-1].get("identity") if recs else None), body


def test_issuer_a_claim_mappings(stack):
    tok = stack.mint({"aud": ["other", "kos-a2"], "sub": "alice", "groups": ["dev", "ops"], "oid": "u-1",
                      "tid": "t-9"})
    st, ident, body = identity_seen(stack, tok)
    assert st == 200, body
    assert ident["username"] == "a:alice"
    assert ident["groups"] == ["a:dev", "a:ops", "system:authenticated"]
    assert ident["uid"] == "u-1"
    assert ident["extra"] == {"example.com/tenant": ["t-9"]}


def test_extras_with_several_values_through_native_slots(stack):
    """Contract v2 (no Lua): a list-valued extra reaches the API server as one Impersonate-Extra line per value,
    in order, next to another key's; more values than a slot holds (8) is a 403, never a cut list."""
    tok = stack.mint({"aud": "kos-a", "sub": "alice", "groups": ["dev"], "oid": "u-1",
                      "tid": ["t-1", "t-2", "t-3", "t 4"]})
    st, ident, body = identity_seen(stack, tok)
    assert st == 200, body
    assert ident["extra"] == {"example.com/tenant": ["t-1", "t-2", "t-3", "t 4"]}
    st, ident, body = identity_seen(stack, stack.mint({"aud": "kos-a", "sub": "alice", "oid": "u-1",
                                                       "tid": [f"t-{i}" for i in range(9)]}))
    assert st == 403 and ident is None, body
    assert "at most 8" in json.loads(body)["message"]


def test_issuer_b_cel_mappings(stack, issuer_b):
    tok = issuer_b.mint({"aud": "kos-b", "sub": "s-7", "preferred_username": "bob", "roles": ["x", "y"]})
    st, ident, body = identity_seen(stack, tok)
    assert st == 200, body
    assert ident["username"] == "b:bob"
    assert ident["groups"] == ["b-x", "b-y", "system:authenticated"]
    assert ident["uid"] == "uid-s-7"
    assert ident["extra"] == {"example.com/idp": ["b"]}  # the empty value is omitted, as the API server does


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS384", "RS512"])
def test_every_algorithm_without_naming_one(stack, alg):
    """Issue 20 item 1: a configuration file names no algorithm, and kube-apiserver then accepts every algorithm of
    its allow-list, oidc.AllValidSigningAlgorithms() (the key's type must fit). Before the fix the agent kept
    --oidc-signing-algs' RS256 default in this mode and answered 401 to every one of these."""
    tok = stack.mint({"aud": "kos-a", "sub": "alice", "groups": ["dev"], "oid": "u-1", "tid": "t-9"}, alg=alg)
    st, ident, body = identity_seen(stack, tok)
    assert st == 200, (alg, body)
    assert ident["username"] == "a:alice"


def test_eddsa_is_not_in_the_api_servers_list(stack):
    """EdDSA is not in kube-apiserver's allow-list, so with a file and no --oidc-signing-algs the API server's own
    authenticator refuses such a token: so does the agent (an operator opts in by naming it in the flag)."""
    tok = stack.mint({"aud": "kos-a", "sub": "alice", "oid": "u-1", "tid": "t-9"}, alg="EdDSA")
    st, ident, body = identity_seen(stack, tok)
    assert st == 401 and ident is None, body


def test_signing_algs_beside_the_file(stack):
    """--oidc-signing-algs is allowed beside the file and replaces its list; without it the effective list is the
    API server's; none/HMAC stay refused at start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOS_")}
    base = [AGENT, "--authentication-config", stack.authcfg, "--service-account-token-file", stack.sa_file,
            "--check-config"]
    p = subprocess.run(base, capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "oidc-signing-algs: RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512\n" in p.stdout
    p = subprocess.run(base + ["--oidc-signing-algs", "ES256"], capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "oidc-signing-algs: ES256\n" in p.stdout
    p = subprocess.run(base + ["--oidc-signing-algs", "RS256,HS256"], capture_output=True, text=True, timeout=30,
                       env=env)
    assert p.returncode == 2 and "never accepted" in p.stderr, p.stderr


def test_algorithms_never_accepted_and_key_must_fit(stack):
    """Every algorithm is not any algorithm: none and HMAC stay refused, and a token whose alg names another key
    type than the key its kid names is refused."""
    a = stack.issuer
    claims = {"aud": "kos-a", "sub": "alice", "oid": "u-1", "tid": "t-9"}
    for alg in ("none", "HS256"):
        st, ident, body = identity_seen(stack, a.mint_ex(claims, alg=alg)[0])
        assert st == 401 and ident is None, (alg, body)
    # an ES256 token (signed by the P-256 key) whose kid names the RSA key
    rsa_kid = a.mint_ex(claims, alg="RS256")[1]
    st, ident, body = identity_seen(stack, a.mint_ex(claims, alg="ES256", header={"kid": rsa_kid})[0])
    assert st == 401 and ident is None, body


@pytest.mark.parametrize("case", ["unknown-issuer", "wrong-audience", "other-issuers-key", "claim-rule",
                                  "user-rule", "cel-error"])
def test_refused(stack, issuer_b, case):
    a, b = stack.issuer, issuer_b
    tok = {
        "unknown-issuer": lambda: a.mint({"iss": "https://nobody.example", "aud": "kos-a"}),
        "wrong-audience": lambda: a.mint({"aud": "kos-b"}),
        # A's key, B's iss: B's keys must verify it, and they do not have A's kid
        "other-issuers-key": lambda: a.mint({"iss": b.issuer, "aud": "kos-b", "preferred_username": "m",
                                             "roles": []}),
        "claim-rule": lambda: a.mint({"aud": "kos-a", "tier": "banned", "oid": "o", "tid": "t"}),
        "user-rule": lambda: b.mint({"aud": "kos-b", "preferred_username": "admin-joe", "roles": []}),
        "cel-error": lambda: b.mint({"aud": "kos-b", "roles": []}),  # no preferred_username: no such key
    }[case]()
    st, _, body = identity_seen(stack, tok)
    assert st == 401, (case, body)
    assert not [r for r in stack.api_requests() if r["path"].startswith("/api/v1/namespaces/default/pods")]


# Values a header cannot carry unchanged, through the configuration-file path (issue 14, finding 1): the stand-in
# API server reads headers as Go does (surrounding SP/HTAB stripped), so each of these would reach it as another
# value than the API server's own authenticator computes; the agent refuses them (401), nothing is forwarded.
@pytest.mark.parametrize("case", ["a-group-trailing-space", "a-uid-leading-space", "a-extra-trailing-tab",
                                  "b-username-trailing-space", "b-group-trailing-space", "b-uid-trailing-space"])
def test_value_a_header_cannot_carry_is_refused(stack, issuer_b, case):
    a, b = stack.issuer, issuer_b
    base_a = {"aud": "kos-a", "sub": "alice", "groups": ["dev"], "oid": "u-1", "tid": "t-9"}
    base_b = {"aud": "kos-b", "sub": "s-7", "preferred_username": "bob", "roles": ["x"]}
    tok = {
        "a-group-trailing-space": lambda: a.mint(dict(base_a, groups=["dev", "ops "])),
        "a-uid-leading-space": lambda: a.mint(dict(base_a, oid=" u-1")),
        "a-extra-trailing-tab": lambda: a.mint(dict(base_a, tid="t-9\t")),
        "b-username-trailing-space": lambda: b.mint(dict(base_b, preferred_username="bob ")),
        "b-group-trailing-space": lambda: b.mint(dict(base_b, roles=["x", "y "])),
        "b-uid-trailing-space": lambda: b.mint(dict(base_b, sub="s-7 ")),
    }[case]()
    st, _, body = identity_seen(stack, tok)
    assert st == 401, (case, body)
    assert not [r for r in stack.api_requests() if r["path"].startswith("/api/v1/namespaces/default/pods")]
    assert "identity cannot be forwarded unchanged" in stack.agent.log()


def test_ready_and_metrics_per_issuer(stack, issuer_b):
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.probe_port}/ready", timeout=5) as r:
        assert json.loads(r.read()) == {"ready": True}  # every issuer ready: nothing more to say
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.probe_port}/ready?verbose", timeout=5) as r:
        body = json.loads(r.read())
    assert body["ready"] is True
    assert f"{stack.issuer.issuer}: ready" in body["detail"]
    assert f"{issuer_b.issuer}: ready" in body["detail"]
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.probe_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for iss in (stack.issuer.issuer, issuer_b.issuer):
        assert f'kos_issuer_ready{{issuer="{iss}"}} 1' in text
        assert f'kos_jwks_refreshes_total{{issuer="{iss}"}}' in text
    assert "kos_issuers 2" in text
    assert "kos_issuers_ready 2" in text


def explain(stack, token, *extra):
    """Runs `kube-oidc-spoa explain` with the stack's configuration, the token on stdin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOS_")}
    p = subprocess.run([AGENT, "explain", "--authentication-config", stack.authcfg,
                        "--service-account-token-file", stack.sa_file] + list(extra),
                       input=token, capture_output=True, text=True, timeout=60, env=env)
    return p.returncode, p.stdout, p.stderr


def test_explain_good_token(stack):
    tok = stack.mint({"aud": "kos-a", "sub": "alice", "groups": ["dev"], "oid": "u-1", "tid": "t-9"})
    rc, out, err = explain(stack, tok)
    assert rc == 0, out + err
    for needle in (f"issuer: jwt[0] {stack.issuer.issuer}", "header: alg=RS256 kid=", "signature: ok",
                   "standard claims (iss, aud MatchAny, exp, nbf): ok", "username: a:alice", "group: a:dev",
                   "uid: u-1", "extra example.com/tenant: t-9", "claims.?tier.orValue", "verdict: ACCEPTED"):
        assert needle in out, (needle, out)
    head, payload, sig = tok.split(".")
    for secret in (tok, sig, payload):
        assert secret not in out and secret not in err


@pytest.mark.parametrize("case,needles", [
    ("expired", ["standard claims: FAIL (token expired)", "verdict: REJECTED (401 token expired)"]),
    ("unknown-issuer", ["issuer: FAIL (iss \"https://nobody.example\" is none of the 2 configured issuers)",
                        "verdict: REJECTED (401 issuer mismatch): unknown issuer"]),
    ("wrong-audience", ["standard claims: FAIL (audience mismatch)"]),
    ("claim-rule", ["FAIL (false)", "validation expression 'claims.?tier.orValue(\"\") != \"banned\"' failed: "
                    "tier banned"]),
    ("user-rule", ["username: b:admin-joe", "FAIL (false)", "failed: no admins"]),
    ("cel-error", ["username: FAIL (oidc: error evaluating username claim expression: no such key: "
                   "preferred_username)"]),
    ("bad-signature", ["signature: FAIL", "verdict: REJECTED (401 invalid signature)"]),
    ("garbage", ["token: FAIL", "verdict: REJECTED (401 malformed token)"]),
])
def test_explain_bad_tokens(stack, issuer_b, case, needles):
    a, b = stack.issuer, issuer_b
    if case == "expired":
        tok = a.mint({"aud": "kos-a", "exp": int(time.time()) - 100})
    elif case == "unknown-issuer":
        tok = a.mint({"iss": "https://nobody.example", "aud": "kos-a"})
    elif case == "wrong-audience":
        tok = a.mint({"aud": "kos-b"})
    elif case == "claim-rule":
        tok = a.mint({"aud": "kos-a", "tier": "banned", "oid": "o", "tid": "t"})
    elif case == "user-rule":
        tok = b.mint({"aud": "kos-b", "preferred_username": "admin-joe", "roles": []})
    elif case == "cel-error":
        tok = b.mint({"aud": "kos-b", "roles": []})
    elif case == "bad-signature":
        h, p, s = a.mint({"aud": "kos-a"}).split(".")
        tok = ".".join((h, p, s[:-4] + ("AAAA" if not s.endswith("AAAA") else "BBBB")))
    else:
        tok = "not-a-jwt"
    rc, out, err = explain(stack, tok)
    assert rc == 1, out + err
    for n in needles:
        assert n in out, (n, out)
    if "." in tok:
        assert tok.split(".")[2] not in out


def test_explain_token_file_and_flags_path(stack, tmp_path):
    """explain also runs with the --oidc-* flags (kube-oidc-proxy's), the token from a file."""
    tok = stack.mint({"sub": "carol"})
    tf = tmp_path / "tok"
    tf.write_text("Bearer " + tok + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOS_")}
    p = subprocess.run([AGENT, "explain", "--token-file", str(tf), "--oidc-issuer-url", stack.issuer.issuer,
                        "--oidc-client-id", kosstack.CLIENT_ID, "--oidc-ca-file", stack.issuer.ca,
                        "--oidc-username-prefix", "-"], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "user: carol" in p.stdout and "verdict: ACCEPTED" in p.stdout


def write_bad_configs(d, a, b):
    docs = {}
    doc = config_doc(a, b)
    doc["jwt"][1]["claimMappings"]["username"]["expression"] = "claims.preferred_username +"
    docs["syntax"] = (doc, 'jwt[1].claimMappings.username.expression: Invalid value: '
                           '"claims.preferred_username +": compilation failed')
    doc = config_doc(a, b)
    doc["jwt"][0]["claimValidationRules"][0]["expression"] = "claims.tier"
    docs["not-bool"] = (doc, 'jwt[0].claimValidationRules[0].expression: Invalid value: "claims.tier": '
                             'must evaluate to bool')
    doc = config_doc(a, b)
    doc["jwt"][1]["claimMappings"]["username"]["expression"] = "claims.email"
    docs["email"] = (doc, "claims.email_verified must be used in claimMappings.username.expression")
    doc = config_doc(a, b)
    doc["jwt"][1]["issuer"]["url"] = a.issuer
    docs["duplicate-issuer"] = (doc, "jwt[1].issuer.url: Duplicate value")
    out = {}
    for name, (doc, want) in docs.items():
        path = os.path.join(d, f"bad-{name}.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        out[name] = (path, want)
    return out


def test_refused_configurations(stack, issuer_b, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOS_")}
    for name, (path, want) in write_bad_configs(str(tmp_path), stack.issuer, issuer_b).items():
        p = subprocess.run([AGENT, "--authentication-config", path, "--service-account-token-file",
                            stack.sa_file, "--check-config"], capture_output=True, text=True, timeout=30, env=env)
        assert p.returncode == 1, (name, p.stdout, p.stderr)
        assert want in p.stderr, (name, p.stderr)
    p = subprocess.run([AGENT, "--authentication-config", stack.authcfg, "--oidc-issuer-url",
                        stack.issuer.issuer], capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 2
    assert "--authentication-config and --oidc-issuer-url (or KOS_OIDC_ISSUER_URL) are mutually exclusive" \
        in p.stderr
    p = subprocess.run([AGENT, "--authentication-config", stack.authcfg, "--service-account-token-file",
                        stack.sa_file, "--check-config"], capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "authentication-config: 2 issuers, every expression compiles" in p.stdout


def write_atomic(path, doc):
    """Replaces path's content in one rename, so the agent's file watch never reads half a file."""
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f)
    os.replace(path + ".tmp", path)


def reload_counts(stack):
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.probe_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for res in ("ok", "invalid"):
        line = [x for x in text.splitlines()
                if x.startswith(f'kos_authentication_config_reloads_total{{result="{res}"}} ')]
        out[res] = int(line[0].split()[-1])
    return out


def test_sighup_reload_valid_then_invalid(stack, issuer_b, tmp_path):
    """Changes the running configuration, and puts it back at the end. The agent also watches the file (see
    test_authconfig_reload.py), so the watch may see a change before the signal does: either reload counts, and
    the assertions hold for both."""
    def b_user():
        tok = issuer_b.mint({"aud": "kos-b", "preferred_username": "bob", "roles": []})
        st, ident, body = identity_seen(stack, tok)
        assert st == 200, body
        return ident["username"]

    def wait_b_user(want, timeout=20.0):
        deadline = time.monotonic() + timeout
        while (got := b_user()) != want:
            assert time.monotonic() < deadline, (want, got, stack.agent.log()[-3000:])
            time.sleep(0.1)

    assert b_user() == "b:bob"
    before = reload_counts(stack)
    write_atomic(stack.authcfg, config_doc(stack.issuer, issuer_b, b_prefix="b2:"))
    stack.agent.p.send_signal(signal.SIGHUP)
    kosstack.wait_log(stack.agent, "authentication configuration reloaded", timeout=20)
    assert '"trigger":"SIGHUP"' in stack.agent.log()
    wait_b_user("b2:bob")

    bad, want = write_bad_configs(str(tmp_path), stack.issuer, issuer_b)["not-bool"]
    os.replace(bad, stack.authcfg)
    stack.agent.p.send_signal(signal.SIGHUP)
    log = kosstack.wait_log(stack.agent, "keeping the previous one", timeout=20)
    assert "must evaluate to bool" in log
    assert b_user() == "b2:bob"
    after = reload_counts(stack)
    assert after["ok"] - before["ok"] in (1, 2), (before, after)  # the signal's, and maybe the watch's
    assert after["invalid"] - before["invalid"] in (1, 2), (before, after)

    # pytest may run other tests of this module after this one: put the first configuration back
    write_atomic(stack.authcfg, config_doc(stack.issuer, issuer_b))
    stack.agent.p.send_signal(signal.SIGHUP)
    wait_b_user("b:bob")
    stack.wait_agent_ready()
