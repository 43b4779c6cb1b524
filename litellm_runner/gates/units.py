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
    lines = host.get_fact(HostExposure, units=render_units(data))                        # on the host
    check_host(host.name, lines, render_units(data), threshold) -> scores, or UnitGateError naming its systemd
    refuse_on_host(host, render_units(data), threshold)    # both, in a task: scores, or exit 1 (nothing changed)
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

from pyinfra.api import FactBase

from litellm_runner.gates import cache

TIMEOUT = 60  # seconds for one systemd-analyze run
OVERALL = re.compile(r"Overall exposure level for (\S+): ([0-9.]+)")
VERSION = re.compile(r"^systemd (\d+)\b")
STATUS = re.compile(r"^unit-gate-exit (\d+)$")


class UnitGateError(RuntimeError):
    """A unit is more exposed than the threshold, or systemd-analyze could not score it."""


def _services(units: dict[str, str]) -> dict[str, str]:
    return {n: t for n, t in units.items() if n.endswith(".service")}


def _scores(services: dict[str, str], stdout: str, how: str, tail: str) -> dict[str, float]:
    """``{unit: exposure}`` from systemd-analyze's output; UnitGateError (HOW it ran, TAIL of its output) if one
    is missing."""
    scores = {name: float(score) for name, score in OVERALL.findall(stdout)}
    missing = sorted(set(services) - set(scores))
    if missing:
        raise UnitGateError(
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
    return _scores(services, proc.stdout, f"exit {proc.returncode}", proc.stderr)


def check_units(units: dict[str, str], threshold: float) -> dict[str, float]:
    """Exposure of every service in UNITS on this machine; UnitGateError naming each one above THRESHOLD."""
    return _over(exposure(units), threshold, "systemd-analyze security --offline --user")


def _over(scores: dict[str, float], threshold: float, scorer: str) -> dict[str, float]:
    over = {n: s for n, s in scores.items() if s > threshold}
    if over:
        raise UnitGateError(
            f"unit hardening gate: exposure above {threshold} ({scorer}):\n  "
            + "\n  ".join(f"{n}: {s}" for n, s in sorted(over.items()))
        )
    return scores


def host_script(units: dict[str, str]) -> str:
    """POSIX sh that scores the services of UNITS with the host's own systemd-analyze.

    Written for root on the host: the units go, base64-decoded (no text of
    theirs reaches the shell), into a fresh ``mktemp -d`` directory under /run (0700,
    root's), which is removed afterwards; nothing on the host changes. Prints
    ``systemd-analyze --version``, the scores, and ``unit-gate-exit N``; it
    always exits 0 so the fact sees a failure of systemd-analyze as text.
    """
    services = _services(units)
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
        f'XDG_RUNTIME_DIR="$d"/runtime SYSTEMD_COLORS=0 timeout {TIMEOUT} systemd-analyze security '
        "--offline=yes "
        f"--user --no-pager {paths} 2>&1; echo unit-gate-exit $?\n"
        "}"
    )


def parse_host(services: list[str], lines: list[str]) -> tuple[int | None, dict[str, float]]:
    """(systemd version, ``{service: exposure}``) from ``host_script``'s LINES; UnitGateError if one is unscored."""
    version = next((int(m.group(1)) for m in map(VERSION.match, lines) if m), None)
    status = next((int(m.group(1)) for m in map(STATUS.match, lines) if m), None)
    text = "\n".join(lines)
    return version, _scores(dict.fromkeys(services, ""), text, f"systemd {version or 'unknown'}, exit {status}", text)


class HostExposure(FactBase):
    """``host_script``'s output lines: the services of UNITS scored by the host's own systemd-analyze."""

    def command(self, units):
        return host_script(units)

    def process(self, output):
        return list(output)


def check_host(host_name: str, lines: list[str], units: dict[str, str], threshold: float) -> dict[str, float]:
    """The exposure of every service of UNITS on HOST_NAME (LINES: its HostExposure), checked against THRESHOLD.

    UnitGateError names the host, its systemd version and every service above
    the threshold, or what kept the host's systemd-analyze from scoring.
    """
    try:
        version, scores = parse_host(sorted(_services(units)), lines)
    except UnitGateError as exc:
        raise UnitGateError(f"host {host_name}: {exc}") from None
    return _over(scores, threshold, f"host {host_name}, systemd {version}: systemd-analyze security --offline --user")


def host_lines(host, units: dict[str, str], systemd: str | None = None) -> list[str]:
    """HOST's ``HostExposure`` of UNITS, from the gate cache when this systemd scored these units before."""
    key = cache.key("host-units", json.dumps(units, sort_keys=True), systemd) if systemd else None
    return cache.cached(key, lambda: list(host.get_fact(HostExposure, units=units, _timeout=TIMEOUT + 60) or [])) or []


def refuse_on_host(host, units: dict[str, str], threshold: float, systemd: str | None = None) -> dict[str, float]:
    """The gate for pyinfra's HOST, called while it prepares: its scores, or exit 1 before any operation runs.

    The scores are the ``HostExposure`` fact (one remote command), kept in the
    gate cache by the rendered UNITS and the host's SYSTEMD version (the host
    snapshot's ``systemctl --version``): a host whose units and systemd were
    scored before costs no command. Without SYSTEMD nothing is cached. The line
    printed names the host, its systemd, each service above THRESHOLD and the
    setting to change.
    """
    lines = host_lines(host, units, systemd)
    try:
        return check_host(host.name, lines or [], units, threshold)
    except UnitGateError as exc:
        print(
            f"refusing to touch any host: litellm_unit_exposure_max = {threshold!r}: "
            f"{str(exc).replace(chr(10), chr(10) + '    ')}\n    expected every rendered service "
            f"(litellm_services, litellm_timers) at or below {threshold} as this host's systemd scores it",
            file=sys.stderr,
        )
        sys.exit(1)
