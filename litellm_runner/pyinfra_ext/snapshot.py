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
"""

from __future__ import annotations

import logging
import pathlib

from pyinfra import host

from litellm_runner.pyinfra_ext.facts import (
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
    VenvState,
)
from litellm_runner.render import render_units, venv, wanted_units
from litellm_runner.resources import shipped

logger = logging.getLogger("litellm_runner.pyinfra_ext.snapshot")
_cache: dict = {}


def tools() -> list[pathlib.Path]:
    """The host tools shipped to <root>/bin (every file of files/bin)."""
    return [p for p in sorted(shipped("files", "bin").iterdir()) if p.is_file() and not p.name.startswith(".")]


def spec(data) -> dict:
    """What the snapshot of a host with desired state DATA reads: every managed path, the units, the venv,
    the system interpreter's version, the system packages and the systemd version."""
    root, home = data.litellm_root, data.litellm_home
    unit_dir = f"{home}/.config/systemd/user"
    paths = [f"{root}/{rel}".rstrip("/") for rel in ["", *data.litellm_dirs]]
    paths += [f"{home}/.config", f"{home}/.config/systemd", unit_dir]
    paths += [
        f"{root}/env.litellm",
        f"{root}/state/config.generated.yaml",
        f"{root}/state/compliance-desired.json",
        f"{root}/state/venv-requirements.txt",
        f"{root}/state/venv-sbom.cdx.json",
    ]
    paths += [f"{root}/bin/{tool.name}" for tool in tools()]
    paths += [f"{unit_dir}/{unit}" for unit in render_units(data)]
    units = list(dict.fromkeys([*wanted_units(data), *render_units(data)]))  # timers' services too (their sources)
    return {
        "paths": paths,
        "user": data.litellm_user,
        "units": units,
        "venv": venv(data),
        "env_files": [f"{root}/env.litellm"],
        "group": data.litellm_group,
        "dirs": managed_dirs(data),
        "python": data.litellm_python,
        "debs": list(data.litellm_system_packages),
        "systemd": True,
    }


def managed_dirs(data) -> list[str]:
    """The directories the deploy writes files in (where a killed run may leave a temporary file)."""
    root = data.litellm_root
    return [f"{root}/{rel}".rstrip("/") for rel in ["", *data.litellm_dirs]] + [
        f"{data.litellm_home}/.config/systemd/user"
    ]


def _snapshot():
    data = host.data
    if not isinstance(getattr(data, "litellm_root", None), str):
        return None, None  # not this deploy's host data (unit tests of single operations)
    key = (id(host.state), host.name)
    if key not in _cache or _cache[key][0] is not host.state:
        wanted = spec(data)
        _cache[key] = (host.state, wanted, host.get_fact(HostSnapshot, **wanted))
    return _cache[key][1:]


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
        if cls is VenvState and (kwargs["venv"], kwargs["user"]) == (wanted["venv"], wanted["user"]):
            return snap["venv"]
        if cls is SystemdVersion:
            return snap["systemd"]
        if cls is SystemPython and kwargs["python"] == wanted["python"]:
            return snap["python"]
        if cls is SystemPackages and set(kwargs["packages"]) <= set(wanted["debs"]):
            debs = snap["debs"]
            return None if debs is None else {name: debs[name] for name in kwargs["packages"]}
        logger.warning("%s: %s(%s) is not in the host snapshot: asked separately", host.name, cls.__name__, kwargs)
    return host.get_fact(cls, **kwargs)
