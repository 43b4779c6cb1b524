"""The host's venv with its pinned requirements (py-01), audited after converge.

Returns the operations whose change must restart the services that run from it.
"""

import pathlib

from pyinfra import host
from pyinfra.operations import apt

from litellm_runner.operations import file, venv_audit, venv_requirements
from litellm_runner.render import venv

REPO = pathlib.Path(__file__).resolve().parent.parent


def apply():
    d = host.data
    apt.packages(
        name="System packages | py-00",
        packages=list(d.litellm_system_packages),
        _timeout=900,
    )
    text = (REPO / d.litellm_venv_requirements).read_text()
    path = f"{d.litellm_root}/state/venv-requirements.txt"
    file(
        f"Pins file {path} | py-01",
        dest=path, content=text, user=d.litellm_user, group=d.litellm_group, mode="0640",
    )
    ops = [venv_requirements(
        name=f"Venv {venv(d)} satisfies its pins | py-01",
        venv=venv(d), requirements_text=text, requirements_path=path,
        python=d.litellm_python, user=d.litellm_user, _timeout=1800,
    )]
    venv_audit(name=f"Venv {venv(d)} has no known vulnerability | py-01",
               venv_path=venv(d), requirements_text=text, _timeout=600)
    return ops
