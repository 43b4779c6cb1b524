"""Facts this deploy needs and pyinfra does not ship.

Each fact is a class with ``command()`` and ``process()``; nothing else in the
runner reads a host. Commands never change the host.
"""

from __future__ import annotations

import base64
import functools
import json
import shlex
import zlib

from pyinfra.api import FactBase

from litellm_runner.resources import shipped

SYSTEM_PYTHON = "/usr/bin/python3"  # root's interpreter: the host-side code runs in it, isolated


class Linger(FactBase):
    """Whether systemd keeps USER's manager running without a login (``loginctl enable-linger``).

    Returns ``True`` when /var/lib/systemd/linger/USER exists, else ``False``.
    """

    def command(self, user):
        return f"test -e /var/lib/systemd/linger/{shlex.quote(user)} && echo on || echo off"

    def process(self, output):
        return output[0].strip() == "on"


class UserUnits(FactBase):
    """State of USER's systemd user units, one ``systemctl show`` for all of them.

    Returns ``{unit: {"enabled": bool, "active": bool, "load": str, "next_elapse": str,
    "file_state": str, "fragment": str, "drop_ins": [path], "need_reload": bool,
    "sources": [path]}}`` for every unit asked about; a unit unknown to the manager, or a
    manager that does not run, gives ``enabled: False, active: False, load: "not-found"``.
    ``fragment`` and ``drop_ins`` are the files systemd loaded the unit from
    (``FragmentPath``, ``DropInPaths``); ``sources`` (host snapshot only, ``X-Sources=``, else
    ``None``) the files on disk it would read besides the managed unit file, reloaded or not.

    .. code:: python

        host.get_fact(UserUnits, user="litellm", units=["litellm.service"])
    """

    PROPS = "Id,LoadState,UnitFileState,ActiveState,NextElapseUSecRealtime,FragmentPath,DropInPaths,NeedDaemonReload"

    def command(self, user, units):
        names = " ".join(shlex.quote(u) for u in units)
        return (
            f"systemctl --user --machine={shlex.quote(user)}@.host show "
            f"--property={self.PROPS} {names} 2>/dev/null || true"
        )

    @staticmethod
    def _unit(props: dict) -> dict:
        return {
            "enabled": props.get("UnitFileState") in ("enabled", "enabled-runtime"),
            "active": props.get("ActiveState") in ("active", "activating", "reloading"),
            "load": props.get("LoadState", "not-found"),
            "next_elapse": props.get("NextElapseUSecRealtime", ""),
            "file_state": props.get("UnitFileState", ""),
            "fragment": props.get("FragmentPath", ""),
            "drop_ins": props.get("DropInPaths", "").split(),
            "need_reload": props.get("NeedDaemonReload") == "yes",
            "sources": json.loads(props["X-Sources"]) if "X-Sources" in props else None,
        }

    def process(self, output):
        blocks: dict[str, dict[str, str]] = {}
        current: dict[str, str] = {}
        for line in list(output) + [""]:
            line = line.strip()
            if not line:
                if "Id" in current:  # a unit's later block (X-Sources) adds to its first
                    blocks.setdefault(current["Id"], {}).update(current)
                current = {}
                continue
            key, _, value = line.partition("=")
            current[key] = value
        return {unit: self._unit(props) for unit, props in blocks.items()}


def as_account(user: str, group: str, home: str, limit: int | None = None) -> str:
    """The prefix that runs a command as the service account, with a clean environment.

    Whatever the account can write (its venv, ``bin/``, dbctl) runs only this
    way: as the account, the kernel refuses anything the account itself could
    not do, so a planted trojan gains nothing. With LIMIT (seconds: a fact's
    command) the command is stopped after LIMIT, with its whole process group
    (``timeout``; SIGKILL 5 s later), so a read the account made block (a FIFO
    where a file should be) fails that one fact and leaves no process behind.
    The command then follows directly (no ``VAR=value`` words of its own).
    """
    prefix = (
        f"cd / && runuser -u {shlex.quote(user)} -g {shlex.quote(group)} -- env -i HOME={shlex.quote(home)} "
        "PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8"
    )
    return prefix + (f" timeout -k 5 {int(limit)}" if limit else "")


