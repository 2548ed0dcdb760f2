#!/usr/bin/python3
"""A real OIDC issuer for tests and the demo: HTTPS with its own test CA, discovery, JWKS, minting, faults.

Runs with Debian's /usr/bin/python3 and only stdlib + python3-cryptography + python3-jwcrypto. Tokens are signed
by jwcrypto (an implementation independent of ours), so tests do not check our verifier against itself.

As a program:
    issuer.py --state-dir DIR [--host 127.0.0.1] [--port 0] [--max-age 300] [--path-prefix /realms/x]
              [--mode ok] [--verbose]
  prints one JSON line once listening: {"ready":true,"port":N,"issuer":"https://127.0.0.1:N","ca":"DIR/ca.pem"}
  and serves until SIGTERM/SIGINT. The state dir keeps the CA, the server certificate and the signing keys, so a
  restart on the same dir serves the same keys and clients keep trusting DIR/ca.pem.

As a module (inside a pytest process):
    from issuer import TestIssuer
    with TestIssuer() as iss:          # own temp state dir, port picked by the kernel
        tok = iss.mint({"sub": "alice"}, alg="ES256")
        iss.rotate(keep_old=False); iss.set_mode("garbage"); iss.stats()

HTTP endpoints (one port):
    GET  <prefix>/.well-known/openid-configuration   discovery document
    GET  <prefix>/keys                              JWKS, Cache-Control: max-age=N (none when max_age is null)
    POST /_test/mint     {"claims":{…},"alg":"RS256","kid":…,"header":{…},"key":"current|old|unknown",
                          "payload_raw":"…","hmac_secret":"…"}  -> {"token":"…","kid":…}
                         defaults: iss = issuer, aud = "kos-client", sub = "test-user", iat = now, exp = now+600;
                         a claim given as null is removed. "kid": null omits the kid header; a kid naming no key
                         is put in the header of a token signed by the key the alg selects. "alg":"none" and
                         HS256/384/512 (secret: hmac_secret, default the RS256 public key PEM) are for attack tests.
    POST /_test/rotate   {"keep_old":true}  new keys with new kids; old ones published too unless keep_old=false
    POST /_test/mode     {"mode":"ok|down|garbage|empty|huge|slow|wrong-issuer|status500|redirect-…","delay_ms":…,
                          "target":"all|discovery|keys","max_age":N|null,"huge_bytes":N,"chunked":bool}
    GET  /_test/stats    {"requests":{path:count},"total":N,"huge_bytes_sent":N}  (POST /_test/stats/reset zeroes
                         the counts); huge_bytes_sent counts what the last huge body wrote before the client hung
                         up (socket buffers included), so a test can see the transfer was cut short
    GET  /_test/kids     {"current":[…],"old":[…],"unknown":[…]}
    GET  <prefix>/claims/<name>  a distributed-claims source (OpenID Connect Core 5.6.2) set up with
                         set_claim_source(name, body, status=200, mode="ok", delay_ms=0) (module use only):
                         answers body (str, e.g. a JWT from mint()) with status; mode "down" resets the connection,
                         "slow" answers after delay_ms, "redirect" sends a 302 to another source, "huge" answers
                         a 70 KB body. Every request is recorded with its Authorization header: claim_requests(name)

Modes, and the paths they hit by default (target overrides):
    down        connection reset, no answer (discovery + keys)
    status500   HTTP 500                     (discovery + keys)
    slow        answers after delay_ms       (discovery + keys)
    garbage     a body that is not JSON      (keys)
    empty       {"keys":[]}                  (keys)
    huge        a 50 MB body (huge_bytes), streamed, looks like a JWKS that never ends (keys); with a
                Content-Length, or chunked (chunked=true) so that the client must cut it at its own count
    wrong-issuer  discovery names another issuer (discovery)
    redirect-http / redirect-https  302 to the same path with ?redirected=1 over http:// (a client must refuse
                to follow) or https:// (a client may follow; the redirected request is answered normally) (keys)
"""
import argparse
import base64
import datetime
import http.server
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwcrypto import jwk, jws

DISCOVERY_PATH = "/.well-known/openid-configuration"
KEYS_PATH = "/keys"
DEFAULT_AUD = "kos-client"

