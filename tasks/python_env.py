"""The host's venv, installed from the lock of its pins for the host's Python (py-01), audited after converge.

The lock is chosen by the version of the host's system interpreter
(``litellm_python``, asked apart from the host snapshot). A host whose Python
has no lock is refused here, while pyinfra prepares, so no host has changed yet.

Returns the operations whose change must restart the services that run from it.
"""

import pathlib
import re
import shlex
import sys

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import apt

from litellm_runner.gates import cve as cve_gate
from litellm_runner.pyinfra_ext.operations import file, venv_audit, venv_requirements
from litellm_runner.render import venv
from litellm_runner.resources import locate


class PythonVersion(FactBase):
    """``"X.Y"`` of the interpreter PYTHON, run isolated (``-I``: no account's files on its path); None if missing.

    Asked with the system interpreter (``litellm_python``), never the venv's.
    """

    def command(self, python):
        py = shlex.quote(python)
        return f"if [ -x {py} ]; then {py} -I -c 'import sys;print(sys.version_info[:2])'; else echo none; fi"

    def process(self, output):
        numbers = re.findall(r"\d+", output[0]) if output else []
        return f"{numbers[0]}.{numbers[1]}" if len(numbers) >= 2 else None


def lock_for(pins: pathlib.Path, python: str, version: str | None) -> pathlib.Path:
    """The lock of PINS for Python VERSION; exits 1 with what to do when there is none."""
    locks = cve_gate.lock_paths(pins)
    if version in locks:
        return locks[version]
    print(
        f"refusing to touch any host: host {host.name}: {python} is "
        f"{'Python ' + version if version else 'missing'}, and {pins} "
        f"is locked for Python {', '.join(locks) or '(no lock)'} only: expected a lock "
        f"{cve_gate.lock_path(pins, version or 'X.Y')} (add the version to PYTHONS in "
        "litellm_runner/gates/cve.py and run `make lock`), or litellm_python set to a locked interpreter",
        file=sys.stderr,
    )
    sys.exit(1)


def apply():
    d = host.data
    pins = locate(d.litellm_venv_requirements)
    version = host.get_fact(PythonVersion, python=d.litellm_python, _timeout=60)
    lock = lock_for(pins, d.litellm_python, version)
    apt.packages(
        name="System packages | py-00",
        packages=list(d.litellm_system_packages),
        _timeout=900,
    )
    text = lock.read_text()
    path = f"{d.litellm_root}/state/venv-requirements.txt"
    file(
        f"Venv lock {path} | py-01",
        dest=path,
        content=text,
        user=d.litellm_user,
        group=d.litellm_group,
        mode="0640",
    )
    # what the venv holds, as CycloneDX, next to the lock it comes from (made from the lock on the control machine)
    sbom = f"{d.litellm_root}/state/venv-sbom.cdx.json"
    file(
        f"Venv SBOM {sbom} | py-01",
        dest=sbom,
        content=cve_gate.sbom(lock),
        user=d.litellm_user,
        group=d.litellm_group,
        mode="0640",
    )
    ops = [
        venv_requirements(
            name=f"Venv {venv(d)} satisfies its pins | py-01",  # its lock, exactly
            venv=venv(d),
            lock_text=text,
            lock_path=path,
            python=d.litellm_python,
            python_version=version,
            user=d.litellm_user,
            group=d.litellm_group,
            _timeout=1800,
        )
    ]
    venv_audit(
        name=f"Venv {venv(d)} has no known vulnerability | py-01", venv_path=venv(d), lock_text=text, _timeout=600
    )
    return ops
