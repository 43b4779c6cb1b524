"""The env file operation: the host's secrets, from the operator's secret source (``litellm_runner.secrets``)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from litellm_runner.pyinfra_ext import drift, snapshot
from litellm_runner.pyinfra_ext.operations import diff_wanted, is_current, show_diff, write_commands
from litellm_runner.secrets import SecretError, env_file_content, fingerprint_diff, masked_env


@operation()
def env_file(dest: str, user: str, group: str, mode: str = "0600"):
    """Ensure DEST holds the host's secrets (from the operator's secret source), at MODE.

    + dest: path of the env file on the host
    + user, group: owner (root and the account's group: ``layout.ENV_FILE``)
    + mode: ``0600``, or ``0640`` for a file the account reads as its group and cannot write

    Compared by sha256, written atomically at MODE from creation, never shown
    as a text diff: drift (the drift report, and ``--diff``) is shown per key as fingerprints that the host snapshot
    computed on the host (no old value is ever read back), placeholders
    (``dummy``...) are written empty. Mode and owner drift is fixed by ``file_attrs``.
    """
    try:
        content, _blanked = env_file_content(host.data)
    except SecretError as exc:  # names the key and the source, never a value
        raise OperationError(f"{dest}: {exc}") from None
    current = snapshot.current().path(dest)
    if is_current(current, content):
        host.noop(f"{dest} holds the current secrets")
        return
    if not host.state.is_executing:
        before = (current or {}).get("env") or {}
        after = masked_env(content.splitlines())
        if current and current["type"] != "file":
            before = {"(path)": current["type"]}
        drift.record(
            "secret-file",
            {k: v for k, v in before.items() if after.get(k) != v},
            {k: v for k, v in after.items() if before.get(k) != v},
        )
        if diff_wanted():
            verb = "modify" if current else "create"
            lines = fingerprint_diff(before, after) or ["(the same keys and values, laid out differently)"]
            show_diff(f"Will {verb} {dest} (secrets shown as fingerprints)", lines)
    yield from write_commands(dest, content, user, group, mode)
