"""Count the remote commands a pyinfra run sends to each host (for the benchmark and tests).

Set ``LITELLM_COMMAND_COUNT=/path/counts.json`` and the deploy counts every
shell command, file upload and file download pyinfra sends, per host, and
writes ``{host: {"commands": N, "uploads": N, "downloads": N}}`` there when the
run ends. Without the variable nothing is patched.
"""

from __future__ import annotations

import atexit
import collections
import json
import os

_counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
_installed = False  # the counter patches pyinfra's Host once per process: process-wide, not a run's state


def install() -> None:
    """Count, when LITELLM_COMMAND_COUNT names the file to write at exit (once per process)."""
    global _installed
    path = os.environ.get("LITELLM_COMMAND_COUNT")
    if not path or _installed:
        return
    _installed = True
    from litellm_runner.run import compat

    def count(host: str, kind: str) -> None:
        _counts[host][kind] += 1

    compat.count_remote_calls(count)
    atexit.register(
        lambda: open(path, "w").write(
            json.dumps({name: {k: c[k] for k in ("commands", "uploads", "downloads")} for name, c in _counts.items()})
        )
    )
