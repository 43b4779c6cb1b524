"""The host's venv, installed from the lock of its pins for the host's Python (py-01), audited after converge.

The lock is chosen by the version of the host's system interpreter (``litellm_python``), which
the host snapshot reads (``Snapshot.python_at``: root's own interpreter is not run; another is run
only when it is root's alone). A host whose Python has no lock, or whose ``litellm_python`` is
not root's alone, is refused here, while pyinfra prepares, so no host has changed yet.

The venv, its lock and SBOM are root's (``layout.CODE``): root installs the venv from the
hash-locked closure, wheels only and without dependencies resolved on the host
(``--only-binary :all: --require-hashes --no-deps``), so no package code runs at install and
the account can change nothing of it.

Returns the operations whose change must restart the services that run from it.
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
from litellm_runner.pyinfra_ext.operations import file, system_packages, venv_audit, venv_drift, venv_requirements
from litellm_runner.render import venv
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


def migrations_change() -> bool:
    """Whether this run installs another litellm-proxy-extras than the venv holds (a new litellm pin, or a venv
    made anew): the database's schema is then planned again after the venv, from the migrations it installs
    (tasks/database.py). Read from the host snapshot, while preparing, like the venv's own operation."""
    d = host.data
    snap = snapshot.current()
    found = snap.python_at(d.litellm_python)
    lock = lock_for(locate(d.litellm_venv_requirements), d.litellm_python, found["version"])
    state = snap.venv_at(venv(d))
    locked = cve_gate.locked_versions(lock.read_text())
    return any(name == MIGRATIONS for name, _, _ in venv_drift(locked, state["packages"]))


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
    ops = [
        venv_requirements(
            name=f"Venv {venv(d)} satisfies its pins | py-01",  # its lock, exactly
            venv=venv(d),
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
        venv_path=venv(d),
        locked=cve_gate.locked_versions(text),
        audit=cve_findings,
        _timeout=600,
    )
    return ops
