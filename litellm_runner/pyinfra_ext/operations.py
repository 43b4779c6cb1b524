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
import json
import logging
import re
import shlex
from collections.abc import Callable, Mapping
from io import BytesIO, StringIO
from typing import Any

from packaging.version import InvalidVersion, Version
from pyinfra import host
from pyinfra import logger as pyinfra_logger
from pyinfra.api import FunctionCommand, StringCommand, operation
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import apt
from pyinfra.operations.util.files import generate_color_diff

from litellm_runner import layout, query_engine, shown
from litellm_runner.pyinfra_ext import drift, snapshot
from litellm_runner.pyinfra_ext.facts import FileText, hostside
from litellm_runner.run import compat
from litellm_runner.run import state as run_state

logger = logging.getLogger("litellm_runner")
CLEAN_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def q(value) -> str:
    return shlex.quote(str(value))


def _systemctl_user(user: str) -> str:
    return f"systemctl --user --machine={q(user)}@.host"


# -- --diff ---------------------------------------------------------------------------------
def diff_wanted() -> bool:
    """Whether pyinfra was asked to show what would change (``--diff``: its config's ``DIFF``, as
    files.put and files.template read it) and this is change detection, not execution.

    The config is the deploy file's copy that pyinfra's loader sets while preparing (read as
    pyinfra's own host.py reads it, safe in any greenlet), else the state's.
    """
    if host.state.is_executing:
        return False
    found = compat.deploy_config() or getattr(host.state, "config", None)
    return bool(getattr(found, "DIFF", False))


def show_diff(title: str, lines) -> None:
    """Print TITLE for the current host and LINES below it, as pyinfra's files operations print
    ``--diff`` (``Will modify PATH``, then the lines indented, then a blank line). Each line is
    ``shown.safe``: the host's secret values redacted, control characters escaped (the colours
    of pyinfra's diff are kept: only what ``text_diff`` itself adds, never the host's text)."""
    secrets = drift.known_secrets()
    pyinfra_logger.info(f"[{host.name}] {shown.safe(title, secrets)}")
    for line in lines:
        pyinfra_logger.info("  %s", _shown_line(line, secrets))
    pyinfra_logger.info("")


COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # the SGR codes pyinfra's generate_color_diff wraps lines in


def _shown_line(line: str, secrets: list[str]) -> str:
    """LINE of a diff made safe, pyinfra's own colour codes (the text between them is escaped) kept."""
    parts = COLOUR.split(line)
    codes = COLOUR.findall(line)
    out = [shown.safe(parts[0], secrets)]
    for code, part in zip(codes, parts[1:], strict=True):
        out += [code, shown.safe(part, secrets)]
    return "".join(out)


def text_diff(before: str | None, after: str) -> list[str]:
    """The lines pyinfra's ``--diff`` shows for a text file going from BEFORE (None: no file) to AFTER,
    each line ``shown.safe`` before pyinfra colours it (a colour code of the host's is escaped)."""
    secrets = drift.known_secrets()

    def lines(text: str | None) -> list[str]:
        return [shown.safe(line, secrets) + "\n" for line in (text or "").splitlines()]

    return list(generate_color_diff(lines(before), lines(after)))


# -- the service account ---------------------------------------------------------------------
CREATED = layout.CREATED


@operation()
def service_account(user: str, group: str, home: str, shell: str = "/bin/bash", manage: bool | None = None):
    """Ensure the service account USER (primary group GROUP, home HOME) exists.

    + user, group, home: the account the deployment runs as
    + shell: login shell of an account the runner creates
    + manage: whether shell, home and primary group of an EXISTING account are
      brought to the desired values; ``None`` (default): only for an account the
      runner created itself (recorded in /var/lib/litellm-runner/created-accounts/)

    An existing account the runner did not create (a person's login account
    adopted for the deployment) is left as it is: shell, home, primary and
    supplementary groups, and the output says so. Read from the user database,
    never /etc/shadow (pyinfra's ``server.user`` reads password hashes).
    """
    found = snapshot.current().for_user(user).account
    if not found["group"]:
        drift.record("group", None, group)
        yield f"groupadd -- {q(group)}"
    if found["user"] is None:
        drift.record("account", None, {"group": group, "home": home, "shell": shell})
        yield (
            f"useradd --create-home --home-dir {q(home)} --shell {q(shell)} --gid {q(group)} -- {q(user)} && "
            f"install -d -m 0755 {CREATED} && touch {CREATED}/{q(user)}"
        )
        return
    current = found["user"]
    if current.get("uid") == 0:  # "root" is refused by the schema; another name for uid 0 only here
        raise OperationError(
            f"{user} has uid 0 on this host: expected an unprivileged account for litellm_user (the proxy never runs "
            "as root)"
        )
    if not (found["created"] if manage is None else manage):
        host.noop(
            f"{user} is an existing account the runner did not create: its shell ({current['shell']}), home "
            f"({current['home']}) and groups ({current['group']}; {', '.join(current['groups']) or 'none'}) are "
            "left as they are (litellm_manage_account: true manages them)"
        )
        return
    want = {"shell": shell, "home": home, "group": group}
    have = {k: current[k] for k in want}
    if have == want:
        host.noop(f"{user} exists with shell {shell}, home {home}, group {group}")
        return
    drift.record("account", have, want)
    yield f"usermod --shell {q(shell)} --home {q(home)} --gid {q(group)} -- {q(user)}"


# -- linger -------------------------------------------------------------------------
@operation()
def linger(user: str, present: bool = True):
    """Ensure USER's systemd manager lingers (runs without a login session).

    + user: the account whose ``user@UID.service`` must keep running
    + present: ``True`` to enable linger, ``False`` to disable it

    pyinfra has no operation for this. Enabling waits until
    ``user@UID.service`` is active (5 minutes at most), so user units can be managed right after.
    With linger on, a manager that does not run (stopped by hand) is drift and started.

    .. code:: python

        linger(name="Enable linger for litellm | users-02", user="litellm")
    """
    snap = snapshot.current().for_user(user)
    lingering = snap.linger
    stopped = present and lingering and not snap.manager
    if lingering == present and not stopped:
        host.noop(f"linger for {user} is already {'on' if present else 'off'}")
        return
    if stopped:
        drift.record("linger", "on, user manager stopped", "on, user manager running")
    else:
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
# Root acts in the service account's tree only through litellm_runner.pyinfra_ext.hostside:
# paths walked without following the account's links, files and directories
# settled by handle, temporary files created exclusively and renamed into place.
ESCALATION = {
    "_sudo",
    "_sudo_user",
    "_use_sudo_login",
    "_sudo_password",
    "_preserve_sudo_env",
    "_su_user",
    "_use_su_login",
    "_preserve_su_env",
    "_su_shell",
    "_su_password",
    "_doas",
    "_doas_user",
}


