"""conf/haproxy.cfg against a scripted agent (spop_stub.py): every branch of the contract's rules, including the
verdicts the real agent never gives. Nothing but an explicit, complete allow may reach the API server."""
import http.client
import json
import signal

import pytest

import kosstack
from kosstack import header_values
from spop_stub import stub_token

SA = "Bearer " + kosstack.SA_TOKEN
SV = "0123456789abcdef"               # the version the stub says the token has
PROC_SA = SV + "|" + SA               # what HAProxy keeps process-wide (proc.kos.sa)
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}
IMPERSONATION = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": "Impersonation requests are disabled when using this proxy", "reason": "Forbidden",
                 "code": 403}


def allow(**extra):
    v = {"status": 0, "user": "alice", "sv": SV, "proc.sa": PROC_SA, "ng": 0}
    v.update(extra)
    return v


@pytest.fixture(scope="module")
def stack(make_stack):
    return make_stack(agent="stub", spoe_timeout="500ms")


def get(stack, vars_=None, headers=(), path="/version", **kw):
    hdrs = list(headers)
    if vars_ is not None:
        hdrs.append(("Authorization", "Bearer " + stub_token(vars_, **kw)))
    st, rh, body = stack.request("GET", path, headers=hdrs)
    return st, rh, body


def last_api_request(stack):
    reqs = stack.api_requests()
    assert reqs, "nothing reached the API server"
    return reqs[-1]


def test_allow_forwards_identity_and_replaces_credentials(stack):
    stack.api_reset()
    v = allow(uid="u-1", ng=3, g0="dev", g1="ops,admins", g2="a b", cip="127.0.0.1")
    st, _, body = get(stack, v, headers=[("X-Impersonate-Keep", "yes")])
    assert st == 200, body
    r = last_api_request(stack)
    h = r["headers"]
    assert header_values(h, "Authorization") == [SA]
    assert header_values(h, "Impersonate-User") == ["alice"]
    assert header_values(h, "Impersonate-Uid") == ["u-1"]
    assert header_values(h, "Impersonate-Group") == ["dev", "ops,admins", "a b"]
    assert header_values(h, "Impersonate-Extra-Remote-Client-Ip") == ["127.0.0.1"]
    assert header_values(h, "X-Impersonate-Keep") == ["yes"]
    assert r["identity"]["groups"] == ["dev", "ops,admins", "a b", "system:authenticated"]


def test_allow_without_optional_vars(stack):
    stack.api_reset()
    st, _, body = get(stack, {"status": 0, "user": "bob", "ng": 0, "sv": SV, "proc.sa": PROC_SA})
    assert st == 200, body
    h = last_api_request(stack)["headers"]
    assert header_values(h, "Impersonate-User") == ["bob"]
    for name in ("Impersonate-Uid", "Impersonate-Group", "Impersonate-Extra-Remote-Client-Ip"):
        assert header_values(h, name) == []


def test_256_groups_are_256_lines(stack):
    stack.api_reset()
    groups = {f"g{i}": f"group-{i}" for i in range(256)}
    st, _, body = get(stack, allow(ng=256, **groups))
    assert st == 200, body
    assert header_values(last_api_request(stack)["headers"], "Impersonate-Group") == [f"group-{i}" for i in
                                                                                      range(256)]


def test_group_lines_stop_at_the_first_unset_variable(stack):
    # Each group line is preceded by "allow unless gN found" (the frontend's last rules): a gap the agent must
    # never leave ends the list there; it never becomes an empty Impersonate-Group line.
    stack.api_reset()
    st, _, body = get(stack, allow(ng=3, g0="dev", g2="ops"))
    assert st == 200, body
    assert header_values(last_api_request(stack)["headers"], "Impersonate-Group") == ["dev"]


def test_groups_extras_and_client_ip_together(stack):
    # The rules after the group block would never run: extras and client IP come before it.
    stack.api_reset()
    st, _, body = get(stack, allow(ng=2, g0="dev", g1="ops", cip="127.0.0.1", x5v0="read"))
    assert st == 200, body
    h = last_api_request(stack)["headers"]
    assert header_values(h, "Impersonate-Group") == ["dev", "ops"]
    assert header_values(h, "Impersonate-Extra-Remote-Client-Ip") == ["127.0.0.1"]
    assert header_values(h, "Impersonate-Extra-scopes") == ["read"]


