"""Results of the pre-flight gates, computed once per distinct input and kept across runs.

A gate result (a pip-audit report, a unit's exposure score) depends only on the
content it was computed from: the audited text, the advisory file, the tool's
version. The cache key is the sha256 of exactly those inputs, so any change of
them (a new lock, an edited advisory file, another pip-audit or systemd) is a
different key and the gate runs again; nothing is ever invalidated by time or
trusted across a change of its inputs. Inputs that cannot be named by content
(pip-audit's online service, whose advisory data changes without notice) are
not cached (``key`` returns None for them at the call site).

Stored as one JSON file per key under the operator's project, ``.litellm-runner/cache/``
(``LITELLM_GATE_CACHE`` names another folder; ``off`` disables the cache), mode 0600,
written atomically. A damaged entry is ignored and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from litellm_runner.resources import project

_memory: dict[str, Any] = {}  # this process's results: a fleet of identical hosts costs one lookup
_lock = threading.Lock()  # a gevent lock under pyinfra: hosts prepared at once wait for the one computation


def folder() -> pathlib.Path | None:
    """The cache folder, or None when ``LITELLM_GATE_CACHE=off``."""
    where = os.environ.get("LITELLM_GATE_CACHE", "")
    if where == "off":
        return None
    return pathlib.Path(where) if where else project(".litellm-runner", "cache")


def key(gate: str, *inputs: str | bytes) -> str:
    """The content key of GATE's result over INPUTS (texts, file contents, tool versions)."""
    h = hashlib.sha256(gate.encode())
    for part in inputs:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return f"{gate}-{h.hexdigest()}"


def _read(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text())["result"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(path: pathlib.Path, result: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as out:
            json.dump({"result": result}, out)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs the next run the computation


def cached(k: str | None, compute: Callable[[], Any]) -> Any:
    """COMPUTE's result for key K: from this process, else the cache folder, else computed and stored.

    K None computes every time (an input that cannot be named by content). Only
    JSON-serialisable results; an exception of COMPUTE is never cached.
    """
    if k is None:
        return compute()
    with _lock:
        if k in _memory:
            return _memory[k]
        where = folder()
        path = where / f"{k}.json" if where else None
        result = _read(path) if path and path.exists() else None
        if result is None:
            result = compute()
            if path:
                _write(path, result)
        _memory[k] = result
        return result
