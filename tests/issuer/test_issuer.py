"""The test OIDC issuer (tests/tools/issuer.py) itself: the other suites trust it, so it is tested here.

Tokens are checked with jwcrypto against the JWKS the issuer publishes over HTTPS, verified with its own CA.
"""
import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest
from jwcrypto import jwk, jws

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import issuer as issuer_mod  # noqa: E402
from issuer import TestIssuer  # noqa: E402

PY = "/usr/bin/python3"
SCRIPT = issuer_mod.__file__


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Client:
    """HTTPS to the issuer, trusting only its CA."""

    def __init__(self, iss, host="127.0.0.1"):
        self.ctx = ssl.create_default_context(cafile=iss.ca)
        self.host = host
        self.port = iss.port

    def req(self, method, path, body=None, timeout=30):
        c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def get_json(self, path):
        st, hdrs, body = self.req("GET", path)
        assert st == 200, body
        return hdrs, json.loads(body)


@pytest.fixture(scope="module")
def iss():
    with TestIssuer(max_age=120) as i:
        yield i


@pytest.fixture
def cli(iss):
    iss.set_mode("ok", delay_ms=0, max_age=120)
    iss.reset_stats()
    return Client(iss)


def keyset(cli):
    _, doc = cli.get_json("/keys")
    return jwk.JWKSet.from_json(json.dumps(doc)), doc


def verify(cli, token, alg):
    ks, _ = keyset(cli)
    hdr = json.loads(b64d(token.split(".")[0]))
    key = ks.get_key(hdr["kid"])
    assert key is not None, f"kid {hdr['kid']} not in the JWKS"
    o = jws.JWS()
    o.deserialize(token)
    o.verify(key, alg=alg)
    return hdr, json.loads(o.payload)


def test_discovery_document(iss, cli):
    _, d = cli.get_json("/.well-known/openid-configuration")
    assert d["issuer"] == iss.issuer == f"https://127.0.0.1:{iss.port}"
    assert d["jwks_uri"] == iss.issuer + "/keys"
    assert cli.req("GET", "/nope")[0] == 404


def test_jwks_all_families_with_kids_and_max_age(cli):
    st, hdrs, body = cli.req("GET", "/keys")
    assert st == 200
    assert hdrs["Cache-Control"] == "public, max-age=120"
    keys = json.loads(body)["keys"]
    assert len(keys) == 7
    kids = [k["kid"] for k in keys]
    assert len(set(kids)) == 7
    fams = sorted((k["kty"], k.get("crv", ""), k.get("alg", "")) for k in keys)
    assert fams == sorted([("RSA", "", "RS256"), ("RSA", "", "PS256"), ("RSA", "", ""), ("EC", "P-256", "ES256"),
                           ("EC", "P-384", "ES384"), ("EC", "P-521", "ES512"), ("OKP", "Ed25519", "EdDSA")])
    for k in keys:
        assert "d" not in k and "p" not in k, "private material published"
        assert k["use"] == "sig"


def test_max_age_configurable_and_removable(iss, cli):
    iss.set_mode("ok", max_age=5)
    assert cli.req("GET", "/keys")[1]["Cache-Control"] == "public, max-age=5"
    iss.set_mode("ok", max_age=None)
    assert "Cache-Control" not in cli.req("GET", "/keys")[1]


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                                 "EdDSA"])
def test_mint_every_alg_verifies_with_jwcrypto(iss, cli, alg):
    tok = iss.mint({"sub": "alice", "groups": ["a", "b"]}, alg=alg)
    hdr, claims = verify(cli, tok, alg)
    assert hdr["alg"] == alg and hdr["typ"] == "JWT"
    assert claims["iss"] == iss.issuer and claims["aud"] == "kos-client"
    assert claims["sub"] == "alice" and claims["groups"] == ["a", "b"]
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 120


def test_mint_claim_removal_and_header_extras(iss, cli):
    tok = iss.mint({"exp": None, "aud": ["x", "kos-client"]}, alg="ES256", header={"typ": None, "x-extra": 1})
    hdr, claims = verify(cli, tok, "ES256")
    assert "exp" not in claims and claims["aud"] == ["x", "kos-client"]
    assert "typ" not in hdr and hdr["x-extra"] == 1


def test_mint_hostile_shapes(iss):
    tok = iss.mint(alg="none")
    h, p, s = tok.split(".")
    assert json.loads(b64d(h))["alg"] == "none" and s == "" and "kid" not in json.loads(b64d(h))
    tok = iss.mint(alg="RS256", header={"crit": ["exp-unknown"], "exp-unknown": True, "jku": "https://evil/k"})
    assert json.loads(b64d(tok.split(".")[0]))["crit"] == ["exp-unknown"]
    tok = iss.mint(alg="HS256")  # secret: the RS256 public key PEM, the classic confusion attack
    assert json.loads(b64d(tok.split(".")[0]))["alg"] == "HS256" and len(b64d(tok.split(".")[2])) == 32
    tok = iss.mint(alg="RS256", kid=None)
    assert "kid" not in json.loads(b64d(tok.split(".")[0]))
    tok = iss.mint(alg="RS256", kid="../../etc/passwd")
    assert json.loads(b64d(tok.split(".")[0]))["kid"] == "../../etc/passwd"
    tok = iss.mint(payload_raw='{"sub":"a","sub":"b"}')
    assert b64d(tok.split(".")[1]) == b'{"sub":"a","sub":"b"}'
    with pytest.raises(ValueError):
        iss.mint(alg="HS1")


