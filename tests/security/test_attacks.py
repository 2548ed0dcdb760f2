"""Attack corpus, end to end through the real HAProxy and the real agent: hostile tokens and requests, each with
the verdict it must get (401, 403 for impersonation/too many groups, 400 where HAProxy itself refuses the
request; never 200), and the stand-in API server must have seen no request for any of them.

The agent runs with every asymmetric algorithm allowed, usernames without prefix (--oidc-username-prefix -) and
a groups claim, so that each hostile token travels as deep into the verifier as it can. Tokens are signed with
the test issuer's real private keys where the attack needs a valid signature (the point is then that a claim
or header rule, not the signature, refuses it). Two controls (valid tokens) prove the rig forwards what it
should, so the rows cannot pass by refusing everything."""
import base64
import hashlib
import hmac
import http.client
import json
import re
import ssl
import time

import pytest
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws

import secstack
from secstack import header_values

ALL_ALGS = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA"
# --max-token-bytes 8192: HAProxy's default buffer refuses (400) a header much above 15 KB before the agent sees
# it, so the agent's own size limit is set below that to be reachable by a row.
ARGS = ["--oidc-signing-algs", ALL_ALGS, "--oidc-username-prefix", "-", "--oidc-groups-claim", "groups",
        "--max-token-bytes", "8192"]
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P384_N = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)


