"""Operations this deploy needs and pyinfra does not ship (or ships in a form
that always reports a change).

Each operation reads facts, decides, and yields commands, or calls
``host.noop()`` with a sentence saying what it found. None of them changes the
host while deciding: pyinfra runs the generator once to detect changes and
again to execute. Always call them with ``name=`` so that pyinfra records no
argument values in its output.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
from io import StringIO

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pyinfra import host
from pyinfra.api import FileUploadCommand, FunctionCommand, StringCommand, operation

from pyinfra.facts.files import FileContents

from . import cve_gate, drift, snapshot
from .facts import InstalledPackages, Linger, PathState, UserUnits

logger = logging.getLogger("litellm_runner")

# PyPI releases that were compromised (credential stealer): never accepted installed.
COMPROMISED = {"litellm": {"1.82.7", "1.82.8"}}


def q(value) -> str:
    return shlex.quote(str(value))


def _systemctl_user(user: str) -> str:
    return f"systemctl --user --machine={q(user)}@.host"


# -- linger -------------------------------------------------------------------------
@operation()
def linger(user: str, present: bool = True):
    """Ensure USER's systemd manager lingers (runs without a login session).

    + user: the account whose ``user@UID.service`` must keep running
    + present: ``True`` to enable linger, ``False`` to disable it

    pyinfra has no operation for this. Enabling waits until
    ``user@UID.service`` is active (5 minutes at most), so user units can be managed right after.

    .. code:: python

        linger(name="Enable linger for litellm | users-02", user="litellm")
    """
    if snapshot.fact(Linger, user=user) == present:
        host.noop(f"linger for {user} is already {'on' if present else 'off'}")
        return
    drift.record("linger", "on" if not present else "off", "on" if present else "off")
    if present:
        # A manager still stopping (linger was just turned off) takes a queued start;
        # wait until it runs so user units can be managed right after.
        unit = f"user@$(id -u {q(user)}).service"
        yield (
            f"loginctl enable-linger {q(user)} && timeout 300 sh -c "
            + q(f"until systemctl is-active -q {unit}; do systemctl start --no-block {unit}; sleep 1; done")
        )
    else:
        yield f"loginctl disable-linger {q(user)}"


# -- directories and files ---------------------------------------------------------------
@operation()
def directory(path: str, user: str, group: str, mode: str):
    """Ensure PATH is a directory with MODE, owned by USER:GROUP.

    + path: absolute path; its parent must exist
    + user, group: owner
    + mode: octal string such as ``"0750"``

    A missing directory is created at 0700 and root-owned (umask 077), then
    chowned, then chmodded: it is never, even briefly, looser than MODE.
    """
    current = snapshot.fact(PathState, path=path)
    if current is None:
        drift.record("directory", None, {"mode": mode, "owner": f"{user}:{group}"})
        yield f"(umask 077 && mkdir {q(path)}) && chown {q(user)}:{q(group)} {q(path)} && chmod {mode} {q(path)}"
        return
    if current["type"] != "directory":
        raise ValueError(f"{path} exists and is a {current['type']}, not a directory")
    changes = _attr_commands("directory", current, path, user, group, mode)
    if not changes:
        host.noop(f"{path} is a directory, {mode}, {user}:{group}")
    yield from changes


def _attr_commands(kind, current, path, user, group, mode) -> list[str]:
    """chown/chmod commands that bring PATH (state CURRENT) to USER:GROUP MODE; drift recorded."""
    before = {"mode": current["mode"], "owner": f"{current['user']}:{current['group']}"}
    after = {"mode": mode.zfill(4), "owner": f"{user}:{group}"}
    if before == after:
        return []
    drift.record(kind, before, after)
    changes = []
    if before["owner"] != after["owner"]:
        changes.append(f"chown {q(user)}:{q(group)} {q(path)}")
    if before["mode"] != after["mode"]:
        changes.append(f"chmod {mode} {q(path)}")
    return changes


def sha256_text(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def atomic_write_commands(dest, content, user, group, mode, validate=None, backups_keep=0, exists=False):
    """Commands that replace DEST with CONTENT without a half-written or loose file.

    The temporary file is created empty with its final mode and owner, filled
    over SFTP, optionally validated (``validate`` is a shell command with
    ``{path}``), the old file optionally kept as ``DEST.bak-TIMESTAMP`` (newest
    ``backups_keep`` kept; copied to a temporary name first, so a backup is whole
    or absent), then renamed over DEST in one step.
    """
    tmp = f"{dest}.tmp-litellm-runner"
    yield f"install -m {mode} -o {q(user)} -g {q(group)} /dev/null {q(tmp)}"
    yield FileUploadCommand(StringIO(content), tmp)
    if validate:
        yield StringCommand(validate.format(path=q(tmp)))
    if exists and backups_keep:
        yield (
            f"install -m {mode} -o {q(user)} -g {q(group)} {q(dest)} {q(dest + '.tmp-litellm-runner-bak')} && "
            f"mv -f {q(dest + '.tmp-litellm-runner-bak')} {q(dest)}.bak-$(date -u +%Y%m%dT%H%M%S%N) && "
            f"ls -1t {q(dest)}.bak-* | tail -n +{int(backups_keep) + 1} | xargs -r rm -f --"
        )
    yield f"mv -f {q(tmp)} {q(dest)}"


@operation()
def managed_file(dest: str, content: str, user: str, group: str, mode: str,
                 validate: str | None = None, backups_keep: int = 0):
    """Ensure DEST holds CONTENT, replaced atomically; a new file gets MODE and owner at creation.

    + dest: absolute path on the host
    + content: the desired text
    + user, group, mode: owner and octal mode of the new file
    + validate: shell command run on the new file before it replaces DEST (``{path}``)
    + backups_keep: keep this many timestamped copies of replaced content

    Content is compared by sha256. Mode and owner drift of an existing file is
    ``file_attrs``'s business, so that a change here always means new content
    (what restarts a service).
    """
    current = snapshot.fact(PathState, path=dest)
    if current and current["sha256"] == sha256_text(content):
        host.noop(f"{dest} has the desired content")
        return
    if not host.state.is_executing:
        old = host.get_fact(FileContents, path=dest) if current else None
        drift.record("file", current and f"sha256:{current['sha256'][:12]}", f"sha256:{sha256_text(content)[:12]}",
                     drift.unified("\n".join(old or []), content, dest))
    yield from atomic_write_commands(dest, content, user, group, mode, validate, backups_keep,
                                     exists=current is not None)


@operation()
def file_attrs(path: str, user: str, group: str, mode: str):
    """Ensure the existing file PATH has MODE and USER:GROUP.

    + path: absolute path on the host
    + user, group, mode: owner and octal mode
    """
    current = snapshot.fact(PathState, path=path)
    if current is None:
        host.noop(f"{path} does not exist yet: it is created with {mode} {user}:{group}")
        return
    changes = _attr_commands("file", current, path, user, group, mode)
    if not changes:
        host.noop(f"{path} is {mode} {user}:{group}")
    yield from changes


def file(label: str, dest: str, content: str, user: str, group: str, mode: str, **kwargs):
    """Content and mode/owner of one file as two operations named after LABEL.

    LABEL is ``"<what> | <control id>"``. Returns the content operation's meta.
    """
    what, _, control = label.partition(" | ")
    meta = managed_file(name=f"{what} content | {control}", dest=dest, content=content,
                        user=user, group=group, mode=mode, **kwargs)
    file_attrs(name=f"{what} {mode} {user}:{group} | {control}", path=dest, user=user, group=group, mode=mode)
    return meta


# -- python environment ---------------------------------------------------------------------
def parse_requirements(text: str) -> list[Requirement]:
    """Requirement lines of a requirements file (comments and blank lines skipped)."""
    reqs = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            reqs.append(Requirement(line))
        except InvalidRequirement as exc:
            raise ValueError(f"line {number}: {line!r} is not a requirement ({exc})") from exc
    return reqs


def unmet_requirements(requirements: list[Requirement], installed: dict[str, str] | None) -> list[str]:
    """Human lines for every requirement the installed set does not satisfy.

    ``installed`` maps normalized names to versions (None: no venv). A
    compromised release counts as unmet even when a specifier admits it.
    """
    unmet = []
    for req in requirements:
        name = canonicalize_name(req.name)
        version = (installed or {}).get(name)
        if version is None:
            unmet.append(f"{name}: not installed -> {req.specifier or 'any'}")
        elif version in COMPROMISED.get(name, ()):
            unmet.append(f"{name}: {version} (compromised release) -> {req.specifier}")
        elif not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{name}: {version} -> {req.specifier}")
    return unmet


@operation()
def venv_requirements(venv: str, requirements_text: str, requirements_path: str, python: str, user: str):
    """Ensure the venv at VENV satisfies every requirement, judged from what is installed.

    + venv: path of the virtual environment (created with PYTHON if missing)
    + requirements_text: the pins, to compare with what is installed
    + requirements_path: the same pins as a file on the host, given to pip
    + python: interpreter that creates the venv
    + user: owner of the venv; pip runs as this user

    Unlike ``pip.packages(requirements=...)`` it reports no change when every
    installed version already satisfies its pin.
    """
    installed = snapshot.fact(InstalledPackages, venv=venv)
    unmet = unmet_requirements(parse_requirements(requirements_text), installed)
    if not unmet:
        host.noop(f"{venv}: every pin is satisfied")
        return
    for line in unmet:
        name, _, change = line.partition(": ")
        before, _, after = change.partition(" -> ")
        drift.record("package", {"name": name, "version": before}, {"name": name, "version": after})
    if installed is None:
        yield f"runuser -u {q(user)} -- {q(python)} -m venv {q(venv)}"
    yield f"runuser -u {q(user)} -- {q(venv)}/bin/pip install --no-input --disable-pip-version-check -q -r {q(requirements_path)}"


# -- CVE gate after converge ------------------------------------------------------------------
def _cve_findings(installed: dict[str, str]) -> str | None:
    """cve_gate.audit_installed on INSTALLED (one pip-audit per distinct venv per run): the refusal text or None."""
    try:
        cve_gate.audit_installed(installed)
    except cve_gate.CveGateError as exc:
        return str(exc)
    return None


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
    text = _cve_findings(installed or {})
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
        text = _cve_findings(installed)
        if text is None:
            host.noop(f"{venv_path}: no known vulnerability")
            return
        yield FunctionCommand(_fail, (text,), {})
        return
    drift.record("cve-gate", "venv not audited (it changes in this run)", "audited after install")
    yield FunctionCommand(_audit_now, (venv_path,), {})


# -- systemd user units -----------------------------------------------------------------------
def _changed(meta) -> bool:
    """Whether an earlier operation changed (after it ran) or will change (while detecting)."""
    return meta.did_change() if meta.is_complete() else bool(meta.will_change)


@operation()
def user_daemon_reload(user: str, when: list):
    """Reload USER's systemd manager when any operation in WHEN changed a unit file.

    + user: owner of the user manager
    + when: OperationMeta of the unit file operations
    """
    if not any(_changed(m) for m in when):
        host.noop(f"no unit file of {user} changed")
        return
    yield f"{_systemctl_user(user)} daemon-reload"


# Per run: the first host whose unit failed its readiness gate stops the rollout.
_rollout_failed: dict[int, str] = {}


def _gated(state, host, ctl: str, unit: str, action: str, ready_url: str, ready_timeout: int, rollback: dict | None):
    """Start or restart UNIT and wait until READY_URL answers; roll back and fail when it does not.

    Runs while executing, host by host in the batches pyinfra makes of
    ``_parallel``. When it fails on a host, the config named by ROLLBACK (when
    this run changed it) gets its previous content back from its newest
    backup, the unit restarts on it, and the host fails naming why. Hosts of
    later batches are then not restarted: their config is put back too and
    they fail, so every host stays on its last good state.
    """
    def run(command, timeout):
        ok, _ = host.run_shell_command(StringCommand(command), _timeout=timeout)
        return ok

    def restore() -> str:
        if not rollback or not _changed(rollback["when"]):
            return "the config was not changed by this run, nothing to restore"
        dest, tmp = q(rollback["path"]), q(rollback["path"] + ".tmp-litellm-runner")
        ok = run(f"b=$(ls -1 {dest}.bak-* 2>/dev/null | sort | tail -n 1) && [ -n \"$b\" ] && "
                 f"install -m {rollback['mode']} -o {q(rollback['user'])} -g {q(rollback['group'])} \"$b\" {tmp} && "
                 f"mv -f {tmp} {dest}", 60)
        return f"previous config restored to {rollback['path']}" if ok else f"could not restore {rollback['path']}"

    # the host's journal records when the unit answered (``journalctl -t litellm-runner``):
    # the order of a rollout can be read back from the hosts themselves
    wait = (f"timeout {int(ready_timeout)} sh -c "
            + q(f"until curl -fsS -o /dev/null --max-time 5 {ready_url}; do sleep 2; done")
            + f" && {{ logger -t litellm-runner -- {q(f'{unit} ready: {ready_url}')} || true; }}")
    failed = _rollout_failed.get(id(state))
    if failed:
        what = restore()
        host.log_styled(f"{unit} not {action}ed: the rollout stopped after {failed} failed readiness; {what}",
                        fg="red", log_func=logger.error)
        return False
    if run(f"{ctl} {action} {q(unit)}", 120) and run(wait, ready_timeout + 30):
        return True
    _rollout_failed.setdefault(id(state), host.name)
    what = restore()
    again = run(f"{ctl} restart {q(unit)}", 120) and run(wait, ready_timeout + 30)
    host.log_styled(
        f"{unit} failed readiness ({ready_url} within {ready_timeout}s) after this run's changes; {what}; "
        f"restarted: {'ready again' if again else 'still not ready'}. Other hosts are left on their last good state.",
        fg="red", log_func=logger.error)
    return False


@operation()
def user_unit(user: str, unit: str, enabled: bool = True, running: bool = True, restart_when: list = (),
              ready_url: str | None = None, ready_timeout: int = 300, rollback: dict | None = None):
    """Ensure USER's unit UNIT is enabled/disabled and running/stopped.

    + user: owner of the user manager (needs linger)
    + unit: e.g. ``litellm.service`` or ``litellm-backup.timer``
    + enabled, running: desired state
    + restart_when: OperationMeta of the unit's inputs (unit file, config, env
      file, database rows); a running unit restarts once if any changed. A
      unit this operation starts is not restarted again.
    + ready_url: when given, a start or restart waits until this URL answers
      (``ready_timeout`` seconds); pass ``_parallel=N`` to restart N hosts at a time
    + rollback: ``{"path", "user", "group", "mode", "when": OperationMeta}``: the
      config restored from its newest backup when readiness fails (see ``_gated``)
    """
    state = snapshot.fact(UserUnits, user=user, units=[unit]).get(unit, {})
    is_enabled, is_active = state.get("enabled", False), state.get("active", False)
    ctl = _systemctl_user(user)
    commands, action = [], None
    if enabled and not is_enabled:
        commands.append(f"{ctl} enable {q(unit)}")
    elif not enabled and is_enabled:
        commands.append(f"{ctl} disable {q(unit)}")
    if running and not is_active:
        action = "start"
    elif not running and is_active:
        action = "stop"
    elif running and is_active and any(_changed(m) for m in restart_when):
        action = "restart"
    if not commands and not action:
        host.noop(f"{unit} is {'enabled' if is_enabled else 'disabled'} and {'active' if is_active else 'inactive'}")
    elif commands or action != "restart":
        drift.record("unit", {"enabled": is_enabled, "active": is_active}, {"enabled": enabled, "active": running})
    else:  # only a restart: a consequence of drift in an input, not drift of its own
        drift.record("restart", None, "restart")
    yield from commands
    if action in ("start", "restart") and ready_url:
        yield FunctionCommand(_gated, (_systemctl_user(user), unit, action, ready_url, ready_timeout,
                                       rollback if action == "restart" else None), {})
    elif action:
        yield f"{ctl} {action} {q(unit)}"