def test_more_groups_than_lines_is_403_not_truncation(stack):
    stack.api_reset()
    groups = {f"g{i}": f"group-{i}" for i in range(256)}
    st, _, body = get(stack, allow(ng=257, **groups))
    assert st == 403
    doc = json.loads(body)
    assert doc["reason"] == "Forbidden" and doc["code"] == 403 and "groups" in doc["message"]
    assert stack.api_requests() == []


def test_status_5_forwards_the_clients_own_credentials(stack):
    """Passthrough: the client's Authorization goes on untouched and no Impersonate-* is added, even when the
    agent (wrongly) also set identity variables; the service-account token is never used."""
    stack.api_reset()
    v = {"status": 5, "user": "alice", "sv": SV, "proc.sa": PROC_SA, "ng": 1, "g0": "dev", "uid": "u-1",
         "cip": "127.0.0.1", "x5v0": "v"}
    tok = stub_token(v)
    stack.api_config(review_tokens={tok: {"username": "ci-bot", "groups": ["ci"]}})
    try:
        st, _, body = stack.request("GET", "/version", headers=[("Authorization", "Bearer " + tok),
                                                                ("X-Impersonate-Keep", "yes")])
    finally:
        stack.api_config(review_tokens={})
    assert st == 200, body
    r = last_api_request(stack)
    h = r["headers"]
    assert header_values(h, "Authorization") == ["Bearer " + tok]
    assert [k for k, _ in h if k.lower().startswith("impersonate-")] == []
    assert header_values(h, "X-Impersonate-Keep") == ["yes"]
    assert r["passthrough_user"] == "ci-bot"


def test_status_5_with_impersonation_headers_is_403(stack):
    stack.api_reset()
    st, _, body = get(stack, {"status": 5}, headers=[("impersonate-group", "admins")])
    assert st == 403 and json.loads(body) == IMPERSONATION
    assert stack.api_requests() == []


def test_status_1_is_kubernetes_401(stack):
    st, rh, body = get(stack, {"status": 1, "reason": "token expired"})
    assert st == 401
    assert header_values(rh, "Content-Type") == ["application/json"]
    assert json.loads(body) == UNAUTHORIZED


def test_missing_authorization_reaches_agent_as_null(stack):
    st, _, body = get(stack, None)
    assert st == 401 and json.loads(body) == UNAUTHORIZED


def test_status_2_is_impersonation_403(stack):
    st, _, body = get(stack, {"status": 2, "reason": "impersonation"})
    assert st == 403 and json.loads(body) == IMPERSONATION


def test_status_3_is_groups_403(stack):
    st, _, body = get(stack, {"status": 3, "reason": "too many groups"})
    assert st == 403
    doc = json.loads(body)
    assert doc["code"] == 403 and doc["reason"] == "Forbidden" and "groups" in doc["message"]


@pytest.mark.parametrize("vars_", [
    {"status": 4, "reason": "not ready"},
    {"status": 8},                                                        # a refusal without its message
    {"status": 9},
    {"status": 99, "user": "alice", "sv": SV, "proc.sa": PROC_SA},
    {"status": -1, "user": "alice", "sv": SV, "proc.sa": PROC_SA},
    {"user": "alice", "sv": SV, "proc.sa": PROC_SA},                      # no verdict at all
    {"status": "abc", "user": "alice", "sv": SV, "proc.sa": PROC_SA},     # HAProxy's int match would read these as 0
    {"status": "0abc", "user": "alice", "sv": SV, "proc.sa": PROC_SA},
    {"status": " 0", "user": "alice", "sv": SV, "proc.sa": PROC_SA},
    {"status": "00", "user": "alice", "sv": SV, "proc.sa": PROC_SA},
    {"status": 0, "sv": SV, "proc.sa": PROC_SA},                          # allow without a user
    {"status": 0, "user": "alice", "sv": SV, "proc.sa": PROC_SA, "g0": "dev"},  # allow without ng
    {"status": 0, "user": "alice", "proc.sa": PROC_SA},                   # allow without the token's version
    # the copy HAProxy holds is another version than the agent names: never forwarded (stale or foreign)
    {"status": 0, "user": "alice", "ng": 0, "sv": "fedcba9876543210", "proc.sa": PROC_SA},
    {"status": 0, "user": "alice", "ng": 0, "sv": SV, "proc.sa": "fedcba9876543210|" + SA},
    {"status": 0, "user": "alice", "ng": 0, "sv": SV[:15], "proc.sa": PROC_SA},
    {},
], ids=["4", "8", "9", "99", "neg", "no-status", "str-abc", "str-0abc", "str-sp0", "str-00", "no-user", "no-ng", "no-sv",
        "sv-other", "proc-other", "sv-short", "empty"])
