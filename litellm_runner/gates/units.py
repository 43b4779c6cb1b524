"""Unit hardening gate: every rendered user service scores at or below an exposure threshold.

Runs the real ``systemd-analyze security --offline=yes --user`` on the rendered
units, written to a temporary directory. ``--user`` scores them as the user
manager runs them (what the host does); it needs a runtime directory, so
XDG_RUNTIME_DIR points at a private temporary one (without it systemd 252
fails with "Failed to lookup RuntimeDirectory path"). Only ``.service`` units
are scored; timers have no sandboxing.

    check_units(render_units(data), threshold=6.8) -> {"litellm.service": 6.6, ...}
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import tempfile

TIMEOUT = 60  # seconds for one systemd-analyze run
OVERALL = re.compile(r"Overall exposure level for (\S+): ([0-9.]+)")


class UnitGateError(RuntimeError):
    """A unit is more exposed than the threshold, or systemd-analyze could not score it."""


def exposure(units: dict[str, str]) -> dict[str, float]:
    """``{unit name: exposure 0.0-10.0}`` for every ``.service`` of UNITS."""
    services = {n: t for n, t in units.items() if n.endswith(".service")}
    if not services:
        return {}
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        raise UnitGateError("systemd-analyze not found: install systemd (the gate does not guess scores)")
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
            raise UnitGateError(f"systemd-analyze security did not finish within {TIMEOUT}s") from None
    scores = {name: float(score) for name, score in OVERALL.findall(proc.stdout)}
    missing = sorted(set(services) - set(scores))
    if missing:
        raise UnitGateError(
            f"systemd-analyze security (exit {proc.returncode}) scored no exposure for "
            f"{', '.join(missing)}: {proc.stderr.strip()[-600:]}"
        )
    return scores


def check_units(units: dict[str, str], threshold: float) -> dict[str, float]:
    """Exposure of every service in UNITS; UnitGateError naming each one above THRESHOLD."""
    scores = exposure(units)
    over = {n: s for n, s in scores.items() if s > threshold}
    if over:
        raise UnitGateError(
            f"unit hardening gate: exposure above {threshold} (systemd-analyze security --offline --user):\n  "
            + "\n  ".join(f"{n}: {s}" for n, s in sorted(over.items()))
        )
    return scores
