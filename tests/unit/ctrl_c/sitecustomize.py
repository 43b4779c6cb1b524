"""Ctrl-C at a chosen moment of the CVE gate: test_validate's Ctrl-C test puts this folder first on the
PYTHONPATH of the command it runs (``sitecustomize`` is imported at every Python start).

LITELLM_TEST_CTRL_C names a file of events; LITELLM_TEST_CTRL_C_AT the moment, once per process:

- ``start``: pip-audit has been started (exec'd) and ``subprocess.Popen`` has not returned yet;
- ``query``: pip-audit asks the gate's OSV server (its first query, in the server's handler).

There the event ``{"event": moment, "pid": this process, "audits": [pip-audit pids]}`` is recorded, then
SIGINT goes to the process group, as a terminal's Ctrl-C does; Python handles it at once, in whatever runs.
"""

import importlib.abc
import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys

EVENTS = os.environ.get("LITELLM_TEST_CTRL_C")
AT = os.environ.get("LITELLM_TEST_CTRL_C_AT")
pressed = []


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


def press(moment: str) -> None:
    """Record MOMENT, then Ctrl-C: once."""
    if not pressed:
        pressed.append(moment)
        with open(EVENTS, "a") as events:
            events.write(json.dumps({"event": moment, "pid": os.getpid(), "audits": audits()}) + "\n")
        os.killpg(0, signal.SIGINT)


def at_query(osv_server) -> None:
    """The server's handler presses Ctrl-C at the first query."""
    make_handler = osv_server._handler

    def make(vulns):
        class Handler(make_handler(vulns)):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                press("query")
                return super().do_POST()

        return Handler

    osv_server._handler = make


def at_start(cve) -> None:
    """Popen (gevent's, once pyinfra's CLI has patched subprocess) presses Ctrl-C once it has started pip-audit."""
    popen = subprocess.Popen
    execute_child = popen._execute_child

    def execute_and_press(self, args, *rest, **kwargs):
        execute_child(self, args, *rest, **kwargs)
        if "pip-audit" in str(args):
            press("start")

    popen._execute_child = execute_and_press


WRAP = {"query": ("litellm_runner.gates.osv_server", at_query), "start": ("litellm_runner.gates.cve", at_start)}


class Wrap(importlib.abc.MetaPathFinder):
    """Finds the module of the moment as usual and wraps it once it has run."""

    def find_spec(self, name, path, target=None):
        module_name, wrap = WRAP[AT]
        if name != module_name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)
            wrap(module)

        spec.loader.exec_module = exec_and_wrap
        return spec


if EVENTS and AT in WRAP:
    sys.meta_path.insert(0, Wrap())
