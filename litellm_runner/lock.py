"""A per-host run lock: two converges never interleave on one host.

``deploy.py`` calls :func:`hold_run_lock` for each host right after the desired
state is validated, before the first fact that decides a change is read. The
lock is a small owner file on the host's tmpfs (``/run/litellm-runner.lock``:
gone after a reboot, like every process that could have held it)::

    run_id=3f9c0a1b2c4d user=alice machine=ctl-1 pid=4242 pstart=8812345 started=1767000000

Every read-decide-write of that file happens in one remote shell command under
``flock`` on ``/run/litellm-runner.lock.guard``, so two runs cannot both take
it; the owner file is written to a temporary name and renamed, so it is never
seen half written. ``started`` is the host's clock (ages never mix clocks).

A second converge waits up to ``litellm_lock_wait`` seconds, then refuses with
the holder named (user@machine, pid, run id, start time, age) and what to do;
pyinfra exits 1. A lock left by a killed run is taken over with a one-line
notice: at once from the machine that ran it (its pid is gone, or the pid now
belongs to another process), from another machine once it is older than
``litellm_lock_stale_after`` seconds.

The lock is released on a host after its last operation ran (or failed: pyinfra
runs nothing more on a failed host), and otherwise when pyinfra disconnects
(the deploy refused or aborted after taking it, the change prompt was declined).

Dry runs (``--dry``, ``--json`` without ``-y``, ``--debug-*``, and so
``python -m litellm_runner.check``) change nothing, take no lock and send no
command for it. Each converge adds two commands per host: take, release.
"""

from __future__ import annotations

import datetime
import getpass
import math
import os
import re
import shlex
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Callable

LOCK_PATH = "/run/litellm-runner.lock"
GUARD_PATH = LOCK_PATH + ".guard"
DEFAULT_WAIT = 30  # seconds; group_data litellm_lock_wait
DEFAULT_STALE_AFTER = 3600  # seconds; group_data litellm_lock_stale_after
POLL_SECONDS = 2.0
COMMAND_TIMEOUT = 30  # seconds, each remote lock command (flock waits at most 20 of them)

RUN_ID = uuid.uuid4().hex[:12]  # this process's run


class LockRefused(Exception):
    """The run lock of a host is held by another live run (or could not be taken)."""


# --- the owner record ------------------------------------------------------------------