def test_unknown_key_not_published(iss, cli):
    tok, kid = iss.mint_ex(key="unknown", alg="ES256")
    ks, _ = keyset(cli)
    assert ks.get_key(kid) is None
    assert kid in iss.kids()["unknown"]


def test_rotation_keep_old_then_drop(iss, cli):
    before = set(iss.kids()["current"])
    r = iss.rotate(keep_old=True)
    assert set(r["old_kids"]) == before and not (set(r["kids"]) & before)
    _, doc = keyset(cli)
    assert {k["kid"] for k in doc["keys"]} == before | set(r["kids"])
    old_tok = iss.mint(key="old", alg="RS256")
    verify(cli, old_tok, "RS256")  # still verifiable: published
    r2 = iss.rotate(keep_old=False)
    _, doc = keyset(cli)
    assert {k["kid"] for k in doc["keys"]} == set(r2["kids"])
    tok = iss.mint(alg="EdDSA")
    verify(cli, tok, "EdDSA")


def test_control_api_over_https(iss, cli):
    st, _, body = cli.req("POST", "/_test/mint", {"claims": {"sub": "bob"}, "alg": "PS256"})
    assert st == 200
    verify(cli, json.loads(body)["token"], "PS256")
    st, _, body = cli.req("POST", "/_test/mint", {"alg": "RS256", "kid": None})
    assert st == 200 and json.loads(body)["kid"] is None
    assert cli.req("POST", "/_test/mode", {"mode": "sideways"})[0] == 400
    assert cli.req("POST", "/_test/mint", {"alg": "XX"})[0] == 400
    assert cli.req("POST", "/_test/mint", {"key": "nope"})[0] == 400
    st, _, body = cli.req("POST", "/_test/rotate", {"keep_old": False})
    assert st == 200 and len(json.loads(body)["kids"]) == 7
    st, _, body = cli.req("POST", "/_test/mode", {"mode": "empty"})
    assert st == 200 and json.loads(body)["target"] == "keys"
    assert cli.get_json("/keys")[1] == {"keys": []}
    cli.req("POST", "/_test/mode", {"mode": "ok"})


def test_stats_count_per_path(iss, cli):
    for _ in range(3):
        cli.req("GET", "/keys")
    cli.req("GET", "/.well-known/openid-configuration")
    _, s = cli.get_json("/_test/stats")
    assert s["requests"] == {"/keys": 3, "/.well-known/openid-configuration": 1} and s["total"] == 4
    assert iss.stats()["total"] == 4  # control requests are not counted
    cli.req("POST", "/_test/stats/reset", {})
    assert iss.stats()["total"] == 0


def test_mode_down_resets_connection(iss, cli):
    iss.set_mode("down")
    for path in ("/keys", "/.well-known/openid-configuration"):
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected, ssl.SSLError, OSError)):
            cli.req("GET", path)
    assert cli.get_json("/_test/stats")[1]["requests"]["/keys"] == 1  # control API still answers


def test_mode_garbage_empty_500_wrong_issuer(iss, cli):
    iss.set_mode("garbage")
    st, _, body = cli.req("GET", "/keys")
    assert st == 200
    with pytest.raises(ValueError):
        json.loads(body)
    assert cli.get_json("/.well-known/openid-configuration")[1]["issuer"] == iss.issuer  # keys only
    iss.set_mode("status500")
    assert cli.req("GET", "/keys")[0] == 500 and cli.req("GET", "/.well-known/openid-configuration")[0] == 500
    iss.set_mode("wrong-issuer")
    assert cli.get_json("/.well-known/openid-configuration")[1]["issuer"] == iss.issuer + "/"
    assert len(cli.get_json("/keys")[1]["keys"]) == 7
    iss.set_mode("garbage", target="discovery")
    assert cli.req("GET", "/.well-known/openid-configuration")[0] == 200
    iss.set_mode("status500", target="keys")
    assert cli.req("GET", "/.well-known/openid-configuration")[0] == 200 and cli.req("GET", "/keys")[0] == 500


