"""The host's venv with its pinned requirements (py-01), audited after converge.

Returns the operations whose change must restart the services that run from it.
"""

import logging
import pathlib
import threading

from pyinfra import host
from pyinfra.api import FunctionCommand, StringCommand, operation
from pyinfra.operations import apt

from litellm_runner import cve_gate, drift, snapshot
from litellm_runner.facts import InstalledPackages
from litellm_runner.operations import file, parse_requirements, unmet_requirements, venv_requirements
from litellm_runner.render import venv

REPO = pathlib.Path(__file__).resolve().parent.parent
logger = logging.getLogger("litellm_runner.cve_gate")
_audited: dict[frozenset, str | None] = {}  # installed set -> refusal text (None: clean), per run
_audit_lock = threading.Lock()  # a gevent lock under pyinfra (it monkey-patches threading)


def _audit(installed: dict[str, str]) -> str | None:
    """cve_gate.audit_installed on INSTALLED, once per distinct set per run: the refusal text or None."""
    key = frozenset(installed.items())
    with _audit_lock:  # hosts prepared at once share one pip-audit run per distinct venv
        if key not in _audited:
            try:
                cve_gate.audit_installed(installed)
                _audited[key] = None
            except cve_gate.CveGateError as exc:
                _audited[key] = str(exc)
    return _audited[key]


def _fail(state, host, text):
    host.log_styled(f"{text}\n  expected no known-vulnerable package in the venv: raise the pin in "
                    "litellm_venv_requirements, or waive the advisory in files/advisories/ignored.yaml",
                    fg="red", log_func=logger.error)
    return False


def _audit_now(state, host, venv_path):
    """At execution, after the venv operation ran: read what is installed now and audit it."""
    ok, output = host.run_shell_command(StringCommand(InstalledPackages().command(venv_path)))
    if not ok:
        return _fail(state, host, f"CVE gate: cannot read the packages of {venv_path}")
    installed = InstalledPackages().process(output.stdout_lines)
    text = _audit(installed or {})
    return _fail(state, host, text) if text else True


@operation()
def venv_audit(venv_path: str, requirements_text: str):
    """The installed venv at VENV_PATH has no known vulnerability (CVE gate, after converge).

    + venv_path: the host's venv
    + requirements_text: its pins (to know whether the venv operation before this one changes it)

    A venv the run does not change is audited now, while pyinfra prepares,
    from the installed set the host snapshot already read (no remote command,
    and a no-op: nothing is reported changed on a clean venv). A venv the run
    changes is audited at execution, right after the install, by a
    FunctionCommand that reads what is installed then (so --dry runs gain no
    remote command); in that run the operation counts as changed, like the
    install it follows. Known vulnerabilities fail the host's run with the
    advisory ids and fixed versions.
    """
    installed = snapshot.fact(InstalledPackages, venv=venv_path)
    if installed is not None and not unmet_requirements(parse_requirements(requirements_text), installed):
        text = _audit(installed)
        if text is None:
            host.noop(f"{venv_path}: no known vulnerability")
            return
        yield FunctionCommand(_fail, (text,), {})
        return
    drift.record("cve-gate", "venv not audited (it changes in this run)", "audited after install")
    yield FunctionCommand(_audit_now, (venv_path,), {})


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
