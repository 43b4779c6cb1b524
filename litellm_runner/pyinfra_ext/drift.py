"""What a dry run found, item by item, for the drift report.

Operations call ``record()`` while pyinfra detects changes (never while it
executes). The records are the run's (``litellm_runner.run.state.Run.drift``); ``records(state)``
reads them, and the drift check's dry run writes each host's on its one channel as soon as the
host's change detection is done (``litellm_runner.cli.dryrun``).
Nothing recorded may hold a secret: callers pass fingerprints for those. Whatever the host
said (a file name, a database value, a line of a diff) may still hold one written there by hand,
or a control character: every record is passed through ``litellm_runner.shown.safe`` with the
host's known secret values (``known_secrets``) before it is kept.
"""

from __future__ import annotations

import difflib

from pyinfra import host

from litellm_runner import secrets, shown
from litellm_runner.run import state as run_state


def record(kind: str, before, after, diff: list[str] | None = None) -> None:
    """Note one drifted item of the current operation on the current host."""
    if host.state.is_executing:
        return
    item = {"id": _op_name(), "kind": kind, "before": before, "after": after}
    if diff:
        item["diff"] = diff
    run_state.of(host.state).drift.setdefault(host.name, []).append(shown.safe(item, known_secrets()))


def known_secrets() -> list[str]:
    """The current host's secret values (``secrets.known``), read once per host and run."""
    known = run_state.of(host.state).known_secrets
    if host.name not in known:
        known[host.name] = secrets.known(host.data)
    return known[host.name]


def _op_name() -> str:
    op_hash = host.current_op_hash
    meta = host.state.op_meta.get(op_hash) if op_hash else None
    return sorted(meta.names)[0] if meta and meta.names else "unknown operation"


def records(state) -> dict[str, list[dict]]:
    """Everything STATE's run recorded so far, by host name."""
    return run_state.of(state).drift


def unified(before: str | None, after: str, path: str) -> list[str]:
    """A unified diff of a non-secret text file."""
    return list(
        difflib.unified_diff(
            (before or "").splitlines(), after.splitlines(), f"{path} (host)", f"{path} (desired)", lineterm=""
        )
    )
