"""One sandbox host for the whole integration session, in the incident state,
converged once; removed at the end."""

import pytest

from litellm_runner import sandbox
from tests.support.hosts import Host, pyinfra

NAME, PORT = "litellm-sandbox-it", 2290


@pytest.fixture(scope="session")
def host():
    sandbox.down(NAME)  # a leftover of an interrupted run
    sandbox.up(NAME, PORT)
    try:
        yield Host(NAME, PORT)
    finally:
        sandbox.down(NAME)


@pytest.fixture(scope="session")
def dry_before(host):
    """A dry run on the untouched incident host."""
    return pyinfra([host.name], "--dry")


@pytest.fixture(scope="session")
def converged(host, dry_before):
    """The first converge, then the second; both runs returned."""
    first = pyinfra([host.name], "-y")
    assert first.returncode == 0, first.stderr[-3000:]
    second = pyinfra([host.name], "-y")
    assert second.returncode == 0, second.stderr[-3000:]
    return first, second


@pytest.fixture
def converge(host):
    def run():
        result = pyinfra([host.name], "-y")
        assert result.returncode == 0, result.stderr[-3000:]
        return result
    return run
