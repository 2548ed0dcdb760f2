"""Fixtures of the integration suite: one Stack (issuer, stand-in API server, agent, HAProxy) per module and
HAProxy version, started once and stopped at the end; sanitizer reports from the agent fail the module."""
import pytest

import kosstack
import kostest


@pytest.fixture(scope="module")
def make_stack(haproxy_bin):
    """Factory: make_stack(**Stack kwargs) starts a stack for this module; all are stopped at module end."""
    yield from kostest.stack_fixture(lambda **kw: kosstack.Stack(haproxy_bin, **kw))
