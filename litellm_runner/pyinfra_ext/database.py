"""The LiteLLM database as desired state: a fact that plans, an operation that applies.

Both run files/bin/litellm_dbctl.py on the host (see its docstring for why on the
host), as the service account: the plan of every scope in the host snapshot's own
command (``hostside.Planning``: a child of root's that drops to the account, ``question``),
the operation yields ``litellm-dbctl apply`` for a scope only when the plan has items. A database that cannot be reached
fails only the database operations of that host, with dbctl's one-line error
(host:port/database and the cause, no password); its other items go on.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import pathlib
import secrets
import shlex
from typing import TypeGuard

from pyinfra import host
from pyinfra.api import FactBase, FunctionCommand, operation

from litellm_runner import layout, shown
from litellm_runner.pyinfra_ext import drift, snapshot
from litellm_runner.pyinfra_ext.facts import as_account, hostside
from litellm_runner.pyinfra_ext.operations import diff_wanted, failed, run_command, show_diff
from litellm_runner.resources import host_tools, project
from litellm_runner.run import compat
from litellm_runner.run import state as run_state
from litellm_runner.settings import DEFAULTS

DBCTL_TIMEOUT = 120  # seconds for one dbctl plan or apply command (pyinfra _timeout)
PLAN_LIMIT = DBCTL_TIMEOUT - 20  # seconds dbctl plan may run before it is stopped (its item fails alone)
DEFAULT_POOL_LIMIT = 10  # LiteLLM's database_connection_pool_limit when general_settings does not set it
Account = tuple[str, str, str]  # the service account the plan and apply run as: user, group, home (as_account)
# what the plan imports, shipped to <root>/bin (the script, and its code as modules: root compiles the modules);
# root checks their sha256 before the plan's child imports them
PLAN_MODULES = (
    "litellm-dbctl",
    "litellm_dbctl.py",
    "litellm_envfile.py",
    "litellm_migrations.py",
    "litellm_pq.py",
    "litellm_tools.py",
)


def desired_state(data) -> dict:
    """What dbctl converges, from host data (no secrets)."""
    return {
        "settings": {"general_settings": dict(data.general_settings), "litellm_settings": dict(data.litellm_settings)},
        "block_expired": bool(data.litellm_db_block_expired_keys),
        "terminate_idle": bool(data.litellm_db_terminate_idle),
        "idle_minutes": int(data.litellm_db_idle_minutes),
        "rotations": [
            {"min_days_left": 14, "valid_days": 90, "grace_hours": 24, **r} for r in data.litellm_key_rotation
        ],
        # db-06: database models may not take these names (or explicit ids): the config's models win
        "config_models": [
            {"model_name": m["model_name"], "id": (m.get("model_info") or {}).get("id")}
            for m in data.litellm_model_list
        ],
        # dbctl refuses to apply settings that do not fit max_connections (the
        # backstop for a host never converged, whose max_connections the deploy
        # could not read before its first operation)
        "capacity": capacity_inputs(data),
        # a new release's migration the running release may not read through: applied (True) or refused
        "maintenance_window": bool(data.litellm_migrations_maintenance_window),
        # seconds dbctl gives the verified backup before migrations (the schema's apply: that and DBCTL_TIMEOUT)
        "backup_timeout": int(data.litellm_migrations_backup_timeout),
    }


def capacity_inputs(data) -> dict:
    """The numbers of the capacity check, from host data (capacity.py)."""
    return {
        "workers": int(data.litellm_num_workers),
        "pool": int(dict(data.general_settings).get("database_connection_pool_limit", DEFAULT_POOL_LIMIT)),
        "other_clients": int(getattr(data, "litellm_db_other_clients", DEFAULTS["litellm_db_other_clients"])),
        "reserve": int(getattr(data, "litellm_db_reserve_connections", DEFAULTS["litellm_db_reserve_connections"])),
    }


def encode(desired: dict) -> str:
    return base64.b64encode(json.dumps(desired, sort_keys=True).encode()).decode()


def dbctl(
    root: str, action: str, scope: str, desired: dict, account: Account, timeout: int = 5, venv: str = layout.VENV
) -> str:
    """litellm-dbctl ACTION for SCOPE, run as the service account (ACCOUNT: user, group, home) with VENV's
    interpreter (apply: the venv this run installs, whose migrations are the release's); ROOT (``litellm_root``)
    is where a backup set made before migrations goes (docs/migrations.md, Upgrades)."""
    return (
        f"{as_account(*account)} {shlex.quote(venv)}/bin/python {shlex.quote(layout.BIN)}/litellm-dbctl {action} "
        f"--scope {scope} --env-file {shlex.quote(layout.ENV_FILE)} --connect-timeout {int(timeout)} "
        f"--backup-root {shlex.quote(root)} --desired-b64 {encode(desired)}"
    )


class HostPlan(FactBase):
    """The database plan alone, in one command (``hostside.Planning``): what the snapshot's command answers
    beside the rest when the deploy asks it (``snapshot.asked``), asked again while executing where it could
    not be read while preparing.

    Returns ``{"scopes": {scope: [{"id", "kind", "before", "after"}]}, "max_connections": N}``;
    ``None`` when the shipped litellm-dbctl cannot run on the host yet (a host never converged, one whose plan
    modules differ from this runner's, or one without a venv): the deploy ships dbctl and repairs the venv
    before the database is converged, and plans again then; ``{"error": line, "code": N}`` when the plan ran
    and failed (its one line names host:port/database and the cause, never the password; code 3: the database
    is unreachable or failed). The fact itself never fails, so the host's other items are still checked. The
    plan runs as the service account, never as root: root reads only its bounded JSON.
    """

    def command(self, plan):
        return hostside("plan", plan)

    def process(self, output):
        return json.loads("\n".join(output))


UNREACHABLE = 3  # litellm-dbctl's exit code: database unreachable or failed


def scopes(desired: dict) -> list[str]:
    """The scopes this desired state converges: idle and rotation only when asked for."""
    return [
        s
        for s in ("settings", "schema", "keys", "idle", "rotation", "models")
        if (s != "idle" or desired["terminate_idle"]) and (s != "rotation" or desired["rotations"])
    ]


def question(desired: dict, account: Account, timeout: int = 5, venv: str = layout.VENV) -> dict:
    """The plan's question (``hostside.Planning``'s arguments) for DESIRED, run as ACCOUNT: the venvs tried in
    order (VENV, this run's, built beside the running one, once it is there; else the running one), the plan
    modules' sha256 as this runner ships them, and ``key``, which names this question in the answer."""
    user, group, home = account
    args = {
        "user": user,
        "group": group,
        "home": home,
        "scopes": scopes(desired),
        "desired_b64": encode(desired),
        "timeout": int(timeout),
        "env_file": layout.ENV_FILE,
        "venvs": list(dict.fromkeys([venv or layout.VENV, layout.VENV])),
        "bin": layout.BIN,
        "modules": {
            f"{layout.BIN}/{name}": hashlib.sha256(host_tools()[name].read_bytes()).hexdigest() for name in PLAN_MODULES
        },
        "limit": PLAN_LIMIT,
    }
    return {**args, "key": hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:32]}


def plan(
    root: str, scope: str, desired: dict, account: Account, timeout: int = 5, venv: str = layout.VENV
) -> dict | None:
    """``{"items": [...], "max_connections": N}`` of SCOPE; None before dbctl can run on the host;
    ``{"error": line, "code": N}`` when it ran and failed (see HostPlan).

    Every scope is planned at once, by the host snapshot's command (``snapshot.asked`` with this question: one
    command per host and run); the answer is kept for the run, except on a host where it could not be read:
    there it is read again while executing (``HostPlan``), after the deploy has shipped dbctl, repaired the
    venv and written the env file (a rotation needs the real plan to make its key).
    """
    plans = run_state.of(host.state).plans  # this run's, by host and question
    asked = question(desired, account, timeout, venv)
    key = (host.name, asked["key"])
    if key not in plans:
        snap = snapshot.current()
        plans[key] = (
            snap.plan if snap.plan_key == asked["key"] else host.get_fact(HostPlan, plan=asked, _timeout=DBCTL_TIMEOUT)
        )
    elif plans[key] is None or "error" in plans[key]:
        plans[key] = host.get_fact(HostPlan, plan=asked, _timeout=DBCTL_TIMEOUT)
    found = plans[key]
    if found is None or "error" in found:
        return found
    return {"items": found["scopes"][scope], "max_connections": found["max_connections"]}


def new_key() -> tuple[str, str, str]:
    """A new virtual key: (raw ``sk-...``, sha256 hex as LiteLLM stores it, ``sk-...abcd``)."""
    raw = "sk-" + secrets.token_urlsafe(32)
    return raw, hashlib.sha256(raw.encode()).hexdigest(), f"sk-...{raw[-4:]}"


def deliver_key(host_name: str, alias: str, raw: str, base: pathlib.Path | None = None) -> pathlib.Path:
    """Write RAW once to a 0600 file on the control machine (folder 0700); its path."""
    folder = (base or project(".secrets", "keys")) / host_name
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in alias)
    path = folder / f"{safe}-{stamp}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(raw + "\n")
    return path


