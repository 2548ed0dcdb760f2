"""Fixtures of the security suite: stacks (issuer, stand-in API server, agent, HAProxy) per module, run against
the first HAProxy of KOS_HAPROXY_BINS only (the verdicts are the agent's and conf/'s; the per-version matrix is
the integration suite's job, and this suite must stay short). Sanitizer reports fail the module.

`figures` collects numbers the tests measured; they are written to build/security-figures.json at the end of
the session for scripts/security-table.py (which renders the table in SECURITY.md)."""
import json
import os

import pytest

import kostest
import secstack


@pytest.fixture(scope="module")
def sec_haproxy():
    return kostest.haproxy_binaries()[0][1]


@pytest.fixture(scope="module")
def make_sec_stack(sec_haproxy):
    yield from kostest.stack_fixture(lambda **kw: secstack.SecStack(sec_haproxy, **kw))


_FIGURES = {}


@pytest.fixture(scope="session")
def figures():
    yield _FIGURES
    if not _FIGURES:
        return
    path = os.path.join(kostest.ROOT, "build", "security-figures.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    old = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = {}
    old.update(_FIGURES)
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(old, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
