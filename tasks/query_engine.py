"""The query engine the runner ships, on hosts that opt in with ``litellm_query_engine`` (py-03).

For hosts that cannot download Prisma's native engines (docs/query-engine.md): Debian's
``nodejs`` package, and the engine assembled on the control machine from its lock
(``litellm_runner.query_engine``), unpacked root-owned and read-only for the service account in
``/usr/local/lib/litellm-query-engine/<version>/``. The proxy's unit names it
(``PRISMA_QUERY_ENGINE_BINARY``...: ``render.engine_environment``), and ``prisma generate``
(tasks/prisma.py) runs with the same variables, so nothing is downloaded on the host.

How it is shipped: ``engine_installed`` (litellm_runner/pyinfra_ext/operations.py). The MANIFEST
(its sha256, owner and mode) is what a later run compares: a host whose engine is missing,
damaged or of another version gets it again.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api.exceptions import DeployError

from litellm_runner import query_engine
from litellm_runner.pyinfra_ext.operations import (
    ENGINE_INSTALL_TIMEOUT,
    ENGINE_UPLOAD_TIMEOUT,
    engine_installed,
    system_packages,
)


def manifest_sha256() -> str:
    """sha256 of the assembled engine's MANIFEST; DeployError (before any host changes) when it cannot be built."""
    try:
        return query_engine.manifest_sha256()
    except query_engine.AssemblyError as exc:
        raise DeployError(f"refusing to touch any host: {exc}") from None


def apply():
    """Debian's nodejs and the engine, when ``litellm_query_engine`` is on. Returns the operations whose
    change restarts the proxy."""
    d = host.data
    if not d.litellm_query_engine:
        return []
    system_packages(
        name="System packages for the query engine | py-03", packages=query_engine.DEBIAN_PACKAGES, _timeout=900
    )
    dest = query_engine.install_dir()
    return [
        engine_installed(
            name=f"Query engine in {dest}, root's and read-only | py-03",
            dest=dest,
            manifest_sha256=manifest_sha256(),
            _timeout=ENGINE_UPLOAD_TIMEOUT + ENGINE_INSTALL_TIMEOUT,
        )
    ]