def _dbctl_failed(state, host, what: str) -> bool:
    """Fail this database item only: logged in red, the host counted failed (pyinfra exits 1), its other
    operations still run (the database operations are called with ``_ignore_errors``)."""
    failed(host, f"{host.name}: {shown.escape(what)}")
    compat.mark_host_failed(state, host)  # not fail_hosts(): that would stop the host's remaining operations
    return False


def _dbctl_apply(state, host, command: str, scope: str, timeout: int = DBCTL_TIMEOUT) -> bool:
    """Run dbctl apply for SCOPE within TIMEOUT seconds; a failure fails this item only (``_dbctl_failed``)
    with dbctl's one line."""
    ok, out = run_command(host, command, timeout)
    if ok:
        return True
    line = ((out.stderr or out.stdout).strip().splitlines() or [""])[-1].removeprefix("litellm-dbctl: ")
    return _dbctl_failed(state, host, f"database {scope}: {line or 'litellm-dbctl apply failed'}")


def _apply(root: str, scope: str, desired: dict, account: Account, timeout: int, venv: str) -> FunctionCommand:
    """dbctl apply of SCOPE as a command of this item; the schema's may first wait for a verified backup
    (``backup_timeout``), so its command may take that long beside DBCTL_TIMEOUT."""
    limit = DBCTL_TIMEOUT + (int(desired.get("backup_timeout", 0)) if scope == "schema" else 0)
    command = dbctl(root, "apply", scope, desired, account, timeout, venv)
    return FunctionCommand(_dbctl_apply, (command, scope, limit), {})


