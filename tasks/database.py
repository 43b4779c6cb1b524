"""The LiteLLM database: settings rows, schema, expired keys, idle connections, key rotation, models (db-01..06).

Returns ``{"restart": [...], "hold": [...]}``: the operations whose change must
restart the proxy (it reads LiteLLM_Config at start), and those whose failure
holds that restart (the schema, db-02: LiteLLM's migrations, see
docs/migrations.md). The schema is converged here, once, before the units: the
proxy itself never migrates at its start (``disable_prisma_schema_update`` in
the rendered config).

Capacity gate: before the operations, the live ``max_connections`` (read by the
db-01 plan, a read-only fact that the operation asks anyway) is compared with
``litellm_num_workers x database_connection_pool_limit + litellm_db_other_clients
+ litellm_db_reserve_connections``. pyinfra prepares every operation of every
host before it executes any, so a refusal here (pyinfra's DeployError: the arithmetic, exit 1)
leaves every host as it was. On a host never converged (litellm-dbctl not there
yet) max_connections cannot be read before the run: litellm-dbctl then checks
the same arithmetic before it writes the settings rows (db-01), before any unit
starts with the new pool.

A database that cannot be reached fails only these operations (each names
host:port/database and the cause); the host's units are still converged after
them and the run exits 1 (``litellm_runner.pyinfra_ext.database._dbctl_failed``).
"""

import sys

from pyinfra import host
from pyinfra.api.exceptions import DeployError

from litellm_runner import validate
from litellm_runner.gates import GateError, capacity
from litellm_runner.pyinfra_ext.database import (
    DBCTL_TIMEOUT,
    capacity_inputs,
    database,
    desired_state,
    plan,
    scopes,
)
from litellm_runner.pyinfra_ext.database import question as plan_question
from litellm_runner.render import venv_target

from . import python_env  # the same package under its one name (litellm_runner.tasks)

SCOPES = [  # (scope, control id, what)
    ("settings", "db-01", "LiteLLM_Config settings rows"),
    ("schema", "db-02", "LiteLLM schema as its migrations make it"),
    ("keys", "db-03", "Expired virtual keys blocked"),
    ("idle", "db-04", "Idle connections terminated (opt-in)"),
    ("rotation", "db-05", "Listed key aliases have a valid key"),
    ("models", "db-06", "No database model takes a config model's name"),
]


def account(d) -> tuple[str, str, str]:
    """dbctl runs as the service account (root's code, the account's rights: it reads the env file as its group)."""
    return d.litellm_user, d.litellm_group, d.litellm_home


def question(d) -> dict:
    """The database plan this host's run asks first, in the snapshot's command (``snapshot.asked``)."""
    return plan_question(desired_state(d), account(d), d.litellm_db_connect_timeout, venv_target(d))


def check_capacity(d, desired) -> None:
    """Raise DeployError (pyinfra exits 1) with the arithmetic when the pools cannot fit the live max_connections."""
    found = plan(d.litellm_root, "settings", desired, account(d), d.litellm_db_connect_timeout, venv_target(d))
    if found is None or found.get("max_connections") is None:
        why = (
            found["error"]
            if found and "error" in found
            else ("litellm-dbctl is not on the host yet, or an older one, or the venv cannot run it")
        )
        print(
            f"host {host.name}: capacity: max_connections cannot be read before this run ({why}): "
            "litellm-dbctl checks it before writing the settings rows",
            file=sys.stderr,
        )
        return
    c = capacity_inputs(d)
    try:
        capacity.check(c["workers"], c["pool"], found["max_connections"], c["other_clients"], c["reserve"])
    except GateError as exc:
        files = sorted(
            {
                validate.source(host.state.inventory, host)(k)
                for k in (
                    "litellm_num_workers",
                    "general_settings",
                    "litellm_db_other_clients",
                    "litellm_db_reserve_connections",
                )
            }
        )
        raise DeployError(
            f"refusing to touch any host, the desired state does not fit the database:\n  host {host.name}: "
            f"{', '.join(files)}: litellm_num_workers x general_settings.database_connection_pool_limit"
            f" + litellm_db_other_clients + litellm_db_reserve_connections vs PostgreSQL max_connections"
            f" (live, of the database DATABASE_URL names): {exc}"
        ) from None


def apply():
    d = host.data
    desired = desired_state(d)
    check_capacity(d, desired)
    ops = {}
    for scope, control, what in SCOPES:
        if scope not in scopes(desired):
            continue
        ops[scope] = database(
            name=f"{what} | {control}",
            root=d.litellm_root,
            scope=scope,
            desired=desired,
            account=account(d),
            timeout=d.litellm_db_connect_timeout,
            # a new litellm-proxy-extras in this run (a new pin): planned again after the venv, from its migrations
            replan=scope == "schema" and python_env.migrations_change(),
            venv=venv_target(d),  # the venv this run installs, beside the running one (its release's migrations)
            _timeout=DBCTL_TIMEOUT,
            _ignore_errors=True,
        )  # fails itself, not the host
    # the proxy restarts on new settings rows, and when a database model that replaced a config deployment
    # by id was moved out (LiteLLM drops it from its router only at start); held while the schema item fails
    return {"restart": [ops["settings"], ops["models"]], "hold": [ops["schema"]]}