def hostside(action: str, args: dict) -> str:
    """The command that runs ``litellm_runner.pyinfra_ext.hostside`` ACTION with ARGS on the host.

    The code travels inside the command and runs in root's own interpreter,
    isolated (``-I``): never the venv's, never a file the service account can write.
    """
    blob = base64.b64encode(json.dumps(args, sort_keys=True).encode()).decode()
    return f"{SYSTEM_PYTHON} -I -c {shlex.quote(_boot())} {action} {blob}"


@functools.lru_cache(maxsize=1)
def _boot() -> str:
    parts = [shipped(*name).read_text() for name in (("envfile.py",), ("pyinfra_ext", "hostside.py"))]
    source = "from __future__ import annotations\n" + "\n".join(
        line for part in parts for line in part.splitlines() if line != "from __future__ import annotations"
    )
    payload = base64.b64encode(zlib.compress(source.encode(), 9)).decode()
    return (
        "import base64,sys,zlib;g={'__name__':'litellm_hostside'};"
        f"exec(zlib.decompress(base64.b64decode('{payload}')),g);sys.exit(g['main'](sys.argv))"
    )


class UserManager(FactBase):
    """Whether USER's systemd manager (``user@UID.service``) is active."""

    def command(self, user):
        return hostside("snapshot", {"paths": [], "user": user, "units": [], "venv": "/nonexistent"})

    def process(self, output):
        return json.loads("\n".join(output))["manager"]


class RunLock(FactBase):
    """The host's run lock (/run/litellm-runner.lock): ``{"text", "mtime", "now"}`` or None."""

    def command(self):
        return hostside("snapshot", {"paths": [], "user": "root", "units": [], "venv": "/nonexistent"})

    def process(self, output):
        return json.loads("\n".join(output))["run_lock"]


class Leftovers(FactBase):
    """Temporary files (``*.tmp-litellm-runner[-bak]``) a killed run left in the directories DIRS."""

    def command(self, dirs):
        return hostside(
            "snapshot", {"paths": [], "user": "root", "units": [], "venv": "/nonexistent", "dirs": list(dirs)}
        )

    def process(self, output):
        return json.loads("\n".join(output))["leftovers"]


class ServiceAccount(FactBase):
    """USER and GROUP from the host's user database (``getpwnam``; never /etc/shadow).

    Returns ``{"user": None | {"uid", "group", "home", "shell", "groups"}, "group": bool,
    "created": bool}``; ``created`` when the runner made the account (its record
    in /var/lib/litellm-runner/created-accounts/).
    """

    def command(self, user, group):
        return hostside("snapshot", {"paths": [], "user": user, "group": group, "units": [], "venv": "/nonexistent"})

    def process(self, output):
        return json.loads("\n".join(output))["account"]


class InstalledPackages(FactBase):
    """Distributions installed in a venv: ``{normalized name: version}``.

    Read from the venv's ``*.dist-info/METADATA`` files as data by root's own
    interpreter (``hostside``); nothing of the venv runs. Returns ``None`` when
    the venv has no ``lib/python*/site-packages``.
    """

    def command(self, venv):
        return hostside("snapshot", {"paths": [], "user": "root", "units": [], "venv": venv})

    def process(self, output):
        return json.loads("\n".join(output))["venv"]["packages"]


class VenvState(FactBase):
    """A venv as data (``hostside.venv_state``), nothing of it run: whether it can be repaired in place.

    Returns ``{"packages": InstalledPackages' answer, "python": where bin/python leads (None: missing),
    "exists": whether that interpreter exists, "home"/"version": of pyvenv.cfg, "foreign": the first paths
    USER does not own (root above the venv), "foreign_count": N, "writable": the first group- or
    world-writable ones, "writable_count": N, "broken": {distribution: what a killed pip left},
    "integrity": None}``: the cheap form, without the RECORD hashes (``hostside.venv_state``; the host
    snapshot gives the full one in a converge, ``litellm_venv_integrity``).
    """

    def command(self, venv, user):
        return hostside("snapshot", {"paths": [], "user": user, "units": [], "venv": venv})

    def process(self, output):
        return json.loads("\n".join(output))["venv"]


