"""--authentication-config as Kubernetes delivers it (issue 20): a ConfigMap mounted into the pod, the file a
symlink to "..data/<file>", kubelet updating it by swapping the "..data" symlink. The same agent process picks a
swap up (no SIGHUP, no restart), never answers a request of a served user with anything but 200 while it does,
keeps the last good configuration when the new file is bad (and says so in /metrics); and one issuer that is
down does not take the pod out of the Service: /ready stays 200, the other issuer's users are served, that
issuer's tokens get 503, and /ready?verbose names it."""
import json
import os
import time
import urllib.request

import pytest

import kosstack
import kostest


def pem(path):
    with open(path) as f:
        return f.read()


def config_doc(a, dead_url, prefix="a:"):
    return {
        "apiVersion": "apiserver.config.k8s.io/v1beta1",
        "kind": "AuthenticationConfiguration",
        "jwt": [
            {"issuer": {"url": a.issuer, "audiences": ["kos-a"], "certificateAuthority": pem(a.ca)},
             "claimMappings": {"username": {"claim": "sub", "prefix": prefix},
                               "groups": {"claim": "groups", "prefix": ""}}},
            # nothing listens there: this issuer never gets its keys
            {"issuer": {"url": dead_url, "audiences": ["kos-dead"], "certificateAuthority": pem(a.ca)},
             "claimMappings": {"username": {"claim": "sub", "prefix": "dead:"}}},
        ],
    }


class ConfigMapDir:
    """A directory laid out as kubelet lays out a ConfigMap volume: <dir>/..<version>/<file>, <dir>/..data ->
    ..<version>, <dir>/<file> -> ..data/<file>; update() swaps ..data atomically as kubelet does."""

    def __init__(self, d, name):
        self.dir, self.name, self.version = d, name, 0
        os.makedirs(d, exist_ok=True)
        self.path = os.path.join(d, name)

    def update(self, text):
        self.version += 1
        vdir = f"..2026_12_06_00_00_{self.version:02d}.000000000"
        os.makedirs(os.path.join(self.dir, vdir))
        with open(os.path.join(self.dir, vdir, self.name), "w") as f:
            f.write(text)
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(vdir, tmp)
        os.replace(tmp, os.path.join(self.dir, "..data"))
        if not os.path.islink(self.path):
            os.symlink(os.path.join("..data", self.name), self.path)


@pytest.fixture(scope="module")
def stack(make_stack):
    state = {}

    def write_config(s):
        s.dead_url = f"https://127.0.0.1:{kostest.free_port()}"
        s.cm = ConfigMapDir(os.path.join(s.dir, "authn"), "authn.json")
        s.cm.update(json.dumps(config_doc(s.issuer, s.dead_url)))
        state["s"] = s
        return ["--authentication-config", s.cm.path]

    s = make_stack(oidc_flags=False, before_agent=write_config)
    yield s
    kosstack.assert_all_authenticated(s)


def get(stack, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.probe_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(stack, line_start):
    """The value of the first /metrics line starting with line_start (a name with its labels), or None."""
    _, text = get(stack, "/metrics")
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None


def user_of(stack, token):
    """(status, the user name the stand-in API server acted as or None, body)."""
    stack.api_reset()
    st, _, body = stack.request("GET", "/api/v1/namespaces/default/pods",
                                headers=[("Authorization", f"Bearer {token}")])
    recs = stack.api_requests()
    ident = recs[-1].get("identity") if recs else None
    return st, (ident or {}).get("username"), body


def alice(stack):
    return stack.mint({"aud": "kos-a", "sub": "alice", "groups": ["dev"]})


def wait_until(what, cond, timeout=60.0):
    """Polls cond() (bounded); returns its last truthy value or fails naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


def test_one_issuer_down_others_served(stack):
    st, body = get(stack, "/ready")
    assert st == 200, body
    doc = json.loads(body)
    assert doc["ready"] is True and "1 of 2 issuers not ready" in doc["detail"], doc
    st, body = get(stack, "/ready?verbose")
    assert st == 200, body
    detail = json.loads(body)["detail"]
    assert f"{stack.issuer.issuer}: ready" in detail and f"{stack.dead_url}: not ready" in detail, detail
    assert metric(stack, f'kos_issuer_ready{{issuer="{stack.dead_url}"}}') == 0
    assert metric(stack, f'kos_issuer_ready{{issuer="{stack.issuer.issuer}"}}') == 1
    assert metric(stack, "kos_issuers_ready") == 1
    # the healthy issuer's users are served through HAProxy
    st, user, body = user_of(stack, alice(stack))
    assert (st, user) == (200, "a:alice"), body
    # the issuer that is down: 503 as before, nothing forwarded
    st, user, body = user_of(stack, stack.mint({"iss": stack.dead_url, "aud": "kos-dead", "sub": "d"}))
    assert st == 503 and user is None, body


def test_configmap_swap_picked_up_without_dropping_a_request(stack):
    before_ok = metric(stack, 'kos_authentication_config_reloads_total{result="ok"}')
    stack.cm.update(json.dumps(config_doc(stack.issuer, stack.dead_url, prefix="a2:")))
    seen = []

    def swapped():
        st, user, body = user_of(stack, alice(stack))
        seen.append((st, user))
        assert st == 200, (st, body)  # every request during the reload is served, by the old or the new file
        return user == "a2:alice"

    wait_until("the swapped ConfigMap serves a2:alice", swapped)
    assert set(u for _, u in seen) <= {"a:alice", "a2:alice"}, seen
    log = stack.agent.log()
    assert "authentication configuration reloaded" in log and '"trigger":"file changed"' in log
    assert metric(stack, 'kos_authentication_config_reloads_total{result="ok"}') == before_ok + 1
    assert metric(stack, "kos_authentication_config_last_reload_success") == 1
    assert metric(stack, "kos_authentication_config_last_reload_timestamp_seconds") >= time.time() - 120


def test_bad_file_keeps_the_last_good_configuration(stack):
    assert user_of(stack, alice(stack))[1] == "a2:alice"
    before_bad = metric(stack, 'kos_authentication_config_reloads_total{result="invalid"}')
    doc = config_doc(stack.issuer, stack.dead_url, prefix="a3:")
    doc["jwt"][0]["claimMappings"]["username"] = {"expression": "claims.sub +"}  # does not compile
    stack.cm.update(json.dumps(doc))
    wait_until("the bad file is counted as a failed reload",
               lambda: metric(stack, 'kos_authentication_config_reloads_total{result="invalid"}') == before_bad + 1)
    assert metric(stack, "kos_authentication_config_last_reload_success") == 0
    log = stack.agent.log()
    assert "keeping the previous one" in log and "compilation failed" in log
    # served tokens still work, with the last good configuration
    st, user, body = user_of(stack, alice(stack))
    assert (st, user) == (200, "a2:alice"), body
    st, _ = get(stack, "/ready")
    assert st == 200
    # a fixed file is picked up again
    stack.cm.update(json.dumps(config_doc(stack.issuer, stack.dead_url)))
    wait_until("the fixed file serves a:alice", lambda: user_of(stack, alice(stack))[1] == "a:alice")
    assert metric(stack, "kos_authentication_config_last_reload_success") == 1
