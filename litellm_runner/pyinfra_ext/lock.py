"""A per-host run lock: two converges never interleave on one host.

``deploy.py`` calls :func:`hold_run_lock` for each host right after the desired
state is validated, before the first fact that decides a change is read. The
lock is a small owner file on the host's tmpfs (``/run/litellm-runner.lock``:
gone after a reboot, like every process that could have held it)::

    run_id=3f9c0a1b2c4d user=alice machine=ctl-1 mid=5d41...  pid=4242 pstart=8812345 started=1767000000 beat=1767000090

``machine`` is the control machine's hostname, for people; ``mid`` is its identity
for the lock: a random id made once per account and kept in
``$XDG_STATE_HOME/litellm-runner/machine-id`` (default ``~/.local/state``, 0600),
so two control machines that share a hostname are never taken for one.

Every read-decide-write of that file happens in one remote shell command under
``flock`` on ``/run/litellm-runner.lock.d/guard``, so two runs cannot both take
it. The lock file is written 0600 in /run, which only root writes; the guard is
0600 in ``/run/litellm-runner.lock.d``, made 0700 by root and checked to be
root's own directory at 0700 before it is used: the service account cannot
create, replace, open or hold either (a flock it took on an older runner's
``/run/litellm-runner.lock.guard``, world-readable then, no longer counts). The
owner file is written to a temporary name and renamed, so it is never seen half
written. ``started`` and ``beat`` are the host's clock (ages never mix
clocks). While a converge holds the lock, a greenlet rewrites ``beat`` every
``litellm_lock_stale_after / 10`` seconds (30 of 300): one command per interval,
none in a run shorter than that.

A second converge waits up to ``litellm_lock_wait`` seconds, then refuses with
the holder named (user@machine, pid, run id, start time, age) and what to do;
pyinfra exits 1. A lock left by a killed run is taken over with a one-line
notice: at once from the machine that ran it (same ``mid``; its pid is gone, or
the pid now belongs to another process), from another machine once its last
heartbeat is older than ``litellm_lock_stale_after`` seconds: a live run keeps
its lock however long it runs. A run whose heartbeat could not keep up (the
change prompt blocks the event loop) checks before its next operation on that
host that the lock is still its own, and stops (pyinfra exits 1) if it is not.

The lock is released on a host after its last operation ran (or failed: pyinfra
runs nothing more on a failed host), and otherwise when pyinfra disconnects
(the deploy refused or aborted after taking it, the change prompt was declined).

Dry runs (``--dry``, ``--json`` without ``-y``, ``--debug-*``, and so
``python -m litellm_runner.cli.check``) change nothing, take no lock and send no
command for it. Each converge adds two commands per host: take, release (plus a
heartbeat per interval in runs longer than one).
"""

from __future__ import annotations

import datetime
import functools
import getpass
import math
import os
import pathlib
import re
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from litellm_runner import layout
from litellm_runner.run import state as run_state
from litellm_runner.settings import DEFAULTS

LOCK_PATH = layout.RUN_LOCK
GUARD_PATH = LOCK_PATH + ".d/guard"  # in a directory only root can enter (guard_dir)
DEFAULT_WAIT: int = DEFAULTS["litellm_lock_wait"]  # seconds (30)
DEFAULT_STALE_AFTER: int = DEFAULTS["litellm_lock_stale_after"]  # seconds (300)
BEATS_PER_STALE = 10  # heartbeats per litellm_lock_stale_after: 30 s of 300
POLL_SECONDS = 2.0
COMMAND_TIMEOUT = 30  # seconds, each remote lock command (flock waits at most 20 of them)


class LockRefused(Exception):
    """The run lock of a host is held by another live run (or could not be taken)."""