class VenvLink(FactBase):
    """The stable venv path PATH (``layout.VENV``) and the versioned venvs beside it (``hostside.venv_link``).

    Returns ``{"type": "symlink"|"directory"|..., "user", "target": the link's text, "venv": the folder it leads
    to (only a root-owned link to ``venvs/NAME``; a real directory is itself), "packages": that venv's
    distributions, "previous": the target of ``PATH-previous``, "entries": names in ``venvs/``}``, or None.
    """

    def command(self, path):
        return hostside(
            "snapshot", {"paths": [], "user": "root", "units": [], "venv": "/nonexistent", "venv_link": path}
        )

    def process(self, output):
        return json.loads("\n".join(output))["venv_link"]


class AccountPlants(FactBase):
    """The account's own files that would change a managed unit or service (``hostside.account_plants``).

    Returns ``[{"path", "why", "type", "owner", "mode", "size", "mtime", "sha256", ...}]``: every entry of
    USER's unit search paths except the enablement links of UNITS, every file of its ``environment.d`` and
    its manager's configuration; empty when there is none. Read as data by root, nothing followed or run.
    """

    def command(self, user, units):
        args = {"paths": [], "user": user, "units": list(units), "venv": "/nonexistent", "plants": True}
        return hostside("snapshot", args)

    def process(self, output):
        return json.loads("\n".join(output))["plants"]


class PathState(FactBase):
    """Type, mode, owner, group and sha256 of a path itself (a symlink is reported, never followed).

    Returns ``None`` when PATH does not exist, else ``{"type": "file"|"directory"|
    "symlink"|"other"|"unsafe", "mode": "0750", "user": str, "group": str,
    "sha256": str|None}``; ``unsafe`` (with ``detail``) when a directory on the
    way is an untrusted link, or the file is hard-linked.
    """

    def command(self, path):
        return hostside("snapshot", {"paths": [path], "user": "root", "units": [], "venv": "/nonexistent"})

    def process(self, output):
        return next(iter(json.loads("\n".join(output))["paths"].values()))


class FileText(FactBase):
    """The text of a regular file, read without following a link (for diffs).

    With MARKS (``shown.mark`` of each secret the control machine knows), every value of the host's env
    file ENV_FILE among them is redacted on the host, before the text is printed anywhere (pyinfra shows
    a fact's output at -vvv): a secret written into the file by hand never leaves the host in clear.
    Returns ``None`` when PATH is not a single regular file reached safely, or when ENV_FILE cannot be read.
    """

    def command(self, path, env_file=None, marks=()):
        args = {"path": path, **({"env_file": env_file, "marks": sorted(marks)} if marks else {})}
        return hostside("read", args) + " 2>/dev/null || echo null"

    def process(self, output):
        doc = json.loads("\n".join(output))
        return doc and doc["text"]


class HostSnapshot(FactBase):
    """Everything the deploy decides on, read in one command by root's own interpreter.

    pyinfra caches no facts, so asking ``PathState`` for each of ~30 paths, then
    ``UserUnits`` for each unit, costs a round trip each. This fact answers all
    of them at once; ``litellm_runner.pyinfra_ext.snapshot`` serves the individual
    questions from it. Returns::

        {"paths": {path: PathState's answer (None when missing)},
         "linger": bool, "units": UserUnits' answer, "venv": VenvState's answer (owner VENV_OWNER;
         every file checked against its RECORD when VENV_INTEGRITY), "venv_link": VenvLink's for VENV_LINK,
         "plants": AccountPlants' answer for USER and UNITS when PLANTS (else None),
         "python": SystemPython's answer for PYTHON (None without), "debs": SystemPackages' for DEBS}

    ``"account"`` is ``ServiceAccount``'s answer for USER and GROUP. An env file among ENV_FILES also
    gets ``"env": {KEY: fingerprint}`` (its values never leave the host).
    """

    def command(
        self,
        paths,
        user,
        units,
        venv,
        env_files=(),
        group=None,
        dirs=(),
        python=None,
        debs=None,
        systemd=False,
        venv_owner=None,
        plants=False,
        venv_integrity=False,
        venv_link=None,
    ):
        args = {
            "paths": list(paths),
            "user": user,
            "units": list(units),
            "venv": venv,
            "venv_link": venv_link,
            "venv_owner": venv_owner or user,
            "venv_integrity": bool(venv_integrity),
            "plants": bool(plants),
            "env_files": list(env_files),
            "group": group or user,
            "dirs": list(dirs),
            "python": python,
            "systemd": bool(systemd),
        }
        return hostside("snapshot", args if debs is None else {**args, "debs": list(debs)})

    def process(self, output):
        doc = json.loads("\n".join(output))
        return {
            "paths": doc["paths"],
            "linger": doc["linger"],
            "account": doc["account"],
            "leftovers": doc["leftovers"],
            "manager": doc["manager"],
            "run_lock": doc["run_lock"],
            "units": UserUnits().process(doc["units"]),
            "venv": doc["venv"],
            "venv_link": doc.get("venv_link"),
            "plants": doc.get("plants"),
            "python": doc.get("python"),
            "debs": doc.get("debs"),
            "systemd": doc.get("systemd"),
        }


