"""Answer the deploy's fact questions from one host snapshot (issue #7).

Operations ask ``snapshot.fact(PathState, path=...)`` instead of
``host.get_fact(...)``. The first question on a host reads ``HostSnapshot``
once for every path, unit and venv the deploy manages (``spec``); questions it
covers are answered from it, any other falls through to the fact itself (and
is logged, so a missing entry in ``spec`` shows up as a slower run, never as a
wrong answer).

The snapshot is read while pyinfra prepares the run and kept for the run:
operations decide at preparation (that is what ``--dry`` shows) and execute
what they decided, as pyinfra's own facts do.

The deploy asks its few remaining questions (the snapshot, the database plan,
the Prisma client state) at once with ``prefetch``: each is a command of its
own on the host's one SSH connection, so the host answers them side by side
instead of one after the other; ``answer`` then hands each its prefetched
result the first time it is asked.
"""

from __future__ import annotations

import json
import logging
import sys

from pyinfra import host

from litellm_runner import layout, query_engine
from litellm_runner.pyinfra_ext.facts import (
    AccountPlants,
    HostSnapshot,
    InstalledPackages,
    Leftovers,
    Linger,
    PathState,
    RunLock,
    ServiceAccount,
    SystemdVersion,
    SystemPackages,
    SystemPython,
    UserManager,
    UserUnits,
    VenvLink,
    VenvState,
)
from litellm_runner.render import render_units, venv_target, wanted_units
from litellm_runner.resources import host_tools
from litellm_runner.run import state as run_state

logger = logging.getLogger("litellm_runner.pyinfra_ext.snapshot")
SNAPSHOT_TIMEOUT = 120  # seconds for the snapshot command (pyinfra _timeout)


def spec(data) -> dict:
    """What the snapshot of a host with desired state DATA reads: every managed path (the account's state and
    root's layout), the units, the account's plants, the venv, the system interpreter's version, the system
    packages and the systemd version."""
    root = data.litellm_root
    paths = [f"{root}/{rel}".rstrip("/") for rel in ["", *data.litellm_dirs]]
    paths += [path for path, *_ in layout.root_dirs(data.litellm_group)]
    paths += [layout.ENV_FILE, layout.CONFIG_FILE, layout.COMPLIANCE, layout.LOCK, layout.SBOM]
    paths += [f"{layout.BIN}/{name}" for name in host_tools()]
    paths += [f"{layout.UNITS}/{unit}" for unit in render_units(data)]
    paths += layout.legacy(root)
    if getattr(data, "litellm_query_engine", False):  # tasks/query_engine.py
        paths.append(f"{query_engine.install_dir()}/{query_engine.MANIFEST}")
    paths.append(layout.RESTART_HELD)  # a restart of litellm.service owed since a run that held it
    units = list(dict.fromkeys([*wanted_units(data), *render_units(data)]))  # timers' services too (their sources)
    return {
        "paths": paths,
        "user": data.litellm_user,
        "units": units,
        "venv": venv_target(data),  # the versioned venv this run wants; the link the services use beside it
        "venv_link": layout.VENV,
        "venv_owner": "root",
        "venv_integrity": venv_integrity(data),
        "plants": True,
        "env_files": [layout.ENV_FILE],
        "group": data.litellm_group,
        "dirs": managed_dirs(data),
        "python": data.litellm_python,
        "debs": list(data.litellm_system_packages)
        + (query_engine.DEBIAN_PACKAGES if getattr(data, "litellm_query_engine", False) else []),
        "systemd": True,
    }


def venv_integrity(data) -> bool:
    """Whether this run compares every file of the venv with its RECORD (``litellm_venv_integrity``): in a
    converge (``converge``, the default), in the drift check too (``always``), never (``off``)."""
    mode = getattr(data, "litellm_venv_integrity", "converge")
    return mode == "always" or (mode == "converge" and not dry_run())


