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
_installed = False


def install() -> None:
    global _installed
    path = os.environ.get("LITELLM_COMMAND_COUNT")
    if not path or _installed:
        return
    _installed = True
    from pyinfra.api.host import Host

    def counting(method, kind):
        def wrapper(self, *args, **kwargs):
            _counts[self.name][kind] += 1
            return method(self, *args, **kwargs)

        return wrapper

    for method, kind in (("run_shell_command", "commands"), ("put_file", "uploads"), ("get_file", "downloads")):
        setattr(Host, method, counting(getattr(Host, method), kind))
    atexit.register(
        lambda: open(path, "w").write(
            json.dumps({name: {k: c[k] for k in ("commands", "uploads", "downloads")} for name, c in _counts.items()})
        )
    )