class SystemPython(FactBase):
    """The version of the system interpreter PYTHON (``litellm_python``), read by root's own interpreter.

    Returns ``{"version": "X.Y" | None, "refused": why | None}`` (``hostside.python_version``): PYTHON
    runs only when it, the links to it and their directories are root's alone, never one the
    service account could write (its venv); root's own /usr/bin/python3 is not run at all.
    ``version`` is None for a missing interpreter.
    """

    def command(self, python):
        return hostside(
            "snapshot", {"paths": [], "user": "root", "units": [], "venv": "/nonexistent", "python": python}
        )

    def process(self, output):
        return json.loads("\n".join(output))["python"]


class SystemdVersion(FactBase):
    """The host's systemd, as ``systemctl --version`` names it (``systemd 257 (257.9-1~deb13u1)``), or None."""

    def command(self):
        return hostside("snapshot", {"paths": [], "user": "root", "units": [], "venv": "/nonexistent", "systemd": True})

    def process(self, output):
        return json.loads("\n".join(output))["systemd"]


class SystemPackages(FactBase):
    """The Debian packages PACKAGES as dpkg's status file records them, read as data (nothing run).

    Returns ``{name: installed version or None}``, or None on a host without a readable dpkg database.
    """

    def command(self, packages):
        return hostside(
            "snapshot", {"paths": [], "user": "root", "units": [], "venv": "/nonexistent", "debs": list(packages)}
        )

    def process(self, output):
        return json.loads("\n".join(output))["debs"]


class HostExposure(FactBase):
    """The services of UNITS scored by the host's own ``systemd-analyze security --offline --user``.

    Returns the output lines of ``unit_gate_script``: ``systemd-analyze --version``, the scores and
    ``unit-gate-exit N``; the unit hardening gate (``gates/units.check_host``) reads them.

    .. code:: python

        host.get_fact(HostExposure, units=render_units(host.data))
    """

    TIMEOUT = 60  # seconds for the host's systemd-analyze run

    def command(self, units):
        return unit_gate_script(units, self.TIMEOUT)

    def process(self, output):
        return list(output)


def unit_gate_script(units: dict[str, str], timeout: int) -> str:
    """POSIX sh that scores the services of UNITS with the host's own systemd-analyze (TIMEOUT seconds).

    Written for root on the host: the units go, base64-decoded (no text of
    theirs reaches the shell), into a fresh ``mktemp -d`` directory under /run (0700,
    root's), which is removed afterwards; nothing on the host changes. Prints
    ``systemd-analyze --version``, the scores, and ``unit-gate-exit N``; it
    always exits 0 so the fact sees a failure of systemd-analyze as text.
    """
    services = {n: t for n, t in units.items() if n.endswith(".service")}
    writes = "".join(
        f'printf %s {shlex.quote(base64.b64encode(text.encode()).decode())} | base64 -d > "$d"/units/{shlex.quote(n)}\n'
        for n, text in sorted(services.items())
    )
    paths = " ".join(f'"$d"/units/{shlex.quote(n)}' for n in sorted(services))
    return (
        # the units under /run (root's); systemd-analyze --offline makes its own /tmp/systemd-temporary-* (root, 0700)
        "d=$(mktemp -d /run/litellm-unit-gate.XXXXXX) && trap 'rm -rf \"$d\"' EXIT && "
        'mkdir -m 0700 "$d"/units "$d"/runtime && {\n'
        f"{writes}"
        "systemd-analyze --version | head -n 1\n"
        f'XDG_RUNTIME_DIR="$d"/runtime SYSTEMD_COLORS=0 timeout {timeout} systemd-analyze security '
        "--offline=yes "
        f"--user --no-pager {paths} 2>&1; echo unit-gate-exit $?\n"
        "}"
    )
