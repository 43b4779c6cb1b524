"""The desired state of every host, checked on the control machine before any host is contacted.

    litellm-runner validate [--project DIR]      # the command (litellm_runner.cli.validate)
    before_connect()                             # in an inventory.py: the same checks in every pyinfra run

What is checked (docs/validate.md): every group_data file (a Python error is shown as file, line and
message; a file matching no inventory group is reported), the inventory (hosts file or sandbox), and
for every host its merged data (``layers`` below, ``settings.merge``): the settings spec, models and
MCP servers, cross-references, the secret source, the config lint and the CVE gate on the pins.
Every problem of every host is collected before anything is refused; each names the file (and line
where there is one), the key, the value (masked only if secret) and the expected form.

A pyinfra run validates in ``before_connect``'s hook, after pyinfra has loaded the inventory and
group_data and before it connects to any host: one unreachable host cannot hide a typo, and fails
alone afterwards. The packaged deploy (litellm_runner.deploy) runs ``check_once`` too, for projects
whose inventory does not call ``before_connect`` (the pyinfra API, another inventory).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import os
import pathlib
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import yaml

from litellm_runner import exitcodes
from litellm_runner.resources import project
from litellm_runner.run import state as run_state
from litellm_runner.settings import DEFAULTS, merge

HEADER = "refusing to touch any host, the desired state is invalid:"
DEFAULTS_SOURCE = "the default (litellm_runner/settings.py)"

_lock = threading.Lock()  # a gevent lock under pyinfra: the hosts' greenlets wait for the first one's check


# --- group_data files --------------------------------------------------------------------------


def group_data_problems(folder: pathlib.Path | None = None) -> list[str]:
    """Each group_data/*.py that cannot be loaded: ``FILE:LINE: what`` (syntax or any error it raises).

    The file is compiled, then run in a namespace of its own, as pyinfra will run it; a group_data
    file is plain assignments, so running it twice has no effect.
    """
    folder = folder or project("group_data")
    found = []
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        try:
            code = compile(path.read_bytes(), str(path), "exec")
        except SyntaxError as exc:
            found.append(
                f"group_data/{path.name}:{exc.lineno}: {exc.msg}: expected valid Python (group_data is Python "
                "assignments)"
            )
            continue
        try:
            exec(code, {"__file__": str(path), "__name__": f"group_data.{path.stem}"})  # noqa: S102 (the operator's own file, as pyinfra runs it)
        except Exception as exc:  # noqa: BLE001 (any error: shown as file, line and message)
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
            line = frames[-1].lineno if frames else 0
            found.append(f"group_data/{path.name}:{line}: {type(exc).__name__}: {exc}: expected group data that loads")
    return found


@functools.lru_cache(maxsize=64)
def _assigned_lines(path: str) -> dict[str, int]:
    """Name -> line of its assignment in the Python file PATH (read as syntax, never run)."""
    try:
        tree = ast.parse(pathlib.Path(path).read_text(), path)
    except (OSError, SyntaxError, ValueError):
        return {}
    lines: dict[str, int] = {}
    for node in tree.body:
        targets: list[object] = [*node.targets] if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name):
                lines[target.id] = node.lineno
    return lines


def unmatched_group_files(inventory, folder: pathlib.Path | None = None) -> list[str]:
    """Each group_data/NAME.py whose NAME is no group with hosts: it would be silently ignored."""
    folder = folder or project("group_data")
    groups = {name for name, hosts in inventory.groups.items() if hosts} | {"all"}
    found = []
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        if path.stem not in groups:
            found.append(
                f"group_data/{path.name}: group {path.stem!r} has no host in the inventory: expected a file named "
                f"after a group of the inventory ({', '.join(sorted(groups))}); is it misspelt?"
            )
    return found


# --- where a key of a host's data comes from -------------------------------------------------------


def layers(inventory, host) -> list[tuple[str, dict]]:
    """(layer, data) of HOST, lowest first: DEFAULTS, group ``all``, each of its groups, the host, ``--data``.

    ``settings.merge`` of these is the data the deploy uses (litellm_runner.deploy applies it).
    """
    return [
        ("defaults", DEFAULTS),
        ("all", dict(inventory.get_data() or {})),
        *((f"group:{g}", dict(inventory.get_group_data(g) or {})) for g in host.groups if g != "all"),
        ("host", dict(inventory.get_host_data(host.name) or {})),
        ("override", dict(getattr(inventory, "override_data", None) or {})),
    ]


def host_data(inventory, host) -> dict:
    """HOST's data as the deploy uses it: its layers merged (mapping settings key by key)."""
    return merge(data for _, data in layers(inventory, host))


@functools.lru_cache(maxsize=4)
def _hosts_file_lines(path: str) -> dict[tuple[str, str | None], int]:
    """(host, key or None) -> line in the YAML hosts file PATH, from its node positions."""
    try:
        root = yaml.compose(pathlib.Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    lines: dict[tuple[str, str | None], int] = {}
    for _group, hosts in getattr(root, "value", []) if isinstance(root, yaml.MappingNode) else []:
        for entry in hosts.value if isinstance(hosts, yaml.SequenceNode) else []:
            if isinstance(entry, yaml.ScalarNode):
                lines.setdefault((entry.value, None), entry.start_mark.line + 1)
            elif isinstance(entry, yaml.MappingNode):
                fields = {k.value: v for k, v in entry.value if isinstance(k, yaml.ScalarNode)}
                name = fields.get("name")
                if not isinstance(name, yaml.ScalarNode):
                    continue
                lines.setdefault((name.value, None), entry.start_mark.line + 1)
                data = fields.get("data")
                for key, _value in data.value if isinstance(data, yaml.MappingNode) else []:
                    lines.setdefault((name.value, key.value), key.start_mark.line + 1)
    return lines


def _host_source(name: str, key: str) -> str:
    """Where host NAME's own value of KEY is written: the hosts file and line (litellm_runner.inventory), the
    sandbox's host data, or another inventory."""
    hosts_file = os.environ.get("LITELLM_INVENTORY")
    if hosts_file:
        lines = _hosts_file_lines(hosts_file)
        line = lines.get((name, key)) or lines.get((name, None))
        return f"{hosts_file}:{line}" if line else hosts_file
    if name in os.environ.get("LITELLM_SANDBOXES", "").split(","):
        return f"sandbox host data of {name} (.sandbox/{name}/host.json)"
    return f"inventory (host {name})"


def _group_source(group: str, key: str) -> str:
    path = project("group_data", f"{group}.py")
    line = _assigned_lines(str(path)).get(key)
    if line:
        return f"group_data/{group}.py:{line}"
    return f"group_data/{group}.py" if path.exists() else f"inventory (group {group})"


def source(inventory, host) -> Callable[[str], str]:
    """``source(key)``: the file (and line) HOST's value of KEY comes from: the highest layer holding it."""
    stack = list(reversed(layers(inventory, host)))

    def where(key: str) -> str:
        for layer, data in stack:
            if key not in data:
                continue
            if layer == "override":
                return "pyinfra --data"
            if layer == "host":
                return _host_source(host.name, key)
            if layer.startswith("group:"):
                return _group_source(layer[6:], key)
            if layer == "all":
                return _group_source("all", key)
        return DEFAULTS_SOURCE

    return where


# --- the checks ------------------------------------------------------------------------------------


def hosts(inventory) -> list[tuple[str, dict, Callable[[str], str]]]:
    """[(name, merged data, source)] of every host of INVENTORY, as preflight.problems takes them."""
    return [(h.name, host_data(inventory, h), source(inventory, h)) for h in inventory]


def problems(inventory) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the whole desired state of INVENTORY: no host is contacted."""
    from litellm_runner.gates import preflight

    found = unmatched_group_files(inventory)
    more, warned = preflight.problems(hosts(inventory))
    return found + more, warned


def report(found: Iterable[str], warned: Iterable[str], out=None) -> None:
    """Print WARNED, then FOUND under HEADER, on stderr."""
    out = out or sys.stderr
    warned, found = list(warned), list(found)
    if warned:
        print("warnings (the run goes on):\n  " + "\n  ".join(warned), file=out, flush=True)
    if found:
        print(HEADER + "\n  " + "\n  ".join(found), file=out, flush=True)


def check_once(inventory) -> bool:
    """Validate INVENTORY once per run (its state's Run) and report it; the verdict (True: valid) for every caller.

    pyinfra prepares the hosts in parallel greenlets: the first runs the checks (they yield while
    pip-audit runs), the others wait here, so no host reads a fact before every host has passed.
    """
    with _lock:
        run = run_state.of(inventory.state)
        if run.valid is None:
            with interruptible():
                found, warned = problems(inventory)
            report(found, warned)
            run.valid = not found
    return run.valid is True


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C during the block raises KeyboardInterrupt here (the caller exits 130, "interrupted").

    pyinfra's CLI handles SIGINT itself ("Exiting upon user request!", exit 0) and gevent's hub prints
    a KeyboardInterrupt it sees with a timestamp: for the checks, Python's own handler, and no print.
    """
    import gevent  # pyinfra's: the hub that runs the checks' subprocesses under pyinfra

    hub = gevent.get_hub()
    quiet = getattr(hub, "NOT_ERROR", None)
    if quiet is not None:
        hub.NOT_ERROR = (*quiet, KeyboardInterrupt)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main_thread else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if quiet is not None:
            hub.NOT_ERROR = quiet


def before_connect() -> None:
    """In a pyinfra run (its CLI), validate every host after the inventory and group_data are loaded and
    before pyinfra connects to any host; exit 1 on any problem, 130 on Ctrl-C.

    Call it from the project's inventory.py (the repository's does, through litellm_runner.inventory).
    The group_data files are checked at once (pyinfra loads them right after the inventory file).
    """
    broken = group_data_problems()
    if broken:
        report(broken, [])
        raise SystemExit(exitcodes.FAILED)
    from litellm_runner.run import compat

    def validate_then_connect(state: Any) -> None:
        try:
            valid = check_once(state.inventory)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr, flush=True)
            raise SystemExit(exitcodes.INTERRUPTED) from None
        if not valid:
            raise SystemExit(exitcodes.FAILED)

    # outside pyinfra's CLI (the API, `litellm-runner validate`) nothing is installed
    compat.before_cli_connect(validate_then_connect, "validate")
