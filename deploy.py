"""Converge a LiteLLM host to the desired state in group_data/.

    pyinfra inventory.py deploy.py          # converge
    pyinfra inventory.py deploy.py --dry    # show drift, change nothing

This file only composes tasks/; each task is one concern.
"""

from pyinfra import state

from litellm_runner import metering
from litellm_runner.gates.preflight import check_inventory
from litellm_runner.pyinfra_ext.lock import hold_run_lock
from litellm_runner.tasks import config, database, filesystem, python_env, units, users

metering.install()  # counts remote commands when LITELLM_COMMAND_COUNT is set (benchmark)
check_inventory(state)  # every host's desired state, before anything touches a host
hold_run_lock(state)  # this host's run lock, before the first fact: two converges never interleave

users.apply()
filesystem.apply()
venv = python_env.apply()
files = config.apply()
db = database.apply()
units.apply(
    {
        "litellm.service": [files["config"], files["env"], *venv, *db],
        "*": [files["env"], *venv, *files["tools"]],
    },
    rollback=files["rollback"],
)
