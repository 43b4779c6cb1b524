"""CVE gate: a known-vulnerable package in the host's venv lock fails the deploy, naming advisory ids and fixes.

The host's venv is installed from a lock (scripts/lock-venv, ``make lock``): the
full dependency closure of the human-edited pins (``litellm_venv_requirements``),
one file per Python version the hosts run (PYTHONS), each ``name==version`` with
its hashes, at ``lock_path(pins, python)``::

    files/litellm-venv-requirements.txt                      # the pins (edit these)
    files/locks/litellm-venv-requirements.py3.11.txt         # Debian 12
    files/locks/litellm-venv-requirements.py3.13.txt         # Debian 13

Before install, every lock of the pins must match them (``lock_problems``: made
from the current pins, by the sha256 in its header; every pin satisfied by its
locked version; every line hashed; no compromised release), and the real
pip-audit audits exactly what each lock installs. Offline (the default, and what
air-gapped sites use) it serves files/advisories/osv.json on a loopback OSV
endpoint (osv_server)::

    pip-audit -r LOCK --no-deps --disable-pip --require-hashes -s osv \
        --osv-url http://127.0.0.1:PORT/v1/query --format json

With ``LITELLM_CVE_GATE=online`` the same command runs without ``-s/--osv-url``,
so pip-audit's default service (PyPI) answers. Pins without a lock (or with a
stale one) are refused; their exact ``==`` pins are still audited, so the
refusal names what is known to be vulnerable.

Waivers live in files/advisories/ignored.yaml (``id``, ``reason``, ``expires``):
an expired or incomplete waiver is itself an error.

    audit_requirements("files/litellm-venv-requirements.txt")   # before install: its locks
    audit_installed({"urllib3": "2.5.0", ...})                  # the venv after converge
    python -m litellm_runner.gates.cve PINS                      # exit 0 clean, 1 refused
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import importlib.metadata
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from litellm_runner import exitcodes
from litellm_runner.gates import GateError, cache, osv_server
from litellm_runner.resources import shipped

IGNORED = shipped("files", "advisories", "ignored.yaml")
TIMEOUT = 180  # seconds for one pip-audit run
RELOCK = "run `litellm-runner lock` (`make lock` in a clone)"  # how a stale or missing lock is fixed
PYTHONS = ("3.11", "3.13")  # the hosts' interpreters: Debian 12, Debian 13
# PyPI releases that were compromised (credential stealer): never locked, never accepted installed.
COMPROMISED = {"litellm": {"1.82.7", "1.82.8"}}


def _pip_audit() -> str:
    here = pathlib.Path(sys.executable).parent / "pip-audit"
    return str(here) if here.exists() else (shutil.which("pip-audit") or "pip-audit")


# -- pins and locks ---------------------------------------------------------------------------
def parse_pins(text: str, where: str = "pins") -> list[Requirement]:
    """Requirement lines of a requirements file (comments and blank lines skipped); ValueError names the line."""
    reqs = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            reqs.append(Requirement(line))
        except InvalidRequirement as exc:
            raise ValueError(f"{where}:{number}: {line!r} is not a requirement ({exc})") from exc
    return reqs


def lock_path(pins, python: str) -> pathlib.Path:
    """Where the lock of PINS for Python PYTHON ("3.11") lives: ``<pins dir>/locks/<pins stem>.py3.11.txt``."""
    pins = pathlib.Path(pins)
    return pins.parent / "locks" / f"{pins.stem}.py{python}.txt"


def lock_paths(pins) -> dict[str, pathlib.Path]:
    """``{python version: lock path}`` of every lock of PINS that exists."""
    return {py: lock_path(pins, py) for py in PYTHONS if lock_path(pins, py).is_file()}


def read_lock(text: str) -> dict:
    """A lock's header fields (``pins-sha256``, ``python``, ...) and ``packages``: ``{name: (version, hashes)}``."""
    header, packages = _read_lock(text)
    return {**dict(header), "packages": dict(packages)}


