"""The LiteLLM database: settings rows, schema, expired keys, idle connections, key rotation (db-01..05).

Returns the operations whose change must restart the proxy (it reads
LiteLLM_Config at start).
"""

from pyinfra import host

from litellm_runner.database import database, desired_state

SCOPES = [  # (scope, control id, what)
    ("settings", "db-01", "LiteLLM_Config settings rows"),
    ("schema", "db-02", "LiteLLM tables present"),
    ("keys", "db-03", "Expired virtual keys blocked"),
    ("idle", "db-04", "Idle connections terminated (opt-in)"),
    ("rotation", "db-05", "Listed key aliases have a valid key"),
]


def apply():
    d = host.data
    desired = desired_state(d)
    ops = {}
    for scope, control, what in SCOPES:
        if scope == "idle" and not desired["terminate_idle"]:
            continue
        if scope == "rotation" and not desired["rotations"]:
            continue
        ops[scope] = database(name=f"{what} | {control}", root=d.litellm_root, scope=scope,
                              desired=desired, timeout=d.litellm_db_connect_timeout)
    return [ops["settings"]]
