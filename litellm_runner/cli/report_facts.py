"""What the remediation report reads on each host that the drift check does not (issue #27, item 3).

A pyinfra operations file with no operation: ``litellm-runner report`` runs it after deploy.py in
the check's own dry run (``pyinfra inventory.py deploy.py report_facts.py --dry``), so one
connection per host answers both. Each part is read alone, bounded, and fails alone (an
``{"error": ...}`` in its place); every string is redacted with the host's known secrets and
escaped (``litellm_runner.shown.safe``) before it is kept in the run's Run (``collected``), from where the
dry run writes them on its one channel (``litellm_runner.cli.dryrun``, the host's ``checked`` record):

- ``quarantine``: root's quarantine folders and their manifests (``hostside.quarantine_manifests``)
- ``sbom``: the components of the venv's SBOM (``layout.SBOM``), ``{name: version}``
- ``status``: ``litellm-status`` run as the service account, one ``{check, ok, detail}`` per line
- ``readiness``: one GET of the proxy's ``/health/readiness`` on loopback
- ``units``: the rendered services' exposure as the host's own ``systemd-analyze`` scores them
  (the unit gate's answer, from its cache when the gate just scored them)
"""

from __future__ import annotations

import json
import shlex

from pyinfra import host
from pyinfra.api import FactBase, deploy

from litellm_runner import layout, shown
from litellm_runner.gates import units as unit_gate
from litellm_runner.pyinfra_ext import drift, snapshot
from litellm_runner.pyinfra_ext.facts import FileText, hostside
from litellm_runner.render import render_units
from litellm_runner.run import state as run_state
from litellm_runner.settings import DEFAULTS
from litellm_runner.tasks.units import exposure_lines

STATUS_TIMEOUT = 90  # seconds for litellm-status (its own checks time out after 5-10 s each)
STATUS_LINES = 100


class QuarantineManifests(FactBase):
    """Root's quarantine: ``{"folders": [manifest + "folder"], "more": N}`` (``hostside.quarantine_manifests``)."""

    def command(self):
        return hostside("quarantine_manifests", {})

    def process(self, output):
        return json.loads("\n".join(output))


class Readiness(FactBase):
    """One GET of URL from the host: ``{"url", "status": HTTP status or None, "status"/"db" of the answer}``."""

    def command(self, url):
        return hostside("readiness", {"url": url, "timeout": 10})

    def process(self, output):
        return json.loads("\n".join(output))


class StatusChecks(FactBase):
    """``litellm-status`` as USER (the timers' tool, in root's venv): ``{"exit": N, "checks": [...]}``."""

    def command(self, user, root):
        uid = f"$(id -u {shlex.quote(user)})"
        return (
            f"cd / && out=$(timeout {STATUS_TIMEOUT} runuser -u {shlex.quote(user)} -- env "
            f"LITELLM_ROOT={shlex.quote(root)} XDG_RUNTIME_DIR=/run/user/{uid} "
            f"{layout.VENV}/bin/python {layout.BIN}/litellm-status 2>&1); code=$?; "
            f'printf "%s\\n" "$out" | head -n {STATUS_LINES}; echo litellm-status-exit $code'
        )

    def process(self, output):
        return parse_status(list(output))


def parse_status(lines: list[str]) -> dict:
    """litellm-status's lines (``OK  name: detail`` / ``FAIL name: detail``, ``status: ...``, then our exit line)."""
    checks, code = [], None
    for line in lines:
        word, _, rest = line.partition(" ")
        name, _, detail = rest.strip().partition(": ")
        if word in ("OK", "FAIL") and name:
            checks.append({"check": name, "ok": word == "OK", "detail": detail})
        elif line.startswith("litellm-status-exit "):
            code = int(line.split()[1]) if line.split()[1].isdigit() else None
    return {"exit": code, "checks": checks}


def sbom_components(text: str | None) -> dict[str, str]:
    """``{name: version}`` of a CycloneDX SBOM's components; ValueError when TEXT is none or not one."""
    if text is None:
        raise ValueError(f"{layout.SBOM}: absent or not a single regular file")
    doc = json.loads(text)
    return {str(c["name"]): str(c["version"]) for c in doc.get("components", []) if "name" in c and "version" in c}


def _part(read):
    try:
        return read()
    except Exception as exc:  # each part fails alone; pyinfra names the command it ran in its own log
        return {"error": f"{exc.__class__.__name__}: {exc}"[:500]}


def _exposure() -> dict:
    units = render_units(host.data)
    lines = exposure_lines(host, units, snapshot.current().systemd)
    version, scores = unit_gate.parse_host(sorted(n for n in units if n.endswith(".service")), lines)
    return {"systemd": version, "threshold": host.data.litellm_unit_exposure_max, "scores": scores}


@deploy("Remediation report facts", data_defaults=DEFAULTS)
def collect() -> None:
    """Read this host's report parts (module docstring) and keep them, redacted and escaped."""
    d = host.data
    found = run_state.of(host.state).report_facts
    once = {"_ignore_errors": True}  # a part that fails is that part's error, never the host's
    url = f"http://127.0.0.1:{d.litellm_port}/health/readiness"
    parts = {
        "quarantine": lambda: host.get_fact(QuarantineManifests, _timeout=60, **once),
        "sbom": lambda: sbom_components(host.get_fact(FileText, path=layout.SBOM, _timeout=60, **once)),
        "status": lambda: host.get_fact(StatusChecks, user=d.litellm_user, root=d.litellm_root, _timeout=120, **once),
        "readiness": lambda: host.get_fact(Readiness, url=url, _timeout=30, **once),
        "units": _exposure,
    }
    found[host.name] = shown.safe({name: _part(read) for name, read in parts.items()}, drift.known_secrets())


def collected(state) -> dict[str, dict]:
    """The report parts STATE's run read so far, by host name (redacted and escaped)."""
    return run_state.of(state).report_facts


if "__spec__" not in globals():  # pyinfra runs this file as an operations file (exec'd, not imported)
    from litellm_runner.cli.report_facts import collect as _collect

    _collect()  # the imported module's: one record for every host
