"""What a dry run found, item by item, for the drift report.

Operations call ``record()`` while pyinfra detects changes (never while it
executes). ``python -m litellm_runner.cli.check`` asks for the records by setting
``LITELLM_DRIFT_RECORD`` to a file; at exit they are written there as JSON.
Nothing recorded may hold a secret: callers pass fingerprints for those. Whatever the host
said (a file name, a database value, a line of a diff) may still hold one written there by hand,
or a control character: every record is passed through ``litellm_runner.shown.safe`` with the
host's known secret values (``known_secrets``) before it is kept.
"""

from __future__ import annotations

import atexit
import difflib
import json
import os

from pyinfra import host

from litellm_runner import secrets, shown

_RECORDS: dict[str, list[dict]] = {}


def record(kind: str, before, after, diff: list[str] | None = None) -> None:
    """Note one drifted item of the current operation on the current host."""
    if host.state.is_executing:
        return
    item = {"id": _op_name(), "kind": kind, "before": before, "after": after}
    if diff:
        item["diff"] = diff
    _RECORDS.setdefault(host.name, []).append(shown.safe(item, known_secrets()))


_KNOWN: dict = {}


def known_secrets() -> list[str]:
    """The current host's secret values (``secrets.known``), read once per host and run."""
    key = (id(host.state), host.name)
    if key not in _KNOWN or _KNOWN[key][0] is not host.state:
        _KNOWN[key] = (host.state, secrets.known(host.data))
    return _KNOWN[key][1]


def _op_name() -> str:
    op_hash = host.current_op_hash
    meta = host.state.op_meta.get(op_hash) if op_hash else None
    return sorted(meta.names)[0] if meta and meta.names else "unknown operation"


def records() -> dict[str, list[dict]]:
    """Everything recorded so far, by host name."""
    return _RECORDS


def unified(before: str | None, after: str, path: str) -> list[str]:
    """A unified diff of a non-secret text file."""
    return list(
        difflib.unified_diff(
            (before or "").splitlines(), after.splitlines(), f"{path} (host)", f"{path} (desired)", lineterm=""
        )
    )


def _write() -> None:
    path = os.environ.get("LITELLM_DRIFT_RECORD")
    if path:
        with open(path, "w") as handle:
            json.dump(_RECORDS, handle)


atexit.register(_write)
