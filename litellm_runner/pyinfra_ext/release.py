"""Defaults that follow from the host's Debian release, read from the host (pyinfra's LinuxDistribution fact).

    packages = system_packages(list(d.litellm_system_packages), host.get_fact(LinuxDistribution))

``postgresql-client`` in ``litellm_system_packages`` (the default) means Debian's
PostgreSQL client of the host's release, the one that matches the release's
server: it is installed as ``postgresql-client-15`` on Debian 12 and
``postgresql-client-17`` on Debian 13 (read from ``/etc/os-release``). The bare
metapackage name is not installed as it is, because on a host without package
lists (a minimal or container-made host, the sandbox) apt resolves it to the
versioned client that already provides it, installs nothing, and the
metapackage never shows as installed: every run would report a change. A
release this table does not know keeps the metapackage (apt resolves it, given
package lists). Any other name, e.g. ``postgresql-client-16`` for a PGDG server,
is kept as written: the override.

The interpreter needs no table: the venv is made from the host's own
``litellm_python`` and its version picks the lock (tasks/python_env.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyinfra.facts.server import LinuxDistribution

METAPACKAGE = "postgresql-client"
# Debian's PostgreSQL per release (postgresql-common's default; fixed for a release's life)
POSTGRESQL = {12: "15", 13: "17"}

__all__ = ["LinuxDistribution", "METAPACKAGE", "POSTGRESQL", "postgresql_client", "system_packages"]


def postgresql_client(distribution: Mapping[str, Any] | None) -> str:
    """The PostgreSQL client package of the release DISTRIBUTION (LinuxDistribution's value) names."""
    meta = (distribution or {}).get("release_meta") or {}
    if meta.get("ID") != "debian":
        return METAPACKAGE
    version = POSTGRESQL.get((distribution or {}).get("major") or 0)
    return f"{METAPACKAGE}-{version}" if version else METAPACKAGE


def system_packages(packages: list[str], distribution: Mapping[str, Any] | None) -> list[str]:
    """PACKAGES with ``postgresql-client`` as the host release's versioned client (see the module's doc)."""
    client = postgresql_client(distribution)
    return [client if p == METAPACKAGE else p for p in packages]