def dry_run() -> bool:
    """Whether pyinfra only detects changes in this run (``--dry``: the drift check, ``litellm-runner dry``)."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None and "dry" in ctx.params:
        return bool(ctx.params["dry"])
    return "--dry" in sys.argv


def question(data) -> tuple[type, dict]:
    """The HostSnapshot fact a host with desired state DATA is asked (``prefetch``, ``answer``)."""
    return HostSnapshot, {**spec(data), "_timeout": SNAPSHOT_TIMEOUT}


def managed_dirs(data) -> list[str]:
    """The directories the deploy writes files in (where a killed run may leave a temporary file)."""
    root = data.litellm_root
    return [f"{root}/{rel}".rstrip("/") for rel in ["", *data.litellm_dirs]] + [
        layout.CODE,
        layout.BIN,
        layout.CONFIG,
        layout.UNITS,
    ]


def _snapshot():
    data = host.data
    if not isinstance(getattr(data, "litellm_root", None), str):
        return None, None  # not this deploy's host data (unit tests of single operations)
    snapshots = run_state.of(host.state).snapshots  # this run's, by host
    if host.name not in snapshots:
        cls, kwargs = question(data)
        wanted = {k: v for k, v in kwargs.items() if k != "_timeout"}  # spec(data), computed once
        snapshots[host.name] = (wanted, answer(cls, **kwargs))
    return snapshots[host.name]


def _asked(name: str, cls, kwargs: dict) -> tuple:
    return (name, cls, json.dumps(kwargs, sort_keys=True, default=repr))


def prefetch(questions: list[tuple[type, dict]]) -> None:
    """Ask the current host QUESTIONS (``(fact class, its keyword arguments)``) at once.

    Each runs in a greenlet of its own, as a command of its own on the host's SSH connection, so the
    host works on them side by side. Each answer (or the exception asking it raised) is kept for the
    first ``answer`` of the same question, same arguments, in this run; it is raised there, as if it
    had been asked then. The arguments give each its own ``_timeout``: no operation's are in effect.
    """
    import gevent

    from litellm_runner.run import compat

    real_host = compat.current_host()  # pyinfra's context is greenlet-local: each greenlet is given it
    real_state = real_host.state

    def ask(cls, kwargs):
        with compat.in_context(real_state, real_host):
            try:
                return True, real_host.get_fact(cls, **kwargs)
            except Exception as exc:  # noqa: BLE001 - raised again by answer(), where the deploy asks
                return False, exc

    jobs = [(cls, kwargs, gevent.spawn(ask, cls, kwargs)) for cls, kwargs in questions]
    gevent.joinall([job for _, _, job in jobs])
    for cls, kwargs, job in jobs:
        run_state.of(real_state).prefetched[_asked(real_host.name, cls, kwargs)] = job.value


def answer(cls, **kwargs):
    """``host.get_fact(cls, **kwargs)``: the prefetched answer the first time this run asks it, else asked now."""
    found = run_state.of(host.state).prefetched.pop(_asked(host.name, cls, kwargs), None)
    if found is None:
        return host.get_fact(cls, **kwargs)
    ok, value = found
    if not ok:
        raise value
    return value


def fact(cls, **kwargs):
    """``host.get_fact(cls, **kwargs)``, answered from the host snapshot when it covers the question."""
    wanted, snap = _snapshot()
    if snap is not None:
        if cls is PathState and kwargs["path"] in wanted["paths"]:
            return snap["paths"].get(kwargs["path"])  # a symlink is {"type": "symlink"}, never its target
        if cls is ServiceAccount and (kwargs["user"], kwargs["group"]) == (wanted["user"], wanted["group"]):
            return snap["account"]
        if cls is RunLock:
            return snap["run_lock"]
        if cls is UserManager and kwargs["user"] == wanted["user"]:
            return snap["manager"]
        if cls is Leftovers and list(kwargs["dirs"]) == wanted["dirs"]:
            return snap["leftovers"]
        if cls is Linger and kwargs["user"] == wanted["user"]:
            return snap["linger"]
        if cls is UserUnits and kwargs["user"] == wanted["user"] and set(kwargs["units"]) <= set(wanted["units"]):
            return {u: snap["units"][u] for u in kwargs["units"] if u in snap["units"]}
        if cls is InstalledPackages and kwargs["venv"] == wanted["venv"]:
            return snap["venv"]["packages"]
        if cls is VenvState and (kwargs["venv"], kwargs["user"]) == (wanted["venv"], wanted["venv_owner"]):
            return snap["venv"]
        if cls is VenvLink and kwargs["path"] == wanted["venv_link"]:
            return snap["venv_link"]
        if cls is AccountPlants and (kwargs["user"], list(kwargs["units"])) == (wanted["user"], wanted["units"]):
            return snap["plants"]
        if cls is SystemdVersion:
            return snap["systemd"]
        if cls is SystemPython and kwargs["python"] == wanted["python"]:
            return snap["python"]
        if cls is SystemPackages and set(kwargs["packages"]) <= set(wanted["debs"]):
            debs = snap["debs"]
            return None if debs is None else {name: debs[name] for name in kwargs["packages"]}
        logger.warning("%s: %s(%s) is not in the host snapshot: asked separately", host.name, cls.__name__, kwargs)
    return host.get_fact(cls, **kwargs)
