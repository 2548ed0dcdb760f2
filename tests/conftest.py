"""pytest glue shared by every python suite under tests/."""
import pytest

import kostest


def pytest_generate_tests(metafunc):
    # Any test asking for `haproxy_bin` runs once per HAProxy of KOS_HAPROXY_BINS (the version matrix).
    if "haproxy_bin" in metafunc.fixturenames:
        bins = kostest.haproxy_binaries()
        metafunc.parametrize("haproxy_bin", [cmd for _, cmd in bins], ids=[label for label, _ in bins],
                             scope="module")


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