# One key per algorithm family member, each published with its "alg", so that a test can mint any algorithm the
# verifier supports. RSA keys without "alg" serve RS384/RS512/PS384/PS512.
KEY_SPECS = [
    # (name, kty args, published alg or None)
    ("rs256", {"kty": "RSA", "size": 2048}, "RS256"),
    ("ps256", {"kty": "RSA", "size": 2048}, "PS256"),
    ("rsa", {"kty": "RSA", "size": 2048}, None),
    ("es256", {"kty": "EC", "crv": "P-256"}, "ES256"),
    ("es384", {"kty": "EC", "crv": "P-384"}, "ES384"),
    ("es512", {"kty": "EC", "crv": "P-521"}, "ES512"),
    ("eddsa", {"kty": "OKP", "crv": "Ed25519"}, "EdDSA"),
]
ALG_KEY = {"RS256": "rs256", "PS256": "ps256", "RS384": "rsa", "RS512": "rsa", "PS384": "rsa", "PS512": "rsa",
           "ES256": "es256", "ES384": "es384", "ES512": "es512", "EdDSA": "eddsa"}
ALL_ALGS = sorted(set(ALG_KEY) | {"none", "HS256", "HS384", "HS512"})
MODES = ("ok", "down", "garbage", "empty", "huge", "slow", "wrong-issuer", "status500", "redirect-http",
         "redirect-https")
MODE_TARGET = {"ok": "all", "down": "all", "status500": "all", "slow": "all", "garbage": "keys", "empty": "keys",
               "huge": "keys", "wrong-issuer": "discovery", "redirect-http": "keys", "redirect-https": "keys"}


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# ---- certificates ---------------------------------------------------------------------------------------------

def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_atomic(path, data, private=False):
    tmp = path + ".tmp"
    if private:
        _write_private(tmp, data)
    else:
        with open(tmp, "wb") as f:
            f.write(data)
    os.replace(tmp, path)


