"""Facts this deploy needs and pyinfra does not ship.

Each fact is a class with ``command()`` and ``process()``; nothing else in the
runner reads a host. Commands never change the host.
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase


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

    Returns ``{unit: {"enabled": bool, "active": bool, "load": str, "next_elapse": str}}``
    for every unit asked about; a unit unknown to the manager, or a manager
    that does not run, gives ``enabled: False, active: False, load: "not-found"``.

    .. code:: python

        host.get_fact(UserUnits, user="litellm", units=["litellm.service"])
    """

    PROPS = "Id,LoadState,UnitFileState,ActiveState,NextElapseUSecRealtime"

    def command(self, user, units):
        names = " ".join(shlex.quote(u) for u in units)
        return (
            f"systemctl --user --machine={shlex.quote(user)}@.host show "
            f"--property={self.PROPS} {names} 2>/dev/null || true"
        )

    def process(self, output):
        units, current = {}, {}
        for line in list(output) + [""]:
            line = line.strip()
            if not line:
                if "Id" in current:
                    units[current["Id"]] = {
                        "enabled": current.get("UnitFileState") in ("enabled", "enabled-runtime"),
                        "active": current.get("ActiveState") in ("active", "activating", "reloading"),
                        "load": current.get("LoadState", "not-found"),
                        "next_elapse": current.get("NextElapseUSecRealtime", ""),
                    }
                current = {}
                continue
            key, _, value = line.partition("=")
            current[key] = value
        return units


class InstalledPackages(FactBase):
    """Distributions installed in a venv: ``{normalized name: version}``.

    Reads importlib.metadata with the venv's own interpreter (faster than pip).
    Returns ``None`` when the venv has no interpreter.
    """

    SCRIPT = (
        "import importlib.metadata as m, json, re;"
        "print(json.dumps({re.sub(r'[-_.]+','-',d.metadata['Name']).lower(): d.version "
        "for d in m.distributions() if d.metadata['Name']}))"
    )

    def command(self, venv):
        py = shlex.quote(f"{venv}/bin/python")
        return f"if [ -x {py} ]; then {py} -c {shlex.quote(self.SCRIPT)}; else echo null; fi"

    def process(self, output):
        return json.loads("\n".join(output))


class PathState(FactBase):
    """Mode, owner, group and sha256 of a path in one command.

    Returns ``None`` when PATH does not exist, else
    ``{"type": "file"|"directory"|..., "mode": "0750", "user": str, "group": str, "sha256": str|None}``.
    """

    def command(self, path):
        q = shlex.quote(path)
        return (
            f"if [ -e {q} ]; then stat -c '%F|%a|%U|%G' {q}; "
            f"if [ -f {q} ]; then sha256sum {q} | cut -d' ' -f1; fi; else echo missing; fi"
        )

    def process(self, output):
        if output[0].strip() == "missing":
            return None
        kind, mode, user, group = output[0].strip().split("|")
        return {
            "type": "directory" if kind == "directory" else ("file" if "file" in kind else kind),
            "mode": mode.zfill(4),
            "user": user,
            "group": group,
            "sha256": output[1].strip() if len(output) > 1 else None,
        }


class HostSnapshot(FactBase):
    """Everything the deploy decides on, read in one command.

    pyinfra caches no facts, so asking ``PathState`` for each of ~30 paths, then
    ``UserUnits`` for each unit, costs a round trip each. This fact answers all
    of them at once; ``litellm_runner.snapshot`` serves the individual
    questions from it. Returns::

        {"paths": {path: PathState's answer (None when missing)},
         "linger": bool, "units": UserUnits' answer, "venv": InstalledPackages' answer}
    """

    def command(self, paths, user, units, venv):
        quoted = " ".join(shlex.quote(p) for p in paths)
        return " ; ".join([
            "echo '##paths'", f"stat -c '%F|%a|%U|%G|%n' -- {quoted} 2>/dev/null",
            "echo '##sha256'", f"sha256sum -- {quoted} 2>/dev/null",
            "echo '##linger'", Linger().command(user),
            "echo '##units'", UserUnits().command(user, units),
            "echo '##venv'", InstalledPackages().command(venv),
        ])

    def process(self, output):
        sections, current = {}, None
        for line in output:
            if line.startswith("##"):
                current = sections.setdefault(line[2:].strip(), [])
            elif current is not None:
                current.append(line)
        paths = {}
        for line in sections.get("paths", []):
            kind, mode, user, group, path = line.strip().split("|", 4)
            paths[path] = PathState().process([f"{kind}|{mode}|{user}|{group}"])
        for line in sections.get("sha256", []):
            digest, _, path = line.strip().partition("  ")
            if path in paths:
                paths[path]["sha256"] = digest
        return {"paths": paths,
                "linger": Linger().process(sections.get("linger") or ["off"]),
                "units": UserUnits().process(sections.get("units", [])),
                "venv": InstalledPackages().process(sections.get("venv") or ["null"])}