def test_everything_else_is_503(stack, vars_):
    stack.api_reset()
    st, _, body = get(stack, vars_)
    assert st == 503, body
    doc = json.loads(body)
    assert doc["code"] == 503 and doc["reason"] == "ServiceUnavailable" and doc["kind"] == "Status"
    assert stack.api_requests() == []


def test_agent_timeout_is_503(stack):
    stack.api_reset()
    st, _, _ = get(stack, allow(), noreply=True)
    assert st == 503
    st, _, _ = get(stack, allow(), delay=1.5)
    assert st == 503
    assert stack.api_requests() == []


def test_two_authorization_headers_is_400(stack):
    tok = "Bearer " + stub_token(allow())
    for second in (tok, "Bearer other", ""):
        st, _, body = stack.request("GET", "/version", headers=[("Authorization", tok), ("authorization", second)])
        assert st == 400, body
        doc = json.loads(body)
        assert doc["code"] == 400 and doc["reason"] == "BadRequest"


@pytest.mark.parametrize("name", ["Impersonate-User", "impersonate-group", "IMPERSONATE-UID",
                                  "iMpErSoNaTe-ExTrA-scopes", "Impersonate-Extra-", "impersonate-anything"])
def test_impersonation_headers_are_flagged_to_the_agent(stack, name):
    # The stub answers 403 only if HAProxy sent imp=true, 401 otherwise.
    st, _, body = get(stack, {}, headers=[(name, "x")], echo_imp=True)
    assert st == 403 and json.loads(body) == IMPERSONATION
    st, _, body = get(stack, {}, headers=[("X-" + name, "x")], echo_imp=True)
    assert st == 401 and json.loads(body) == UNAUTHORIZED


def test_lookalike_header_is_not_impersonation(stack):
    stack.api_reset()
    st, _, _ = get(stack, allow(), headers=[("X-Impersonate-User", "root"), ("Impersonates", "x")])
    assert st == 200
    h = last_api_request(stack)["headers"]
    assert header_values(h, "Impersonate-User") == ["alice"]


def test_allow_despite_impersonation_headers_is_still_403(stack):
    # Defence in depth: even if the agent said yes, client impersonation is never honoured.
    stack.api_reset()
    st, _, body = get(stack, allow(), headers=[("Impersonate-User", "root")])
    assert st == 403 and json.loads(body) == IMPERSONATION
    assert stack.api_requests() == []


def test_extras_through_native_slots(stack):
    """Extras without Lua: slot n (KOS_EXTRA_n in HAProxy's environment) adds one Impersonate-Extra line per
    value x<n>v<j> the agent sets, in order, all eight of them."""
    stack.api_reset()
    eight = {f"x5v{j}": f"s{j}" for j in range(8)}
    st, _, body = get(stack, allow(x6v0="b c", **eight))
    assert st == 200, body
    r = last_api_request(stack)
    assert header_values(r["headers"], "Impersonate-Extra-scopes") == [f"s{j}" for j in range(8)]
    assert header_values(r["headers"], "Impersonate-Extra-foo%2fbar") == ["b c"]
    assert r["identity"]["extra"] == {"scopes": [f"s{j}" for j in range(8)], "foo/bar": ["b c"]}


def test_slots_and_token_version_are_told_to_the_agent(stack):
    """HAProxy sends its slots as xk (KOS_EXTRA_1..8 joined by |) and the version of the token it holds as sv
    (the first 16 bytes of proc.kos.sa, set by an earlier allow): the stub echoes both in the user."""
    st, _, body = get(stack, allow())  # HAProxy now holds PROC_SA
    assert st == 200, body
    stack.api_reset()
    st, _, body = get(stack, allow(), echo_args=True)
    assert st == 200, body
    assert last_api_request(stack)["user"] == f"xk={'|'.join(kosstack.EXTRA_SLOTS)} sv={SV}"


def test_status_6_is_403_and_7_is_500(stack):
    stack.api_reset()
    st, _, body = get(stack, {"status": 6, "reason": "too many values for an extra key"})
    doc = json.loads(body)
    assert st == 403 and doc["code"] == 403 and "at most 8" in doc["message"]
    st, _, body = get(stack, {"status": 7, "reason": "extra key without a HAProxy slot"})
    doc = json.loads(body)
    assert st == 500 and doc["code"] == 500 and "KOS_EXTRA_" in doc["message"]
    assert stack.api_requests() == []