class Content:
    """File content handed to a FunctionCommand; its repr never shows the text (secrets)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"<{len(self.text)} characters>"


def run_command(host, command: str, timeout: int, escalate: bool = True):
    """Run COMMAND from a FunctionCommand with the operation's connection arguments (sudo...)."""
    args = compat.op_connector_arguments(host)
    if not escalate:
        args = {k: v for k, v in args.items() if k not in ESCALATION}
    return host.run_shell_command(StringCommand(command), **{**args, "_timeout": timeout})


def failed(host, text: str) -> bool:
    """Fail the FunctionCommand that calls it: TEXT logged in red as HOST's error, and False, which pyinfra
    counts as the operation failed. The one way a function run at execution refuses (it cannot raise:
    pyinfra would report a traceback, not the operator's message)."""
    host.log_styled(text, fg="red", log_func=logger.error)
    return False


def _failed(host, what: str, output) -> bool:
    return failed(host, f"{what}: {(output.stderr or output.stdout).strip()[-500:]}")


def _write_staged(state, host, dest: str, content: Content, user: str, group: str, mode: str, backups_keep: int):
    """Upload CONTENT into a fresh private directory of the connecting user, then have root's
    host-side code replace DEST with it (see ``hostside.write``); the directory is removed."""
    ok, out = run_command(host, "umask 077 && mktemp -d /tmp/litellm-runner.XXXXXXXXXX", 30, escalate=False)
    if not ok:
        return _failed(host, f"{dest}: no private staging directory", out)
    stage = out.stdout.strip()
    try:
        args = compat.op_connector_arguments(host)
        # under sudo pyinfra uploads to remote_temp_filename first: inside the 0700 directory,
        # so a secret never exists world-readable
        if not host.put_file(
            StringIO(content.text),
            f"{stage}/content",
            remote_temp_filename=f"{stage}/upload",
            **{**args, "_timeout": 120},
        ):
            return _failed(host, f"{dest}: upload failed", out)
        ok, out = run_command(
            host,
            hostside(
                "write",
                {
                    "dest": dest,
                    "src": f"{stage}/content",
                    "user": user,
                    "group": group,
                    "mode": mode,
                    "backups_keep": backups_keep,
                },
            ),
            60,
        )
        return ok or _failed(host, f"{dest}: not written", out)
    finally:
        run_command(host, f"rm -rf -- {q(stage)}", 30)


@operation()
def directory(path: str, user: str, group: str, mode: str):
    """Ensure PATH is a directory with MODE, owned by USER:GROUP.

    + path: absolute path; its parent must exist
    + user, group: owner
    + mode: octal string such as ``"0750"``

    A missing directory is created at 0700 and root-owned, then chowned and
    chmodded by handle: it is never, even briefly, looser than MODE, and a link
    swapped in meanwhile is not followed. Anything else at PATH (a planted
    symlink, a file) is drift: it is moved aside to ``PATH.displaced-TIME``
    (kept for inspection, never read through) and the directory created.
    """
    current = snapshot.current().path(path)
    if current is None or current["type"] != "directory":
        found = None if current is None else {"type": current["type"]}
        drift.record("directory", found, {"type": "directory", "mode": mode, "owner": f"{user}:{group}"})
        yield hostside("mkdir", {"path": path, "user": user, "group": group, "mode": mode})
        return
    changes = _attr_commands("directory", current, path, user, group, mode)
    if not changes:
        host.noop(f"{path} is a directory, {mode}, {user}:{group}")
    yield from changes


def _attr_commands(kind, current, path, user, group, mode) -> list[str]:
    """The host-side command that brings PATH (state CURRENT) to USER:GROUP MODE by handle; drift recorded."""
    before = {"mode": current["mode"], "owner": f"{current['user']}:{current['group']}"}
    after = {"mode": mode.zfill(4), "owner": f"{user}:{group}"}
    if before == after:
        return []
    drift.record(kind, before, after)
    return [hostside("attrs", {"path": path, "user": user, "group": group, "mode": mode})]


