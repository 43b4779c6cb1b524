"""CVE gate: a known-vulnerable pin fails the deploy, naming advisory ids and fixed versions.

Runs the real pip-audit. Offline (the default, and what air-gapped sites use)
it serves files/advisories/osv.json on a loopback OSV endpoint (osv_server)
and runs::

    pip-audit --no-deps --disable-pip -r PINNED -s osv --osv-url http://127.0.0.1:PORT/v1/query --format json

With ``LITELLM_CVE_GATE=online`` the same command runs without ``-s/--osv-url``,
so pip-audit's default service (PyPI) answers.

``--disable-pip`` needs exact pins, so a requirements file is pinned first:
``name==V`` stays, and a lower-bounded specifier (``urllib3>=2.7.0``,
``psycopg[binary]>=3.2,<4``, ``foo~=1.4``) is audited at the LOWEST version it
admits, the worst case an install may pick. A specifier without an inclusive
lower bound (``redis``, ``foo<3``, ``foo>1``) is refused: the gate cannot know
what would be installed.

Waivers live in files/advisories/ignored.yaml (``id``, ``reason``, ``expires``):
an expired or incomplete waiver is itself an error.

    audit_requirements("files/litellm-venv-requirements.txt")   # before install
    audit_installed({"urllib3": "2.5.0", ...})                  # the venv after converge (pip freeze)
    python -m litellm_runner.cve_gate FILE                      # exit 0 clean, 1 refused
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from . import osv_server

REPO = pathlib.Path(__file__).resolve().parent.parent
IGNORED = REPO / "files" / "advisories" / "ignored.yaml"
TIMEOUT = 180  # seconds for one pip-audit run


class CveGateError(RuntimeError):
    """Known-vulnerable pins, or input the gate cannot audit; the message lists every problem."""


def _pip_audit() -> str:
    here = pathlib.Path(sys.executable).parent / "pip-audit"
    return str(here) if here.exists() else (shutil.which("pip-audit") or "pip-audit")


def lowest_admitted(req: Requirement) -> str | None:
    """The lowest version REQ admits by an ``==``, ``>=`` or ``~=`` bound; None when unbounded below."""
    lows = [Version(s.version) for s in req.specifier if s.operator in ("==", "===", ">=", "~=")
            and "*" not in s.version]
    candidates = [v for v in lows if req.specifier.contains(v, prereleases=True)]
    return str(min(candidates)) if candidates else None


def pin_requirements(path) -> dict[str, str]:
    """``{requirement name with extras: version}`` for every line of PATH; CveGateError if one can't be pinned."""
    pins, problems = {}, []
    for number, raw in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            problems.append(f"{path}:{number}: {line!r} is not a requirement ({exc}): expected NAME==VERSION or NAME>=VERSION")
            continue
        if req.url:
            problems.append(f"{path}:{number}: {req.name} comes from a URL: expected a PyPI pin NAME==VERSION")
            continue
        version = lowest_admitted(req)
        if version is None:
            problems.append(f"{path}:{number}: {line!r} has no lower bound, so the gate cannot know what "
                            f"would be installed: expected NAME==VERSION or NAME>=VERSION")
            continue
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        pins[f"{req.name}{extras}"] = version
    if problems:
        raise CveGateError("CVE gate cannot audit the requirements:\n  " + "\n  ".join(problems))
    return pins


def load_ignored(path=IGNORED, today: datetime.date | None = None) -> set[str]:
    """The advisory ids waived by PATH; CveGateError on a missing field or an expired waiver."""
    today = today or datetime.date.today()
    entries = (yaml.safe_load(pathlib.Path(path).read_text()) or []) if pathlib.Path(path).exists() else []
    problems, ids = [], set()
    if not isinstance(entries, list):
        raise CveGateError(f"{path}: expected a list of {{id, reason, expires}} entries")
    for i, entry in enumerate(entries):
        entry = entry if isinstance(entry, dict) else {}
        missing = [f for f in ("id", "reason", "expires") if not entry.get(f)]
        if missing:
            problems.append(f"{path}: entry {i}: missing {', '.join(missing)}: expected id, reason and expires (YYYY-MM-DD)")
            continue
        expires = entry["expires"]
        if isinstance(expires, str):
            try:
                expires = datetime.date.fromisoformat(expires)
            except ValueError:
                problems.append(f"{path}: entry {i} ({entry['id']}): expires = {entry['expires']!r}: expected YYYY-MM-DD")
                continue
        if not isinstance(expires, datetime.date):
            problems.append(f"{path}: entry {i} ({entry['id']}): expires = {expires!r}: expected YYYY-MM-DD")
        elif expires < today:
            problems.append(f"{path}: entry {i} ({entry['id']}): waiver expired on {expires}: renew it with a reason or fix the pin")
        else:
            ids.add(str(entry["id"]))
    if problems:
        raise CveGateError("CVE gate waivers are invalid:\n  " + "\n  ".join(problems))
    return ids