def _unreachable(found: dict | None) -> TypeGuard[dict]:
    return found is not None and found.get("code") == UNREACHABLE


@operation()
def database(
    root: str,
    scope: str,
    desired: dict,
    account: Account,
    timeout: int = 5,
    replan: bool = False,
    venv: str = layout.VENV,
):
    """Ensure one SCOPE of the LiteLLM database matches DESIRED (see litellm-dbctl).

    + root: deployment root (the account's state; dbctl and the env file are root's: ``layout``)
    + scope: settings | schema | keys | idle | rotation | models
    + desired: ``desired_state(host.data)``
    + account: (user, group, home) of the service account, which the plan and dbctl apply run as
    + timeout: connect timeout in seconds (pass ``_timeout`` for the whole command)
    + replan: the plan read while preparing is stale (the schema's: this run installs another
      litellm-proxy-extras, whose migrations it comes from): dbctl apply runs, and plans again from the
      new release's migrations
    + venv: the venv whose interpreter runs ``dbctl apply``: the one this run installs (``render.venv_target``),
      built beside the running one, so a new release's migrations are applied before the switch

    Call it with ``_ignore_errors=True``: a database that cannot be reached
    fails only this item (its message names host:port/database and the cause),
    the run exits 1, the host's other operations still run. A plan that could
    not be read while preparing (dbctl not shipped yet, venv or env file being
    repaired) is read again while executing. For ``rotation`` the raw key is
    made here, on the control machine, only while executing; it is written
    once to .secrets/keys/<host>/ (0600) and only its sha256 goes to the host.
    """
    found = plan(root, scope, desired, account, timeout, venv)
    if replan and not _unreachable(found):
        drift.record("database", f"{scope}: planned from the release the venv had", "planned again after the venv")
        yield _apply(root, scope, desired, account, timeout, venv)
        return
    if _unreachable(found):
        drift.record("error", f"database {scope}: {found['error']}", "reachable")
        yield FunctionCommand(_dbctl_failed, (f"database {scope}: {found['error']}",), {})
        return
    if found is None or "error" in found:
        why = "litellm-dbctl cannot run yet" + (f" ({found['error']})" if found else "")
        drift.record("database", why, f"{scope} converged")
        yield _apply(root, scope, desired, account, timeout, venv)
        return
    items = found["items"]
    if not items:
        host.noop(f"database {scope}: nothing differs")
        return
    for item in items:
        drift.record("database", {item["id"]: item["before"]}, {item["id"]: item["after"]})
    if diff_wanted():
        show_diff(
            f"Will change database {scope}",
            [f"~ {i['id']}: {json.dumps(i['before'])} -> {json.dumps(i['after'])}" for i in items],
        )
    if scope == "rotation" and host.state.is_executing:
        rotating = {i["id"].removeprefix("rotate ") for i in items}
        rotations = []
        for entry in desired["rotations"]:
            if entry["alias"] in rotating:
                raw, token, key_name = new_key()
                deliver_key(host.name, entry["alias"], raw)
                entry = {**entry, "new_token": token, "new_key_name": key_name}
            rotations.append(entry)
        desired = {**desired, "rotations": rotations}
    yield _apply(root, scope, desired, account, timeout, venv)