def sha256_text(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def is_current(current: Mapping[str, Any] | None, content: str) -> bool:
    """Whether the path (``Snapshot.path``) is a regular file that holds CONTENT."""
    return current is not None and current["type"] == "file" and current["sha256"] == sha256_text(content)


def write_commands(dest, content, user, group, mode, backups_keep=0):
    """The command that replaces DEST with CONTENT: staged privately, written by root's host-side
    code (exclusive temp file at MODE and owner, renamed over DEST; ``backups_keep`` copies of
    the old content as ``DEST.bak-TIME``, older ones removed by name as data)."""
    yield FunctionCommand(_write_staged, (dest, Content(content), user, group, mode, int(backups_keep)), {})


@operation()
def managed_file(dest: str, content: str, user: str, group: str, mode: str, backups_keep: int = 0):
    """Ensure DEST is a regular file holding CONTENT, replaced atomically; a new file gets MODE and owner at creation.

    + dest: absolute path on the host
    + content: the desired text
    + user, group, mode: owner and octal mode of the new file
    + backups_keep: keep this many timestamped copies of replaced content

    Content is compared by sha256. Mode and owner drift of an existing file is
    ``file_attrs``'s business, so that a change here always means new content
    (what restarts a service). A symlink at DEST is drift, shown without being
    read through, and replaced by the file.
    """
    current: Mapping[str, Any] | None = snapshot.current().path(dest)
    if is_current(current, content):
        host.noop(f"{dest} has the desired content")
        return
    if not host.state.is_executing:
        if current and current["type"] == "file":
            marks = sorted({shown.mark(v) for v in drift.known_secrets() if len(v) >= shown.MIN_SECRET})
            old = host.get_fact(FileText, path=dest, env_file=layout.ENV_FILE, marks=marks)
            drift.record(
                "file",
                f"sha256:{current['sha256'][:12]}",
                f"sha256:{sha256_text(content)[:12]}",
                drift.unified(old or "", content, dest),
            )
            if diff_wanted():
                show_diff(f"Will modify {dest}", text_diff(old, content))
        else:
            found = current and {k: current[k] for k in ("type", "detail") if k in current}  # detail names the path
            drift.record("file", found, f"sha256:{sha256_text(content)[:12]}")
            if diff_wanted():
                what = f"Will replace {dest} (now: {current['type']}, not read through)" if current else None
                show_diff(what or f"Will create {dest}", text_diff(None, content))
    yield from write_commands(dest, content, user, group, mode, backups_keep)


@operation()
def no_abandoned_lock(stale_after: int):
    """Ensure the host's run lock is not one a dead or silent run left behind.

    + stale_after: ``litellm_lock_stale_after``

    A converge takes such a lock over before it reads anything (litellm_runner.pyinfra_ext.lock),
    so there it is always this run's own; the drift check, which takes no lock,
    reports it. A lock held by a live run is not drift.
    """
    from litellm_runner.pyinfra_ext import lock

    found = snapshot.current().run_lock
    if not found:
        host.noop("no run lock is held")
        return
    owner = lock.parse_owner(found["text"], found["mtime"])
    decision = lock.decide(owner, found["now"], lock.owner(host.state), stale_after)
    if decision.action != "take-over":
        host.noop(f"the run lock is held by {owner.describe(found['now'])}: {decision.reason}")
        return
    drift.record("run-lock", f"left by {owner.describe(found['now'])}: {decision.reason}", "no lock")
    # nothing to change here: a converge takes the lock over (with a notice) before its first fact
    # and gives it back at its end; this command only makes the item count as a change in --dry
    yield "true  # the abandoned run lock is taken over by this run's lock step"


@operation()
def no_leftovers(dirs: list):
    """Ensure no temporary file of a killed run (``*.tmp-litellm-runner[-bak]``) is left in DIRS.

    + dirs: the managed directories (``snapshot.managed(data).write_dirs()``)

    Removed by host-side code by name (unlinkat, never through a link).
    """
    found = snapshot.current().leftovers_in(dirs)
    if not found:
        host.noop("no temporary file of an interrupted run is left")
        return
    drift.record("leftovers", found, [])
    yield hostside("unlink", {"paths": found})


@operation()
def file_attrs(path: str, user: str, group: str, mode: str):
    """Ensure the existing file PATH has MODE and USER:GROUP.

    + path: absolute path on the host
    + user, group, mode: owner and octal mode
    """
    current = snapshot.current().path(path)
    if current is None or current["type"] != "file":
        host.noop(f"{path} is not a regular file yet: the content operation writes it with {mode} {user}:{group}")
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
    meta = managed_file(
        name=f"{what} content | {control}", dest=dest, content=content, user=user, group=group, mode=mode, **kwargs
    )
    file_attrs(name=f"{what} {mode} {user}:{group} | {control}", path=dest, user=user, group=group, mode=mode)
    return meta


# -- system packages ------------------------------------------------------------------------
@operation()
def system_packages(packages: list):
    """Ensure the Debian packages PACKAGES are installed (pyinfra's ``apt.packages``, asked from the snapshot).

    + packages: package names, as ``apt.packages`` takes them

    What is installed is read from dpkg's status file by the host snapshot, so a host that has
    them all costs no command of its own. Anything missing (or a host whose dpkg database the
    snapshot could not read) is left to pyinfra's ``apt.packages``, which asks dpkg again and installs.
    """
    found = snapshot.current().packages(list(packages))
    if found is None:  # no dpkg database the snapshot could read: pyinfra's own fact decides
        yield from apt.packages._inner(packages=list(packages))
        return
    missing = [name for name in packages if not found.get(name)]
    if not missing:
        host.noop(f"{', '.join(packages)} installed")
        return
    for name in missing:
        drift.record("system-package", {"name": name, "version": None}, {"name": name, "version": "installed"})
    yield from apt.packages._inner(packages=missing)


# -- python environment ---------------------------------------------------------------------
# What ``python -m venv`` puts in a venv: not an extra package unless the lock names it.
VENV_TOOLS = {"pip", "setuptools"}
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")  # a normalized distribution name


def _same(have: str | None, want: str | None) -> bool:
    try:
        return have is not None and want is not None and Version(have) == Version(want)
    except InvalidVersion:
        return have == want


def venv_drift(locked: dict[str, str], installed: dict[str, str] | None) -> list[tuple]:
    """``(name, installed version, locked version)`` for every package of the closure that differs, by name.

    Another version: both set; missing: installed None; extra (installed, not
    locked): locked None. ``installed`` None (no venv) makes every locked
    package missing. pip and setuptools of the venv itself are no extras.
    """
    installed = installed or {}
    return [
        (name, installed.get(name), locked.get(name))
        for name in sorted(set(locked) | set(installed))
        if not _same(installed.get(name), locked.get(name)) and not (name in VENV_TOOLS and name not in locked)
    ]


def venv_replaces_prisma(venv: str, user: str, python: str, python_version: str | None) -> bool:
    """Whether ``venv_requirements`` installs prisma afresh in this run (the venv rebuilt or displaced, or prisma's
    files broken), so that the client generated into the prisma package is gone and must be generated again."""
    state = snapshot.current().venv_at(venv)
    if state.get("hostile") or state["packages"] is None:
        return True
    return bool(venv_rebuild_reasons(state, python, python_version)) or "prisma" in state["broken"]


def venv_rebuild_reasons(state: Mapping[str, Any], python: str, python_version: str | None) -> list[str]:
    """Why the venv (``Snapshot.venv_at``) cannot be repaired in place, as sentences; empty when it can.

    No venv, no pip, a name that is no distribution name, a ``bin/python`` that is
    missing, dangling or leads to another interpreter than PYTHON, a pyvenv.cfg of
    another Python than PYTHON_VERSION, a dist-info without METADATA or RECORD or whose
    RECORD cannot be read, a tree too deep or too large to walk (``hostile``: the venv is
    then moved aside, never walked or deleted, see ``venv_requirements``). The last two are found by the
    RECORD check only (``litellm_venv_integrity``: in a converge by default).
    """
    installed = state["packages"]
    if installed is None:
        return []  # no venv: every package is missing, the venv is created
    home = python.rsplit("/", 1)[0] or "/"
    reasons = []
    if "pip" not in installed:
        reasons.append("no pip")
    bad = sorted(n for n in installed if not NAME.match(n))
    if bad:
        reasons.append(f"{bad[0]!r} is no distribution name")
    if state["python"] is None or not state["exists"]:
        reasons.append(
            f"bin/python {'is missing' if state['python'] is None else 'leads to ' + state['python'] + ', missing'}"
        )
    elif state["python"].rsplit("/", 1)[0] != home:
        reasons.append(f"bin/python leads to {state['python']}, not {python}")
    if state["home"] != home or (python_version and not str(state["version"]).startswith(f"{python_version}.")):
        reasons.append(f"made by Python {state['version']} in {state['home']}, not {python} ({python_version})")
    reasons += [
        f"{dist} half installed ({why})"
        for dist, why in state["broken"].items()
        if "no METADATA" in why or "RECORD: unreadable" in why or dist == "pip"
    ]  # pip cannot repair itself, nor uninstall what it cannot read
    reasons += [f"{what} (moved aside, not deleted)" for what in state.get("hostile", [])]
    return reasons


def integrity_note(cost: dict | None) -> str:
    """What the venv's RECORD check (``hostside.venv_state``'s ``integrity``) cost, for the noop sentence."""
    if not cost:
        return " (RECORD hashes not compared: litellm_venv_integrity)"
    return (
        f"; {cost['files']} files ({cost['bytes'] / 1e6:.0f} MB) match their RECORD hashes "
        f"({cost['cpu_s']:.2f} s of the host's CPU)"
    )


@operation()
def venv_requirements(
    venv: str,
    locked: dict[str, str],
    lock_path: str,
    python: str,
    user: str,
    group: str | None = None,
    python_version: str | None = None,
    home: str = "/",
    running: dict | None = None,
):
    """Ensure the venv at VENV holds exactly the lock: every locked version, nothing else, all of it USER's.

    + venv: path of the virtual environment (created with PYTHON if missing)
    + locked: the lock's exact versions ``{name: version}`` (``cve_gate.locked_versions``)
    + lock_path: the same lock as a file on the host, given to pip
    + python: system interpreter that creates the venv; python_version: its ``X.Y``
    + user, group: owner of the venv (root: ``render.venv_target``, a folder of ``layout.VENVS``); pip runs as
      USER with a reset environment
    + running: ``{"venv": path, "packages": {name: version}}`` of the venv the services run now when it is
      another (a new lock): VENV is then built beside it, which stays untouched (``venv_switch`` switches
      later), and the drift report lists what differs from it rather than every package as missing

    pip installs wheels only, hash-checked, without resolving dependencies (``--only-binary
    :all: --require-hashes --no-deps``): no package's code runs at install.

    From any state a run or a hand fix leaves: files another user owns, or that group or others may
    write, are given back to USER by root's host-side code, by handle;
    a distribution whose files a killed pip left missing or truncated is
    uninstalled; extras are uninstalled; then ``pip install --require-hashes
    --no-deps`` of the lock installs what is missing or of another version. A
    venv that cannot be repaired in place (``venv_rebuild_reasons``: no pip,
    another or a dangling interpreter, ...) is rebuilt (``python -m venv
    --clear``, as USER). No change when the venv already equals the lock.
    """
    state = snapshot.current().venv_at(venv)
    installed = state["packages"]
    changes = venv_drift(locked, installed)
    rebuild = venv_rebuild_reasons(state, python, python_version)
    broken = sorted(d for d in state["broken"] if d in (installed or {}) and d not in {c[0] for c in changes})
    adopt = state["foreign_count"] or state.get("writable_count")
    if not changes and not rebuild and not broken and not adopt:
        host.noop(f"{venv}: equals its lock{integrity_note(state.get('integrity'))}")
        return
    sbom = f"{lock_path.rsplit('/', 1)[0]}/venv-sbom.cdx.json"  # written next to the lock (tasks/python_env.py)
    if installed is None and running:
        drift.record("venv", {"running": running["venv"]}, {"built beside it": venv})
    for name, have, want in venv_drift(locked, running["packages"]) if installed is None and running else changes:
        drift.record(
            "package", {"name": name, "version": have}, {"name": name, "version": want, "lock": lock_path, "sbom": sbom}
        )
    for name in broken:
        drift.record(
            "package",
            {"name": name, "version": (installed or {})[name], "files": state["broken"][name]},
            {"name": name, "version": locked.get(name)},
        )
    if state["foreign_count"]:
        drift.record(
            "venv", {"not owned by": user, "count": state["foreign_count"], "e.g.": state["foreign"]}, {"owner": user}
        )
    if state.get("writable_count"):
        drift.record(
            "venv",
            {"writable by group or others": state["writable_count"], "e.g.": state["writable"]},
            {"writable by": user},
        )
    if adopt:
        yield hostside("adopt", {"path": venv, "user": user, "group": group or user})
    if rebuild:
        drift.record("venv", f"cannot be repaired in place: {'; '.join(rebuild)}", "rebuilt from its lock")
    as_user = (
        f"cd / && runuser -u {q(user)} -- env -i HOME={'/root' if user == 'root' else '/'} {CLEAN_PATH} LANG=C.UTF-8"
    )
    pip = f"{as_user} {q(venv)}/bin/pip"
    extras = [name for name, _, want in changes if want is None]
    if state.get("hostile"):  # root walks it no further, and the account's rm of it could fail as well
        yield hostside("displace", {"path": venv})
    if rebuild or installed is None:
        yield f"{as_user} {q(python)} -m venv --clear {q(venv)}"
    elif extras or broken:
        yield (
            f"{pip} uninstall --no-input --disable-pip-version-check -y -q {' '.join(q(n) for n in [*extras, *broken])}"
        )
    if rebuild or installed is None or broken or len(extras) < len(changes):
        yield (
            f"{pip} install --no-input --disable-pip-version-check -q --require-hashes --no-deps "
            f"--only-binary :all: -r {q(lock_path)}"
        )


def _held(hold_when) -> bool:
    """Whether an operation of HOLD_WHEN failed in this run (known while executing, after it ran)."""
    return any(m.is_complete() and m.did_error() for m in hold_when)


def _venv_link_target(venv: str) -> str:
    """What the venv link holds for the versioned venv VENV: ``venvs/NAME``, relative to the link's folder."""
    return f"venvs/{venv.rsplit('/', 1)[1]}"


@operation()
def venv_switch(link: str, venv: str, hold_when: list | tuple = ()):
    """Ensure LINK, the venv path the units and tools name, is root's symlink to VENV, switched by a rename.

    + link: ``layout.VENV``
    + venv: the venv this run's lock installs (``render.venv_target``), built beside the running one
    + hold_when: OperationMeta of items the new release needs first (the database schema): when one of them
      failed in this run, the switch is held, and the proxy and the tools keep the venv they run

    The venv LINK led to before is kept (``LINK-previous``) for a rollback: a proxy that fails readiness after
    the switch gets it back (``user_unit``'s ``rollback``). A link of another owner, or to anything but a
    venv of ``venvs/``, is drift and replaced; a real directory at LINK (the layout before versioned venvs) is
    moved into ``venvs/`` and becomes the previous venv.
    """
    found = snapshot.current().link_at(link)
    want = _venv_link_target(venv)
    if (found.get("type"), found.get("user"), found.get("target")) == ("symlink", "root", want):
        host.noop(f"{link} leads to {venv}")
        return
    drift.record(
        "venv-link",
        {k: found.get(k) for k in ("type", "user", "target")} if found else None,
        {"type": "symlink", "user": "root", "target": want},
    )
    if _held(hold_when):
        host.noop(f"{link}: switch to {venv} held, an item it needs failed in this run (see its error above)")
        return
    yield hostside("switch", {"link": link, "target": want})


@operation()
def venv_prune(link: str, venv: str, switch=None):
    """Ensure ``venvs/`` next to LINK holds only the venvs still needed: the one LINK leads to, the one before it
    (``LINK-previous``) and VENV (this run's).

    + link: ``layout.VENV``
    + venv: the venv this run's lock installs
    + switch: ``venv_switch``'s OperationMeta: after a switch, the venv that was running becomes the previous one

    Runs after the units, so the old venv goes only after the proxy passed its readiness gate on the new one.
    A venv moved aside for inspection (``*.displaced-*``) is kept.
    """
    found = snapshot.current().link_at(link)
    keep = {_venv_link_target(venv), found.get("target")}
    if switch is None or not op_changed(switch):
        keep.add(found.get("previous"))
    extra = [n for n in found.get("entries") or [] if f"venvs/{n}" not in keep and ".displaced-" not in n]
    if not extra:
        host.noop(f"{link.rsplit('/', 1)[0]}/venvs holds the venvs in use only")
        return
    drift.record("venv-old", extra, [])
    yield hostside("prune", {"link": link, "keep": [venv.rsplit("/", 1)[1]]})


# -- CVE gate after converge ------------------------------------------------------------------
def _cve_refused(state, host, text):
    return failed(
        host,
        f"{text}\n  expected no known-vulnerable package in the venv: raise the pin in "
        "litellm_venv_requirements and run `litellm-runner lock`, or waive the advisory in "
        "files/advisories/ignored.yaml",
    )


def _audit_now(state, host, venv_path, audit):
    """At execution, after the venv operation ran: read what is installed now and AUDIT it."""
    ok, output = run_command(host, hostside("packages", {"venv": venv_path}), 120)  # through sudo when connected so
    if not ok:
        return _cve_refused(state, host, f"CVE gate: cannot read the packages of {venv_path}")
    installed = json.loads("\n".join(output.stdout_lines))
    text = audit(installed or {})
    return _cve_refused(state, host, text) if text else True


@operation()
def venv_audit(venv_path: str, locked: dict[str, str], audit: Callable[[dict[str, str]], str | None]):
    """The installed venv at VENV_PATH has no known vulnerability (CVE gate, after converge).

    + venv_path: the host's venv
    + locked: its lock's versions (to know whether the venv operation before this one changes it)
    + audit: the CVE gate on an installed set ``{name: version}``: its refusal text, or None

    A venv the run does not change is audited now, while pyinfra prepares,
    from the installed set the host snapshot already read (no remote command,
    and a no-op: nothing is reported changed on a clean venv). A venv the run
    changes is audited at execution, right after the install, by a
    FunctionCommand that reads what is installed then (so --dry runs gain no
    remote command); in that run the operation counts as changed, like the
    install it follows. Known vulnerabilities fail the host's run with the
    advisory ids and fixed versions.
    """
    installed = snapshot.current().venv_at(venv_path)["packages"]
    if installed is not None and not venv_drift(locked, installed):
        text = audit(installed)
        if text is None:
            host.noop(f"{venv_path}: no known vulnerability")
            return
        yield FunctionCommand(_cve_refused, (text,), {})
        return
    drift.record("cve-gate", "venv not audited (it changes in this run)", "audited after install")
    yield FunctionCommand(_audit_now, (venv_path, audit), {})


# -- systemd user units -----------------------------------------------------------------------
def op_changed(meta) -> bool:
    """Whether an earlier operation changed (after it ran) or will change (while detecting)."""
    return meta.did_change() if meta.is_complete() else bool(meta.will_change)


VENDOR = ("/usr/", "/lib/", "/dev/")  # packages' unit files and drop-ins; /dev/null is a mask's target


def foreign_sources(state: Mapping[str, Any], managed: str, account: tuple[str, ...] = ()) -> list[str]:
    """What systemd reads, or would after a reload, for a unit (``Snapshot.unit``: STATE) besides MANAGED:
    drop-ins, and unit files in other search paths that override, shadow or mask it. The files on
    disk (``sources``, from the host snapshot) when known, else what systemd loaded. Paths under
    ACCOUNT (the account's own folders) are left to ``no_account_plants``."""
    found = state.get("sources")
    if found is None:
        found = {*state.get("drop_ins", []), state.get("fragment") or managed}
    return sorted(
        p
        for p in found
        if p.startswith("/") and p != managed and not p.startswith(VENDOR) and not p.startswith(tuple(account))
    )


UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]{1,255}")  # the characters systemd allows in a unit name (unit-name.c)
UNIT_SUFFIXES = (".service", ".timer", ".socket", ".path", ".target", ".mount", ".automount", ".swap", ".slice")


