"""Ctrl-C at the moment pip-audit asks the gate's OSV server: test_validate's Ctrl-C test puts this folder first
on the PYTHONPATH of the command it runs (``sitecustomize`` is imported at every Python start).

When litellm_runner.gates.osv_server is imported, its handler is wrapped: at the first query it records
``{"event": "query", "pid", "audits"}`` (this process, the pip-audit processes it started) in the file named by
LITELLM_TEST_CTRL_C, then sends SIGINT to its process group, as a terminal's Ctrl-C does. Python runs the
handler of that SIGINT at once, in whatever answers the query.
"""

import importlib.abc
import importlib.util
import json
import os
import pathlib
import signal
import sys

EVENTS = os.environ.get("LITELLM_TEST_CTRL_C")
MODULE = "litellm_runner.gates.osv_server"


def audits() -> list[int]:
    """The pids of this process's children that run pip-audit."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == os.getpid() and b"pip-audit" in command:
            found.append(int(stat.parent.name))
    return found


def interrupting(make_handler):
    """osv_server._handler, whose handler presses Ctrl-C at the first query."""
    pressed = []

    def make(vulns):
        class Handler(make_handler(vulns)):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                if not pressed:
                    pressed.append(True)
                    with open(EVENTS, "a") as events:
                        events.write(json.dumps({"event": "query", "pid": os.getpid(), "audits": audits()}) + "\n")
                    os.killpg(0, signal.SIGINT)
                return super().do_POST()

        return Handler

    return make


class Wrap(importlib.abc.MetaPathFinder):
    """Finds MODULE as usual and wraps its handler once it has run."""

    def find_spec(self, name, path, target=None):
        if name != MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)
            module._handler = interrupting(module._handler)

        spec.loader.exec_module = exec_and_wrap
        return spec


if EVENTS:
    sys.meta_path.insert(0, Wrap())