@functools.lru_cache(maxsize=8)  # every host of a fleet reads the same lock, several times
def _read_lock(text: str) -> tuple[tuple, tuple]:
    header, packages = {}, {}
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and " " not in key.strip():
                header[key.strip()] = value.strip()
            continue
        if not line:
            continue
        spec, *options = line.split()
        req = Requirement(spec)
        versions = [s.version for s in req.specifier if s.operator == "=="]
        hashes = tuple(o.split("=", 1)[1] for o in options if o.startswith("--hash="))
        packages[canonicalize_name(req.name)] = (versions[0] if len(versions) == 1 else None, hashes)
    return tuple(header.items()), tuple(packages.items())


def locked_versions(text: str) -> dict[str, str]:
    """``{normalized name: version}`` of a lock: what the venv must hold, exactly."""
    return {name: version for name, (version, _) in read_lock(text)["packages"].items()}


def sha256_file(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def lock_problems(pins, lock) -> list[str]:
    """Why LOCK is not the current lock of PINS (empty when it is), one line each, saying what to do."""
    pins, lock = pathlib.Path(pins), pathlib.Path(lock)
    try:
        data = read_lock(lock.read_text())
    except InvalidRequirement as exc:
        return [f"{lock}: not a lock ({exc}): {RELOCK}"]
    problems = []
    python = lock.stem.rsplit(".py", 1)[-1]
    if data.get("python") != python:
        problems.append(f"{lock}: header says python {data.get('python')!r}, its name says {python}: {RELOCK}")
    if data.get("pins-sha256") != sha256_file(pins):
        problems.append(
            f"{lock}: made from other pins than {pins} (pins-sha256 {str(data.get('pins-sha256'))[:12]}, "
            f"pins now {sha256_file(pins)[:12]}): {RELOCK}"
        )
    locked = data["packages"]
    for req in parse_pins(pins.read_text(), str(pins)):
        name = canonicalize_name(req.name)
        version = locked.get(name, (None, []))[0]
        if version is None:
            problems.append(f"{lock}: pin {req} is not in the lock: {RELOCK}")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{lock}: {name} {version} does not satisfy the pin {req}: {RELOCK}")
    for name, (version, hashes) in sorted(locked.items()):
        if version is None or not hashes:
            problems.append(f"{lock}: {name}: expected name==version with --hash lines: {RELOCK}")
        if version in COMPROMISED.get(name, ()):
            problems.append(f"{lock}: {name} {version} is a compromised release: never install it")
    return problems


# -- waivers ----------------------------------------------------------------------------------
def load_ignored(path=IGNORED, today: datetime.date | None = None) -> set[str]:
    """The advisory ids waived by PATH; GateError on a missing field or an expired waiver."""
    today = today or datetime.date.today()
    entries = (yaml.safe_load(pathlib.Path(path).read_text()) or []) if pathlib.Path(path).exists() else []
    problems, ids = [], set()
    if not isinstance(entries, list):
        raise GateError(f"{path}: expected a list of {{id, reason, expires}} entries")
    for i, entry in enumerate(entries):
        entry = entry if isinstance(entry, dict) else {}
        missing = [f for f in ("id", "reason", "expires") if not entry.get(f)]
        if missing:
            problems.append(
                f"{path}: entry {i}: missing {', '.join(missing)}: expected id, reason and expires (YYYY-MM-DD)"
            )
            continue
        expires = entry["expires"]
        if isinstance(expires, str):
            try:
                expires = datetime.date.fromisoformat(expires)
            except ValueError:
                problems.append(
                    f"{path}: entry {i} ({entry['id']}): expires = {entry['expires']!r}: expected YYYY-MM-DD"
                )
                continue
        if not isinstance(expires, datetime.date):
            problems.append(f"{path}: entry {i} ({entry['id']}): expires = {expires!r}: expected YYYY-MM-DD")
        elif expires < today:
            problems.append(
                f"{path}: entry {i} ({entry['id']}): waiver expired on {expires}: renew it with a reason or fix the pin"
            )
        else:
            ids.add(str(entry["id"]))
    if problems:
        raise GateError("CVE gate waivers are invalid:\n  " + "\n  ".join(problems))
    return ids


# -- pip-audit --------------------------------------------------------------------------------
def _run(text: str, flags: tuple, online: bool, advisories) -> list[dict]:
    """pip-audit FLAGS -r <TEXT as a file>: its ``dependencies`` (name, version, vulns)."""
    with tempfile.TemporaryDirectory(prefix="cve-gate-") as tmp:
        req = pathlib.Path(tmp) / "requirements.txt"
        req.write_text(text)
        base = [
            _pip_audit(),
            *flags,
            "-r",
            str(req),
            "--format",
            "json",
            "--progress-spinner",
            "off",
            "--cache-dir",
            str(pathlib.Path(tmp) / "cache"),
        ]

        def audit(extra, server=None):
            try:
                proc = _pip_audit_run(base + extra, server)
            except subprocess.TimeoutExpired:
                raise GateError(f"pip-audit did not answer within {TIMEOUT}s") from None
            # exit 1 means "vulnerabilities found"; the JSON on stdout says which
            try:
                return json.loads(proc.stdout)["dependencies"]
            except (ValueError, KeyError):
                raise GateError(f"pip-audit failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}") from None

        if online:
            return audit([])
        with osv_server.Server(advisories) as server:
            return audit(["-s", "osv", "--osv-url", server.url], server)


def _pip_audit_run(cmd: list[str], server: osv_server.Server | None = None) -> subprocess.CompletedProcess:
    """pip-audit CMD in a session of its own, its output captured, within TIMEOUT (TimeoutExpired otherwise);
    SERVER, if any, answers its queries meanwhile, in this thread.

    A terminal's Ctrl-C reaches this process only: pip-audit and the pip processes it starts never print
    their own interrupt; the whole session is killed and the operator's KeyboardInterrupt goes on (exit 130).
    """
    with contextlib.ExitStack() as stack:
        capture = functools.partial(tempfile.TemporaryFile, "w+", encoding="utf-8", errors="replace")
        out = stack.enter_context(capture())  # files, not pipes: nothing to drain while SERVER answers
        err = stack.enter_context(capture())
        ended, alive = os.pipe()  # pip-audit alone holds ALIVE: ENDED reads (end of file) once it has exited
        stack.callback(os.close, ended)
        release = stack.enter_context(_ctrl_c_held())
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True, pass_fds=(alive,))
        finally:
            os.close(alive)
        try:
            release()  # a Ctrl-C pressed while pip-audit started is handled here
            if server:
                server.answer_until(ended, TIMEOUT)
            proc.wait(TIMEOUT)
        except BaseException:  # timeout, Ctrl-C: nothing of the audit is left running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[Callable[[], None]]:
    """Ctrl-C is recorded, not handled, until the block calls the function it is given (or ends); then SIGINT's
    handler runs. A Popen interrupted between its fork and its return leaves a child that nobody kills."""
    pressed: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    try:
        if previous is not None:  # None: a handler Python did not install, left alone
            signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    except ValueError:  # not the main thread: Python handles no signal here
        previous = None

    def release() -> None:
        nonlocal previous
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
            previous = None
            if pressed:
                signal.raise_signal(signal.SIGINT)

    try:
        yield release
    finally:
        release()


