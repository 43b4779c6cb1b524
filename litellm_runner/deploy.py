"""The packaged deploy: converge LiteLLM hosts from any pyinfra project.

In your project's deploy.py (see examples/)::

    from litellm_runner import deploy_litellm

    deploy_litellm()

Run it as usual (``pyinfra inventory.py deploy.py``, ``--dry`` to see drift): every
setting has its documented default (``litellm_runner.settings.DEFAULTS``, pyinfra's
``data_defaults``), and your inventory, group_data and ``--data`` override it, as pyinfra
documents for packaged deploys. The repository's own deploy.py is this call and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from pyinfra import host, state
from pyinfra.api import deploy

from litellm_runner.settings import DEFAULTS

NAME = "LiteLLM host"


@deploy(NAME, data_defaults=DEFAULTS)
def deploy_litellm() -> None:
    """Converge the current host: the service account, its folders, venv, config, env file, database rows
    and units, after the inventory-wide checks and this host's run lock."""
    from litellm_runner import metering
    from litellm_runner.gates.preflight import check_inventory
    from litellm_runner.pyinfra_ext import snapshot, speed
    from litellm_runner.pyinfra_ext.lock import hold_run_lock
    from litellm_runner.tasks import config, database, filesystem, prisma, python_env, units, users

    _keep_operation_names()
    speed.install()  # pyinfra's operation order without reading source files (the same order)
    metering.install()  # counts remote commands when LITELLM_COMMAND_COUNT is set (benchmark)
    check_inventory(_AsDeployed(state))  # every host's desired state, once per run, before anything touches a host
    hold_run_lock(state)  # this host's run lock, before the first fact: two converges never interleave
    # the questions every run asks first, side by side on the host (the rest is answered from the snapshot)
    snapshot.prefetch([snapshot.question(host.data), database.question(host.data), prisma.question(host.data)])

    users.apply()
    filesystem.apply()
    venv = [*python_env.apply(), *prisma.apply()]
    files = config.apply()
    db = database.apply()
    units.apply(
        {
            "litellm.service": [files["config"], files["env"], *venv, *db["restart"]],
            "*": [files["env"], *venv, *files["tools"]],
        },
        rollback=files["rollback"],
        hold=db["hold"],
    )


def _keep_operation_names() -> None:
    """Operations keep the names the drift report, the README and the tests use (``Directory ... | fs-01``).

    pyinfra prefixes every operation of a decorated deploy with the deploy's name; this deploy's own
    name is taken off for its body (a caller's deploy name stays). The decorator restores it on return.
    """
    name = host.current_deploy_name or ""
    host.current_deploy_name = name.removesuffix(NAME).removesuffix(" | ") or None


class _AsDeployed:
    """``state`` as ``check_inventory`` reads it: each host's data over this deploy's defaults.

    pyinfra prepares the hosts in parallel greenlets, so the first host runs the inventory-wide
    check before the others have entered this deploy, and pyinfra adds a deploy's
    ``data_defaults`` to a host's data only while that host is inside it.
    """

    def __init__(self, real: Any) -> None:
        self.inventory = self
        self._real = real.inventory

    def __iter__(self) -> Iterator[SimpleNamespace]:
        return iter([_as_deployed(h) for h in self._real])

    def __getattr__(self, name: str) -> Any:  # the inventory's own group, host and override data
        return getattr(self._real, name)


def _as_deployed(real: Any) -> SimpleNamespace:
    data = SimpleNamespace(dict=lambda: {**DEFAULTS, **real.data.dict()})
    return SimpleNamespace(name=real.name, groups=real.groups, data=data)