def ensure_tls(state_dir):
    """Creates (once) a test CA and a server certificate for 127.0.0.1, ::1 and localhost. Returns paths."""
    ca_pem = os.path.join(state_dir, "ca.pem")
    ca_key = os.path.join(state_dir, "ca-key.pem")
    srv_pem = os.path.join(state_dir, "server.pem")
    srv_key = os.path.join(state_dir, "server-key.pem")
    if all(os.path.exists(p) for p in (ca_pem, ca_key, srv_pem, srv_key)):
        return ca_pem, srv_pem, srv_key
    now = datetime.datetime.now(datetime.timezone.utc)
    cakey = ec.generate_private_key(ec.SECP256R1())
    caname = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-oidc-spoa test issuer CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(cakey.public_key())
    cacert = (x509.CertificateBuilder().subject_name(caname).issuer_name(caname).public_key(cakey.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                           key_encipherment=False, data_encipherment=False, key_agreement=False,
                                           key_cert_sign=True, crl_sign=True, encipher_only=False,
                                           decipher_only=False), critical=True)
              .add_extension(ca_ski, critical=False)
              .sign(cakey, hashes.SHA256()))
    skey = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                       x509.IPAddress(ipaddress.ip_address("::1")), x509.DNSName("localhost")])
    scert = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
             .issuer_name(caname).public_key(skey.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=825))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(san, critical=False)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(skey.public_key()), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
             .sign(cakey, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    pk = dict(encoding=pem, format=serialization.PrivateFormat.PKCS8,
              encryption_algorithm=serialization.NoEncryption())
    _write_atomic(ca_key, cakey.private_bytes(**pk), private=True)
    _write_atomic(srv_key, skey.private_bytes(**pk), private=True)
    _write_atomic(srv_pem, scert.public_bytes(pem))
    _write_atomic(ca_pem, cacert.public_bytes(pem))
    return ca_pem, srv_pem, srv_key


# ---- signing keys ---------------------------------------------------------------------------------------------

def _kid(k):
    return k.get("kid")


class KeyGen:
    """One generation of signing keys: {name: (jwk.JWK private, published alg or None)}, kids unique."""

    def __init__(self, gen, keys):
        self.gen = gen
        self.keys = keys

    @classmethod
    def generate(cls, gen):
        tag = secrets.token_hex(3)
        keys = {}
        for name, args, alg in KEY_SPECS:
            k = jwk.JWK.generate(**args, kid=f"{name}-g{gen}-{tag}")
            keys[name] = (k, alg)
        return cls(gen, keys)

    def public(self):
        out = []
        for k, alg in self.keys.values():
            d = k.export_public(as_dict=True)
            d["use"] = "sig"
            if alg:
                d["alg"] = alg
            out.append(d)
        return out

    def to_state(self):
        return {"gen": self.gen, "keys": {n: {"jwk": k.export_private(as_dict=True), "alg": a}
                                          for n, (k, a) in self.keys.items()}}

    @classmethod
    def from_state(cls, st):
        return cls(st["gen"], {n: (jwk.JWK(**v["jwk"]), v["alg"]) for n, v in st["keys"].items()})

    def kids(self):
        return [_kid(k) for k, _ in self.keys.values()]

    def by_kid(self, kid):
        for k, alg in self.keys.values():
            if _kid(k) == kid:
                return k
        return None


class MintError(ValueError):
    pass


# ---- the issuer -----------------------------------------------------------------------------------------------

class TestIssuer:
    """The issuer as an object: starts the HTTPS server in a daemon thread (start()), stops it (stop())."""

    __test__ = False  # not a pytest class

    def __init__(self, state_dir=None, host="127.0.0.1", port=0, max_age=300, path_prefix="", mode="ok",
                 verbose=False):
        self._own_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="kos-issuer-")
        os.makedirs(self.state_dir, exist_ok=True)
        self.host = host
        self.req_port = port
        self.path_prefix = path_prefix.rstrip("/")
        self.verbose = verbose
        self.lock = threading.Lock()
        self.max_age = max_age
        self.mode = "ok"
        self.target = "all"
        self.delay_ms = 0
        self.huge_bytes = 50 * 1024 * 1024
        self.chunked = False
        self.counts = {}
        self.huge_sent = 0  # bytes of the last "huge" body the client accepted before it hung up
        self.claim_sources = {}  # name -> {"body", "status", "mode", "delay_ms"}
        self.claim_log = []  # (name, Authorization header or None), in arrival order
        self.ca_pem, self.srv_pem, self.srv_key = ensure_tls(self.state_dir)
        self._load_keys()
        self.set_mode(mode)
        self.httpd = None
        self.thread = None
        self.port = None

    # -- state
    def _keys_path(self):
        return os.path.join(self.state_dir, "keys.json")

    def _load_keys(self):
        p = self._keys_path()
        if os.path.exists(p):
            with open(p) as f:
                st = json.load(f)
            self.current = KeyGen.from_state(st["current"])
            self.old = KeyGen.from_state(st["old"]) if st.get("old") else None
            self.publish_old = st.get("publish_old", False)
        else:
            self.current = KeyGen.generate(1)
            self.old = None
            self.publish_old = False
            self._save_keys()
        # Never published, never persisted: signs tokens whose key the JWKS cannot contain.
        self.unknown = KeyGen.generate(0)

    def _save_keys(self):
        st = {"current": self.current.to_state(), "old": self.old.to_state() if self.old else None,
              "publish_old": self.publish_old}
        _write_atomic(self._keys_path(), json.dumps(st).encode(), private=True)

    @property
    def issuer(self):
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{h}:{self.port}{self.path_prefix}"

    @property
    def ca(self):
        return self.ca_pem

    # -- lifecycle
    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.srv_pem, self.srv_key)
        server_cls = _Server6 if ":" in self.host else _Server
        self.httpd = server_cls((self.host, self.req_port), _Handler)
        self.httpd.issuer = self
        self.httpd.sslctx = ctx
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="issuer", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=10)
            self.httpd = None
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def ready_line(self):
        return json.dumps({"ready": True, "port": self.port, "issuer": self.issuer, "ca": self.ca_pem})

    # -- documents
    def discovery(self):
        with self.lock:
            wrong = self._active("wrong-issuer", "discovery")
        iss = self.issuer + ("/" if wrong else "")
        return {"issuer": iss, "jwks_uri": self.issuer + KEYS_PATH,
                "authorization_endpoint": self.issuer + "/auth", "token_endpoint": self.issuer + "/token",
                "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": sorted(ALG_KEY)}

    def jwks(self):
        with self.lock:
            keys = self.current.public()
            if self.old is not None and self.publish_old:
                keys += self.old.public()
        return {"keys": keys}

    def _active(self, mode, what):
        """Whether mode applies to a request for what ("discovery"|"keys"). Caller holds the lock."""
        return self.mode == mode and self.target in ("all", what)

    # -- control API (also used by the HTTP handler)
    def set_mode(self, mode, delay_ms=None, target=None, max_age="unchanged", huge_bytes=None, chunked=None):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        if target is not None and target not in ("all", "discovery", "keys"):
            raise ValueError("target must be all, discovery or keys")
        with self.lock:
            self.mode = mode
            self.target = target or MODE_TARGET[mode]
            if delay_ms is not None:
                self.delay_ms = int(delay_ms)
            elif mode == "slow" and not self.delay_ms:
                self.delay_ms = 3000
            if max_age != "unchanged":
                self.max_age = None if max_age is None else int(max_age)
            if huge_bytes is not None:
                self.huge_bytes = int(huge_bytes)
            if chunked is not None:
                self.chunked = bool(chunked)
        return {"mode": self.mode, "target": self.target, "delay_ms": self.delay_ms, "max_age": self.max_age,
                "huge_bytes": self.huge_bytes, "chunked": self.chunked}

    def rotate(self, keep_old=True):
        with self.lock:
            gen = self.current.gen + 1
        new = KeyGen.generate(gen)  # slow (RSA): outside the lock
        with self.lock:
            self.old = self.current
            self.current = new
            self.publish_old = bool(keep_old)
            self._save_keys()
            return {"kids": self.current.kids(), "old_kids": self.old.kids(), "old_published": self.publish_old}

    def kids(self):
        with self.lock:
            return {"current": self.current.kids(), "old": self.old.kids() if self.old else [],
                    "unknown": self.unknown.kids()}

    def stats(self):
        with self.lock:
            return {"requests": dict(self.counts), "total": sum(self.counts.values()),
                    "huge_bytes_sent": self.huge_sent}

    def reset_stats(self):
        with self.lock:
            self.counts.clear()
            self.huge_sent = 0

    def count(self, path):
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1

    def set_claim_source(self, name, body="", status=200, mode="ok", delay_ms=0):
        """Serves <issuer>/claims/<name> (see the module doc); returns its URL."""
        if mode not in ("ok", "down", "slow", "redirect", "huge"):
            raise ValueError(f"unknown claim source mode {mode!r}")
        with self.lock:
            self.claim_sources[name] = {"body": body, "status": int(status), "mode": mode,
                                        "delay_ms": int(delay_ms)}
        return self.issuer + "/claims/" + name

    def claim_requests(self, name=None):
        """[(name, Authorization header or None)] of the claims sources' requests so far (of name only if given)."""
        with self.lock:
            return [r for r in self.claim_log if name is None or r[0] == name]

    def mint(self, claims=None, **kw):
        """Returns a compact JWS (str); keywords as for mint_ex()."""
        return self.mint_ex(claims, **kw)[0]

    def mint_ex(self, claims=None, alg="RS256", kid="default", header=None, key="current", payload_raw=None,
                hmac_secret=None):
        """Returns (compact JWS, kid in its header or None). kid="default" uses the signing key's kid; None omits
        the kid header; claims/header values given as None remove that field."""
        if alg not in ALL_ALGS:
            raise MintError(f"unknown alg {alg!r}")
        if key not in ("current", "old", "unknown"):
            raise MintError("key must be current, old or unknown")
        now = int(time.time())
        body = {"iss": self.issuer, "aud": DEFAULT_AUD, "sub": "test-user", "iat": now, "exp": now + 600}
        for k, v in (claims or {}).items():
            if v is None:
                body.pop(k, None)
            else:
                body[k] = v
        payload = payload_raw.encode() if payload_raw is not None else json.dumps(body).encode()
        with self.lock:
            gen = {"current": self.current, "old": self.old, "unknown": self.unknown}[key]
            if gen is None:
                raise MintError("no old keys: rotate first")
            sk = None
            if kid not in ("default", None):
                # A kid naming a key we hold picks that key (any generation); any other kid is only a label.
                for g in (self.current, self.old, self.unknown):
                    if g is not None and g.by_kid(kid) is not None:
                        sk = g.by_kid(kid)
            if alg == "none":
                sk_used = None
            elif alg.startswith("HS"):
                secret = hmac_secret.encode() if hmac_secret is not None else \
                    gen.keys["rs256"][0].export_to_pem(private_key=False)
                sk_used = jwk.JWK(kty="oct", k=b64u(secret))
            else:
                sk_used = sk if sk is not None else gen.keys[ALG_KEY[alg]][0]
        hdr = {"alg": alg, "typ": "JWT"}
        if kid == "default":
            if sk_used is not None and sk_used.get("kty") != "oct":
                hdr["kid"] = _kid(sk_used)
        elif kid is not None:
            hdr["kid"] = kid
        for k, v in (header or {}).items():
            if v is None:
                hdr.pop(k, None)
            else:
                hdr[k] = v
        hjson = json.dumps(hdr, separators=(",", ":"))
        if alg == "none":
            return f"{b64u(hjson.encode())}.{b64u(payload)}.", hdr.get("kid")
        # JWSCore signs exactly the header we give it: no crit/alg checks, so hostile headers can be minted.
        core = jws.JWSCore(alg, sk_used, hjson, payload, algs=ALL_ALGS)
        sig = core.sign()
        pl = sig["payload"].decode() if isinstance(sig["payload"], bytes) else sig["payload"]
        return f"{sig['protected']}.{pl}.{sig['signature']}", hdr.get("kid")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def get_request(self):
        sock, addr = super().get_request()
        # The handshake happens in the handler thread (first read), so a slow client cannot stall accept().
        return self.sslctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        if self.issuer.verbose:
            super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kos-test-issuer"
    timeout = 30

    def log_message(self, fmt, *args):
        if self.server.issuer.verbose:
            sys.stderr.write("issuer: " + (fmt % args) + "\n")

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def _send(self, code, body, ctype="application/json", extra=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self):
        # SO_LINGER 0 makes close() send a RST: the client sees "connection reset", as from a crashed issuer.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def _body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 1 << 20:
            raise ValueError("body too large")
        raw = self.rfile.read(n) if n else b"{}"
        v = json.loads(raw or b"{}")
        if not isinstance(v, dict):
            raise ValueError("body must be a JSON object")
        return v

    def _claim_source(self, name):
        iss = self.server.issuer
        with iss.lock:
            iss.claim_log.append((name, self.headers.get("Authorization")))
            src = iss.claim_sources.get(name)
        if src is None:
            return self._send(404, {"error": "no such claims source"})
        if src["mode"] == "down":
            return self._reset()
        if src["mode"] == "slow":
            time.sleep(src["delay_ms"] / 1000.0)
        if src["mode"] == "redirect":
            return self._send(302, {"redirect": True}, extra={"Location": iss.issuer + "/claims/" + name + "-moved"})
        if src["mode"] == "huge":
            return self._send(200, "x" * (70 * 1024), ctype="application/jwt")
        return self._send(src["status"], src["body"], ctype="application/jwt")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        iss = self.server.issuer
        path, _, query = self.path.partition("?")
        if path == "/_test/stats":
            return self._send(200, iss.stats())
        if path == "/_test/kids":
            return self._send(200, iss.kids())
        pfx = iss.path_prefix
        if path.startswith(pfx + "/claims/"):
            return self._claim_source(path[len(pfx + "/claims/"):])
        if path == pfx + DISCOVERY_PATH:
            what = "discovery"
        elif path == pfx + KEYS_PATH:
            what = "keys"
        else:
            iss.count(path)
            return self._send(404, {"error": "not found"})
        iss.count(path)
        with iss.lock:
            mode = iss.mode if iss._active(iss.mode, what) else "ok"
            delay, max_age, huge, chunked = iss.delay_ms, iss.max_age, iss.huge_bytes, iss.chunked
        if mode == "down":
            return self._reset()
        if mode.startswith("redirect-") and "redirected=1" not in query:
            scheme = mode[len("redirect-"):]
            host = f"[{iss.host}]" if ":" in iss.host else iss.host
            return self._send(302, {"redirect": True},
                              extra={"Location": f"{scheme}://{host}:{iss.port}{path}?redirected=1"})
        if mode == "slow":
            time.sleep(delay / 1000.0)
        if mode == "status500":
            return self._send(500, {"error": "injected failure"})
        extra = {"Cache-Control": f"public, max-age={max_age}"} if max_age is not None and what == "keys" else {}
        if what == "discovery":
            return self._send(200, iss.discovery(), extra=extra)
        if mode == "garbage":
            return self._send(200, b"<html>this is not a key set {{{\x00\xff", extra=extra)
        if mode == "empty":
            return self._send(200, {"keys": []}, extra=extra)
        if mode == "huge":
            return self._stream_huge(huge, extra, chunked)
        return self._send(200, iss.jwks(), extra=extra)

    def _stream_huge(self, total, extra, chunked):
        """total bytes of a JWKS that never ends. With a Content-Length a client can refuse it up front; chunked,
        it must count what it receives and hang up at its cap."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(total))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        head = b'{"keys":[{"kty":"oct","k":"'
        chunk = b"A" * 65536
        sent = 0

        def out(data):
            if chunked:
                self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                self.wfile.write(data)

        try:
            out(head)
            sent = len(head)
            while sent < total:
                n = min(len(chunk), total - sent)
                out(chunk[:n])
                sent += n
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass  # the client gave up at its cap, as it should
        with self.server.issuer.lock:
            self.server.issuer.huge_sent = sent
        self.close_connection = True

    def do_POST(self):
        iss = self.server.issuer
        path = self.path.split("?", 1)[0]
        try:
            if path == "/_test/stats/reset":
                iss.reset_stats()
                return self._send(200, iss.stats())
            req = self._body_json()
            if path == "/_test/mint":
                tok, kid = iss.mint_ex(claims=req.get("claims"), alg=req.get("alg", "RS256"),
                                    kid=req.get("kid", "default"), header=req.get("header"),
                                    key=req.get("key", "current"), payload_raw=req.get("payload_raw"),
                                    hmac_secret=req.get("hmac_secret"))
                return self._send(200, {"token": tok, "kid": kid})
            if path == "/_test/rotate":
                return self._send(200, iss.rotate(keep_old=req.get("keep_old", True)))
            if path == "/_test/mode":
                return self._send(200, iss.set_mode(req.get("mode", "ok"), delay_ms=req.get("delay_ms"),
                                                    target=req.get("target"),
                                                    max_age=req.get("max_age", "unchanged"),
                                                    huge_bytes=req.get("huge_bytes"), chunked=req.get("chunked")))
        except Exception as e:  # noqa: BLE001 - any bad request is a 400, never a dead handler
            return self._send(400, {"error": str(e)})
        return self._send(404, {"error": "not found"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="test OIDC issuer (HTTPS, own CA) for kube-oidc-spoa tests")
    ap.add_argument("--state-dir", required=True, help="CA, certificates and signing keys (created if missing)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = let the kernel pick")
    ap.add_argument("--max-age", type=int, default=300, help="Cache-Control max-age of /keys; -1 = none")
    ap.add_argument("--path-prefix", default="", help="issuer URL path, e.g. /realms/test")
    ap.add_argument("--mode", default="ok", choices=MODES)
    ap.add_argument("--delay-ms", type=int, default=None)
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin closes: a test that spawned us with a pipe cannot leak us, even if it crashes")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    iss = TestIssuer(state_dir=a.state_dir, host=a.host, port=a.port,
                     max_age=None if a.max_age < 0 else a.max_age, path_prefix=a.path_prefix, verbose=a.verbose)
    iss.set_mode(a.mode, delay_ms=a.delay_ms)
    iss.start()
    done = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: done.set())
    if a.exit_on_stdin_eof:
        def watch_stdin():
            # os.read on the raw fd: a daemon thread blocked in a buffered reader aborts interpreter shutdown.
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            done.set()
        threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write(iss.ready_line() + "\n")
    sys.stdout.flush()
    while not done.wait(1.0):
        pass
    iss.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
