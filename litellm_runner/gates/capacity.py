"""Capacity check: LiteLLM's connection pools, the other clients and a reserve fit under max_connections.

LiteLLM's ``database_connection_pool_limit`` applies per worker process, so the
proxy alone may open ``num_workers x pool_limit`` connections. The incident's
4 workers x 25 need 100 and exhaust a default PostgreSQL (max_connections 100)
on their own; the shipped 4 workers x 20 (+ 5 + 10 = 95) fit it. The deploy
reads max_connections from the live database (the database plan) and refuses
before its first operation; it never changes max_connections (a restart of a
shared server drops every client).

    check(4, 25, 100, other_clients=5, reserve=10)
    # GateError: 4 workers x 25 pool = 100 + 5 other clients + 10 reserve = 115 > max_connections 100
"""

from __future__ import annotations

from litellm_runner.gates import GateError
from litellm_runner.settings import DEFAULTS

HEALTH_SERVER_CONNECTIONS = 1  # litellm-health-server: one probe at a time, shared by every request
CLIENTS = {  # connections each host tool may hold at once (each one bounds itself to this)
    "litellm-backup (pg_dump, then the restore check)": 1,
    "litellm-metrics (one scrape's queries at a time)": 1,
    "litellm-health-server": HEALTH_SERVER_CONNECTIONS,
    "litellm-dbctl": 1,
    "litellm-status": 1,
}
OTHER_CLIENTS: int = DEFAULTS["litellm_db_other_clients"]  # 5, sum(CLIENTS.values()) (test_capacity checks it)
RESERVE: int = DEFAULTS["litellm_db_reserve_connections"]  # superuser_reserved_connections (3) + psql, migrations


def needed(num_workers: int, pool_limit: int, other_clients: int = OTHER_CLIENTS, reserve: int = RESERVE) -> int:
    """Connections the host may need at once."""
    return num_workers * pool_limit + other_clients + reserve


def arithmetic(num_workers, pool_limit, max_connections, other_clients=OTHER_CLIENTS, reserve=RESERVE) -> str:
    """``4 workers x 25 pool = 100 + 5 other clients + 10 reserve = 115 <= max_connections 200``."""
    total = needed(num_workers, pool_limit, other_clients, reserve)
    op = ">" if total > max_connections else "<="
    return (
        f"{num_workers} workers x {pool_limit} pool = {num_workers * pool_limit} + {other_clients} other clients"
        f" + {reserve} reserve = {total} {op} max_connections {max_connections}"
    )


def check(
    num_workers: int, pool_limit: int, max_connections: int, other_clients: int = OTHER_CLIENTS, reserve: int = RESERVE
) -> str:
    """Return the arithmetic when it fits; raise GateError (with the arithmetic) when it does not."""
    for name, value in (
        ("num_workers", num_workers),
        ("pool_limit", pool_limit),
        ("max_connections", max_connections),
        ("other_clients", other_clients),
        ("reserve", reserve),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise GateError(f"capacity: {name} = {value!r}: expected a whole number >= 0")
    text = arithmetic(num_workers, pool_limit, max_connections, other_clients, reserve)
    if needed(num_workers, pool_limit, other_clients, reserve) > max_connections:
        fit = max(0, (max_connections - other_clients - reserve) // max(num_workers, 1))
        raise GateError(
            f"{text}: the proxy can exhaust PostgreSQL. Expected general_settings.database_connection_pool_limit "
            f"<= {fit} for {num_workers} workers, or fewer litellm_num_workers, or PostgreSQL's max_connections "
            f"raised to at least {needed(num_workers, pool_limit, other_clients, reserve)} "
            f"(a server restart, which the runner does not do)"
        )
    return text
