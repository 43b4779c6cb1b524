"""One fact answers the deploy's questions about a host: ``HostSnapshot``, a typed ``Snapshot`` (issue #7, #23).

pyinfra caches no facts, so asking a fact per path, unit and package costs a round trip each. The
deploy instead asks one fact, once per host and run, for everything it manages (``managed``: the
table the tasks write their paths from, so the question and the writes cannot disagree), and the
operations read the answer through accessors::

    snap = snapshot.current()
    snap.path(layout.CONFIG_FILE)        # PathInfo, or None when the path is missing
    snap.unit("litellm.service")         # UnitInfo
    snap.venv_at(venv)                   # VenvInfo
    snap.for_user(user).linger           # the account's: the snapshot reads one account

An accessor asked about something the snapshot was not asked to read (a path no task declares,
another account, another venv) raises ``NotAsked`` naming it: a wrong answer is never given.

The snapshot is read while pyinfra prepares the run and kept in the run's ``Run``: operations decide
at preparation (that is what ``--dry`` shows) and execute what they decided, as pyinfra's own facts do.

The deploy asks its questions (the snapshot, which also reads the Prisma client's state and, with
``asked(data, plan)``, runs the database plan beside the rest: one command) with ``prefetch``, each
under a key of its own (``SNAPSHOT``): each is a command of its own on the host's one SSH connection;
``answer`` hands each its prefetched result the first time its key is asked.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Hashable
from typing import Any, TypedDict

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.api.exceptions import OperationError

from litellm_runner import layout, query_engine
from litellm_runner.pyinfra_ext.facts import hostside, uncached
from litellm_runner.render import prisma_env, prisma_probe, render_units, venv_target, wanted_units
from litellm_runner.resources import host_tools
from litellm_runner.run import state as run_state

SNAPSHOT_TIMEOUT = 120  # seconds for the snapshot command (pyinfra _timeout)
SNAPSHOT = "snapshot"  # the snapshot's key among the prefetched questions


# -- what the deploy manages: declared once ------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Managed:
    """Every path the deploy writes on one host, by the task that writes it. The tasks take their paths
    from here and the snapshot reads exactly these (``paths()``): a path is declared in one place."""

    state_dirs: list[str]  # the account's: litellm_root and litellm_dirs (tasks/filesystem.py, fs-01)
    root_dirs: list[tuple[str, str, str, str]]  # (path, user, group, mode), root's (tasks/filesystem.py, fs-04)
    files: list[str]  # root's config and venv files (tasks/config.py, tasks/python_env.py)
    tools: dict[str, str]  # path -> the host tool's name (tasks/config.py, cfg-02)
    units: dict[str, str]  # path -> the unit's name (tasks/units.py, svc-01)
    legacy: list[str]  # the account's copies of root's files, quarantined (tasks/units.py, fs-03)
    others: list[str]  # the query engine's MANIFEST (py-03), the owed restart (svc-01)

    def paths(self) -> list[str]:
        """Every managed path, each once, in the order above."""
        found = [*self.state_dirs, *(p for p, *_ in self.root_dirs), *self.files, *self.tools, *self.units]
        return list(dict.fromkeys([*found, *self.legacy, *self.others]))

    def write_dirs(self) -> list[str]:
        """The directories the deploy writes files in (where a killed run may leave a temporary file)."""
        return [*self.state_dirs, layout.CODE, layout.BIN, layout.CONFIG, layout.UNITS]


def managed(data) -> Managed:
    """The paths the deploy manages on a host with desired state DATA."""
    root = data.litellm_root
    engine = getattr(data, "litellm_query_engine", False)
    return Managed(
        state_dirs=[f"{root}/{rel}".rstrip("/") for rel in ["", *data.litellm_dirs]],
        root_dirs=layout.root_dirs(data.litellm_group),
        files=[layout.ENV_FILE, layout.CONFIG_FILE, layout.COMPLIANCE, layout.LOCK, layout.SBOM],
        tools={f"{layout.BIN}/{name}": name for name in host_tools()},
        units={f"{layout.UNITS}/{unit}": unit for unit in render_units(data)},
        legacy=layout.legacy(root),
        others=[f"{query_engine.install_dir()}/{query_engine.MANIFEST}"] * bool(engine) + [layout.RESTART_HELD],
    )


def tool_modules() -> list[str]:
    """The host tools the others import (``litellm_tools.py``...): root compiles them (``hostside.compile_tools``)."""
    return [name for name in host_tools() if name.endswith(".py")]


def managed_units(data) -> list[str]:
    """The units the deploy manages: the wanted ones and every rendered one (timers' services too)."""
    return list(dict.fromkeys([*wanted_units(data), *render_units(data)]))


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


def question(data) -> dict:
    """The arguments of the ``HostSnapshot`` a host with desired state DATA is asked (``current``, ``prefetch``)."""
    engine, paths = getattr(data, "litellm_query_engine", False), managed(data)
    return {
        "paths": paths.paths(),
        "user": data.litellm_user,
        "group": data.litellm_group,
        "units": managed_units(data),
        "venv": venv_target(data),  # the versioned venv this run wants; the link the services use beside it
        "venv_link": layout.VENV,
        "venv_owner": "root",
        "venv_integrity": venv_integrity(data),
        "env_files": [layout.ENV_FILE],
        "dirs": paths.write_dirs(),
        "python": data.litellm_python,
        "debs": [*data.litellm_system_packages, *(query_engine.DEBIAN_PACKAGES if engine else [])],
        "prisma": prisma_probe(prisma_env(data)),  # the Prisma client in VENV; the engines' host it probes
    }


# -- the answer, typed ---------------------------------------------------------------------------
class PathInfo(TypedDict, total=False):
    """A path itself (a symlink is reported, never followed). ``unsafe`` (with ``detail``): a directory on
    the way is an untrusted link, or the file is hard-linked. ``env``: ``{KEY: fingerprint}`` of an env file."""

    type: str  # "file" | "directory" | "symlink" | "other" | "unsafe"
    mode: str  # "0750"
    user: str
    group: str
    sha256: str | None
    links: int  # hard links of a file
    detail: str
    env: dict[str, str]


class UnitInfo(TypedDict, total=False):
    """A user unit as its manager sees it (``systemctl show``); ``{}`` for a unit the manager does not know.
    ``fragment``/``drop_ins``: the files systemd loaded it from; ``sources``: the files on disk it would
    read besides the managed unit file, reloaded or not."""

    enabled: bool
    active: bool
    load: str
    file_state: str
    fragment: str
    drop_ins: list[str]
    need_reload: bool
    sources: list[str] | None


class VenvInfo(TypedDict, total=False):
    """A venv as data (``hostside.venv_state``), nothing of it run: whether it can be repaired in place.

    ``packages``: ``{normalized name: version}`` from the dist-infos (None without site-packages);
    ``python``: where bin/python leads (None: missing); ``exists``; ``home``/``version`` of pyvenv.cfg;
    ``foreign``/``foreign_count``: paths the owner does not own; ``writable``/``writable_count``: group-
    or world-writable ones; ``broken``: {distribution: what a killed pip left}; ``integrity``: the RECORD
    hashes' verdict (None unless ``venv_integrity``); ``hostile``: why the venv was not walked."""

    packages: dict[str, str] | None
    python: str | None
    exists: bool
    home: str | None
    version: str | None
    foreign: list[str]
    foreign_count: int
    writable: list[str]
    writable_count: int
    broken: dict[str, str]
    integrity: dict | None
    hostile: str


class AccountInfo(TypedDict):
    """The account from the host's user database (``getpwnam``; never /etc/shadow); ``created`` when the
    runner made it (``layout.CREATED``)."""

    user: dict | None  # {"uid", "group", "home", "shell", "groups"}
    group: bool
    created: bool


class RunLockInfo(TypedDict):
    """The host's run lock (``layout.RUN_LOCK``) as found."""

    text: str
    mtime: int
    now: int


class PythonInfo(TypedDict):
    """``litellm_python``'s version, run only when it is root's alone (``hostside.python_version``)."""

    version: str | None  # "X.Y"; None: missing
    refused: str | None  # why it was not run


class PrismaInfo(TypedDict):
    """The Prisma client in the venv (``hostside.prisma_client``, tasks/prisma.py)."""

    schema: str | None  # sha256 of litellm's schema.prisma; None: no litellm, or not a regular file
    generated: bool  # the prisma package holds client code generated from that schema
    compiled: bool  # and root compiled its largest modules (hostside.PRISMA_COMPILED), as they are now
    download: str | None  # why the engines' download host is unreachable (probed only when not generated)


class NotAsked(OperationError):
    """An accessor was asked about something the snapshot did not read (``managed`` does not declare it)."""


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Everything the deploy decides on about one host, read in one command (``HostSnapshot``)."""

    paths: dict[str, PathInfo | None]
    units: dict[str, UnitInfo]
    venv: VenvInfo
    venv_link: dict | None  # the stable venv path and the versioned venvs beside it (hostside.venv_link)
    account: AccountInfo
    linger: bool
    manager: bool  # the account's user manager (user@UID.service) is active
    run_lock: RunLockInfo | None
    leftovers: list[str]  # temporary files of a killed run in the managed directories
    plants: list[dict]  # the account's own files that would change a managed unit (hostside.account_plants)
    python: PythonInfo | None
    debs: dict[str, str | None] | None  # dpkg's status as data; None: no readable dpkg database
    systemd: str | None  # ``systemd 257 (257.9-1~deb13u1)``
    bytecode: dict | None = None  # the host tools' root-compiled modules (hostside.tools_bytecode); None: none
    prisma: PrismaInfo | None = None  # None: it could not be read
    plan: dict | None = None  # the database plan (database.HostPlan's answer), when the question asked it
    plan_key: str | None = None  # the key of the plan's question it answers (``database.question``)
    asked: dict[str, Any] = dataclasses.field(default_factory=dict)  # the question (``question``)

    def _need(self, covered: bool, what: str) -> None:
        if not covered:
            raise NotAsked(f"{what} is not in the host snapshot (expected it declared in snapshot.managed)")

    def path(self, path: str) -> PathInfo | None:
        """The managed PATH as found (None when missing)."""
        self._need(path in self.paths, f"path {path}")
        return self.paths[path]

    def unit(self, name: str) -> UnitInfo:
        """The managed unit NAME (``{}`` when its manager does not know it or does not run)."""
        self._need(name in self.asked.get("units", [name]), f"unit {name}")
        return self.units.get(name, {})

    def for_user(self, user: str) -> Snapshot:
        """This snapshot, when it read USER's account, linger, manager and plants."""
        self._need(user == self.asked.get("user", user), f"account {user}")
        return self

    def leftovers_in(self, dirs: list[str]) -> list[str]:
        """The temporary files a killed run left in DIRS, the managed directories (``Managed.write_dirs``)."""
        self._need(list(dirs) == self.asked.get("dirs", list(dirs)), f"directories {', '.join(dirs)}")
        return self.leftovers

    def venv_at(self, path: str) -> VenvInfo:
        """The venv at PATH."""
        self._need(path == self.asked.get("venv", path), f"venv {path}")
        return self.venv

    def link_at(self, path: str) -> dict:
        """The stable venv path PATH (``layout.VENV``): ``{"type", "user", "target", "venv": the folder it
        leads to (only a root-owned link to ``venvs/NAME``), "packages", "previous", "entries"}``; ``{}`` when
        missing."""
        self._need(path == self.asked.get("venv_link", path), f"venv link {path}")
        return self.venv_link or {}

    def python_at(self, path: str) -> PythonInfo:
        """The interpreter PATH's version."""
        self._need(path == self.asked.get("python", path) and self.python is not None, f"interpreter {path}")
        return self.python  # type: ignore[return-value]

    def prisma_at(self, venv: str, probe: dict | None) -> PrismaInfo | None:
        """The Prisma client in the venv VENV, the engines' host PROBE probed (``render.prisma_probe``); None
        when it could not be read."""
        asked = self.asked.get("venv", venv) == venv and self.asked.get("prisma", probe) == probe
        self._need(asked, f"Prisma client in {venv} (probing {probe})")
        return self.prisma

    def packages(self, names: list[str]) -> dict[str, str | None] | None:
        """The Debian packages NAMES: ``{name: installed version or None}``; None without a dpkg database."""
        self._need(set(names) <= set(self.asked.get("debs", names)), f"Debian packages {', '.join(names)}")
        return None if self.debs is None else {name: self.debs.get(name) for name in names}


def units_of(lines: list[str]) -> dict[str, UnitInfo]:
    """``systemctl show --property=hostside.UNIT_PROPS`` output (blocks of ``KEY=value``) as ``{unit: UnitInfo}``."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in [*lines, ""]:
        line = line.strip()
        if not line:
            if "Id" in current:  # a unit's later block (X-Sources) adds to its first
                blocks.setdefault(current["Id"], {}).update(current)
            current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    return {
        unit: {
            "enabled": props.get("UnitFileState") in ("enabled", "enabled-runtime"),
            "active": props.get("ActiveState") in ("active", "activating", "reloading"),
            "load": props.get("LoadState", "not-found"),
            "file_state": props.get("UnitFileState", ""),
            "fragment": props.get("FragmentPath", ""),
            "drop_ins": props.get("DropInPaths", "").split(),
            "need_reload": props.get("NeedDaemonReload") == "yes",
            "sources": json.loads(props["X-Sources"]) if "X-Sources" in props else None,
        }
        for unit, props in blocks.items()
    }


class HostSnapshot(FactBase):
    """Everything the deploy decides on, read in one command by root's own interpreter (``hostside.snapshot``).

    Arguments: ``question(data)``. PATHS each as ``PathInfo`` (ENV_FILES with their keys' fingerprints:
    the values never leave the host); USER's and GROUP's account, linger, user manager and plants; UNITS;
    the venv VENV (owner VENV_OWNER; every file against its RECORD when VENV_INTEGRITY) and its Prisma
    client (the engines' host PRISMA probed when it is not generated); temporary files of a killed run in
    DIRS; the run lock; PYTHON's version; the Debian packages DEBS; the host's systemd; with PLAN
    (``database.question``) the database plan, run as the account beside the rest (``database.HostPlan``).
    Returns a ``Snapshot``.

    The command is sent without the host-side code (``code``; ``facts.hostside``): a host that kept it
    compiled in root's cache runs it from there, and any other answers None, and is asked again with the
    code (``ask``). A no-op check thus sends the code only the first time after a new runner version.

    .. code:: python

        snapshot.ask(host, HostSnapshot, **snapshot.question(host.data))
    """

    def command(
        self,
        paths,
        user,
        group,
        units,
        venv,
        venv_link,
        venv_owner,
        venv_integrity,
        env_files,
        dirs,
        python,
        debs,
        prisma=None,
        plan=None,
        code=False,
    ):
        asked = {
            "paths": list(paths),
            "user": user,
            "group": group,
            "units": list(units),
            "venv": venv,
            "venv_link": venv_link,
            "venv_owner": venv_owner,
            "venv_integrity": bool(venv_integrity),
            "env_files": list(env_files),
            "dirs": list(dirs),
            "python": python,
            "debs": list(debs),
            "prisma": prisma,
        }
        bytecode = {"folder": layout.BIN, "modules": tool_modules()}
        extra = {"plants": True, "systemd": True, "bytecode": bytecode, **({"plan": plan} if plan else {})}
        return hostside("snapshot", {**asked, **extra}, code=code)

    def process(self, output) -> Snapshot | None:
        if uncached(output):
            return None  # sent without its code to a host that has not kept it: ``ask`` sends it again, with it
        doc = json.loads("\n".join(output))
        return Snapshot(
            paths=doc["paths"],
            units=units_of(doc["units"]),
            venv=doc["venv"],
            venv_link=doc.get("venv_link"),
            account=doc["account"],
            linger=doc["linger"],
            manager=doc["manager"],
            run_lock=doc["run_lock"],
            leftovers=doc["leftovers"],
            plants=doc.get("plants") or [],
            python=doc.get("python"),
            debs=doc.get("debs"),
            systemd=doc.get("systemd"),
            bytecode=doc.get("bytecode"),
            prisma=doc.get("prisma"),
            plan=doc.get("plan"),
            plan_key=doc.get("plan_key"),
        )


def asked(data, plan: dict | None = None) -> tuple[Hashable, type, dict]:
    """The snapshot's question to a host with desired state DATA, as ``prefetch`` takes it; with PLAN (the
    database plan's question, ``database.question``) the same command plans the database beside the rest."""
    return SNAPSHOT, HostSnapshot, {**question(data), **({"plan": plan} if plan else {}), "_timeout": SNAPSHOT_TIMEOUT}


def current() -> Snapshot:
    """The current host's snapshot: asked once per run (prefetched by the deploy), kept in the run's ``Run``."""
    snapshots = run_state.of(host.state).snapshots  # this run's, by host
    if host.name not in snapshots:
        key, cls, kwargs = asked(host.data)
        found = answer(key, cls, **kwargs)
        snapshots[host.name] = dataclasses.replace(found, asked={k: v for k, v in kwargs.items() if k != "_timeout"})
    return snapshots[host.name]


# -- asking the deploy's questions side by side ----------------------------------------------------
def prefetch(questions: list[tuple[Hashable, type, dict]]) -> None:
    """Ask the current host QUESTIONS (``(key, fact class, its keyword arguments)``) at once.

    Each runs in a greenlet of its own, as a command of its own on the host's SSH connection, so the
    host works on them side by side. Each answer (or the exception asking it raised) is kept for the
    first ``answer`` of its KEY in this run; it is raised there, as if it had been asked then. The
    arguments give each its own ``_timeout``: no operation's are in effect.
    """
    import gevent

    from litellm_runner.run import compat

    real_host = compat.current_host()  # pyinfra's context is greenlet-local: each greenlet is given it
    real_state = real_host.state

    def asking(cls, kwargs):
        with compat.in_context(real_state, real_host):
            try:
                return True, ask(real_host, cls, **kwargs)
            except Exception as exc:  # noqa: BLE001 - raised again by answer(), where the deploy asks
                return False, exc

    jobs = {key: gevent.spawn(asking, cls, kwargs) for key, cls, kwargs in questions}
    gevent.joinall(list(jobs.values()))
    for key, job in jobs.items():
        run_state.of(real_state).prefetched[(real_host.name, key)] = job.value


def ask(target, cls, **kwargs):
    """TARGET's (a pyinfra host) answer to the fact CLS with KWARGS; a ``HostSnapshot`` the host could not run
    from root's cache (None: it was sent without its code) is asked again, with the code."""
    found = target.get_fact(cls, **kwargs)
    if found is None and cls is HostSnapshot:
        found = target.get_fact(cls, **kwargs, code=True)
    return found


def answer(key: Hashable, cls, **kwargs):
    """The answer prefetched under KEY the first time this run asks for it, else ``host.get_fact(cls, **kwargs)``."""
    found = run_state.of(host.state).prefetched.pop((host.name, key), None)
    if found is None:
        return ask(host, cls, **kwargs)
    ok, value = found
    if not ok:
        raise value
    return value
