"""Fixtures of the integration suite: one Stack (issuer, stand-in API server, agent, HAProxy) per module and
HAProxy version, started once and stopped at the end; sanitizer reports from the agent fail the module."""
import pytest

import kosstack


@pytest.fixture(scope="module")
def make_stack(haproxy_bin):
    """Factory: make_stack(**Stack kwargs) starts a stack for this module; all are stopped at module end."""
    stacks = []

    def make(**kw):
        s = kosstack.Stack(haproxy_bin, **kw)
        stacks.append(s)
        return s.start()

    yield make
    reports = []
    for s in stacks:
        s.stop()
        for p in (s.agent, s.haproxy, s.api):
            rep = p.sanitizer_report() if p is not None else None
            if rep:
                reports.append(f"{p!r}:\n{rep}")
        if not reports:
            s.cleanup()
    if reports:
        pytest.fail("sanitizer report(s):\n" + "\n\n".join(reports))