# --- the owner record ------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    run_id: str
    user: str
    machine: str  # hostname, for people
    pid: int
    pstart: str  # the process's start time as the kernel counts it ("" where unknown): pid + pstart = one process
    started: int  # host epoch seconds when the lock was taken
    mid: str = ""  # the control machine's identity ("" in a lock of an older runner: never this machine)
    beat: int = 0  # host epoch seconds of the holder's last heartbeat (0: none yet, counts as started)

    FIELDS = ("run_id", "user", "machine", "mid", "pid", "pstart", "started", "beat")

    @property
    def last_beat(self) -> int:
        return self.beat or self.started

    def describe(self, now: int | None = None) -> str:
        when = datetime.datetime.fromtimestamp(self.started, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        age = ""
        if now is not None:
            age = f", {_span(now - self.started)} ago, last heartbeat {_span(now - self.last_beat)} ago"
        return (
            f"{self.user}@{self.machine} pid {self.pid} (run {self.run_id}, machine id {self.mid[:8] or '?'}), "
            f"started {when}{age}"
        )


def parse_owner(text: str, mtime: int) -> Owner:
    """The owner file's TEXT as an Owner; what cannot be read counts as an unknown owner since MTIME."""
    fields = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep and key in Owner.FIELDS:
            fields[key] = value
    try:
        return Owner(
            fields["run_id"],
            fields["user"],
            fields["machine"],
            int(fields["pid"]),
            fields.get("pstart", ""),
            int(fields["started"]),
            fields.get("mid", ""),
            int(fields.get("beat", 0)),
        )
    except (KeyError, ValueError):
        return Owner("unknown", "unknown", "unknown", 0, "", mtime)


def _span(seconds: float) -> str:
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


def _state_dir() -> pathlib.Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return pathlib.Path(base) / "litellm-runner"


def machine_id(directory: pathlib.Path | None = None) -> str:
    """This control machine's identity: a random id made once (0600, created atomically) in DIRECTORY."""
    directory = directory or _state_dir()
    path = directory / "machine-id"
    try:
        known = path.read_text().strip()
    except FileNotFoundError:
        known = None
    if known is not None and re.fullmatch(r"[0-9a-f]{32}", known):
        return known
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    new = uuid.uuid4().hex
    tmp = directory / f".machine-id.{os.getpid()}.{new[:8]}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new + "\n")
            f.flush()
            os.fsync(f.fileno())
        if known is None:
            try:
                os.link(tmp, path)  # atomic, never replaces: two first runs agree on the one that won
            except FileExistsError:
                pass
        else:
            os.replace(tmp, path)  # an unreadable id: this one from now on
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


@functools.cache
def _my_machine_id() -> str:
    return machine_id()


def me(run_id: str | None = None) -> Owner:
    """This run as a lock owner (``started`` and ``beat`` are filled in by the host). RUN_ID: the run's
    (``owner(state)``); a new one when not given."""
    return Owner(
        run_id or new_run_id(),
        _word(getpass.getuser()),
        _word(socket.gethostname()),
        os.getpid(),
        process_start(os.getpid()),
        0,
        _my_machine_id(),
    )


def new_run_id() -> str:
    """A fresh run id: each run (each pyinfra State) is its own lock owner, even two in one process."""
    return uuid.uuid4().hex[:12]


def owner(state) -> Owner:
    """STATE's run as a lock owner: its run id is its Run's (``held(state).run_id``)."""
    return me(held(state).run_id)


def beat_interval(stale_after: int) -> float:
    """Seconds between a holder's heartbeats: a tenth of the stale threshold."""
    return max(1.0, stale_after / BEATS_PER_STALE)


# --- the decision ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    action: str  # "ours" | "take-over" | "wait"
    reason: str


def decide(
    owner: Owner, now: int, mine: Owner, stale_after: int, alive: Callable[[int, str], bool] = pid_alive
) -> Decision:
    """What a run (MINE) does about a lock held by OWNER, at host time NOW."""
    if owner.run_id == mine.run_id:
        return Decision("ours", "this run already holds it")
    if owner.mid and owner.mid == mine.mid:
        if not alive(owner.pid, owner.pstart):
            return Decision("take-over", f"its process {owner.pid} on this machine is gone")
        return Decision("wait", f"its process {owner.pid} on this machine is running")
    quiet = now - owner.last_beat
    if quiet >= stale_after:
        return Decision(
            "take-over",
            f"its last heartbeat was {_span(quiet)} ago, longer than litellm_lock_stale_after ({stale_after} s)",
        )
    return Decision(
        "wait",
        f"it is held from another machine whose last heartbeat was {_span(quiet)} ago, "
        f"within litellm_lock_stale_after ({stale_after} s)",
    )


# --- the remote commands -------------------------------------------------------------------


def _word(value) -> str:
    """VALUE as one safe word of the owner file (user and machine names are not trusted to be tidy)."""
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", str(value))[:64] or "_"


def guard_dir(path: str = LOCK_PATH) -> str:
    """The directory of PATH's guard: made 0700 by the run (root), so no other user can open the guard, let
    alone hold a flock on it (flock works on a read-only handle)."""
    return path + ".d"


def _guarded(body: str, path: str) -> str:
    """BODY under flock on the guard in ``guard_dir``: the directory is made 0700 (umask 077, so the guard is
    0600) and must be a real directory of this user's at 0700, or the command refuses (exit 3, ``UNSAFE``)."""
    d = shlex.quote(guard_dir(path))
    return (
        f"umask 077; mkdir -m 0700 {d} 2>/dev/null; "
        f'[ -d {d} ] && [ ! -L {d} ] && [ "$(stat -c %u:%a {d})" = "$(id -u):700" ] '
        f"|| {{ echo UNSAFE {d} is not a directory of this user at 0700 >&2; exit 3; }}; "
        f"exec 9>>{shlex.quote(guard_dir(path) + '/guard')} || exit 3; flock -w 20 9 || {{ echo BUSY; exit 0; }}; "
        + body
    )


def _write(mine: Owner, lp: str, started: str) -> str:
    """Shell: write MINE's owner record (started=STARTED, beat=$now) to a temporary name, rename it onto LP."""
    record = " ".join(f"{k}={_word(getattr(mine, k))}" for k in Owner.FIELDS if k not in ("started", "beat"))
    return (
        f"umask 077; printf '%s started=%s beat=%s\\n' {shlex.quote(record)} {started} \"$now\" "
        f"> {lp}.tmp.$$ && mv -f {lp}.tmp.$$ {lp} || exit 4"
    )


def take_command(mine: Owner, expect: str | None = None, path: str = LOCK_PATH) -> str:
    """Take the lock if it is free, or (EXPECT = the cksum of a stale owner file) replace that stale file.

    Prints ``ACQUIRED <now>`` / ``TAKEN <now>`` / ``BUSY`` / ``HELD <now> <mtime> <cksum>`` and the owner file.
    """
    lp = shlex.quote(path)
    write = _write(mine, lp, '"$now"')
    replace = "false"
    if expect:
        replace = f'[ "$(cksum < {lp})" = {shlex.quote(expect)} ]'
    body = (
        f"now=$(date +%s); "
        f"if [ ! -e {lp} ]; then {write}; echo ACQUIRED $now; "
        f"elif {replace}; then {write}; echo TAKEN $now; "
        f'else echo "HELD $now $(stat -c %Y {lp}) $(cksum < {lp})"; '
        f"head -c 4096 {lp}; echo; fi"
    )
    return "sh -c " + shlex.quote(_guarded(body, path))


def _ours(run_id: str, lp: str) -> str:
    return f"grep -q {shlex.quote('run_id=' + run_id + ' ')} {lp} 2>/dev/null"


def beat_command(mine: Owner, started: int, path: str = LOCK_PATH) -> str:
    """Rewrite the heartbeat of the lock MINE took at STARTED, if it is still MINE's.

    Prints ``BEAT <now>``, or ``NOT-OURS`` and the owner file (it was taken over, or released).
    """
    lp = shlex.quote(path)
    body = (
        f"if {_ours(mine.run_id, lp)}; then now=$(date +%s); {_write(mine, lp, str(int(started)))}; "
        f"echo BEAT $now; else echo NOT-OURS; head -c 4096 {lp} 2>/dev/null; echo; fi"
    )
    return "sh -c " + shlex.quote(_guarded(body, path))


def release_command(run_id: str, path: str = LOCK_PATH) -> str:
    lp = shlex.quote(path)
    body = (
        f"if {_ours(run_id, lp)}; "
        f"then rm -f {lp} && echo RELEASED; "
        f"else echo NOT-OURS; head -c 4096 {lp} 2>/dev/null; echo; fi"
    )
    return "sh -c " + shlex.quote(_guarded(body, path))


@dataclass(frozen=True)
class Reply:
    status: str  # ACQUIRED | TAKEN | BEAT | BUSY | HELD | RELEASED | NOT-OURS
    now: int = 0  # host time (HELD, ACQUIRED, TAKEN, BEAT)
    mtime: int = 0
    cksum: str = ""
    text: str = ""


def parse_reply(lines: list[str]) -> Reply:
    if not lines:
        raise LockRefused("the lock command printed nothing")
    head = lines[0].split()
    if head and head[0] == "HELD" and len(head) >= 4:
        return Reply("HELD", int(head[1]), int(head[2]), " ".join(head[3:]), "\n".join(lines[1:]))
    if head and head[0] in ("ACQUIRED", "TAKEN", "BEAT") and len(head) == 2 and head[1].isdigit():
        return Reply(head[0], int(head[1]), text="\n".join(lines[1:]))
    if head and head[0] in ("BUSY", "RELEASED", "NOT-OURS"):
        return Reply(head[0], text="\n".join(lines[1:]))
    raise LockRefused(f"unexpected answer from the lock command: {lines[0][:200]!r}")


# --- pyinfra glue ---------------------------------------------------------------------------


def will_execute(argv: list[str] | None = None) -> bool:
    """Can this pyinfra run change hosts? False for --dry, --json without -y, --debug-facts/-operations."""
    from litellm_runner.run import compat

    if argv is None:
        if not compat.in_pyinfra_cli():
            return True  # the API: whoever drives it may run the operations
        argv = sys.argv[1:]
    params = compat.pyinfra_cli_params(argv)
    if params is None:
        return True  # cannot tell: behave as a converge (lock)
    if params.get("dry") or params.get("debug_facts") or params.get("debug_operations"):
        return False
    if params.get("json_output") and not params.get("yes"):
        return False  # pyinfra prints the proposed changes and exits
    return True


def _run(state, host, command: str) -> tuple[bool, list[str], list[str]]:
    from litellm_runner.run import compat

    connector_arguments = compat.connector_arguments(state, host)
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


class Heartbeat:
    """Keeps one held lock alive: BEAT (runs the beat command, returns its Reply) every INTERVAL seconds."""

    def __init__(self, beat: Callable[[], Reply], interval: float, lost: Callable[[str], None]) -> None:
        self.beat, self.interval, self.on_lost = beat, interval, lost
        self.last_ok = time.monotonic()
        self.lost: str | None = None  # the owner file that replaced ours
        self._stop = None
        self._greenlet = None

    def once(self) -> None:
        """One heartbeat now; a lock that is no longer ours is remembered (and reported once)."""
        try:
            reply = self.beat()
        except LockRefused:
            return  # an unreadable answer: the next beat tries again
        if reply.status == "BEAT":
            self.last_ok = time.monotonic()
        elif reply.status == "NOT-OURS" and self.lost is None:
            self.lost = reply.text.strip()
            self.on_lost(self.lost)

    def start(self) -> None:
        import gevent
        from gevent.event import Event

        stop = self._stop = Event()

        def loop():
            while not stop.wait(self.interval) and self.lost is None:
                self.once()

        self._greenlet = gevent.spawn(loop)

    def stop(self) -> None:
        """No further heartbeat (one already sent finishes; it changes nothing once the lock is released)."""
        if self._stop is not None:
            self._stop.set()

    def overdue(self) -> bool:
        """Has no heartbeat succeeded for two intervals (the event loop was blocked, e.g. by the prompt)?"""
        return time.monotonic() - self.last_ok > 2 * self.interval


class _Held:
    """Hosts whose lock one run holds (with their heartbeats), released by pyinfra's callbacks.

    Each run has its own, kept in its Run (``held(state)``)."""

    def __init__(self) -> None:
        self.hosts: dict = {}  # host name -> host
        self.beats: dict[str, Heartbeat] = {}  # host name -> its heartbeat
        self.closed: set[str] = set()
        self.registered = False  # its callbacks added to the run's state
        self.run_id = new_run_id()  # this run as a lock owner: the id written into the locks it takes

    def register(self, state) -> None:
        if self.registered:
            return
        from pyinfra.api.state import BaseStateCallback

        held = self

        class Release(BaseStateCallback):
            @staticmethod
            def operation_host_start(state, host, op_hash):
                held.check(host)

            @staticmethod
            def operation_host_success(state, host, op_hash, retry_count=0):
                if op_hash == _last_op(state, host):
                    held.release(state, host)

            @staticmethod
            def operation_host_error(state, host, op_hash, retry_count=0, max_retries=0):
                held.release(state, host)  # a failed host runs nothing more

            @staticmethod
            def operation_end(state, op_hash):
                order = _op_order(state)
                if order and op_hash == order[-1]:
                    for host in list(held.hosts.values()):
                        held.release(state, host)

            @staticmethod
            def host_disconnect(state, host):
                held.closed.add(host.name)
                held.release(state, host)  # refused/aborted after taking it (ssh still answers here)

        state.add_callback_handler(Release())
        self.registered = True

    def check(self, host) -> None:
        """Before an operation on HOST: stop the run if its lock there was taken over."""
        from pyinfra.api.exceptions import PyinfraError

        beat = self.beats.get(host.name)
        if beat is None:
            return
        if beat.lost is None and beat.overdue():
            beat.once()  # the heartbeat could not keep up: look before changing anything
        if beat.lost is not None:
            self.hosts.pop(host.name, None)
            self.beats.pop(host.name, None)
            raise PyinfraError(
                f"host {host.name}: this run lost its run lock {LOCK_PATH} to another run "
                f"({beat.lost[:300]}) and stopped before its next operation; converge again"
            )

    def release(self, state, host) -> None:
        beat = self.beats.pop(host.name, None)
        if beat is not None:
            beat.stop()
        if self.hosts.pop(host.name, None) is None:
            return
        ok, out, err = _run(state, host, release_command(self.run_id))
        if not ok or not out:
            _notice(
                host,
                f"could not release {LOCK_PATH}: {' '.join(err)[-300:]}; the next converge from "
                f"this machine takes it over",
            )
        elif out[0] == "NOT-OURS":
            _notice(host, f"{LOCK_PATH} was no longer this run's (taken over?): {' '.join(out[1:])[:300]}")


def held(state) -> _Held:
    """The run locks STATE's run holds (its Run's), made on first use."""
    run = run_state.of(state)
    if run.lock is None:
        run.lock = _Held()
    return run.lock


def _op_order(state) -> list:
    """``state.get_op_order()``, sorted again only when operations were added. pyinfra sorts every host's
    operations on each call, and the callbacks above ask after every operation of every host: without this
    a no-op converge of 50 hosts spent 17 s of CPU here (about 0.3 s per host), almost all in that sort."""
    run = run_state.of(state)
    if run.op_order[0] != len(state.op_meta):
        run.op_order = (len(state.op_meta), state.get_op_order())
    return run.op_order[1]


def _last_op(state, host):
    ops = state.ops.get(host, {})
    last = None
    for op_hash in _op_order(state):
        if op_hash in ops:
            last = op_hash
    return last


def _knob(host, name: str, default: int) -> int:
    value = host.data.get(name)
    return default if value is None else int(value)


def hold_run_lock(state, host=None) -> None:
    """Take HOST's run lock for this run (waiting, taking over a stale one, or refusing). No-op on dry runs."""
    from pyinfra.api.exceptions import PyinfraError

    from litellm_runner.run import compat

    if host is None:
        host = compat.current_host()
    holding = held(state)
    if not will_execute() or host.name in holding.hosts:
        return
    holding.register(state)
    wait = _knob(host, "litellm_lock_wait", DEFAULT_WAIT)
    stale_after = _knob(host, "litellm_lock_stale_after", DEFAULT_STALE_AFTER)
    mine = me(holding.run_id)
    try:
        _, started = acquire(
            lambda command: _run(state, host, command),
            host.name,
            wait,
            stale_after,
            notice=lambda message: _notice(host, message),
            mine=mine,
        )
    except LockRefused as e:
        raise PyinfraError(f"host {host.name}: {e}") from None
    holding.hosts[host.name] = host
    holding.beats[host.name] = heartbeat(
        lambda command: _run(state, host, command),
        mine,
        started,
        stale_after,
        lost=lambda text: _notice(host, f"{LOCK_PATH} was taken over by another run: {text[:300]}"),
    )
    holding.beats[host.name].start()
    if host.name in holding.closed:  # pyinfra disconnected while this run waited: give it back
        holding.release(state, host)


def heartbeat(
    run: Callable[[str], tuple[bool, list[str], list[str]]],
    mine: Owner,
    started: int,
    stale_after: int,
    lost: Callable[[str], None],
    path: str = LOCK_PATH,
) -> Heartbeat:
    """The (not yet started) Heartbeat of the lock MINE took at host time STARTED, beating through RUN."""

    def beat() -> Reply:
        ok, out, err = run(beat_command(mine, started, path))
        if not ok:
            raise LockRefused(" ".join(err)[-300:])
        return parse_reply(out)

    return Heartbeat(beat, beat_interval(stale_after), lost)


def acquire(
    run: Callable[[str], tuple[bool, list[str], list[str]]],
    name: str,
    wait: float,
    stale_after: int,
    notice: Callable[[str], None] = print,
    mine: Owner | None = None,
    path: str = LOCK_PATH,
    alive: Callable[[int, str], bool] = pid_alive,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, int]:
    """Take the lock through RUN (runs one shell command on the host): ("ACQUIRED" or "TAKEN", host start time).

    Waits up to WAIT seconds for a live holder, then raises LockRefused naming it.
    """
    mine = mine or me()
    deadline = time.monotonic() + wait
    waiting_for = None
    while True:
        ok, out, err = run(take_command(mine, path=path))
        if not ok:
            raise LockRefused(
                f"cannot take the run lock {path}: {' '.join(err)[-300:] or 'command failed'} "
                f"(the lock needs root on the host: connect as root or set _sudo)"
            )
        reply = parse_reply(out)
        if reply.status in ("ACQUIRED", "TAKEN"):
            return reply.status, reply.now
        owner, decision = None, Decision("wait", "another run is changing the lock")
        if reply.status == "HELD":
            owner = parse_owner(reply.text, reply.mtime)
            decision = decide(owner, reply.now, mine, stale_after, alive)
            if decision.action == "ours":
                return "ACQUIRED", owner.started
            if decision.action == "take-over":
                ok, out, err = run(take_command(mine, reply.cksum, path))
                taken = parse_reply(out) if ok else None
                if taken and taken.status == "TAKEN":
                    notice(f"took over a stale lock of {owner.describe(reply.now)}: {decision.reason}")
                    return "TAKEN", taken.now
                decision = Decision("wait", "the lock changed while taking it over")  # look again after a pause
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            holder = owner.describe(reply.now) if owner else "another run (busy)"
            raise LockRefused(
                f"another converge holds the run lock {path}: {holder} ({decision.reason}); waited {_span(wait)} "
                f"(litellm_lock_wait) and refused to interleave, nothing was changed by this run. "
                f"Let that run finish, then converge again. If it was killed, its own machine takes the lock over "
                f"at once; any machine does once its heartbeat is older than litellm_lock_stale_after "
                f"({stale_after} s); if you are sure no run is active, remove {path} on the host"
            )
        if owner and (waiting_for is None or waiting_for != owner.run_id):
            notice(
                f"waiting up to {_span(math.ceil(remaining))} (litellm_lock_wait) for {owner.describe(reply.now)}: "
                f"{decision.reason}"
            )
            waiting_for = owner.run_id
        sleep(min(POLL_SECONDS, max(remaining, 0.1)))