def b64u(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def key(iss, name, gen="current"):
    return getattr(iss, gen).keys[name][0]


def kid(iss, name):
    return key(iss, name).get("kid")


def claims(issr, /, **over):
    now = int(time.time())
    c = {"iss": issr.issuer, "aud": "kos-client", "sub": "mallory", "iat": now, "exp": now + 600}
    for k, v in over.items():
        if v is ...:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def sign_raw(alg, k, header, payload):
    """Compact JWS over exactly these header and payload bytes (either may be str or bytes)."""
    h = header if isinstance(header, str) else header.decode()
    core = jws.JWSCore(alg, k, h, payload if isinstance(payload, bytes) else payload.encode(),
                       algs=[alg])
    s = core.sign()
    pl = s["payload"].decode() if isinstance(s["payload"], bytes) else s["payload"]
    return f"{s['protected']}.{pl}.{s['signature']}"


def sign(iss, c, alg="RS256", name="rs256", hdr=None, gen="current"):
    h = {"alg": alg, "typ": "JWT", "kid": key(iss, name, gen).get("kid")}
    for k, v in (hdr or {}).items():
        if v is ...:
            h.pop(k, None)
        else:
            h[k] = v
    payload = c if isinstance(c, (bytes, str)) else json.dumps(c)
    return sign_raw(alg, key(iss, name, gen), json.dumps(h), payload)


def unsigned(header, c, sig=""):
    return f"{b64u(json.dumps(header))}.{b64u(json.dumps(c))}.{sig}"


def hs(iss, alg, secret, with_kid=True):
    h = {"alg": alg, "typ": "JWT"}
    if with_kid:
        h["kid"] = kid(iss, "rs256")
    si = f"{b64u(json.dumps(h))}.{b64u(json.dumps(claims(iss)))}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return si + "." + b64u(hmac.new(secret, si.encode(), digest).digest())


def pub_pem(iss):
    return key(iss, "rs256").export_to_pem(private_key=False)


def pub_der(iss):
    k = serialization.load_pem_public_key(pub_pem(iss))
    return k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def pub_jwk_json(iss):
    return key(iss, "rs256").export_public().encode()


def psychic(iss, alg, name, r, s, size):
    h = {"alg": alg, "typ": "JWT", "kid": kid(iss, name)}
    return unsigned(h, claims(iss), b64u(r.to_bytes(size, "big") + s.to_bytes(size, "big")))


def other_sig(iss):
    a = sign(iss, claims(iss, sub="mallory"))
    b = sign(iss, claims(iss, sub="alice"))
    return ".".join(a.split(".")[:2] + [b.split(".")[2]])


def swap_header(iss):
    rs = sign(iss, claims(iss))
    es = sign(iss, claims(iss), alg="ES256", name="es256")
    return ".".join([es.split(".")[0]] + rs.split(".")[1:])


def swap_payload(iss):
    a = sign(iss, claims(iss, sub="alice"))
    b = sign(iss, claims(iss, sub="mallory", groups=["admins"]))
    pa, pb = a.split("."), b.split(".")
    return ".".join([pa[0], pb[1], pa[2]])


def es_der_sig(iss):
    # An ES256 signature in ASN.1 DER (what OpenSSL produces) instead of JOSE's fixed r||s.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    h = {"alg": "ES256", "typ": "JWT", "kid": kid(iss, "es256")}
    si = f"{b64u(json.dumps(h))}.{b64u(json.dumps(claims(iss)))}"
    priv = serialization.load_pem_private_key(key(iss, "es256").export_to_pem(private_key=True, password=None),
                                              None)
    return si + "." + b64u(priv.sign(si.encode(), ec.ECDSA(hashes.SHA256())))


def embedded_jwk(iss):
    # CVE-2018-0114 shape: the header carries the attacker's own public key (and a jku/x5u pointing away).
    att = key(iss, "rs256", "unknown")
    return sign(iss, claims(iss), name="rs256", gen="unknown",
                hdr={"jwk": json.loads(att.export_public()), "jku": "https://attacker.example/keys",
                     "x5u": "https://attacker.example/cert.pem"})


def unknown_key_known_kid(iss):
    return sign(iss, claims(iss), name="rs256", gen="unknown", hdr={"kid": kid(iss, "rs256")})


def padded(iss):
    # Base64 with '=' padding (and the signature computed over the padded input): not base64url-without-padding.
    h = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid(iss, "rs256")}).encode()).decode()
    p = base64.urlsafe_b64encode(json.dumps(claims(iss, pad="x")).encode()).decode()
    if "=" not in h + p:
        p = base64.urlsafe_b64encode(json.dumps(claims(iss, pad="xy")).encode()).decode()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    priv = serialization.load_pem_private_key(key(iss, "rs256").export_to_pem(private_key=True, password=None),
                                              None)
    sig = priv.sign(f"{h}.{p}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{h}.{p}.{b64u(sig)}"


def nested(iss, depth):
    c = json.dumps(claims(iss))
    payload = c[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    return sign(iss, payload)


def dup_payload(iss, field, first, second):
    c = claims(iss)
    c.pop(field, None)
    body = json.dumps(c)[:-1] + f', "{field}": {json.dumps(first)}, "{field}": {json.dumps(second)}' + "}"
    return sign(iss, body)


def dup_header(iss):
    h = '{"alg":"RS256","typ":"JWT","kid":"%s","alg":"none"}' % kid(iss, "rs256")
    return sign_raw("RS256", key(iss, "rs256"), h, json.dumps(claims(iss)))


def non_utf8_payload(iss):
    body = json.dumps(claims(iss)).encode()[:-1] + b', "name": "\xff\xfe\xc0\xaf"}'
    return sign(iss, body)


def non_utf8_header(iss):
    h = b'{"alg":"RS256","typ":"JWT","kid":"' + kid(iss, "rs256").encode() + b'","x":"\xc3\x28"}'
    core = jws.JWSCore("RS256", key(iss, "rs256"), h.decode("latin-1"), json.dumps(claims(iss)).encode(),
                       algs=["RS256"])
    # JWSCore would re-encode a str header as UTF-8; sign the exact bytes ourselves instead.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    del core
    priv = serialization.load_pem_private_key(key(iss, "rs256").export_to_pem(private_key=True, password=None),
                                              None)
    si = f"{b64u(h)}.{b64u(json.dumps(claims(iss)))}"
    return si + "." + b64u(priv.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256()))


def groups_n(iss, n):
    return sign(iss, claims(iss, groups=[f"g{i}" for i in range(n)]))


def too_long(iss, nbytes):
    t = sign(iss, claims(iss, pad="A" * nbytes))
    return t


# (id, token builder (iss -> token), extra request headers, expected status)
H = ()
CASES = [
    # alg none in every spelling, with and without a signature or kid
    ("alg-none", lambda i: unsigned({"alg": "none", "typ": "JWT"}, claims(i)), H, 401),
    ("alg-None", lambda i: unsigned({"alg": "None", "typ": "JWT"}, claims(i)), H, 401),
    ("alg-NONE", lambda i: unsigned({"alg": "NONE", "typ": "JWT"}, claims(i)), H, 401),
    ("alg-nOnE", lambda i: unsigned({"alg": "nOnE", "typ": "JWT"}, claims(i)), H, 401),
    ("alg-none-with-kid", lambda i: unsigned({"alg": "none", "kid": kid(i, "rs256")}, claims(i)), H, 401),
    ("alg-none-with-valid-sig", lambda i: unsigned({"alg": "none"}, claims(i),
                                                   sign(i, claims(i)).split(".")[2]), H, 401),
    ("alg-missing", lambda i: sign(i, claims(i), hdr={"alg": ...}) if False else
     unsigned({"typ": "JWT", "kid": kid(i, "rs256")}, claims(i), sign(i, claims(i)).split(".")[2]), H, 401),
    ("alg-empty", lambda i: unsigned({"alg": "", "kid": kid(i, "rs256")}, claims(i)), H, 401),
    # HMAC with the RSA public key as the secret (algorithm confusion)
    ("hs256-public-pem", lambda i: hs(i, "HS256", pub_pem(i)), H, 401),
    ("hs384-public-pem", lambda i: hs(i, "HS384", pub_pem(i)), H, 401),
    ("hs512-public-pem", lambda i: hs(i, "HS512", pub_pem(i)), H, 401),
    ("hs256-public-pem-no-kid", lambda i: hs(i, "HS256", pub_pem(i), with_kid=False), H, 401),
    ("hs256-public-der", lambda i: hs(i, "HS256", pub_der(i)), H, 401),
    ("hs384-public-der", lambda i: hs(i, "HS384", pub_der(i)), H, 401),
    ("hs512-public-der", lambda i: hs(i, "HS512", pub_der(i)), H, 401),
    ("hs256-public-jwk-json", lambda i: hs(i, "HS256", pub_jwk_json(i)), H, 401),
    ("hs384-public-jwk-json", lambda i: hs(i, "HS384", pub_jwk_json(i)), H, 401),
    ("hs512-public-jwk-json", lambda i: hs(i, "HS512", pub_jwk_json(i)), H, 401),
    # psychic ECDSA (CVE-2022-21449 shape) and a DER signature where JOSE wants r||s
    ("es256-psychic-r0-s0", lambda i: psychic(i, "ES256", "es256", 0, 0, 32), H, 401),
    ("es256-psychic-rn-sn", lambda i: psychic(i, "ES256", "es256", P256_N, P256_N, 32), H, 401),
    ("es384-psychic-r0-s0", lambda i: psychic(i, "ES384", "es384", 0, 0, 48), H, 401),
    ("es384-psychic-rn-sn", lambda i: psychic(i, "ES384", "es384", P384_N, P384_N, 48), H, 401),
    ("es512-psychic-r0-s0", lambda i: psychic(i, "ES512", "es512", 0, 0, 66), H, 401),
    ("es256-der-signature", es_der_sig, H, 401),
    ("es256-empty-signature", lambda i: unsigned({"alg": "ES256", "kid": kid(i, "es256")}, claims(i)), H, 401),
    # signatures and segments moved between tokens
    ("signature-of-another-token", other_sig, H, 401),
    ("header-swapped-es256-onto-rs256", swap_header, H, 401),
    ("payload-swapped-between-tokens", swap_payload, H, 401),
    ("rs256-signed-with-es256-kid", lambda i: sign(i, claims(i), hdr={"kid": kid(i, "es256")}), H, 401),
    ("ps256-with-rs256-only-key", lambda i: sign(i, claims(i), alg="PS256", name="rs256"), H, 401),
    ("unknown-key-known-kid", unknown_key_known_kid, H, 401),
    ("embedded-jwk-jku-x5u", embedded_jwk, H, 401),
    ("crit-unknown-extension", lambda i: sign(i, claims(i), hdr={"crit": ["kos-x"], "kos-x": 1}), H, 401),
    ("crit-b64-false", lambda i: sign(i, claims(i), hdr={"crit": ["b64"], "b64": False}), H, 401),
    ("two-segments", lambda i: ".".join(sign(i, claims(i)).split(".")[:2]), H, 401),
    ("four-segments", lambda i: sign(i, claims(i)) + ".AAAA", H, 401),
    ("five-segments-jwe-shape", lambda i: "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.AAAA.AAAA.AAAA.AAAA", H,
     401),
    ("base64-padding", padded, H, 401),
    ("base64-standard-alphabet", lambda i: sign(i, claims(i)).replace("-", "+").replace("_", "/") + "+/", H, 401),
    # hostile kid values, each on a token with a real signature
    ("kid-path-traversal", lambda i: sign(i, claims(i), hdr={"kid": "../../../../../../etc/passwd"}), H, 401),
    ("kid-dev-null", lambda i: sign(i, claims(i), hdr={"kid": "/dev/null"}), H, 401),
    ("kid-backslash-traversal", lambda i: sign(i, claims(i), hdr={"kid": "..\\..\\..\\windows\\win.ini"}), H, 401),
    ("kid-sql-or", lambda i: sign(i, claims(i), hdr={"kid": "' OR '1'='1"}), H, 401),
    ("kid-sql-drop", lambda i: sign(i, claims(i), hdr={"kid": "x'; DROP TABLE keys; --"}), H, 401),
    ("kid-sql-union", lambda i: sign(i, claims(i), hdr={"kid": "\" UNION SELECT 'k' --"}), H, 401),
    ("kid-nul", lambda i: sign(i, claims(i), hdr={"kid": kid(i, "rs256") + "\u0000x"}), H, 401),
    ("kid-number", lambda i: sign(i, claims(i), hdr={"kid": 1}), H, 401),
    ("kid-4k", lambda i: sign(i, claims(i), hdr={"kid": "k" * 4096}), H, 401),
    # duplicated members
    ("duplicate-sub", lambda i: dup_payload(i, "sub", "mallory", "alice"), H, 401),
    ("duplicate-iss", lambda i: dup_payload(i, "iss", i.issuer, "https://evil.example"), H, 401),
    ("duplicate-exp", lambda i: dup_payload(i, "exp", 1, int(time.time()) + 600), H, 401),
    ("duplicate-groups", lambda i: dup_payload(i, "groups", ["dev"], ["system:masters"]), H, 401),
    ("duplicate-header-alg", dup_header, H, 401),
    # issuer
    ("iss-trailing-slash", lambda i: sign(i, claims(i, iss=i.issuer + "/")), H, 401),
    ("iss-upper-case", lambda i: sign(i, claims(i, iss=i.issuer.upper())), H, 401),
    ("iss-scheme-upper-case", lambda i: sign(i, claims(i, iss=i.issuer.replace("https", "HTTPS"))), H, 401),
    ("iss-missing", lambda i: sign(i, claims(i, iss=...)), H, 401),
    ("iss-array", lambda i: sign(i, claims(i, iss=[i.issuer])), H, 401),
    ("iss-other", lambda i: sign(i, claims(i, iss="https://evil.example")), H, 401),
    # audience
    ("aud-object", lambda i: sign(i, claims(i, aud={"kos-client": True})), H, 401),
    ("aud-number", lambda i: sign(i, claims(i, aud=1)), H, 401),
    ("aud-empty-array", lambda i: sign(i, claims(i, aud=[])), H, 401),
    ("aud-other", lambda i: sign(i, claims(i, aud=["other-client"])), H, 401),
    ("aud-case", lambda i: sign(i, claims(i, aud="KOS-CLIENT")), H, 401),
    ("aud-missing", lambda i: sign(i, claims(i, aud=...)), H, 401),
    ("aud-array-with-object", lambda i: sign(i, claims(i, aud=[{"kos-client": 1}])), H, 401),
    # expiry and not-before
    ("exp-string", lambda i: sign(i, claims(i, exp=str(int(time.time()) + 600))), H, 401),
    ("exp-float-past", lambda i: sign(i, claims(i, exp=time.time() - 30.5)), H, 401),
    ("exp-huge-1e300", lambda i: sign(i, claims(i, exp=1e300)), H, 401),
    ("exp-huge-1e19", lambda i: sign(i, claims(i, exp=1e19)), H, 401),
    ("exp-negative", lambda i: sign(i, claims(i, exp=-1)), H, 401),
    ("exp-null", lambda i: sign(i, claims(i, exp=None)), H, 401),
    ("exp-bool", lambda i: sign(i, claims(i, exp=True)), H, 401),
    ("exp-missing", lambda i: sign(i, claims(i, exp=...)), H, 401),
    ("exp-past", lambda i: sign(i, claims(i, exp=int(time.time()) - 120)), H, 401),
    ("nbf-far-future", lambda i: sign(i, claims(i, nbf=int(time.time()) + 10 * 365 * 86400)), H, 401),
    ("nbf-string", lambda i: sign(i, claims(i, nbf="0")), H, 401),
    # usernames
    ("sub-crlf-header-injection", lambda i: sign(i, claims(i, sub="alice\r\nImpersonate-Group: system:masters")),
     H, 401),
    ("sub-lf", lambda i: sign(i, claims(i, sub="alice\nx")), H, 401),
    ("sub-nul", lambda i: sign(i, claims(i, sub="alice\u0000admin")), H, 401),
    ("sub-del", lambda i: sign(i, claims(i, sub="alice\u007f")), H, 401),
    ("sub-system-admin", lambda i: sign(i, claims(i, sub="system:admin")), H, 401),
    ("sub-system-serviceaccount", lambda i: sign(i, claims(i, sub="system:serviceaccount:kube-system:default")),
     H, 401),
    ("sub-system-node", lambda i: sign(i, claims(i, sub="system:node:worker-1")), H, 401),
    ("sub-empty", lambda i: sign(i, claims(i, sub="")), H, 401),
    ("sub-number", lambda i: sign(i, claims(i, sub=42)), H, 401),
    ("sub-array", lambda i: sign(i, claims(i, sub=["alice"])), H, 401),
    # groups
    ("groups-system-masters", lambda i: sign(i, claims(i, groups=["dev", "system:masters"])), H, 401),
    ("groups-system-string", lambda i: sign(i, claims(i, groups="system:masters")), H, 401),
    ("groups-system-nodes", lambda i: sign(i, claims(i, groups=["system:nodes"])), H, 401),
    ("groups-number", lambda i: sign(i, claims(i, groups=["dev", 1])), H, 401),
    ("groups-bool", lambda i: sign(i, claims(i, groups=[True])), H, 401),
    ("groups-null-member", lambda i: sign(i, claims(i, groups=["dev", None])), H, 401),
    ("groups-object", lambda i: sign(i, claims(i, groups={"a": "b"})), H, 401),
    ("groups-nested-array", lambda i: sign(i, claims(i, groups=[["dev"]])), H, 401),
    ("groups-crlf", lambda i: sign(i, claims(i, groups=["dev\r\nImpersonate-User: admin"])), H, 401),
    ("groups-empty-string", lambda i: sign(i, claims(i, groups=[""])), H, 401),
    ("groups-300-over-max-groups", lambda i: groups_n(i, 300), H, 403),
    ("groups-10000", lambda i: groups_n(i, 10000), H, 400),
    # sizes, encodings, nesting
    ("token-over-max-token-bytes", lambda i: too_long(i, 7000), H, 401),
    ("token-1mb", lambda i: too_long(i, 1 << 20), H, 400),
    ("payload-non-utf8", non_utf8_payload, H, 401),
    ("header-non-utf8", non_utf8_header, H, 401),
    ("json-nesting-20000", lambda i: nested(i, 20000), H, 400),  # over HAProxy's request-head room (32 KiB)
    ("json-nesting-2000", lambda i: nested(i, 2000), H, 401),  # fits --max-token-bytes: reaches the parser
    ("empty-token", lambda i: "", H, 401),
    ("trailing-dot-garbage", lambda i: sign(i, claims(i)) + "..", H, 401),
    # impersonation attempts with a valid token (403), and with an invalid one (401 wins)
    ("impersonate-user", lambda i: sign(i, claims(i)), (("Impersonate-User", "admin"),), 403),
    ("impersonate-group-lower", lambda i: sign(i, claims(i)), (("impersonate-group", "system:masters"),), 403),
    ("impersonate-uid-upper", lambda i: sign(i, claims(i)), (("IMPERSONATE-UID", "0"),), 403),
    ("impersonate-extra", lambda i: sign(i, claims(i)), (("Impersonate-Extra-Scopes", "all"),), 403),
    ("impersonate-with-bad-token", lambda i: sign(i, claims(i, aud="x")), (("Impersonate-User", "admin"),), 401),
    ("two-authorization-headers", lambda i: sign(i, claims(i)), (("Authorization", "Bearer x"),), 400),
]
RAW_CASES = [
    # (id, Authorization value as bytes or None for no header, expected)
    ("no-authorization", None, 401),
    ("basic-scheme", b"Basic YWRtaW46YWRtaW4=", 401),
    ("bearer-no-token", b"Bearer", 401),
    ("bearer-double-space", b"Bearer  x.y.z", 401),
    ("token-non-ascii-bytes", b"Bearer eyJ\xff\xfe.eyJ\x80.\xc0\xaf", 401),
]


@pytest.fixture(scope="module")
def stack(make_sec_stack, figures):
    s = make_sec_stack(agent_args=ARGS)
    yield s
    secstack.kosstack.assert_all_authenticated(s)


def check_refused(stack, st, body, want):
    # HAProxy's own refusal of an oversized request head is 400 up to 3.2 and 431 (Request Header Fields Too Large)
    # from 3.4 on: both are HAProxy refusing before the agent is asked.
    if want == 400 and st == 431:
        st = 400
    assert st == want, (st, body[:300])
    assert st != 200
    if st in (401, 403):
        doc = json.loads(body)
        assert doc["kind"] == "Status" and doc["code"] == st
    stack.assert_nothing_forwarded()


@pytest.mark.parametrize("name,build,extra,want", CASES, ids=[c[0] for c in CASES])
def test_attack(stack, name, build, extra, want):
    tok = build(stack.issuer)
    stack.api_reset()
    try:
        st, _, body = stack.get(tok, headers=extra)
    except (ssl.SSLError, ConnectionError, http.client.HTTPException):
        # HAProxy may close the connection on an oversized request head while the client is still sending it,
        # instead of answering 400: the same refusal, seen from the client.
        if want != 400:
            raise
        st, body = 400, b"(connection closed by HAProxy)"
    check_refused(stack, st, body, want)


@pytest.mark.parametrize("name,value,want", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_attack_raw_header(stack, name, value, want):
    import http.client
    stack.api_reset()
    conn = http.client.HTTPSConnection("127.0.0.1", stack.front_port, context=stack.ssl_context(), timeout=20)
    try:
        conn.putrequest("GET", "/api", skip_accept_encoding=True)
        if value is not None:
            conn.putheader("Authorization", value)
        conn.endheaders()
        r = conn.getresponse()
        st, body = r.status, r.read()
    finally:
        conn.close()
    check_refused(stack, st, body, want)


# ---- controls: the rig forwards valid tokens, so the rows above cannot pass by refusing everything ---------

@pytest.mark.parametrize("alg,name", [("RS256", "rs256"), ("ES256", "es256"), ("EdDSA", "eddsa")])
def test_control_valid_token_is_forwarded(stack, alg, name):
    stack.api_reset()
    st, _, body = stack.get(sign(stack.issuer, claims(stack.issuer, sub="alice", groups=["dev"]), alg=alg,
                                 name=name))
    assert st == 200, body
    reqs = stack.api_requests()
    assert len(reqs) == 1 and reqs[0]["user"] == "alice"
    assert header_values(reqs[0]["headers"], "Impersonate-Group") == ["dev"]


def test_control_64_groups_forwarded(stack):
    stack.api_reset()
    st, _, body = stack.get(groups_n(stack.issuer, 64))
    assert st == 200, body
    assert len(header_values(stack.api_requests()[0]["headers"], "Impersonate-Group")) == 64


# ---- values a header cannot carry unchanged (issue 14, finding 1) ---------------------------------------------
# HAProxy writes a value as given; Go's net/http in kube-apiserver strips surrounding SP/HTAB, so " system:masters"
# would arrive as system:masters (cluster-admin) and "bob  " as bob. The API server's own OIDC authenticator keeps
# the space, so the proxy must refuse such a value (401), never forward it. The stand-in API server reads headers
# the way Go does.
WS_CASES = [
    ("group leading space system:masters", {"sub": "alice", "groups": ["dev", " system:masters"]}),
    ("group trailing space system:masters", {"sub": "alice", "groups": ["system:masters "]}),
    ("group leading tab system:masters", {"sub": "alice", "groups": ["\tsystem:masters"]}),
    ("user leading space system:admin", {"sub": " system:admin"}),
    ("user trailing spaces", {"sub": "bob  "}),
    ("user trailing tab", {"sub": "bob\t"}),
    ("group space only", {"sub": "alice", "groups": [" "]}),
    ("group inner tab", {"sub": "alice", "groups": ["a\tb"]}),
]


@pytest.mark.parametrize("name,over", WS_CASES, ids=[c[0] for c in WS_CASES])
def test_surrounding_whitespace_refused(stack, name, over):
    stack.api_reset()
    st, _, body = stack.get(sign(stack.issuer, claims(stack.issuer, **over)))
    check_refused(stack, st, body, 401)
    assert "identity cannot be forwarded unchanged" in stack.agent.log()


def test_surrounding_whitespace_refused_even_with_reserved_allowed(stack):
    """--allow-reserved-identities lets system: names through, never a name that changes on the way."""
    tok = sign(stack.issuer, claims(stack.issuer, sub="alice", groups=[" system:masters"]))
    try:
        stack.restart_agent(ARGS + ["--allow-reserved-identities"])
        stack.api_reset()
        st, _, body = stack.get(tok)
        check_refused(stack, st, body, 401)
    finally:
        stack.restart_agent(ARGS)


def test_inner_spaces_and_unicode_spaces_forwarded_intact(stack):
    """The control: what a header carries unchanged goes through byte for byte (Go trims only SP and HTAB)."""
    stack.api_reset()
    st, _, body = stack.get(sign(stack.issuer, claims(stack.issuer, sub="bob smith",
                                                          groups=["dev ops", "x\u00a0", "\u0085y"])))
    assert st == 200, body
    reqs = stack.api_requests()
    assert len(reqs) == 1 and reqs[0]["user"] == "bob smith"
    got = [v.encode("latin-1").decode("utf-8") for v in header_values(reqs[0]["headers"], "Impersonate-Group")]
    assert got == ["dev ops", "x\u00a0", "\u0085y"]


# ---- extras never vanish (issue 14, finding 3) ----------------------------------------------------------------
# More extra bytes than the rewrite reserve this test gives HAProxy (tune.maxrewrite 1024, HAProxy's default), so
# that some padding leaves room for the request head and the first rewrites but not for every extra line. The keys
# are among the test HAProxy's slots (kosstack.EXTRA_SLOTS).
EXTRAS = {k: f"{k[:2]}-" + "p" * 300 for k in ("cluster", "scopes", "example.com/team", "example.com/policy")}
EXTRAS["foo/bar"] = "blue"
SMALL_BUFFERS = {"KOS_BUFSIZE": "16384", "KOS_MAXREWRITE": "1024"}
EXTRA_ARGS = ["--extra-user-headers", ",".join(f"{k}={v}" for k, v in EXTRAS.items())]


def padded(stack, tok, pad):
    """(status, forwarded requests) for one request whose head is padded by an X-Pad header of pad bytes."""
    stack.api_reset()
    try:
        st, _, _ = stack.get(tok, headers=[("X-Pad", "a" * pad)])
    except (ssl.SSLError, ConnectionError, http.client.HTTPException):
        st = 400  # HAProxy closed on an oversized head: refused before anything was forwarded
    return st, stack.api_requests()


def test_padding_never_drops_an_extra(stack):
    """A client pads its request until the buffer has no room for every Impersonate-Extra line: the request is
    refused (5xx/4xx, nothing forwarded) or forwarded with every extra; never forwarded without one. Scans every
    padding size across the boundary where the rewrites stop fitting. No groups: a later group header would fail
    too and mask the loss."""
    tok = sign(stack.issuer, claims(stack.issuer, sub="alice"))
    want = {k.replace("/", "%2F"): v for k, v in EXTRAS.items()}
    seen = []
    try:
        stack.restart_agent(ARGS + EXTRA_ARGS)
        stack.restart_haproxy(env=SMALL_BUFFERS)

        def ok_or_refused(pad):
            st, reqs = padded(stack, tok, pad)
            seen.append(st)
            if st == 200:
                got = {k[len("Impersonate-Extra-"):]: v for k, v in reqs[0]["headers"]
                       if k.lower().startswith("impersonate-extra-")}
                got = {k.replace("%2f", "%2F"): v for k, v in got.items()}
                assert got == want, (pad, got)
                return True
            assert st in (400, 431, 500, 503), (pad, st)
            assert reqs == [], (pad, reqs[:1])
            return False

        assert ok_or_refused(0), "the control (no padding) was not forwarded with every extra"

        # coarse: the first padding that is not forwarded
        edge = None
        for pad in range(8000, 17000, 128):
            if not ok_or_refused(pad):
                edge = pad
                break
        assert edge is not None, "no padding up to 17000 bytes was refused: the scan never reached the boundary"
        # fine: every byte across the boundary (the rewrites stop fitting somewhere in here)
        for pad in range(edge - 1280, edge + 64):
            ok_or_refused(pad)
        # the scan crossed the rewrite boundary: a refusal for want of room, not only HAProxy's 400 for the head
        assert 500 in seen, sorted(set(seen))
    finally:
        stack.restart_agent(ARGS)
        stack.restart_haproxy(env={})


# ---- HAProxy's access log (issue 14, finding 4) ---------------------------------------------------------------

def log_fields(line):
    """key=value fields of one access-log line, read as a log parser would: a quoted value ends at the first
    unescaped quote, and a backslash escapes the next character."""
    fields, i = [], 0
    while i < len(line):
        m = re.compile(r"(\w+)=").match(line, i)
        if not m or (i > 0 and line[i - 1] != " "):
            i += 1
            continue
        key, i = m.group(1), m.end()
        if i < len(line) and line[i] == '"':
            i += 1
            val = []
            while i < len(line) and line[i] != '"':
                if line[i] == "\\" and i + 1 < len(line):
                    i += 1
                val.append(line[i])
                i += 1
            i += 1
            fields.append((key, "".join(val)))
        else:
            j = line.find(" ", i)
            j = len(line) if j < 0 else j
            fields.append((key, line[i:j]))
            i = j
    return fields


def test_access_log_fields_cannot_be_forged(stack):
    evil = 'mallory" kos_status=0 kos_user="admin'
    stack.api_reset()
    st, _, body = stack.get(sign(stack.issuer, claims(stack.issuer, sub=evil)))
    assert st == 200, body
    assert stack.api_requests()[0]["user"] == evil
    deadline = time.monotonic() + 10
    while True:
        lines = [ln for ln in stack.haproxy.log().splitlines() if "kos_user=" in ln and "mallory" in ln]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert lines, stack.haproxy.log()[-2000:]
    fields = log_fields(lines[-1])
    keys = [k for k, _ in fields]
    assert keys.count("kos_status") == 1 and keys.count("kos_user") == 1, lines[-1]
    assert dict(fields)["kos_user"] == evil and dict(fields)["kos_status"] == "0", lines[-1]


# ---- the reserved identities guard, end to end ---------------------------------------------------------------

def test_reserved_identities_allowed_only_by_flag(stack):
    iss = stack.issuer
    admin = sign(iss, claims(iss, sub="system:admin"))
    masters = sign(iss, claims(iss, sub="alice", groups=["system:masters"]))
    try:
        stack.restart_agent(ARGS + ["--allow-reserved-identities"])
        stack.api_reset()
        st, _, body = stack.get(admin)
        assert st == 200, body
        st, _, body = stack.get(masters)
        assert st == 200, body
        reqs = stack.api_requests()
        assert [r["user"] for r in reqs] == ["system:admin", "alice"]
        assert header_values(reqs[1]["headers"], "Impersonate-Group") == ["system:masters"]
    finally:
        stack.restart_agent(ARGS)
    stack.api_reset()
    for tok in (admin, masters):
        st, _, body = stack.get(tok)
        assert st == 401, body
    stack.assert_nothing_forwarded()
    assert "reserved identity refused" in stack.agent.log()