def _advisory_key(gate: str, text: str, flags: tuple, online: bool, advisories) -> str | None:
    """The cache key of a pip-audit result over TEXT: None online (the service's data changes unseen)."""
    path = pathlib.Path(advisories)
    if online or not path.is_file():
        return None
    return cache.key(gate, text, json.dumps(flags), path.read_bytes(), _pip_audit_version())


@functools.lru_cache(maxsize=1)
def _pip_audit_version() -> str:
    try:
        return importlib.metadata.version("pip-audit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _run_once(text: str, flags: tuple, online: bool, advisories) -> list[dict]:
    """``_run``, once per distinct (input, flags, advisory file content, pip-audit version), across
    hosts and runs (litellm_runner.gates.cache); waivers are applied afterwards, so they are never cached."""
    key = _advisory_key("pip-audit", text, flags, online, advisories)
    return cache.cached(key, lambda: _run(text, flags, online, advisories))


def _findings(text: str, flags: tuple, advisories, ignored) -> list[str]:
    """One line per unwaived vulnerability pip-audit finds in TEXT: ``name version: id (fixed in ...)``."""
    online = os.environ.get("LITELLM_CVE_GATE", "offline") == "online"
    waived = load_ignored(ignored)
    lines = []
    for dep in _run_once(text, flags, online, advisories or osv_server.ADVISORIES):
        if dep.get("version") in COMPROMISED.get(canonicalize_name(dep.get("name", "")), ()):
            lines.append(f"{dep['name']} {dep['version']}: compromised release (never install it)")
        for vuln in dep.get("vulns", []):
            if waived.intersection([vuln["id"], *vuln.get("aliases", [])]):
                continue
            fixed = vuln.get("fix_versions", [])
            lines.append(
                f"{dep['name']} {dep['version']}: {vuln['id']} "
                + (
                    f"(fixed in {', '.join(fixed)})"
                    if fixed
                    else f"(no fixed version: {vuln.get('description', '')[:120]})"
                )
            )
    return lines


def _mode() -> str:
    online = os.environ.get("LITELLM_CVE_GATE", "offline") == "online"
    return "online (pip-audit's default service)" if online else "offline (files/advisories/osv.json)"


def _refuse(what: str, found: list[str], problems: tuple[str, ...] | list[str] = ()) -> None:
    """Raise GateError listing FOUND vulnerabilities in WHAT, then other PROBLEMS; nothing to say: return."""
    parts = []
    if found:
        parts.append(f"CVE gate refuses {what}, known-vulnerable packages [{_mode()}]:\n  " + "\n  ".join(found))
    if problems:
        parts.append(
            ("CVE gate refuses" if not found else "and")
            + f" {what}, it has no current lock:\n  "
            + "\n  ".join(problems)
        )
    if parts:
        raise GateError("\n".join(parts))


LOCK_FLAGS = ("--no-deps", "--disable-pip", "--require-hashes")  # exactly what the lock installs


def audit_lock(lock, advisories=None, ignored=IGNORED) -> list[dict]:
    """Audit exactly the packages LOCK installs; GateError naming ids and fixed versions."""
    _refuse(str(lock), _findings(pathlib.Path(lock).read_text(), LOCK_FLAGS, advisories, ignored))
    return []


def audit_requirements(path, advisories=None, ignored=IGNORED) -> list[dict]:
    """Before install: every lock of the pins file PATH matches it and has no known vulnerability.

    Pins without a current lock are refused (``make lock``); their exact ``==``
    pins are audited too, so the refusal names what is known to be vulnerable.
    Returns the (empty) list of unwaived vulnerabilities when it passes.
    """
    path = pathlib.Path(path)
    try:
        pins = parse_pins(path.read_text(), str(path))
    except ValueError as exc:
        raise GateError(f"CVE gate cannot read the pins: {exc}: expected NAME==VERSION or NAME>=VERSION") from None
    locks = lock_paths(path)
    problems = (
        []
        if locks
        else [f"no lock of {path} (expected {', '.join(str(lock_path(path, p)) for p in PYTHONS)}): {RELOCK}"]
    )
    for lock in locks.values():
        problems += lock_problems(path, lock)
    if problems:
        exact = "".join(
            f"{r.name}{'[' + ','.join(sorted(r.extras)) + ']' if r.extras else ''}=={s.version}\n"
            for r in pins
            for s in r.specifier
            if s.operator == "=="
        )
        _refuse(
            str(path), _findings(exact, ("--no-deps", "--disable-pip"), advisories, ignored) if exact else [], problems
        )
    for lock in locks.values():
        audit_lock(lock, advisories, ignored)
    return []


def installed_findings(freeze: dict[str, str], advisories=None, ignored=IGNORED) -> list[str]:
    """One line per compromised release or unwaived advisory of an installed venv (``{name: version}``, e.g. the
    components of its SBOM), as the gate would refuse it (the remediation report lists them)."""
    text = "".join(f"{name}=={version}\n" for name, version in sorted(freeze.items()))
    return _findings(text, ("--no-deps", "--disable-pip"), advisories, ignored)


def audit_installed(freeze: dict[str, str], advisories=None, ignored=IGNORED) -> list[dict]:
    """Audit an installed venv (``{name: version}``, e.g. ``Snapshot.venv_at(...)["packages"]``) after converge."""
    text = "".join(f"{name}=={version}\n" for name, version in sorted(freeze.items()))
    _refuse("the installed venv", _findings(text, ("--no-deps", "--disable-pip"), advisories, ignored))
    return []


# -- SBOM -------------------------------------------------------------------------------------
def sbom(lock, advisories=None) -> str:
    """A CycloneDX JSON SBOM of exactly what LOCK installs (pip-audit ``--format cyclonedx-json``).

    Made reproducible, so that an unchanged lock gives the same file: no serial
    number or timestamp, components referenced as ``pkg:pypi/NAME@VERSION``, sorted.
    """
    text = pathlib.Path(lock).read_text()
    advisories = advisories or osv_server.ADVISORIES
    key = _advisory_key("sbom", text, LOCK_FLAGS, False, advisories)
    return cache.cached(key, lambda: _make_sbom(text, advisories))


def _make_sbom(text: str, advisories) -> str:
    with tempfile.TemporaryDirectory(prefix="cve-gate-sbom-") as tmp, osv_server.Server(advisories) as server:
        req = pathlib.Path(tmp) / "lock.txt"
        req.write_text(text)
        cmd = [
            _pip_audit(),
            *LOCK_FLAGS,
            "-r",
            str(req),
            "--format",
            "cyclonedx-json",
            "--progress-spinner",
            "off",
            "--cache-dir",
            str(pathlib.Path(tmp) / "cache"),
            "-s",
            "osv",
            "--osv-url",
            server.url,
        ]
        try:
            proc = _pip_audit_run(cmd, server)
            bom = json.loads(proc.stdout)
        except subprocess.TimeoutExpired:
            raise GateError(f"pip-audit did not answer within {TIMEOUT}s") from None
        except ValueError:
            raise GateError(f"pip-audit made no SBOM (exit {proc.returncode}): {proc.stderr.strip()[-800:]}") from None
    refs = {c["bom-ref"]: f"pkg:pypi/{canonicalize_name(c['name'])}@{c['version']}" for c in bom.get("components", [])}
    bom.pop("serialNumber", None)
    bom.get("metadata", {}).pop("timestamp", None)
    bom["components"] = sorted(
        ({**c, "bom-ref": refs[c["bom-ref"]], "purl": refs[c["bom-ref"]]} for c in bom.get("components", [])),
        key=lambda c: c["bom-ref"],
    )
    for vuln in bom.get("vulnerabilities", []):
        for affected in vuln.get("affects", []):
            affected["ref"] = refs.get(affected.get("ref"), affected.get("ref"))
    bom["dependencies"] = sorted(
        (
            {"ref": refs.get(d["ref"], d["ref"]), "dependsOn": sorted(refs.get(r, r) for r in d.get("dependsOn", []))}
            for d in bom.get("dependencies", [])
        ),
        key=lambda d: d["ref"],
    )
    return json.dumps(bom, indent=1, sort_keys=True) + "\n"


def main(argv=None, prog: str = "python -m litellm_runner.gates.cve") -> int:
    """Audit the locks of PINS: exit codes of litellm_runner.exitcodes (0 clean, 1 refused or failed)."""
    parser = exitcodes.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("pins", metavar="PINS.txt", help="the venv pins, e.g. files/litellm-venv-requirements.txt")
    pins = parser.parse_args(argv).pins
    try:
        audit_requirements(pins)
    except GateError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except OSError as exc:
        print(f"CVE gate cannot read {pins}: {exc.strerror or exc}", file=sys.stderr)
        return exitcodes.FAILED
    print(
        f"CVE gate: the locks of {pins} ({', '.join(map(str, lock_paths(pins).values()))}) have no known vulnerability"
    )
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