def _run(pins: dict[str, str], online: bool, advisories) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="cve-gate-") as tmp:
        req = pathlib.Path(tmp) / "pinned.txt"
        req.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
        base = [_pip_audit(), "--no-deps", "--disable-pip", "-r", str(req), "--format", "json",
                "--progress-spinner", "off", "--cache-dir", str(pathlib.Path(tmp) / "cache")]

        def audit(extra):
            try:
                proc = subprocess.run(base + extra, capture_output=True, text=True, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                raise CveGateError(f"pip-audit did not answer within {TIMEOUT}s") from None
            # exit 1 means "vulnerabilities found"; the JSON on stdout says which
            try:
                return json.loads(proc.stdout)["dependencies"]
            except (ValueError, KeyError):
                raise CveGateError(f"pip-audit failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}") from None

        if online:
            return audit([])
        with osv_server.serve(advisories) as url:
            return audit(["-s", "osv", "--osv-url", url])


_runs: dict[tuple, list[dict]] = {}  # one pip-audit per distinct (pins, service, advisory file) per process
_runs_lock = threading.Lock()  # a gevent lock under pyinfra: hosts prepared at once wait for the one run


def _run_once(pins: dict[str, str], online: bool, advisories) -> list[dict]:
    """``_run``, remembered: a fleet of identical hosts (and each run's pins file) costs one pip-audit."""
    path = pathlib.Path(advisories)
    stamp = path.stat().st_mtime_ns if path.exists() else None
    key = (frozenset(pins.items()), online, str(path), stamp)
    with _runs_lock:
        if key not in _runs:
            _runs[key] = _run(pins, online, advisories)
    return _runs[key]


def _audit(pins, what, advisories=None, ignored=IGNORED) -> list[dict]:
    online = os.environ.get("LITELLM_CVE_GATE", "offline") == "online"
    waived = load_ignored(ignored)
    found = []
    for dep in _run_once(pins, online, advisories or osv_server.ADVISORIES):
        for vuln in dep.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            if waived.intersection(ids):
                continue
            found.append({"name": dep["name"], "version": dep["version"], "id": vuln["id"],
                          "aliases": vuln.get("aliases", []), "fix_versions": vuln.get("fix_versions", []),
                          "description": vuln.get("description", "")})
    if found:
        lines = [f"{v['name']} {v['version']}: {v['id']} "
                 + (f"(fixed in {', '.join(v['fix_versions'])})" if v["fix_versions"]
                    else f"(no fixed version: {v['description'][:120]})")
                 for v in found]
        mode = "online (pip-audit's default service)" if online else "offline (files/advisories/osv.json)"
        raise CveGateError(f"CVE gate refuses {what}, known-vulnerable pins [{mode}]:\n  " + "\n  ".join(lines))
    return found


def audit_requirements(path, advisories=None, ignored=IGNORED) -> list[dict]:
    """Audit a requirements file before install (lowest admitted versions); CveGateError on a known vulnerability.

    Returns the (empty) list of unwaived vulnerabilities when the file passes.
    """
    return _audit(pin_requirements(path), str(path), advisories, ignored)


def audit_installed(freeze: dict[str, str], advisories=None, ignored=IGNORED) -> list[dict]:
    """Audit an installed venv (``{name: version}``, e.g. from ``pip list --format json``) after converge."""
    pins = {name: version for name, version in freeze.items()}
    return _audit(pins, "the installed venv", advisories, ignored)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m litellm_runner.cve_gate REQUIREMENTS.txt", file=sys.stderr)
        return 2
    try:
        audit_requirements(argv[0])
    except CveGateError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"CVE gate: {argv[0]} has no known vulnerability")
    return 0


if __name__ == "__main__":
    sys.exit(main())
