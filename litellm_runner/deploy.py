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

from pyinfra import host, state
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError

from litellm_runner.settings import DEFAULTS, MAPPINGS

NAME = "LiteLLM host"


@deploy(NAME, data_defaults=DEFAULTS)
def deploy_litellm() -> None:
    """Converge the current host: the service account, its folders, venv, config, env file, database rows,
    units and what the account left outside them, after the inventory-wide checks and this host's run lock."""
    from litellm_runner import metering, validate
    from litellm_runner.pyinfra_ext import snapshot
    from litellm_runner.pyinfra_ext.lock import hold_run_lock
    from litellm_runner.run import compat
    from litellm_runner.tasks import config, database, filesystem, prisma, python_env, query_engine, sweep, units, users

    # operations keep the names the drift report, the docs and the tests use (``Directory ... | fs-01``):
    # this deploy's own name is taken off their prefix (a caller's deploy name stays)
    compat.drop_deploy_name(host, NAME)
    compat.install_speedups()  # pyinfra's operation order without reading source files (the same order)
    metering.install()  # counts remote commands when LITELLM_COMMAND_COUNT is set (benchmark)
    # every host's desired state, once per run, before anything touches a host (in a pyinfra CLI run the
    # inventory's validate.before_connect already did, before connecting: then this only reads its verdict)
    if not validate.check_once(state.inventory):
        raise DeployError(validate.HEADER.rstrip(":") + " (the problems are listed above)")
    _merge_mappings(validate.host_data(state.inventory, host))
    hold_run_lock(state)  # this host's run lock, before the first fact: two converges never interleave
    # the questions every run asks first, side by side on the host (the rest is answered from the snapshot)
    snapshot.prefetch([snapshot.asked(host.data, database.question(host.data))])  # with the database plan

    users.apply()
    filesystem.apply()
    venv = [*python_env.apply(), *query_engine.apply(), *prisma.apply()]  # the engine before `prisma generate`
    files = config.apply()
    db = database.apply()
    switch = python_env.switch(db["hold"])  # the new venv takes over once the schema is its release's
    units.apply(
        {
            "litellm.service": [files["config"], files["env"], files["serve"], *venv, switch, *db["restart"]],
            "*": [files["env"], *venv, switch, *files["tools"]],
        },
        rollback={**files["rollback"], "venv": switch},
        hold=db["hold"],
    )
    python_env.prune(switch)  # after the proxy passed its readiness gate on the new venv
    sweep.apply()  # last: what the account left outside the managed units, with those units running


def _merge_mappings(data: dict) -> None:
    """This host's mapping settings (general_settings, litellm_env, ...) merged key by key across defaults, group
    and host data (settings.merge): pyinfra's own lookup takes a whole value from the highest layer."""
    for name in MAPPINGS:
        setattr(host.data, name, data[name])  # pyinfra's override data of this host, for this run
