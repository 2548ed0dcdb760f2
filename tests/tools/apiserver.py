#!/usr/bin/python3
"""A stand-in Kubernetes API server for the integration tests and the demo (HTTPS, HTTP/1.1, its own CA).

It behaves like kube-apiserver wherever the proxy in front of it can tell the difference:
  * only the configured service-account bearer token is accepted (401 Status otherwise, also for two
    Authorization headers);
  * impersonation is applied as the API server does: Impersonate-Group / -Uid / -Extra-* without an
    Impersonate-User is 400; an impersonated user (other than system:anonymous) gets system:authenticated;
    each Impersonate-Group header line is one group (no comma splitting); extra keys are percent-decoded;
  * /version, /api, /api/v1, /apis, /apis/authentication.k8s.io/v1 (legacy discovery, enough for kubectl);
  * POST /apis/authentication.k8s.io/v1/selfsubjectreviews answers with the identity it received
    (so `kubectl auth whoami` prints what the proxy sent);
  * token passthrough: a configured set of "review tokens" (stand-ins for service-account or CI tokens) maps each
    to a user, groups and audiences. POST /apis/authentication.k8s.io/v1/tokenreviews, by a caller with the
    service-account token and no impersonation, answers a TokenReview for spec.token (status.audiences is the
    intersection with spec.audiences when given, as the API server does; an empty intersection is not
    authenticated). A review token arriving directly as the bearer of any other request is served as its user
    (with impersonation headers: 403, as RBAC would say for such a user);
  * client impersonation: POST /apis/authorization.k8s.io/v1/subjectaccessreviews, by a caller with the
    service-account token and no impersonation, answers from a small RBAC-like policy (a list of rules
    {"subject": "<user>" or "group:<group>", "resource": r, "subresource": s, "namespace": ns, "names": [...] or
    ["*"]}, verb impersonate only): allowed when a rule matches spec.user or one of spec.groups, else
    allowed false with sar_reason (default none, as RBAC). An impersonated service account without groups gets
    system:serviceaccounts and system:serviceaccounts:<ns>, as the API server gives it;
  * GET /api/v1/namespaces/default/pods (list; ?watch=1 streams events with configurable quiet gaps, then ends;
    ?_slow=1 answers the list only after the first gap);
  * GET /api/v1/namespaces/default/pods/<name>/log (?follow=true streams lines with the same gaps);
  * /api/v1/namespaces/default/pods/<name>/exec|attach: WebSocket upgrade (v5/v4.channel.k8s.io) with a correct
    Sec-WebSocket-Accept, then the k8s channel protocol: prints a line naming the command on stdout, echoes stdin
    (when stdin=true) until the client closes it, then sends a Success status on the error channel and closes.
    An `Upgrade: SPDY/3.1` request gets a 101 and then a raw byte echo: this checks that the proxy tunnels a
    SPDY upgrade, it is not a SPDY implementation.
Every request (except the /_test/ control endpoints) is recorded with all its header lines.

Control endpoints (tests call them directly, not through the proxy):
  GET  /_test/requests        JSON list of recorded requests
  POST /_test/reset           forget the recorded requests
  POST /_test/config          JSON {"tokens": [...], "watch_gaps": [seconds, ...], "review_tokens": {token:
                              {"username": u, "groups": [...], "audiences": [...]}}, "review_delay": seconds,
                              "review_status": HTTP status to answer TokenReviews with (0 = normal),
                              "sar_policy": [rule, ...], "sar_status": HTTP status for SubjectAccessReviews
                              (0 = normal), "sar_reason": status.reason of a denial, "sar_delay": seconds before
                              answering a SubjectAccessReview} (all optional)

Run:  apiserver.py [--port 0] [--dir DIR] (--token-file FILE | --token TOKEN ...) [--watch-gaps 0.2,3]
                   [--review-token TOKEN=USER[:GROUP,GROUP...]] ...
It prints one JSON line when ready: {"ready": true, "port": N, "ca": "<DIR>/ca.pem", "url": "https://127.0.0.1:N"}
and runs until SIGTERM/SIGINT. The token file is re-read on every request, so rotating it is picked up at once.
"""
import argparse
import base64
import datetime
import hashlib
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Go's net/http (kube-apiserver) has no limit on the number of header lines, only on their bytes (1 MiB);
# Python's http.server refuses more than 100 (431): a user with hundreds of groups sends one line per group.
http.client._MAXHEADERS = 100000