def test_mode_slow_answers_after_delay(iss, cli):
    iss.set_mode("slow", delay_ms=300)
    with pytest.raises((socket.timeout, TimeoutError)):
        cli.req("GET", "/keys", timeout=0.1)
    st, _, _ = cli.req("GET", "/keys", timeout=30)
    assert st == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_mode_huge_streams_declared_size(iss, cli, chunked):
    iss.set_mode("huge", chunked=chunked)
    c = http.client.HTTPSConnection("127.0.0.1", iss.port, context=cli.ctx, timeout=30)
    try:
        c.request("GET", "/keys")
        r = c.getresponse()
        assert r.status == 200
        if chunked:
            assert r.getheader("Transfer-Encoding") == "chunked" and r.getheader("Content-Length") is None
        else:
            assert int(r.getheader("Content-Length")) == 50 * 1024 * 1024
        got = r.read(2 * 1024 * 1024)  # read a little, then hang up like a capped client
        assert got.startswith(b'{"keys":[') and len(got) == 2 * 1024 * 1024
    finally:
        c.close()
    iss.set_mode("ok", chunked=False)
    # A small "huge" body is read whole: the stream is well formed to the end.
    iss.set_mode("huge", huge_bytes=300000, chunked=chunked)
    st, _, body = cli.req("GET", "/keys")
    assert st == 200 and len(body) == 300000
    iss.set_mode("ok", huge_bytes=50 * 1024 * 1024, chunked=False)


def test_tls_names_and_untrusted_client(iss):
    for host in ("127.0.0.1", "localhost"):
        assert Client(iss, host).req("GET", "/keys")[0] == 200
    c = http.client.HTTPSConnection("127.0.0.1", iss.port, context=ssl.create_default_context(), timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        c.request("GET", "/keys")
    c.close()


def test_ipv6_loopback():
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with TestIssuer(host="::1") as i:
        assert i.issuer == f"https://[::1]:{i.port}"
        ctx = ssl.create_default_context(cafile=i.ca)
        c = http.client.HTTPSConnection("::1", i.port, context=ctx, timeout=30)
        c.request("GET", "/.well-known/openid-configuration")
        assert json.loads(c.getresponse().read())["issuer"] == i.issuer
        c.close()


def test_path_prefix_issuer():
    with TestIssuer(path_prefix="/realms/k8s/") as i:
        assert i.issuer.endswith("/realms/k8s")
        cl = Client(i)
        _, d = cl.get_json("/realms/k8s/.well-known/openid-configuration")
        assert d["issuer"] == i.issuer and d["jwks_uri"] == i.issuer + "/keys"
        assert len(cl.get_json("/realms/k8s/keys")[1]["keys"]) == 7
        assert cl.req("GET", "/keys")[0] == 404


def spawn(state_dir, *extra):
    p = subprocess.Popen([PY, SCRIPT, "--state-dir", state_dir, "--port", "0", "--exit-on-stdin-eof", *extra],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    return p, json.loads(line)


def test_cli_ready_line_restart_keeps_ca_and_keys():
    d = tempfile.mkdtemp(prefix="kos-issuer-cli-")
    p, ready = spawn(d, "--max-age", "7")
    try:
        assert ready["ready"] is True and ready["issuer"] == f"https://127.0.0.1:{ready['port']}"
        assert ready["ca"] == os.path.join(d, "ca.pem") and os.path.exists(ready["ca"])
        ctx = ssl.create_default_context(cafile=ready["ca"])
        c = http.client.HTTPSConnection("127.0.0.1", ready["port"], context=ctx, timeout=30)
        c.request("GET", "/keys")
        r = c.getresponse()
        assert r.getheader("Cache-Control") == "public, max-age=7"
        kids1 = {k["kid"] for k in json.loads(r.read())["keys"]}
        c.close()
        assert (os.stat(os.path.join(d, "ca-key.pem")).st_mode & 0o077) == 0
    finally:
        p.terminate()
        assert p.wait(timeout=30) == 0
    ca1 = open(os.path.join(d, "ca.pem")).read()
    # Restart on the same state dir: same CA, same keys; and it exits by itself when its stdin closes.
    p, ready = spawn(d)
    try:
        ctx = ssl.create_default_context(cafile=ready["ca"])
        c = http.client.HTTPSConnection("127.0.0.1", ready["port"], context=ctx, timeout=30)
        c.request("GET", "/keys")
        kids2 = {k["kid"] for k in json.loads(c.getresponse().read())["keys"]}
        c.close()
        assert kids1 == kids2 and open(ready["ca"]).read() == ca1
        p.stdin.close()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        subprocess.run(["rm", "-rf", d], check=False)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_mode_redirect(iss, cli, scheme):
    iss.set_mode(f"redirect-{scheme}")
    st, hdrs, _ = cli.req("GET", "/keys")
    assert st == 302 and hdrs["Location"] == f"{scheme}://127.0.0.1:{iss.port}/keys?redirected=1"
    st, _, body = cli.req("GET", "/keys?redirected=1")
    assert st == 200 and len(json.loads(body)["keys"]) >= 7
    assert cli.req("GET", "/.well-known/openid-configuration")[0] == 200  # keys only