@dataclass(frozen=True)
class Owner:
    run_id: str
    user: str
    machine: str
    pid: int
    pstart: str  # the process's start time as the kernel counts it ("" where unknown): pid + pstart = one process
    started: int  # host epoch seconds when the lock was taken

    FIELDS = ("run_id", "user", "machine", "pid", "pstart", "started")

    def describe(self, now: int | None = None) -> str:
        when = datetime.datetime.fromtimestamp(self.started, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        age = f", {_span(now - self.started)} ago" if now is not None else ""
        return f"{self.user}@{self.machine} pid {self.pid} (run {self.run_id}), started {when}{age}"


def parse_owner(text: str, mtime: int) -> Owner:
    """The owner file's TEXT as an Owner; what cannot be read counts as an unknown owner since MTIME."""
    fields = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep and key in Owner.FIELDS:
            fields[key] = value
    try:
        return Owner(fields["run_id"], fields["user"], fields["machine"], int(fields["pid"]),
                     fields.get("pstart", ""), int(fields["started"]))
    except (KeyError, ValueError):
        return Owner("unknown", "unknown", "unknown", 0, "", mtime)


def _span(seconds: int) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# --- who is alive on this machine ------------------------------------------------------

def process_start(pid: int) -> str:
    """The kernel's start time of process PID (clock ticks since boot, Linux), "" when unknown/gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return ""
    # the command name (field 2) is in parentheses and may hold spaces: fields after the last ")"
    rest = stat.rsplit(")", 1)[-1].split()
    return rest[19] if len(rest) > 19 else ""


def pid_alive(pid: int, pstart: str) -> bool:
    """Is process PID, started at PSTART (when known), still running on this machine?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    if pstart and os.path.exists("/proc/self/stat"):
        return process_start(pid) == pstart  # a different start time: the pid was reused
    return True


def me() -> Owner:
    """This run as a lock owner (``started`` is filled in by the host)."""
    return Owner(RUN_ID, _word(getpass.getuser()), _word(socket.gethostname()), os.getpid(),
                 process_start(os.getpid()), 0)


# --- the decision ------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    action: str  # "ours" | "take-over" | "wait"
    reason: str


def decide(owner: Owner, now: int, mine: Owner, stale_after: int,
           alive: Callable[[int, str], bool] = pid_alive) -> Decision:
    """What a run (MINE) does about a lock held by OWNER, at host time NOW."""
    if owner.run_id == mine.run_id:
        return Decision("ours", "this run already holds it")
    if owner.machine == mine.machine:
        if not alive(owner.pid, owner.pstart):
            return Decision("take-over", f"its process {owner.pid} on this machine is gone")
        return Decision("wait", f"its process {owner.pid} on this machine is running")
    age = now - owner.started
    if age >= stale_after:
        return Decision("take-over", f"it is {_span(age)} old, older than litellm_lock_stale_after "
                                     f"({stale_after} s)")
    return Decision("wait", f"it is held from another machine and younger than litellm_lock_stale_after "
                            f"({stale_after} s)")


# --- the remote commands -------------------------------------------------------------------

def _word(value) -> str:
    """VALUE as one safe word of the owner file (user and machine names are not trusted to be tidy)."""
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", str(value))[:64] or "_"


def _guarded(body: str, path: str) -> str:
    return (f"exec 9>>{shlex.quote(path + '.guard')} || exit 3; "
            "flock -w 20 9 || { echo BUSY; exit 0; }; " + body)


def take_command(mine: Owner, expect: str | None = None, path: str = LOCK_PATH) -> str:
    """Take the lock if it is free, or (EXPECT = the cksum of a stale owner file) replace that stale file.

    Prints ``ACQUIRED`` / ``TAKEN`` / ``BUSY`` / ``HELD <now> <mtime> <cksum>`` and the owner file.
    """
    lp = shlex.quote(path)
    record = " ".join(f"{k}={_word(getattr(mine, k))}" for k in Owner.FIELDS if k != "started")
    write = (f"umask 022; printf '%s started=%s\\n' {shlex.quote(record)} \"$now\" > {lp}.tmp.$$ "
             f"&& mv -f {lp}.tmp.$$ {lp} || exit 4")
    replace = "false"
    if expect:
        replace = f"[ \"$(cksum < {lp})\" = {shlex.quote(expect)} ]"
    body = (f"now=$(date +%s); "
            f"if [ ! -e {lp} ]; then {write}; echo ACQUIRED; "
            f"elif {replace}; then {write}; echo TAKEN; "
            f"else echo \"HELD $now $(stat -c %Y {lp}) $(cksum < {lp})\"; "
            f"head -c 4096 {lp}; echo; fi")
    return "sh -c " + shlex.quote(_guarded(body, path))


def release_command(run_id: str, path: str = LOCK_PATH) -> str:
    lp = shlex.quote(path)
    body = (f"if grep -q {shlex.quote('run_id=' + run_id + ' ')} {lp} 2>/dev/null; "
            f"then rm -f {lp} && echo RELEASED; "
            f"else echo NOT-OURS; head -c 4096 {lp} 2>/dev/null; echo; fi")
    return "sh -c " + shlex.quote(_guarded(body, path))


@dataclass(frozen=True)
class Reply:
    status: str  # ACQUIRED | TAKEN | BUSY | HELD | RELEASED | NOT-OURS
    now: int = 0
    mtime: int = 0
    cksum: str = ""
    text: str = ""


def parse_reply(lines: list[str]) -> Reply:
    if not lines:
        raise LockRefused("the lock command printed nothing")
    head = lines[0].split()
    if head and head[0] == "HELD" and len(head) >= 4:
        return Reply("HELD", int(head[1]), int(head[2]), " ".join(head[3:]), "\n".join(lines[1:]))
    if head and head[0] in ("ACQUIRED", "TAKEN", "BUSY", "RELEASED", "NOT-OURS"):
        return Reply(head[0], text="\n".join(lines[1:]))
    raise LockRefused(f"unexpected answer from the lock command: {lines[0][:200]!r}")


# --- pyinfra glue ---------------------------------------------------------------------------

def will_execute(argv: list[str] | None = None) -> bool:
    """Can this pyinfra run change hosts? False for --dry, --json without -y, --debug-facts/-operations."""
    if argv is None:
        import pyinfra

        if not getattr(pyinfra, "is_cli", False):
            return True  # the API: whoever drives it may run the operations
        argv = sys.argv[1:]
    from pyinfra_cli.cli import cli

    try:
        ctx = cli.make_context("pyinfra", list(argv), resilient_parsing=True)
    except Exception:  # noqa: BLE001 - cannot tell: behave as a converge (lock)
        return True
    params = ctx.params
    if params.get("dry") or params.get("debug_facts") or params.get("debug_operations"):
        return False
    if params.get("json_output") and not params.get("yes"):
        return False  # pyinfra prints the proposed changes and exits
    return True


def _run(state, host, command: str) -> tuple[bool, list[str], list[str]]:
    from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments

    arguments, _ = pop_global_arguments(state, host, {})
    connector_arguments = {k: v for k, v in arguments.items() if k in CONNECTOR_ARGUMENT_KEYS}
    connector_arguments["_timeout"] = COMMAND_TIMEOUT
    connector_arguments.pop("_chdir", None)
    connector_arguments.pop("_env", None)
    try:
        ok, output = host.run_shell_command(command, **connector_arguments)
    except Exception as e:  # noqa: BLE001 - connection errors of any connector
        return False, [], [f"{type(e).__name__}: {e}"]
    return ok, list(output.stdout_lines), list(output.stderr_lines)


def _notice(host, message: str) -> None:
    print(f"[{host.name}] run lock: {message}", file=sys.stderr, flush=True)


class _Held:
    """Hosts whose lock this run holds, released by pyinfra's callbacks."""

    def __init__(self) -> None:
        self.hosts: dict = {}  # host name -> host
        self.closed: set[str] = set()
        self.registered: set[int] = set()

    def register(self, state) -> None:
        if id(state) in self.registered:
            return
        from pyinfra.api.state import BaseStateCallback

        held = self

        class Release(BaseStateCallback):
            def operation_host_success(self, state, host, op_hash, retry_count=0):
                if op_hash == _last_op(state, host):
                    held.release(state, host)

            def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
                held.release(state, host)  # a failed host runs nothing more

            def operation_end(self, state, op_hash):
                order = state.get_op_order()
                if order and op_hash == order[-1]:
                    for host in list(held.hosts.values()):
                        held.release(state, host)

            def host_disconnect(self, state, host):
                held.closed.add(host.name)
                held.release(state, host)  # refused/aborted after taking it (ssh still answers here)

        state.add_callback_handler(Release())
        self.registered.add(id(state))

    def release(self, state, host) -> None:
        if self.hosts.pop(host.name, None) is None:
            return
        ok, out, err = _run(state, host, release_command(RUN_ID))
        if not ok or not out:
            _notice(host, f"could not release {LOCK_PATH}: {' '.join(err)[-300:]}; the next converge from "
                          f"this machine takes it over")
        elif out[0] == "NOT-OURS":
            _notice(host, f"{LOCK_PATH} was no longer this run's (taken over?): {' '.join(out[1:])[:300]}")


HELD = _Held()


def _last_op(state, host):
    ops = state.ops.get(host, {})
    last = None
    for op_hash in state.get_op_order():
        if op_hash in ops:
            last = op_hash
    return last


def _knob(host, name: str, default: int) -> int:
    value = host.data.get(name)
    return default if value is None else int(value)


def hold_run_lock(state, host=None) -> None:
    """Take HOST's run lock for this run (waiting, taking over a stale one, or refusing). No-op on dry runs."""
    from pyinfra.api.exceptions import PyinfraError

    if host is None:
        from pyinfra.context import ctx_host
        host = ctx_host.get()
    if not will_execute() or host.name in HELD.hosts:
        return
    HELD.register(state)
    wait = _knob(host, "litellm_lock_wait", DEFAULT_WAIT)
    stale_after = _knob(host, "litellm_lock_stale_after", DEFAULT_STALE_AFTER)
    try:
        acquire(lambda command: _run(state, host, command), host.name, wait, stale_after,
                notice=lambda message: _notice(host, message))
    except LockRefused as e:
        raise PyinfraError(f"host {host.name}: {e}") from None
    HELD.hosts[host.name] = host
    if host.name in HELD.closed:  # pyinfra disconnected while this run waited: give it back
        HELD.release(state, host)


def acquire(run: Callable[[str], tuple[bool, list[str], list[str]]], name: str, wait: float, stale_after: int,
            notice: Callable[[str], None] = print, mine: Owner | None = None, path: str = LOCK_PATH,
            alive: Callable[[int, str], bool] = pid_alive, sleep: Callable[[float], None] = time.sleep) -> str:
    """Take the lock through RUN (runs one shell command on the host); "ACQUIRED" or "TAKEN".

    Waits up to WAIT seconds for a live holder, then raises LockRefused naming it.
    """
    mine = mine or me()
    deadline = time.monotonic() + wait
    waiting_for = None
    while True:
        ok, out, err = run(take_command(mine, path=path))
        if not ok:
            raise LockRefused(f"cannot take the run lock {path}: {' '.join(err)[-300:] or 'command failed'} "
                              f"(the lock needs root on the host: connect as root or set _sudo)")
        reply = parse_reply(out)
        if reply.status in ("ACQUIRED", "TAKEN"):
            return reply.status
        owner, decision = None, Decision("wait", "another run is changing the lock")
        if reply.status == "HELD":
            owner = parse_owner(reply.text, reply.mtime)
            decision = decide(owner, reply.now, mine, stale_after, alive)
            if decision.action == "ours":
                return "ACQUIRED"
            if decision.action == "take-over":
                ok, out, err = run(take_command(mine, reply.cksum, path))
                if ok and parse_reply(out).status == "TAKEN":
                    notice(f"took over a stale lock of {owner.describe(reply.now)}: {decision.reason}")
                    return "TAKEN"
                decision = Decision("wait", "the lock changed while taking it over")  # look again after a pause
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            holder = owner.describe(reply.now) if owner else "another run (busy)"
            raise LockRefused(
                f"another converge holds the run lock {path}: {holder}; waited {_span(wait)} "
                f"(litellm_lock_wait) and refused to interleave, nothing was changed by this run. "
                f"Let that run finish, then converge again. If it was killed, its own machine takes the lock over "
                f"at once; any machine does after litellm_lock_stale_after ({stale_after} s); if you are sure no run "
                f"is active, remove {path} on the host")
        if owner and (waiting_for is None or waiting_for != owner.run_id):
            notice(f"waiting up to {_span(math.ceil(remaining))} (litellm_lock_wait) for {owner.describe(reply.now)}: "
                   f"{decision.reason}")
            waiting_for = owner.run_id
        sleep(min(POLL_SECONDS, max(remaining, 0.1)))
