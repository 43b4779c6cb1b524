"""Capacity: workers x pool + other clients + reserve must fit under max_connections."""

import pytest

from litellm_runner.gates import GateError
from litellm_runner.gates.capacity import check

CASES = [  # workers, pool, max_connections, other, reserve, fits
    (4, 25, 100, 5, 10, False),  # the incident's own fix against a default PostgreSQL
    (4, 25, 115, 5, 10, True),  # exactly at the limit
    (4, 25, 150, 5, 10, True),  # a raised max_connections
    (4, 20, 100, 5, 10, True),  # the shipped defaults against a default PostgreSQL
    (4, 21, 100, 5, 10, True),  # or a smaller pool
    (1, 10, 20, 5, 10, False),
]


@pytest.mark.parametrize("workers, pool, max_conn, other, reserve, fits", CASES)
def test_arithmetic(workers, pool, max_conn, other, reserve, fits):
    total = workers * pool + other + reserve
    expected = (
        f"{workers} workers x {pool} pool = {workers * pool} + {other} other clients + {reserve} reserve"
        f" = {total} {'<=' if fits else '>'} max_connections {max_conn}"
    )
    if fits:
        assert check(workers, pool, max_conn, other, reserve) == expected
    else:
        with pytest.raises(GateError) as err:
            check(workers, pool, max_conn, other, reserve)
        assert str(err.value).startswith(expected)
        fit = (max_conn - other - reserve) // workers
        assert f"database_connection_pool_limit <= {fit} for {workers} workers" in str(err.value)
        assert f"max_connections raised to at least {total}" in str(err.value)


def test_incident_message():
    with pytest.raises(
        GateError, match=r"^4 workers x 25 pool = 100 \+ 5 other clients \+ 10 reserve = 115 > max_connections 100"
    ):
        check(4, 25, 100, 5, 10)


@pytest.mark.parametrize("bad", ["100", -1, True, None])
def test_non_numbers_are_refused(bad):
    with pytest.raises(GateError, match="max_connections = .*expected a whole number"):
        check(4, 25, bad)


def test_other_clients_count_every_host_tool():
    """The shipped litellm_db_other_clients is the sum of the host tools' own bounds, the health server's
    (tests/unit/test_tools_servers.py measures it under 60 parallel /readyz) included."""
    from litellm_runner.gates.capacity import CLIENTS, HEALTH_SERVER_CONNECTIONS, OTHER_CLIENTS
    from tests.unit.group_data import defaults

    assert CLIENTS["litellm-health-server"] == HEALTH_SERVER_CONNECTIONS >= 1
    assert defaults()["litellm_db_other_clients"] == OTHER_CLIENTS == sum(CLIENTS.values())