def account_folders(home: str) -> tuple[str, ...]:
    """Prefixes of the folders the account writes that systemd reads for its units (its home, /run/user)."""
    return (f"{home.rstrip('/')}/", "/run/user/")


@operation()
def no_account_plants(user: str, units: list):
    """Nothing of USER's own changes a managed unit or what its services run (``hostside.account_plants``).

    + user: the service account
    + units: the managed units (their enablement links in the account's ``*.wants`` folders are its own)

    Each plant is drift with its evidence (path, type, owner, mode, size, mtime, sha256, a link's
    target): a unit file that shadows or extends a managed unit, a drop-in folder however linked, an
    extra unit or an extra ``.wants`` entry, an ``environment.d`` file, the manager's ``user.conf``.
    Root's host-side code moves the plants into a root-owned quarantine folder with a manifest
    (never deletes them, never follows or runs them: an extra unit's file and enablement links go
    there, which disables it), then the account's manager stops the extra units (those with a name systemd
    loads: no other name reaches a command line, which pyinfra prints at -vv) and unsets the
    variables those files set; the managed units are reloaded, enabled again and restarted after this.
    """
    plants = snapshot.current().for_user(user).plants
    if not plants:
        host.noop(f"nothing of {user}'s own changes a managed unit or its environment")
        return
    for item in plants:
        drift.record("account-plant", {k: v for k, v in item.items() if k != "variables"}, "quarantined")
    extra = sorted(
        {
            item["path"].rsplit("/", 1)[1]
            for item in plants
            if item["path"].endswith(UNIT_SUFFIXES)
            and item["path"].rsplit("/", 1)[1] not in units
            and UNIT_NAME.fullmatch(item["path"].rsplit("/", 1)[1])  # any other name never loads: nothing to stop
        }
    )
    yield hostside("quarantine", {"user": user, "units": list(units)})
    if extra:  # the account's own units, their files and enablement links quarantined: stopped by their manager
        yield f"{_systemctl_user(user)} stop {' '.join(q(u) for u in extra)} || true"
    names = sorted({v for item in plants for v in item.get("variables", [])})
    if names:
        yield f"{_systemctl_user(user)} unset-environment {' '.join(q(n) for n in names)} || true"


