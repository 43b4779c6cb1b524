"""The host's venv, installed from the lock of its pins for the host's Python (py-01), audited after converge.

The lock is chosen by the version of the host's system interpreter (``litellm_python``), which
the host snapshot reads (``Snapshot.python_at``: root's own interpreter is not run; another is run
only when it is root's alone). A host whose Python has no lock, or whose ``litellm_python`` is
not root's alone, is refused here, while pyinfra prepares, so no host has changed yet.

The venv, its lock and SBOM are root's (``layout.CODE``): root installs the venv from the
hash-locked closure, wheels only and without dependencies resolved on the host
(``--only-binary :all: --require-hashes --no-deps``), so no package code runs at install and
the account can change nothing of it.

One venv per lock (``render.venv_target``: ``layout.VENVS/NAME``), built beside the running one; the units
and tools name the link ``layout.VENV``. ``apply`` builds it (py-01), ``switch`` points the link at it once
the database is converged (py-03: held when the schema failed, so the running proxy keeps its venv), and
``prune`` removes the venvs neither running nor kept for a rollback, after the units (docs/venv-switch.md).
"""

import pathlib
from collections.abc import Mapping
from typing import Any

from pyinfra import host
from pyinfra.api.exceptions import DeployError

from litellm_runner import layout
from litellm_runner.gates import GateError
from litellm_runner.gates import cve as cve_gate
from litellm_runner.pyinfra_ext import snapshot
from litellm_runner.pyinfra_ext.operations import (
    file,
    system_packages,
    venv_audit,
    venv_drift,
    venv_prune,
    venv_requirements,
    venv_switch,
)
from litellm_runner.render import venv, venv_target
from litellm_runner.resources import locate


def cve_findings(installed: dict[str, str]) -> str | None:
    """The CVE gate on the INSTALLED packages ``{name: version}`` (one pip-audit per distinct venv per run):
    its refusal text, or None (``venv_audit`` fails the host with it)."""
    try:
        cve_gate.audit_installed(installed)
    except GateError as exc:
        return exc.message
    return None


def refuse_untrusted(found: Mapping[str, Any]) -> None:
    """Raise DeployError when the host snapshot refused to run litellm_python (FOUND: ``Snapshot.python_at``)."""
    if found.get("refused"):
        raise DeployError(
            f"refusing to touch any host: host {host.name}: litellm_python {found['refused']}: expected a "
            "system interpreter that only root can write, such as /usr/bin/python3"
        )


def lock_for(pins: pathlib.Path, python: str, version: str | None) -> pathlib.Path:
    """The lock of PINS for Python VERSION; raises DeployError saying what to do when there is none."""
    locks = cve_gate.lock_paths(pins)
    if version in locks:
        return locks[version]
    raise DeployError(
        f"refusing to touch any host: host {host.name}: {python} is "
        f"{'Python ' + version if version else 'missing'}, and {pins} "
        f"is locked for Python {', '.join(locks) or '(no lock)'} only: expected a lock "
        f"{cve_gate.lock_path(pins, version or 'X.Y')} (add the version to PYTHONS in "
        "litellm_runner/gates/cve.py and run `make lock`), or litellm_python set to a locked interpreter"
    )


MIGRATIONS = "litellm-proxy-extras"  # the distribution that ships LiteLLM's migrations (docs/migrations.md)


def running(d) -> dict | None:
    """``{"venv": path, "packages": {name: version}}`` of the venv the services run now (where ``layout.VENV``
    leads), when it is not the one this run's lock wants; None when it is, or when there is none."""
    link = snapshot.current().link_at(venv(d))
    if not link.get("venv") or link["venv"] == venv_target(d):
        return None
    return {"venv": link["venv"], "packages": link.get("packages")}


def migrations_change() -> bool:
    """Whether this run installs another litellm-proxy-extras than the running venv holds (a new litellm pin,
    or a venv made anew): the database's schema is then planned again after the venv, from the migrations it
    installs (tasks/database.py). Read from the host snapshot, while preparing, like the venv's own operation."""
    d = host.data
    snap = snapshot.current()
    found = snap.python_at(d.litellm_python)
    lock = lock_for(locate(d.litellm_venv_requirements), d.litellm_python, found["version"])
    now = running(d)
    packages = now["packages"] if now else snap.venv_at(venv_target(d))["packages"]
    locked = cve_gate.locked_versions(lock.read_text())
    return any(name == MIGRATIONS for name, _, _ in venv_drift(locked, packages))


def apply():
    d = host.data
    pins = locate(d.litellm_venv_requirements)
    found = snapshot.current().python_at(d.litellm_python)
    refuse_untrusted(found)
    version = found["version"]
    lock = lock_for(pins, d.litellm_python, version)
    system_packages(
        name="System packages | py-00",
        packages=list(d.litellm_system_packages),
        _timeout=900,
    )
    text = lock.read_text()
    path = layout.LOCK
    file(f"Venv lock {path} | py-01", dest=path, content=text, user="root", group="root", mode="0644")
    # what the venv holds, as CycloneDX, next to the lock it comes from (made from the lock on the control machine)
    sbom = layout.SBOM
    file(f"Venv SBOM {sbom} | py-01", dest=sbom, content=cve_gate.sbom(lock), user="root", group="root", mode="0644")
    target = venv_target(d)  # beside the running venv when the lock changed; the name stays the link's
    ops = [
        venv_requirements(
            name=f"Venv {venv(d)} satisfies its pins | py-01",  # its lock, exactly
            venv=target,
            running=running(d),
            locked=cve_gate.locked_versions(text),
            lock_path=path,
            python=d.litellm_python,
            python_version=version,
            user="root",
            group="root",
            _timeout=1800,
        )
    ]
    venv_audit(
        name=f"Venv {venv(d)} has no known vulnerability | py-01",
        venv_path=target,
        locked=cve_gate.locked_versions(text),
        audit=cve_findings,
        _timeout=600,
    )
    return ops


def switch(hold: list):
    """After the database (its schema from the new venv's migrations): ``layout.VENV`` switched to this run's venv,
    unless an operation of HOLD failed. Returns the operation (its change restarts the services)."""
    d = host.data
    return venv_switch(
        name=f"Venv {venv(d)} leads to the venv of its lock | py-03",
        link=venv(d),
        venv=venv_target(d),
        hold_when=hold,
    )


def prune(switched) -> None:
    """After the units (the proxy ready on the new venv): the venvs neither running nor the previous one removed."""
    d = host.data
    venv_prune(
        name=f"No venv beside {venv(d)} but the running and the previous one | py-03",
        link=venv(d),
        venv=venv_target(d),
        switch=switched,
        _timeout=300,
    )
