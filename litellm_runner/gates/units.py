"""Unit hardening gate: every rendered user service scores at or below an exposure threshold.

The score of a unit depends on the systemd that scores it: each release adds
checks and weighs options anew (systemd 257 knows options 252 does not, and
scores the same unit differently). A threshold therefore only means something
against the systemd that runs the unit, so the gate scores each host's units
**on that host**, with its own ``systemd-analyze security --offline=yes --user``
(``HostExposure``, a read-only fact asked while pyinfra prepares, before any
operation runs). A per-version table of thresholds scored on the control
machine would not do: the control machine's systemd-analyze gives its own
version's score whatever the host runs.

``--user`` scores the units as the user manager runs them (what the host does);
it needs a runtime directory, so XDG_RUNTIME_DIR points at a private temporary
one (without it systemd 252 fails with "Failed to lookup RuntimeDirectory
path"). Only ``.service`` units are scored; timers have no sandboxing.

    check_units(render_units(data), threshold=6.8) -> {"litellm.service": 6.6, ...}   # control machine
    lines = host.get_fact(HostExposure, units=render_units(data))    # on the host (pyinfra_ext/facts.py)
    check_host(host.name, lines, render_units(data), threshold) -> scores, or GateError naming its systemd

tasks/units.py asks the fact (through the gate cache) and turns the GateError into pyinfra's
DeployError while pyinfra prepares, so nothing on any host has changed when it refuses.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import tempfile

from litellm_runner.gates import GateError

TIMEOUT = 60  # seconds for one systemd-analyze run
OVERALL = re.compile(r"Overall exposure level for (\S+): ([0-9.]+)")
VERSION = re.compile(r"^systemd (\d+)\b")
STATUS = re.compile(r"^unit-gate-exit (\d+)$")


def _services(units: dict[str, str]) -> dict[str, str]:
    return {n: t for n, t in units.items() if n.endswith(".service")}


def _scores(services: dict[str, str], stdout: str, how: str, tail: str) -> dict[str, float]:
    """``{unit: exposure}`` from systemd-analyze's output; GateError (HOW it ran, TAIL of its output) if one
    is missing."""
    scores = {name: float(score) for name, score in OVERALL.findall(stdout)}
    missing = sorted(set(services) - set(scores))
    if missing:
        raise GateError(
            f"systemd-analyze security ({how}) scored no exposure for {', '.join(missing)}: {tail.strip()[-600:]}"
        )
    return {n: scores[n] for n in services}


def exposure(units: dict[str, str]) -> dict[str, float]:
    """``{unit name: exposure 0.0-10.0}`` for every ``.service`` of UNITS, scored on this machine."""
    services = _services(units)
    if not services:
        return {}
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        raise GateError("systemd-analyze not found: install systemd (the gate does not guess scores)")
    with tempfile.TemporaryDirectory(prefix="unit-gate-") as tmp:
        unit_dir, runtime = pathlib.Path(tmp) / "units", pathlib.Path(tmp) / "runtime"
        unit_dir.mkdir()
        runtime.mkdir(mode=0o700)
        for name, text in services.items():
            (unit_dir / name).write_text(text)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""}
        cmd = [
            analyze,
            "security",
            "--offline=yes",
            "--user",
            "--no-pager",
            *[str(unit_dir / n) for n in sorted(services)],
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)
        except subprocess.TimeoutExpired:
            raise GateError(f"systemd-analyze security did not finish within {TIMEOUT}s") from None
    return _scores(services, proc.stdout, f"exit {proc.returncode}", proc.stderr)


def check_units(units: dict[str, str], threshold: float) -> dict[str, float]:
    """Exposure of every service in UNITS on this machine; GateError naming each one above THRESHOLD."""
    return _over(exposure(units), threshold, "systemd-analyze security --offline --user")


def _over(scores: dict[str, float], threshold: float, scorer: str) -> dict[str, float]:
    over = {n: s for n, s in scores.items() if s > threshold}
    if over:
        raise GateError(
            f"unit hardening gate: exposure above {threshold} ({scorer}):\n  "
            + "\n  ".join(f"{n}: {s}" for n, s in sorted(over.items()))
        )
    return scores


def parse_host(services: list[str], lines: list[str]) -> tuple[int | None, dict[str, float]]:
    """(systemd version, ``{service: exposure}``) from ``HostExposure``'s LINES; GateError if one is unscored."""
    version = next((int(m.group(1)) for m in map(VERSION.match, lines) if m), None)
    status = next((int(m.group(1)) for m in map(STATUS.match, lines) if m), None)
    text = "\n".join(lines)
    return version, _scores(dict.fromkeys(services, ""), text, f"systemd {version or 'unknown'}, exit {status}", text)


def check_host(host_name: str, lines: list[str], units: dict[str, str], threshold: float) -> dict[str, float]:
    """The exposure of every service of UNITS on HOST_NAME (LINES: its HostExposure), checked against THRESHOLD.

    GateError names the host, its systemd version and every service above
    the threshold, or what kept the host's systemd-analyze from scoring.
    """
    try:
        version, scores = parse_host(sorted(_services(units)), lines)
    except GateError as exc:
        raise GateError(f"host {host_name}: {exc}") from None
    return _over(scores, threshold, f"host {host_name}, systemd {version}: systemd-analyze security --offline --user")