SA_USER = "system:serviceaccount:kube-oidc-spoa:kube-oidc-spoa"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
MAX_BODY = 1 << 20
MAX_RECORDS = 100000
PODS = ("web-1", "web-2")
RESOURCE_VERSION = "100"


# ---- certificates ------------------------------------------------------------------------------------------

def make_pki(directory, names=("localhost",), ips=("127.0.0.1", "::1")):
    """Writes ca.pem, server.pem (cert) and server-key.pem into directory; returns their paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kos stand-in apiserver CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": os.path.join(directory, "ca.pem"), "cert": os.path.join(directory, "server.pem"),
             "key": os.path.join(directory, "server-key.pem")}
    with open(paths["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


# ---- Kubernetes objects ------------------------------------------------------------------------------------

def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def pod(name):
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "default", "uid": "uid-" + name,
                         "resourceVersion": RESOURCE_VERSION, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "main", "image": "example/main:1"}]},
            "status": {"phase": "Running"}}


def pod_table(items):
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": RESOURCE_VERSION},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "name", "priority": 0},
                {"name": "Status", "type": "string", "format": "", "description": "phase", "priority": 0}],
            "rows": [{"cells": [p["metadata"]["name"], p["status"]["phase"]],
                      "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                 "metadata": p["metadata"]}} for p in items]}


def discovery(path, port):
    if path == "/version":
        return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-kos-standin", "gitCommit": "standin",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23",
                "compiler": "gc", "platform": "linux/amd64"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}]}
    if path == "/api/v1":
        return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "shortNames": ["po"],
             "verbs": ["get", "list", "watch"]},
            {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
             "verbs": ["create", "get"]},
            {"name": "pods/attach", "singularName": "", "namespaced": True, "kind": "PodAttachOptions",
             "verbs": ["create", "get"]},
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]}]}
    if path == "/apis":
        gv = {"groupVersion": "authentication.k8s.io/v1", "version": "v1"}
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{"name": "authentication.k8s.io", "versions": [gv], "preferredVersion": gv}]}
    if path == "/apis/authentication.k8s.io/v1":
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authentication.k8s.io/v1",
                "resources": [{"name": "selfsubjectreviews", "singularName": "selfsubjectreview",
                               "namespaced": False, "kind": "SelfSubjectReview", "verbs": ["create"]}]}
    return None


# ---- state -------------------------------------------------------------------------------------------------

class State:
    def __init__(self, token_file, tokens, watch_gaps):
        self.lock = threading.Lock()
        self.token_file = token_file
        self.tokens = list(tokens)
        self.watch_gaps = list(watch_gaps)
        self.records = []
        self.seq = 0
        self.review_tokens = {}
        self.review_delay = 0.0
        self.review_status = 0
        self.sar_policy = []
        self.sar_status = 0
        self.sar_reason = ""
        self.sar_delay = 0.0

    def accepted_tokens(self):
        with self.lock:
            toks = list(self.tokens)
        if self.token_file:
            try:
                with open(self.token_file, "r") as f:
                    t = f.read().strip()
                if t:
                    toks.append(t)
            except OSError:
                pass
        return toks

    def record(self, rec):
        with self.lock:
            self.seq += 1
            rec["seq"] = self.seq
            if len(self.records) < MAX_RECORDS:
                self.records.append(rec)


class ImpersonationError(Exception):
    pass


def impersonated_identity(header_lines):
    """The identity the API server would act as, from the request's header lines (name, value)."""
    users, groups, uids, extra = [], [], [], {}
    for name, value in header_lines:
        ln = name.lower()
        if ln == "impersonate-user":
            users.append(value)
        elif ln == "impersonate-group":
            groups.append(value)
        elif ln == "impersonate-uid":
            uids.append(value)
        elif ln.startswith("impersonate-extra-"):
            key = urllib.parse.unquote(ln[len("impersonate-extra-"):])
            extra.setdefault(key, []).append(value)
    if not users:
        if groups or uids or extra:
            raise ImpersonationError("requested impersonation of groups, uid or extra without a user")
        return {"username": SA_USER, "uid": "sa-uid", "groups": ["system:serviceaccounts",
                                                                 "system:serviceaccounts:kube-oidc-spoa",
                                                                 "system:authenticated"]}
    if len(uids) > 1:
        raise ImpersonationError("more than one Impersonate-Uid")
    user = users[0]
    sa = user.split(":")
    if not groups and len(sa) == 4 and sa[:2] == ["system", "serviceaccount"]:
        groups = ["system:serviceaccounts", "system:serviceaccounts:" + sa[2]]
    if user != "system:anonymous" and "system:authenticated" not in groups:
        groups = groups + ["system:authenticated"]
    info = {"username": user, "groups": groups}
    if uids:
        info["uid"] = uids[0]
    if extra:
        info["extra"] = extra
    return info


