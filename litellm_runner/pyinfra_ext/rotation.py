"""Rotation after a compromise, the host's part: operations that run files/bin/litellm-rotate (docs/rotation.md).

The rotation's values never travel on a command line nor in the environment: ``litellm-runner rotate``
writes one JSON document into a pipe whose read end it passes to pyinfra (``INPUT_FD``); ``given()``
reads it once per run, and each operation hands the host only what the host needs, on the standard
input of litellm-rotate (pyinfra's ``_stdin``). The raw virtual keys are made here and never leave
the control machine: the host gets their sha256, as LiteLLM stores them.
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
from urllib.parse import urlsplit

from pyinfra.api import FunctionCommand, StringCommand, operation

from litellm_runner import layout, rotation
from litellm_runner.pyinfra_ext.database import new_key
from litellm_runner.pyinfra_ext.operations import failed
from litellm_runner.run import compat

INPUT_FD = "LITELLM_ROTATE_INPUT_FD"  # the number of the pipe litellm-runner rotate writes its JSON into
TIMEOUT = 300  # seconds for one litellm-rotate command (a lock wait, a large table)
_given: dict = {}  # the process's input (a pipe read once), not a run's state: it stays a module global


def given() -> dict:
    """The rotation's input (``{"phase", ...}``), read once from the pipe INPUT_FD names; {} without one."""
    if not _given and os.environ.get(INPUT_FD):
        with os.fdopen(int(os.environ[INPUT_FD]), "r") as pipe:
            _given.update(json.loads(pipe.read(1_000_000)))
    return _given


def tool(account: str, action: str, *args: str) -> str:
    """litellm-rotate ACTION as the service account (ACCOUNT: ``facts.as_account``)."""
    words = " ".join(shlex.quote(a) for a in args)
    return f"{account} {shlex.quote(layout.VENV)}/bin/python {shlex.quote(layout.BIN)}/litellm-rotate {action} {words}"


def _run(host, command: str, stdin: str | None = None):
    """COMMAND with the operation's connection arguments, STDIN on its standard input (never logged)."""
    args = compat.op_connector_arguments(host)
    args["_timeout"] = TIMEOUT
    if stdin is not None:
        args["_stdin"] = stdin
    return host.run_shell_command(StringCommand(command), **args)


def _last_line(out) -> str:
    lines = (out.stderr or out.stdout or "").strip().splitlines()
    return (lines[-1] if lines else "").removeprefix("litellm-rotate: ")


def _fail(host, what: str) -> bool:
    return failed(host, f"{host.name}: {what}")


def _rotate(state, host, selection: str, keys_dir: str, account: str, connect_timeout: int) -> bool:
    """Plan, make the new keys, write them to the operator's pending file, apply in one transaction on the
    host; publish the keys file only once the transaction committed. The new values come from ``given()``."""
    new = given()["new"]
    base = ("--env-file", layout.ENV_FILE, "--connect-timeout", str(connect_timeout))
    ok, out = _run(host, tool(account, "plan", *base))
    if not ok:
        why = _last_line(out) or "litellm-rotate plan failed"
        if "can't open file" in why:  # a host not converged by this runner yet: the converge ships the tool
            why = f"{layout.BIN}/litellm-rotate is not on the host (converge with this runner first)"
        return _fail(host, f"rotation plan: {why} (nothing changed)")
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    mapping, rows = {}, []
    for key in rotation.selected(plan["keys"], selection):
        raw, token, key_name = new_key()
        mapping[key["token"]] = {"token": token, "key_name": key_name}
        rows.append({"alias": key["key_alias"], "key_name": key_name, "raw": raw})
    pending = rotation.write_keys(rotation.keys_file(pathlib.Path(keys_dir), host.name), rows) if rows else None
    payload = {
        "salt_key": new[rotation.SALT],
        "db_password": urlsplit(new[rotation.DATABASE]).password,
        "keys": mapping,
    }
    host.log_styled(f"{host.name}: rotation: one transaction on the database (litellm-rotate apply)", fg="cyan")
    ok, out = _run(host, tool(account, "apply", *base), stdin=json.dumps(payload))
    if not ok:
        if pending:
            pending.unlink(missing_ok=True)
        return _fail(host, f"rotation: {_last_line(out) or 'litellm-rotate apply failed'}")
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    where = f"; new keys in {rotation.publish_keys(pending)}" if pending else ""
    host.log_styled(
        f"{host.name}: rotated: {counts['rotated']} stored credentials re-encrypted ({counts['already']} already "
        f"under the new salt key), {counts['keys']} virtual keys, the password of role {counts['role']}{where}",
        fg="green",
    )
    return True


def _prove(state, host, url: str, account: str) -> bool:
    keys = {name: given()[name] for name in ("old_master_key", "new_master_key")}
    ok, out = _run(host, tool(account, "verify", "--url", url, "--env-file", layout.ENV_FILE), stdin=json.dumps(keys))
    if not ok:
        return _fail(host, f"rotation proof: {_last_line(out) or 'litellm-rotate verify failed'}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    host.log_styled(
        f"{host.name}: proved through the proxy: new master key {got['new_master_key']}, old master key "
        f"{got['old_master_key']}, {got['models']} models listed, all {got['stored_models']} stored in the database",
        fg="green",
    )
    return True


@operation(is_idempotent=False)
def rotate_database(selection: str, keys_dir: str, account: str, connect_timeout: int = 5):
    """Rotate the salt key's ciphertexts, the selected virtual keys and the role's password, in one transaction.

    The new values are the staged ones, read from ``given()`` while executing: never an operation
    argument, which pyinfra's output or a log could show.

    + selection: ``all``, ``none`` or key aliases separated by commas
    + keys_dir: the control machine's folder for the new keys (``.secrets/keys``)
    + account: ``facts.as_account(...)``: litellm-rotate runs as the service account
    """
    yield FunctionCommand(_rotate, (selection, keys_dir, account, connect_timeout), {})


@operation(is_idempotent=False)
def prove_rotation(url: str, account: str):
    """Prove a rotation through the proxy at URL: the new master key (from ``given()``) gets 200 on
    /v1/models, which lists every model stored in the database (its credentials decrypted under the
    new salt key), the old one 401.

    + url: the proxy as the host reaches it, ``http://<litellm_bind>:<litellm_port>``
    + account: ``facts.as_account(...)``
    """
    yield FunctionCommand(_prove, (url, account), {})