def _unsealed(current: Mapping[str, Any] | None) -> bool:
    """A path (``Snapshot.path``) that is there and not a folder the quarantine sealed in place (root:root 0700)."""
    if current is None:
        return False
    return not (current["type"] == "directory" and current["user"] == "root" and current["mode"] == "0700")


@operation()
def no_legacy_copies(user: str, paths: list):
    """None of PATHS (the account's copies of root's files, from the layout before issue #22) is left.

    + user: the service account whose tree held them
    + paths: ``layout.legacy(litellm_root)``

    An adopted or earlier host kept the venv, the tools, the env file and the config in the account's
    tree; root's own copies now live in ``layout``. The account's are moved into the quarantine
    folder with a manifest (never deleted, never run), after the units run from root's.
    """
    snap = snapshot.current()
    found = [p for p in paths if _unsealed(snap.path(p))]
    if not found:
        host.noop(f"no copy of root's code or config in {user}'s tree")
        return
    for path in found:
        current = snap.path(path) or {}
        drift.record("legacy-copy", {"path": path, "type": current["type"], "owner": current["user"]}, "quarantined")
    yield hostside("quarantine", {"user": user, "paths": found, "why": "the account's copy of root's file"})


@operation()
def user_unit_sources(user: str, unit: str, path: str, home: str = ""):
    """Ensure USER's systemd reads UNIT from PATH only, the managed unit file.

    + user: owner of the user manager
    + unit: e.g. ``litellm.service``
    + path: the managed unit file (``/etc/systemd/user/UNIT``)
    + home: the account's home: what it holds there is ``no_account_plants``' business

    Every other file is an operator's hand edit and drift: drop-ins in root's
    folders (``/etc/systemd/user/UNIT.d``, ``/run/systemd/user``), a unit file of
    the same name there, a mask link. They are moved into the quarantine folder by
    host-side code by handle (never through a link); ``user_daemon_reload`` then
    reloads and ``user_unit`` restarts the unit once. Packages' files under /usr
    are not the operator's and are left alone.
    """
    state = snapshot.current().for_user(user).unit(unit)
    foreign = foreign_sources(state, path, account_folders(home) if home else ())
    if not foreign:
        host.noop(f"{unit} is read from {path} only")
        return
    drift.record(
        "unit-sources",
        {"fragment": state.get("fragment") or None, "state": state.get("file_state") or None, "files": foreign},
        {"fragment": path, "files": []},
    )
    yield hostside("unit_clean", {"user": user, "paths": foreign})