# ---- HTTP --------------------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kos-standin-apiserver"
    timeout = 120

    def log_message(self, fmt, *args):  # quiet; tests read /_test/requests
        pass

    # -- helpers --
    def send_json(self, code, obj, extra_headers=()):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._rec["status"] = code

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = b""
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("eof in chunked body")
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                if len(out) + n > MAX_BODY:
                    raise ConnectionError("body too large")
                out += self.rfile.read(n)
                self.rfile.readline(1024)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ConnectionError("body too large")
        return self.rfile.read(n) if n else b""

    def start_chunked(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._rec["status"] = 200

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # -- dispatch --
    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def do_PATCH(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def handle_any(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        if path.startswith("/_test/"):
            return self.control(path)
        # Header values as Go's net/http (kube-apiserver) reads them: textproto drops leading and trailing SP/HTAB
        # (Python's parser drops only the leading ones). Identity tests judge what the real API server would see.
        lines = [(k, v.strip(" \t")) for k, v in self.headers.items()]
        self._rec = {"method": self.command, "path": self.path, "headers": lines, "auth_ok": False,
                     "user": None, "status": None, "time": time.time()}
        try:
            body = self.read_body()
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        try:
            self.route(st, path, query, lines, body)
        finally:
            st.record(self._rec)

    def route(self, st, path, query, lines, body):
        auths = [v for k, v in lines if k.lower() == "authorization"]
        toks = st.accepted_tokens()
        with st.lock:
            review_tokens = dict(st.review_tokens)
        bearer = auths[0][len("Bearer "):] if len(auths) == 1 and auths[0].startswith("Bearer ") else None
        if bearer is not None and bearer not in toks and bearer in review_tokens:
            return self.as_review_user(path, review_tokens[bearer], lines)
        if len(auths) != 1 or not auths[0].startswith("Bearer ") or auths[0][len("Bearer "):] not in toks:
            return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
        self._rec["auth_ok"] = True
        try:
            ident = impersonated_identity(lines)
        except ImpersonationError as e:
            return self.send_json(400, status(400, "BadRequest", str(e)))
        self._rec["user"] = ident["username"]
        self._rec["identity"] = ident

        if path.rstrip("/") == "/apis/authentication.k8s.io/v1/tokenreviews" and self.command == "POST":
            if ident["username"] != SA_USER:
                return self.send_json(403, status(403, "Forbidden", "cannot create tokenreviews"))
            return self.token_review(st, body, review_tokens)
        if path.rstrip("/") == "/apis/authorization.k8s.io/v1/subjectaccessreviews" and self.command == "POST":
            if ident["username"] != SA_USER:
                return self.send_json(403, status(403, "Forbidden", "cannot create subjectaccessreviews"))
            return self.subject_access_review(st, body)
        self.serve(path, query, ident)

    def subject_access_review(self, st, body):
        with st.lock:
            policy, code, reason, delay = list(st.sar_policy), st.sar_status, st.sar_reason, st.sar_delay
        self._rec["sar"] = True
        if delay:
            time.sleep(delay)
        if code:
            return self.send_json(code, status(code, "InternalError", "stand-in failure"))
        try:
            req = json.loads(body)
            spec = req["spec"]
            ra = spec["resourceAttributes"]
            user, groups = spec["user"], list(spec.get("groups") or [])
        except (ValueError, KeyError, TypeError):
            return self.send_json(400, status(400, "BadRequest", "not a SubjectAccessReview"))
        self._rec["sar_spec"] = spec
        allowed = False
        if ra.get("verb") == "impersonate":
            for rule in policy:
                subj = rule.get("subject", "")
                who = (subj == user) if not subj.startswith("group:") else (subj[len("group:"):] in groups)
                if (who and rule.get("resource", "") == ra.get("resource", "")
                        and rule.get("group", "") == ra.get("group", "")
                        and rule.get("subresource", "") == ra.get("subresource", "")
                        and rule.get("namespace", "") == ra.get("namespace", "")
                        and ("*" in rule.get("names", []) or ra.get("name", "") in rule.get("names", []))):
                    allowed = True
                    break
        st_ = {"allowed": allowed}
        if not allowed and reason:
            st_["reason"] = reason
        self._rec["sar_allowed"] = allowed
        return self.send_json(201, {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                                    "metadata": {"creationTimestamp": None}, "spec": spec, "status": st_})

    def as_review_user(self, path, entry, lines):
        """A request authenticated by the client's own (review) token, as the API server would serve it."""
        ident = {"username": entry["username"], "groups": list(entry.get("groups", [])) + ["system:authenticated"]}
        self._rec["passthrough_user"] = ident["username"]
        self._rec["user"] = ident["username"]
        self._rec["identity"] = ident
        if any(k.lower().startswith("impersonate-") for k, _ in lines):
            return self.send_json(403, status(403, "Forbidden", f'users "{ident["username"]}" is forbidden: '
                                              "cannot impersonate"))
        url = urllib.parse.urlsplit(self.path)
        return self.serve(path, urllib.parse.parse_qs(url.query), ident)

    def token_review(self, st, body, review_tokens):
        with st.lock:
            delay, code = st.review_delay, st.review_status
        self._rec["tokenreview"] = True
        if delay:
            time.sleep(delay)
        if code:
            return self.send_json(code, status(code, "InternalError", "stand-in failure"))
        try:
            req = json.loads(body)
            tok = req["spec"]["token"]
            want = req["spec"].get("audiences") or []
        except (ValueError, KeyError, TypeError):
            return self.send_json(400, status(400, "BadRequest", "not a TokenReview"))
        st_ = {"authenticated": False, "user": {}}
        entry = review_tokens.get(tok)
        if entry is not None:
            have = entry.get("audiences") or ["https://kubernetes.default.svc"]
            got = [a for a in want if a in have] if want else have
            if got:
                st_ = {"authenticated": True, "audiences": got,
                       "user": {"username": entry["username"], "uid": "uid-" + entry["username"],
                                "groups": list(entry.get("groups", [])) + ["system:authenticated"]}}
            else:
                st_["error"] = "token audiences are invalid for the target audiences"
        else:
            st_["error"] = "invalid bearer token"
        self._rec["review_authenticated"] = st_["authenticated"]
        return self.send_json(201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                                    "metadata": {"creationTimestamp": None},
                                    "spec": {"audiences": want} if want else {}, "status": st_})

    def serve(self, path, query, ident):
        st = self.server.state
        d = discovery(path, self.server.server_port)
        if d is not None and self.command in ("GET", "HEAD"):
            return self.send_json(200, d)
        if path.rstrip("/") == "/apis/authentication.k8s.io/v1/selfsubjectreviews" and self.command == "POST":
            return self.send_json(201, {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                                        "metadata": {"creationTimestamp": None}, "status": {"userInfo": ident}})
        base = "/api/v1/namespaces/default/pods"
        if path == base and self.command == "GET":
            if query.get("watch", [""])[0] in ("1", "true"):
                return self.watch()
            if query.get("_slow"):  # test hook: the list answers after the first watch gap
                time.sleep((st.watch_gaps or [0])[0])
            items = [pod(n) for n in PODS]
            if "as=Table" in (self.headers.get("Accept") or ""):
                return self.send_json(200, pod_table(items))
            return self.send_json(200, {"kind": "PodList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": RESOURCE_VERSION}, "items": items})
        if path.startswith(base + "/"):
            parts = path[len(base) + 1:].split("/")
            if parts[0] in PODS:
                if len(parts) == 1 and self.command == "GET":
                    p = pod(parts[0])
                    if "as=Table" in (self.headers.get("Accept") or ""):
                        return self.send_json(200, pod_table([p]))
                    return self.send_json(200, p)
                if len(parts) == 2 and parts[1] == "log" and self.command == "GET":
                    return self.logs(parts[0], query.get("follow", [""])[0] == "true")
                if len(parts) == 2 and parts[1] in ("exec", "attach"):
                    return self.upgrade(parts[0], query)
            return self.send_json(404, status(404, "NotFound", f'pods "{parts[0]}" not found'))
        return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))

    # -- streaming --
    def watch(self):
        self.start_chunked("application/json")
        gaps = self.server.state.watch_gaps
        for n in PODS:
            self.chunk((json.dumps({"type": "ADDED", "object": pod(n)}) + "\n").encode())
        for i, gap in enumerate(gaps):
            time.sleep(gap)
            p = pod(PODS[0])
            p["metadata"]["resourceVersion"] = str(int(RESOURCE_VERSION) + i + 1)
            self.chunk((json.dumps({"type": "MODIFIED", "object": p}) + "\n").encode())
        self.chunk(b"")
        self.close_connection = True

    def logs(self, name, follow):
        if not follow:
            body = f"{name} line 0\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self._rec["status"] = 200
            return
        self.start_chunked("text/plain")
        self.chunk(f"{name} line 0\n".encode())
        for i, gap in enumerate(self.server.state.watch_gaps):
            time.sleep(gap)
            self.chunk(f"{name} line {i + 1}\n".encode())
        self.chunk(b"")
        self.close_connection = True

    # -- upgrades --
    def upgrade(self, name, query):
        upg = (self.headers.get("Upgrade") or "").lower()
        conn_tokens = [t.strip().lower() for t in (self.headers.get("Connection") or "").split(",")]
        if "upgrade" not in conn_tokens:
            return self.send_json(400, status(400, "BadRequest", "Upgrade request required"))
        if upg == "websocket":
            return self.websocket(name, query)
        if upg.startswith("spdy/3.1"):
            return self.spdy_echo()
        return self.send_json(400, status(400, "BadRequest", "unsupported upgrade"))

    def spdy_echo(self):
        versions = [v.strip() for v in self.headers.get_all("X-Stream-Protocol-Version") or []]
        self.send_response(101)
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "SPDY/3.1")
        if versions:
            self.send_header("X-Stream-Protocol-Version", versions[0])
        self.end_headers()
        self.wfile.flush()
        self._rec["status"] = 101
        self.close_connection = True
        self.connection.settimeout(30)
        try:
            while True:
                data = self.rfile.read1(65536)
                if not data:
                    break
                self.wfile.write(data)
        except OSError:
            pass

    def websocket(self, name, query):
        key = self.headers.get("Sec-WebSocket-Key")
        offered = []
        for v in self.headers.get_all("Sec-WebSocket-Protocol") or []:
            offered += [p.strip() for p in v.split(",") if p.strip()]
        proto = next((p for p in offered if p in WS_PROTOCOLS), None)
        if not key or proto is None:
            return self.send_json(400, status(400, "BadRequest", "websocket: missing key or no supported protocol"))
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", proto)
        self.end_headers()
        self.wfile.flush()
        self._rec["status"] = 101
        self._rec["ws_protocol"] = proto
        self.close_connection = True
        self.connection.settimeout(30)
        try:
            self.exec_session(name, query)
        except (OSError, ConnectionError, ValueError):
            pass

    def ws_send(self, opcode, payload):
        n = len(payload)
        if n < 126:
            hdr = bytes([0x80 | opcode, n])
        elif n < 65536:
            hdr = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
        else:
            hdr = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
        self.wfile.write(hdr + payload)
        self.wfile.flush()

    def ws_recv(self):
        """One frame from the client: (opcode, payload); raises ConnectionError at EOF."""
        def exact(n):
            b = self.rfile.read(n)
            if len(b) != n:
                raise ConnectionError("eof")
            return b
        b0, b1 = exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(exact(2), "big")
        elif n == 127:
            n = int.from_bytes(exact(8), "big")
        if n > MAX_BODY:
            raise ConnectionError("frame too large")
        mask = exact(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(exact(n)))
        return b0 & 0x0F, data

    def exec_session(self, name, query):
        cmd = query.get("command", [])
        self.ws_send(0x2, b"\x01" + f"exec in {name}: {' '.join(cmd)}\n".encode())
        if query.get("stdin", [""])[0] in ("true", "1"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                op, data = self.ws_recv()
                if op == 0x8:
                    return
                if op == 0x9:
                    self.ws_send(0xA, data)
                    continue
                if op not in (0x1, 0x2) or not data:
                    continue
                if data[0] == 0 and len(data) > 1:
                    self.ws_send(0x2, b"\x01" + data[1:])
                elif data[0] == 255 and data[1:2] == b"\x00":  # v5: the client closed stdin
                    break
                elif data[0] == 0 and len(data) == 1 and self._rec.get("ws_protocol") != WS_PROTOCOLS[0]:
                    break
        self.ws_send(0x2, b"\x03" + json.dumps({"metadata": {}, "status": "Success"}).encode())
        self.ws_send(0x8, (1000).to_bytes(2, "big"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            op, _ = self.ws_recv()
            if op == 0x8:
                break

    # -- control --
    def control(self, path):
        st = self.server.state
        self._rec = {}
        try:
            body = self.read_body()
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        if path == "/_test/requests" and self.command == "GET":
            with st.lock:
                recs = list(st.records)
            return self.send_json(200, recs)
        if path == "/_test/reset" and self.command == "POST":
            with st.lock:
                st.records.clear()
            return self.send_json(200, {"ok": True})
        if path == "/_test/config" and self.command == "POST":
            cfg = json.loads(body or b"{}")
            with st.lock:
                if "tokens" in cfg:
                    st.tokens = [str(t) for t in cfg["tokens"]]
                if "watch_gaps" in cfg:
                    st.watch_gaps = [float(g) for g in cfg["watch_gaps"]]
                if "review_tokens" in cfg:
                    st.review_tokens = {str(k): dict(v) for k, v in cfg["review_tokens"].items()}
                if "review_delay" in cfg:
                    st.review_delay = float(cfg["review_delay"])
                if "review_status" in cfg:
                    st.review_status = int(cfg["review_status"])
                if "sar_policy" in cfg:
                    st.sar_policy = [dict(r) for r in cfg["sar_policy"]]
                if "sar_status" in cfg:
                    st.sar_status = int(cfg["sar_status"])
                if "sar_delay" in cfg:
                    st.sar_delay = float(cfg["sar_delay"])
                if "sar_reason" in cfg:
                    st.sar_reason = str(cfg["sar_reason"])
            return self.send_json(200, {"ok": True})
        return self.send_json(404, status(404, "NotFound", "no such control endpoint"))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, addr, state, ssl_ctx):
        self.state = state
        self.ssl_ctx = ssl_ctx
        fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.address_family = fam
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # The TLS handshake happens on the first read, in the handler's thread: a stalled client cannot block
        # the accept loop.
        return self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


def serve(host, port, directory, token_file, tokens, watch_gaps, review_tokens=None):
    pki = make_pki(directory)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki["cert"], pki["key"])
    ctx.set_alpn_protocols(["http/1.1"])
    state = State(token_file, tokens, watch_gaps)
    state.review_tokens = dict(review_tokens or {})
    srv = Server((host, port), state, ctx)
    return srv, pki


def parse_review_token(s):
    """TOKEN=USER[:GROUP,GROUP] -> (token, entry)."""
    tok, _, rest = s.partition("=")
    user, _, groups = rest.partition(":")
    if not tok or not user:
        raise ValueError("expected TOKEN=USER[:GROUP,...]")
    return tok, {"username": user, "groups": [g for g in groups.split(",") if g]}


def main():
    ap = argparse.ArgumentParser(description="stand-in Kubernetes API server for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", help="where to write ca.pem and the server key (default: a new temp dir)")
    ap.add_argument("--token-file", help="service-account token accepted (re-read on every request)")
    ap.add_argument("--token", action="append", default=[], help="an accepted token (repeatable)")
    ap.add_argument("--watch-gaps", default="0.2", help="comma-separated quiet gaps (s) of watch/follow streams")
    ap.add_argument("--review-token", action="append", default=[],
                    help="TOKEN=USER[:GROUP,...] authenticated by TokenReview and as a direct bearer (repeatable)")
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("listens on loopback only")
    gaps = [float(g) for g in a.watch_gaps.split(",") if g.strip()]
    directory = a.dir or tempfile.mkdtemp(prefix="kos-apiserver-")
    os.makedirs(directory, exist_ok=True)
    srv, pki = serve(a.host, a.port, directory, a.token_file, a.token, gaps,
                     dict(parse_review_token(t) for t in a.review_token))
    port = srv.server_address[1]
    host = a.host if ":" not in a.host else f"[{a.host}]"
    print(json.dumps({"ready": True, "port": port, "ca": pki["ca"], "url": f"https://{host}:{port}"}), flush=True)

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()


if __name__ == "__main__":
    sys.exit(main())