def test_http2_frontend(stack):
    tok = "Bearer " + stub_token(allow(ng=1, g0="dev"))
    p = stack.curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "-H",
                   f"Authorization: {tok}", stack.url("/version"))
    assert p.stdout == "2 200", p.stderr
    p = stack.curl("--http2", "-w", "\n%{http_version} %{http_code}", stack.url("/version"))
    assert p.stdout.endswith("2 401"), p.stdout


def test_agent_down_is_503_then_recovers(stack):
    stack.api_reset()
    port = stack.agent_port
    stack.stop_agent(signal.SIGKILL)
    for _ in range(5):
        st, _, _ = get(stack, allow())
        assert st == 503
    stack.start_agent(port=port)
    stack.wait_agent_up_in_haproxy()
    st, _, _ = get(stack, allow())
    assert st == 200
    kosstack.assert_all_authenticated(stack)


def test_log_never_contains_tokens(stack):
    st, _, _ = get(stack, allow())
    assert st == 200
    # HAProxy writes a request's line when its stream ends, a moment after the response: wait (bounded) for it.
    log = kosstack.wait_log(stack.haproxy, "kos_status=0 ")
    assert "kos_status=1 " in log and 'kos_reason="not a stub token"' in log
    assert "stub:" not in log and kosstack.SA_TOKEN not in log


# ---- client impersonation (--allow-client-impersonation; the agent's side is tests/integration/test_impersonation.py)

@pytest.mark.parametrize("status,code,reason", [(8, 403, "Forbidden"), (9, 400, "BadRequest")])
def test_impersonation_refusals_carry_the_agents_message_as_json(stack, status, code, reason):
    stack.api_reset()
    msg = 'users "x\\y" is forbidden: User "\u00e9 <a&b>" cannot impersonate: tab\there'
    st, _, body = get(stack, {"status": status, "msg": msg}, headers=[("Impersonate-User", "x")])
    assert st == code
    assert json.loads(body) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": msg, "reason": reason, "code": code}
    assert stack.api_requests() == []


def test_allow_with_imp_forwards_the_agents_identity_only(stack):
    """imp=1: the agent authorized the client's impersonation; HAProxy still sends only what the agent set."""
    stack.api_reset()
    st, _, body = get(stack, allow(user="carol", ng=1, g0="support", imp=1),
                      headers=[("Impersonate-User", "carol"), ("Impersonate-Group", "support"),
                               ("Impersonate-Group", "system:masters"), ("Impersonate-Extra-Evil", "1")])
    assert st == 200, body
    h = last_api_request(stack)["headers"]
    assert header_values(h, "Authorization") == [SA]
    assert header_values(h, "Impersonate-User") == ["carol"]
    assert header_values(h, "Impersonate-Group") == ["support"]
    assert [k for k, _ in h if k.lower().startswith("impersonate-extra-")] == []


def test_allow_without_imp_despite_impersonation_headers_is_403(stack):
    stack.api_reset()
    st, _, body = get(stack, allow(), headers=[("Impersonate-User", "carol")])
    assert (st, json.loads(body)) == (403, IMPERSONATION)
    assert stack.api_requests() == []


def test_verdicts_alternate_on_one_connection(stack):
    """Routing is per request (the refusals live in backend kos_verdict, the API server is reached by use_backend):
    on one keep-alive connection a passthrough, a 401, an allow, an agent error and an allow missing its token
    version each get their own answer, and only the passthrough and the allow reach the API server."""
    stack.api_reset()
    conn = http.client.HTTPSConnection("127.0.0.1", stack.front_port, context=stack.ssl_context(), timeout=20)
    out = []
    try:
        for v in [{"status": 5}, {"status": 1}, allow(), {"status": 4}, {"status": 0, "user": "x", "ng": 0}]:
            conn.putrequest("GET", "/version", skip_accept_encoding=True)
            conn.putheader("Authorization", "Bearer " + stub_token(v))
            conn.endheaders()
            r = conn.getresponse()
            out.append((r.status, r.read()))
    finally:
        conn.close()
    assert [st for st, _ in out][1:] == [401, 200, 503, 503], out
    assert [header_values(r["headers"], "Impersonate-User") for r in stack.api_requests()] == [[], ["alice"]]