@operation()
def user_daemon_reload(user: str, when: list, units: list | tuple = ()):
    """Reload USER's systemd manager when any operation in WHEN changed a unit file, or a unit
    of UNITS changed on disk since the manager last read it (``NeedDaemonReload``).

    + user: owner of the user manager
    + when: OperationMeta of the unit file and unit source operations
    + units: the managed units
    """
    states = {u: snapshot.current().for_user(user).unit(u) for u in units}
    stale = sorted(u for u, st in states.items() if st.get("need_reload"))
    if stale:
        drift.record("unit-reload", {"NeedDaemonReload": stale}, {"NeedDaemonReload": []})
    if not stale and not any(op_changed(m) for m in when):
        host.noop(f"no unit file of {user} changed and its manager has read every unit as it is on disk")
        return
    yield f"{_systemctl_user(user)} daemon-reload"


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
        return run_command(host, command, timeout)[0]

    def restore() -> str:
        said = "the config was not changed by this run, nothing to restore"
        if rollback and op_changed(rollback["when"]):
            ok, out = run_command(
                host,
                hostside("restore", {k: rollback[k] for k in ("user", "group", "mode")} | {"dest": rollback["path"]}),
                60,
            )
            restored = ok and json.loads(out.stdout or "{}").get("restored")
            said = (
                f"previous config restored to {rollback['path']}"
                if restored
                else f"could not restore {rollback['path']}"
            )
        switched = (rollback or {}).get("venv")
        if switched is not None and op_changed(switched):  # this run switched the venv: back to the one before
            ok, _ = run_command(host, hostside("switch", {"link": layout.VENV}), 60)
            said += "; previous venv switched back" if ok else f"; could not switch {layout.VENV} back"
        return said

    # the host's journal records when the unit answered (``journalctl -t litellm-runner``):
    # the order of a rollout can be read back from the hosts themselves. Asked every half second (a
    # loopback request), so a restart waits for the proxy and not for the next poll as well
    wait = (
        f"timeout {int(ready_timeout)} sh -c "
        + q(f"until curl -fsS -o /dev/null --max-time 5 {ready_url}; do sleep 0.5; done")
        + f" && {{ logger -t litellm-runner -- {q(f'{unit} ready: {ready_url}')} || true; }}"
    )
    stopped = run_state.of(state).rollout_failed  # the first host whose unit failed its gate stops the rollout
    if stopped:
        what = restore()
        return failed(host, f"{unit} not {action}ed: the rollout stopped after {stopped} failed readiness; {what}")
    if run(f"{ctl} {action} {q(unit)}", 120) and run(wait, ready_timeout + 30):
        return True
    if run_state.of(state).rollout_failed is None:
        run_state.of(state).rollout_failed = host.name
    what = restore()
    again = run(f"{ctl} restart {q(unit)}", 120) and run(wait, ready_timeout + 30)
    return failed(
        host,
        f"{unit} failed readiness ({ready_url} within {ready_timeout}s) after this run's changes; {what}; "
        f"restarted: {'ready again' if again else 'still not ready'}. Other hosts are left on their last good state.",
    )


