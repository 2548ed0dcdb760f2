"""Every flag of kube-oidc-proxy v0.3.0 run through the agent binary: each is either accepted (same meaning) or
refused with a message naming what replaces it here, never a bare "unknown flag"; and the README's migration
table names each one (issue 21, item 3).

The list is kube-oidc-proxy v0.3.0's cobra flag set, read from its source: cmd/app/options/{app,oidc,serving,
audit,client,misc}.go, with what they embed at the versions its go.mod pins (v0.18.0): k8s.io/apiserver
SecureServingOptions and AuditOptions (plugins "log" and "webhook"), k8s.io/cli-runtime ConfigFlags minus
--as, --as-group and --cache-dir (client.go sets them nil), and component-base globalflag (klog v1.0.0 flags with
'_' as '-', --log-flush-frequency, --help) plus misc.go's --version.
"""
import os
import re
import subprocess

import pytest

import kostest
from test_agent import AGENT, run  # noqa: F401  (same binary, same environment scrubbing)

KOP_APP = ["disable-impersonation", "readiness-probe-port", "flush-interval", "token-passthrough-audiences",
           "token-passthrough", "extra-user-header-client-ip", "extra-user-headers"]
KOP_OIDC = ["oidc-issuer-url", "oidc-client-id", "oidc-ca-file", "oidc-username-claim", "oidc-username-prefix",
            "oidc-groups-claim", "oidc-groups-prefix", "oidc-signing-algs", "oidc-required-claim"]
KOP_SERVING = ["bind-address", "secure-port", "cert-dir", "tls-cert-file", "tls-private-key-file",
               "tls-cipher-suites", "tls-min-version", "tls-sni-cert-key", "http2-max-streams-per-connection"]
KOP_AUDIT = ["audit-policy-file", "audit-log-path", "audit-log-maxage", "audit-log-maxbackup", "audit-log-maxsize",
             "audit-log-format", "audit-log-version", "audit-webhook-config-file", "audit-webhook-initial-backoff",
             "audit-webhook-batch-initial-backoff", "audit-webhook-version", "audit-dynamic-configuration"] + [
    f"audit-{plugin}-{name}" for plugin in ("log", "webhook")
    for name in ("batch-buffer-size", "batch-max-size", "batch-max-wait", "batch-throttle-burst",
                 "batch-throttle-enable", "batch-throttle-qps", "mode", "truncate-enabled",
                 "truncate-max-batch-size", "truncate-max-event-size")]
KOP_CLIENT = ["kubeconfig", "client-certificate", "client-key", "token", "username", "password", "cluster", "user",
              "namespace", "context", "server", "tls-server-name", "insecure-skip-tls-verify",
              "certificate-authority", "request-timeout"]
KOP_MISC = ["log-dir", "log-file", "log-file-max-size", "logtostderr", "alsologtostderr", "v", "add-dir-header",
            "skip-headers", "skip-log-headers", "stderrthreshold", "vmodule", "log-backtrace-at",
            "log-flush-frequency", "help", "version"]
KOP_FLAGS = KOP_APP + KOP_OIDC + KOP_SERVING + KOP_AUDIT + KOP_CLIENT + KOP_MISC
KOP_SHORTHANDS = {"P": "readiness-probe-port", "n": "namespace", "s": "server", "h": "help", "v": "v"}

# Accepted with the same meaning, and a value each takes (None: a boolean, given bare).
ACCEPTED = {"disable-impersonation": None, "readiness-probe-port": "8081", "token-passthrough-audiences": "aud",
            "token-passthrough": None, "extra-user-header-client-ip": None, "extra-user-headers": "k=v",
            "oidc-issuer-url": "https://other.example", "oidc-client-id": "other", "oidc-ca-file": "@CA",
            "oidc-username-claim": "email", "oidc-username-prefix": "p:", "oidc-groups-claim": "groups",
            "oidc-groups-prefix": "g:", "oidc-signing-algs": "RS256,ES256", "oidc-required-claim": "a=b",
            "help": None, "version": None}

BASE = ["--oidc-issuer-url=https://issuer.example", "--oidc-client-id=kos", "--check-config"]


def test_list_is_complete_and_unique():
    assert len(KOP_FLAGS) == len(set(KOP_FLAGS)) == 87
    assert set(ACCEPTED) <= set(KOP_FLAGS)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("kopflags")
    sa = d / "token"
    sa.write_text("sa-token\n")
    ca = d / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(d / "ca.key"), "-out", str(ca), "-days", "1", "-subj", "/CN=kop-flags"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"sa": str(sa), "ca": str(ca)}


@pytest.mark.parametrize("flag", KOP_FLAGS)
def test_every_kube_oidc_proxy_flag_is_answered(flag, files):
    env = {"KOS_SERVICE_ACCOUNT_TOKEN_FILE": files["sa"], "KOS_APISERVER_CA_FILE": files["ca"]}
    if flag in ACCEPTED:
        v = ACCEPTED[flag]
        arg = f"--{flag}" if v is None else f"--{flag}={v.replace('@CA', files['ca'])}"
        p = run(BASE + [arg], env=env)
        assert "unknown flag" not in p.stderr and "no meaning here" not in p.stderr, p.stderr
        assert p.returncode == 0, (arg, p.stderr)
        if flag not in ("help", "version"):
            # the printed configuration shows the flag in force
            assert re.search(rf"^{re.escape(flag)}: ", p.stdout, re.M), p.stdout
        return
    p = run(BASE + [f"--{flag}=x"], env=env)
    assert p.returncode == 2, p.stdout
    line = p.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "unknown flag" not in line
    m = re.fullmatch(rf"kube-oidc-spoa: --{re.escape(flag)} is a kube-oidc-proxy flag with no meaning here: (.+)", line)
    assert m, line
    # the replacement names something concrete: a flag of ours, a KOS_* variable of conf/, or HAProxy's logs
    assert re.search(r"--[a-z]|KOS_[A-Z]|HAProxy|JSON lines|nothing to set", m.group(1)), line


@pytest.mark.parametrize("short", sorted(KOP_SHORTHANDS))
def test_kube_oidc_proxy_shorthands_are_named(short):
    p = run([f"-{short}", "x"])
    if short == "h":  # the agent takes -h as --help itself
        assert p.returncode == 0 and p.stdout.startswith("Usage:")
        return
    assert p.returncode == 2
    assert f"shorthand for --{KOP_SHORTHANDS[short]}" in p.stderr, p.stderr


def test_readme_migration_table_names_every_flag():
    readme = open(os.path.join(kostest.ROOT, "README.md")).read()
    table = readme.split("## Migrating from kube-oidc-proxy", 1)[1].split("\n## ", 1)[0]
    missing = [f for f in KOP_FLAGS if f"`--{f}`" not in table]
    assert not missing, missing


def test_disable_impersonation_refuses_extras(files):
    env = {"KOS_SERVICE_ACCOUNT_TOKEN_FILE": files["sa"]}
    for extra in ("--extra-user-header-client-ip", "--extra-user-headers=k=v", "--credential-id-extra"):
        p = run(BASE + ["--disable-impersonation", extra], env=env)
        assert p.returncode == 2 and "cannot carry extras" in p.stderr, (extra, p.stderr)
    p = run(BASE + ["--disable-impersonation"], env=env)
    assert p.returncode == 0 and "disable-impersonation: true\n" in p.stdout
