"""pytest glue shared by every python suite under tests/."""
import pytest

import kostest


# Parsed once: pytest keeps a module-scoped parameter's fixtures alive only while the next test's parameter is
# the very same object (an identity check), so fresh strings per test would restart every module's whole stack
# (issuer, API server, agent, HAProxy: ~4 s) before each test.
HAPROXY_BINS = kostest.haproxy_binaries()


def pytest_generate_tests(metafunc):
    # Any test asking for `haproxy_bin` runs once per HAProxy of KOS_HAPROXY_BINS (the version matrix).
    if "haproxy_bin" in metafunc.fixturenames:
        metafunc.parametrize("haproxy_bin", [cmd for _, cmd in HAPROXY_BINS],
                             ids=[label for label, _ in HAPROXY_BINS], scope="module")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    # One HAProxy at a time within a module: pytest's own reordering can interleave the versions when tests also
    # have function-level parameters, and every switch restarts the module's stack. A stable sort keeps the order
    # of modules and of tests within each version.
    order = {cmd: i for i, (_, cmd) in enumerate(HAPROXY_BINS)}
    modules = {}
    for it in items:
        modules.setdefault(it.nodeid.split("::")[0], len(modules))

    def key(it):
        cs = getattr(it, "callspec", None)
        return (modules[it.nodeid.split("::")[0]], order.get(cs.params.get("haproxy_bin"), -1) if cs else -1)

    items.sort(key=key)


@pytest.fixture
def procs():
    """Collects Proc objects and stops them at the end of the test, failing on sanitizer reports."""
    started = []
    yield started
    reports = []
    for p in reversed(started):
        p.stop()
        rep = p.sanitizer_report() if hasattr(p, "sanitizer_report") else None
        if rep:
            reports.append(f"{p!r}:\n{rep}")
    if reports:
        pytest.fail("sanitizer report(s):\n" + "\n\n".join(reports))