@operation()
def user_unit(
    user: str,
    unit: str,
    enabled: bool = True,
    running: bool = True,
    restart_when: list | tuple = (),
    ready_url: str | None = None,
    ready_timeout: int = 300,
    rollback: dict | None = None,
    path: str | None = None,
    enable_when: list | tuple = (),
    hold_when: list | tuple = (),
    held: dict | None = None,
    takes_over: str = "",
):
    """Ensure USER's unit UNIT is enabled/disabled and running/stopped.

    + user: owner of the user manager (needs linger)
    + unit: e.g. ``litellm.service`` or ``litellm-backup.timer``
    + enabled, running: desired state
    + restart_when: OperationMeta of the unit's inputs (unit file, config, env
      file, database rows); a running unit restarts once if any changed. A
      unit this operation starts is not restarted again.
    + ready_url: when given, a start or restart waits until this URL answers
      (``ready_timeout`` seconds); pass ``_parallel=N`` to restart N hosts at a time
    + rollback: ``{"path", "user", "group", "mode", "when": OperationMeta, "venv": OperationMeta}``: the
      config restored from its newest backup when readiness fails (see ``_gated``), and the venv link
      switched back to the previous venv when ``venv`` (``venv_switch``) changed in this run
    + path: the managed unit file; a running unit systemd read from anything else, or
      that changed on disk since (``user_unit_sources``, ``NeedDaemonReload``), restarts once
    + enable_when: OperationMeta that may move the account's enablement links (``no_account_plants``):
      an enabled unit is enabled again when one of them changed
    + hold_when: OperationMeta of items the unit needs converged first (the database schema): when one
      of them failed in this run, a restart is held (the running unit keeps serving) and said so
    + held: ``{"path", "account"}``: a file that keeps a held restart owed across runs (its inputs
      changed in the run that held it, not in the next), written with the command prefix ACCOUNT
      (empty: root, ``layout.RESTART_HELD``); the restart done and the file removed by the first run
      that holds nothing
    + takes_over: a unit that held UNIT's address before it (the proxy binding its own port, before
      ``litellm.socket``): stopped right before UNIT starts when it runs and UNIT does not, since the
      address is free only then; held like a restart when an item of HOLD_WHEN failed (it keeps serving)
    """
    state = snapshot.current().for_user(user).unit(unit)
    edited = bool(path and (foreign_sources(state, path) or state.get("need_reload")))
    is_enabled, is_active = state.get("enabled", False), state.get("active", False)
    # a unit file (re)written in this run (its directory was removed by hand, with the
    # .wants links) is enabled again even when the manager still remembers it as enabled
    rewritten = path is not None and (snapshot.current().path(path) or {}).get("type") != "file"
    ctl = _systemctl_user(user)
    commands, action = [], None
    if enabled and (not is_enabled or rewritten or any(op_changed(m) for m in enable_when)):
        commands.append(f"{ctl} enable {q(unit)}")
    elif not enabled and is_enabled:
        commands.append(f"{ctl} disable {q(unit)}")
    if running and not is_active:
        action = "start"
    elif not running and is_active:
        action = "stop"
    elif running and is_active and (edited or any(op_changed(m) for m in restart_when)):
        action = "restart"
    owed = bool(held and snapshot.current().path(held["path"]))
    if running and is_active and owed:
        action = "restart"
    takeover = (
        action == "start" and bool(takes_over) and snapshot.current().for_user(user).unit(takes_over).get("active")
    )
    failed = [m for m in hold_when if m.is_complete() and m.did_error()]
    if (action == "restart" or takeover) and failed:
        drift.record("restart", None, "restart")
        action = None
        if held and not owed:
            commands.append(f"{held['account']} touch {q(held['path'])}")
        if not commands:
            host.noop(f"{unit}: restart held, an item it needs failed in this run (see its error above)")
            return
    cleanup = [f"{held['account']} rm -f {q(held['path'])}"] if held and owed and action else []
    if not commands and not action:
        host.noop(f"{unit} is {'enabled' if is_enabled else 'disabled'} and {'active' if is_active else 'inactive'}")
    elif commands or action != "restart":
        drift.record("unit", {"enabled": is_enabled, "active": is_active}, {"enabled": enabled, "active": running})
    else:  # only a restart: a consequence of drift in an input, not drift of its own
        drift.record("restart", None, "restart")
    yield from commands
    if takeover and action and not ready_url:  # one command: the address is refused only between the two
        yield f"{ctl} stop {q(takes_over)} && {ctl} start {q(unit)}"
        return
    if takeover and action:
        yield f"{ctl} stop {q(takes_over)}"
    if action in ("start", "restart") and ready_url:
        yield FunctionCommand(
            _gated,
            (_systemctl_user(user), unit, action, ready_url, ready_timeout, rollback if action == "restart" else None),
            {},
        )
    elif action:
        yield f"{ctl} {action} {q(unit)}"
    yield from cleanup  # after the restart: one that failed stays owed


# -- the query engine (litellm_query_engine, tasks/query_engine.py) ---------------------------
# How it is shipped: the tar.gz is uploaded into a fresh private directory of the connecting user
# (``mktemp -d``, 0700: never a predictable /tmp path), then root checks its sha256, unpacks it into a
# new folder next to the installed versions (owner root, modes 0755/0644), checks every file against
# the bundle's MANIFEST.sha256 and renames the folder into place. The version installed before is kept
# (a proxy worker restarted before the proxy's own restart still finds its engine); older ones go.
ENGINE_UPLOAD_TIMEOUT = 300  # seconds for the bundle's upload
ENGINE_INSTALL_TIMEOUT = 300  # seconds to check and unpack it

# Run by root: $1 staged bundle, $2 its sha256, $3 the version's folder. The folder's parent is root's.
ENGINE_INSTALL = r"""set -eu
bundle=$1 sha=$2 dest=$3 parent=${3%/*}
got=$(sha256sum < "$bundle") && got=${got%% *}
[ "$got" = "$sha" ] || { echo "query engine bundle: sha256 $got, expected $sha" >&2; exit 1; }
umask 022
[ -L "$parent" ] && { echo "$parent is a symlink: refusing" >&2; exit 1; }
mkdir -p "$parent" && chown root:root "$parent" && chmod 0755 "$parent"
rm -rf -- "$parent"/.new-*
new=$(mktemp -d "$parent/.new-XXXXXXXX")
tar -xzf "$bundle" -C "$new" --no-same-owner --no-same-permissions
(cd "$new" && sha256sum --check --quiet --strict MANIFEST.sha256)
chown -R root:root "$new" && chmod 0755 "$new"
rm -rf -- "$dest"
mv -T -- "$new" "$dest"
ls -1td -- "$parent"/*/ | sed 's,/$,,' | grep -vxF -- "$dest" | tail -n +2 |
  while read -r old; do rm -rf -- "$old"; done
"""


def engine_is_installed(found: Mapping[str, Any] | None, manifest_sha256: str) -> bool:
    """Whether FOUND (``Snapshot.path`` of the version's MANIFEST) is root's, read-only and of MANIFEST_SHA256."""
    if not found:
        return False
    return (found.get("type"), found.get("user"), found.get("mode"), found.get("sha256")) == (
        "file",
        "root",
        "0644",
        manifest_sha256,
    )


def _install_engine(state, host, bundle: bytes, bundle_sha256: str, dest: str):
    """Upload BUNDLE into a fresh private directory of the connecting user, have root install it at DEST."""
    ok, out = run_command(host, "umask 077 && mktemp -d /tmp/litellm-runner.XXXXXXXXXX", 30, escalate=False)
    if not ok:
        return _failed(host, f"{dest}: no private staging directory", out)
    stage = out.stdout.strip()
    try:
        args = compat.op_connector_arguments(host)
        if not host.put_file(
            BytesIO(bundle),
            f"{stage}/engine.tar.gz",
            remote_temp_filename=f"{stage}/upload",
            **{**args, "_timeout": ENGINE_UPLOAD_TIMEOUT},
        ):
            return _failed(host, f"{dest}: upload of the query engine failed", out)
        command = " ".join(
            shlex.quote(a)
            for a in ("sh", "-c", ENGINE_INSTALL, "install", f"{stage}/engine.tar.gz", bundle_sha256, dest)
        )
        ok, out = run_command(host, command, ENGINE_INSTALL_TIMEOUT)
        return ok or _failed(host, f"{dest}: query engine not installed", out)
    finally:
        run_command(host, f"rm -rf -- {shlex.quote(stage)}", 30)


@operation()
def engine_installed(dest: str, manifest_sha256: str):
    """Ensure DEST holds the query engine whose MANIFEST.sha256 has sha256 MANIFEST_SHA256, root's and read-only.

    + dest: the version's folder (``query_engine.install_dir()``)
    + manifest_sha256: sha256 of the assembled bundle's MANIFEST.sha256 (every file's sha256)

    The bundle itself is assembled (``bundle()``) only when it must be shipped.
    """
    found = snapshot.current().path(f"{dest}/{query_engine.MANIFEST}")
    if engine_is_installed(found, manifest_sha256):
        host.noop(f"the query engine in {dest} is installed, root's and read-only")
        return
    seen = (
        None
        if not found
        else {k: found.get(k) for k in ("type", "user", "mode")} | {"manifest": (found.get("sha256") or "")[:12]}
    )
    drift.record(
        "query-engine", seen, {"type": "file", "user": "root", "mode": "0644", "manifest": manifest_sha256[:12]}
    )
    bundle, _ = query_engine.bundle()
    yield FunctionCommand(_install_engine, (bundle, hashlib.sha256(bundle).hexdigest(), dest), {})


# -- the host tools' compiled modules ---------------------------------------------------------------------
BYTECODE_DIR = {"type": "directory", "user": "root", "group": "root", "mode": layout.CODE_MODE}


@operation()
def tools_bytecode(folder: str, modules: dict[str, str]):
    """Ensure FOLDER/__pycache__ holds root's checked compiled form of each of MODULES, and nothing else.

    + folder: the host tools' folder, root's (``layout.BIN``)
    + modules: ``{name: source}`` of the tools' modules as this run ships them (``snapshot.tool_modules``)

    The account's interpreter cannot write a ``__pycache__`` in root's folder, so without it every tool run
    compiles them again (about 9 ms of the host's CPU per check). Each file is checked against its source's
    hash by the import itself (PEP 552), so a stale one is never used. Anything else in the folder (another
    owner or mode, a link, a file no converge wrote, an unchecked pyc) is drift: the converge compiles into a
    new folder and moves the old one aside as evidence (``hostside.compile_tools``). Compiled again, too,
    when this run writes one of MODULES (its host copy differs from the shipped source).
    """
    snap = snapshot.current()
    found = snap.bytecode
    changing = sorted(m for m, text in modules.items() if not is_current(snap.path(f"{folder}/{m}"), text))
    problems = {} if found is None else found["problems"]
    where = f"{folder}/__pycache__"
    if found is None:
        drift.record("tools-bytecode", {where: "missing"}, {where: "root's compiled tool modules"})
    elif {k: found["dir"].get(k) for k in BYTECODE_DIR} != BYTECODE_DIR or problems:
        drift.record(
            "tools-bytecode",
            {where: {k: found["dir"].get(k) for k in BYTECODE_DIR}, "files": problems},
            {where: BYTECODE_DIR, "files": "root's compiled tool modules"},
        )
    elif not changing:
        host.noop(f"{where}: root's compiled form of {', '.join(sorted(modules))}, each checked against its source")
        return
    yield hostside("compile_tools", {"folder": folder, "modules": sorted(modules)})
