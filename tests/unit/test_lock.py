"""The run lock: its decisions, and its real shell commands against a lock file in a temp dir.

The "host" here is this machine's own /bin/sh (the same flock/cksum/stat the
managed Debian hosts have); process liveness is real processes: this one, and
one that has exited.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from litellm_runner.pyinfra_ext import lock
from litellm_runner.pyinfra_ext.lock import Owner

NOW = 1_767_000_000


def run_local(command: str):
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    return proc.returncode == 0, proc.stdout.splitlines(), proc.stderr.splitlines()


def dead_pid() -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    pstart = lock.process_start(proc.pid)
    proc.wait(timeout=30)
    return proc.pid, pstart


MINE = lock.me()
ALIVE = (os.getpid(), lock.process_start(os.getpid()))  # this test process: running
DEAD = dead_pid()  # a process that has exited
REUSED = (os.getpid(), "1")  # a running pid, but not the process that took the lock


OTHER_MID = "f" * 32  # another control machine's identity


def owner(
    mid: str,
    pid_pstart: tuple[int, str],
    age: int,
    beat_age: int | None = None,
    run_id: str = "0123456789ab",
    machine: str = MINE.machine,
) -> Owner:
    """A lock taken AGE seconds ago, last heartbeat BEAT_AGE seconds ago (None: never beat), hostname MACHINE."""
    beat = 0 if beat_age is None else NOW - beat_age
    return Owner(run_id, "bob", machine, pid_pstart[0], pid_pstart[1], NOW - age, mid, beat)


@pytest.mark.parametrize(
    "holder, stale_after, action, reason",
    [
        # same machine (same machine id): only the holder's process decides, whatever the heartbeat
        (owner(MINE.mid, ALIVE, 10), 300, "wait", "on this machine is running"),
        (owner(MINE.mid, ALIVE, 99_999, beat_age=99_999), 300, "wait", "on this machine is running"),
        (owner(MINE.mid, DEAD, 10, beat_age=1), 300, "take-over", "on this machine is gone"),
        (owner(MINE.mid, REUSED, 10), 300, "take-over", "on this machine is gone"),
        # the same hostname on another machine is not this machine: its pid means nothing here, the heartbeat decides
        (owner(OTHER_MID, DEAD, 10, beat_age=5), 300, "wait", "another machine whose last heartbeat was 5 s ago"),
        (owner(OTHER_MID, ALIVE, 400, beat_age=400), 300, "take-over", "last heartbeat was 6 min ago"),
        # a live run older than the threshold whose heartbeat is fresh keeps its lock
        (owner(OTHER_MID, ALIVE, 99_999, beat_age=29, machine="other-ctl"), 300, "wait", "within litellm_lock_stale"),
        (owner(OTHER_MID, DEAD, 99_999, beat_age=299, machine="other-ctl"), 300, "wait", "was 4 min ago"),
        # a stale heartbeat: the holder is gone
        (
            owner(OTHER_MID, ALIVE, 99_999, beat_age=300, machine="other-ctl"),
            300,
            "take-over",
            "longer than litellm_lock_stale_after (300 s)",
        ),
        (owner(OTHER_MID, DEAD, 700, machine="other-ctl"), 600, "take-over", "11 min ago"),  # never beat: started
        # a lock of an older runner (no machine id) is never this machine's, even under this hostname
        (owner("", DEAD, 10), 300, "wait", "another machine"),
        (owner("", ALIVE, 3600), 300, "take-over", "last heartbeat was 60 min ago"),
        # this run already holds it
        (owner(MINE.mid, DEAD, 10, run_id=MINE.run_id), 300, "ours", "already"),
    ],
)
def test_decide(holder, stale_after, action, reason):
    decision = lock.decide(holder, NOW, MINE, stale_after)
    assert decision.action == action
    assert reason in decision.reason


def test_pid_alive_real_processes():
    assert lock.pid_alive(*ALIVE)
    assert not lock.pid_alive(*DEAD)
    assert not lock.pid_alive(*REUSED)
    assert not lock.pid_alive(0, "")


@pytest.mark.parametrize(
    "text, mtime, expected",
    [
        (
            "run_id=abc user=u machine=m mid=ab12 pid=12 pstart=34 started=56 beat=90\n",
            1,
            Owner("abc", "u", "m", 12, "34", 56, "ab12", 90),
        ),
        ("run_id=abc user=u machine=m pid=12 pstart=34 started=56\n", 1, Owner("abc", "u", "m", 12, "34", 56)),
        ("machine=m pid=12 user=u run_id=abc started=56 extra=1", 1, Owner("abc", "u", "m", 12, "", 56)),
        ("garbage", 77, Owner("unknown", "unknown", "unknown", 0, "", 77)),
        ("", 78, Owner("unknown", "unknown", "unknown", 0, "", 78)),
        ("run_id=abc user=u machine=m pid=x started=56", 79, Owner("unknown", "unknown", "unknown", 0, "", 79)),
    ],
)
def test_parse_owner(text, mtime, expected):
    assert lock.parse_owner(text, mtime) == expected


@pytest.mark.parametrize(
    "argv, executes",
    [
        (["inventory.py", "deploy.py"], True),  # asks, then converges
        (["inventory.py", "deploy.py", "-y"], True),
        (["inventory.py", "deploy.py", "-y", "--json"], True),
        (["inventory.py", "deploy.py", "--dry"], False),
        (["inventory.py", "deploy.py", "--dry", "--json"], False),  # python -m litellm_runner.cli.check
        (["inventory.py", "deploy.py", "--json"], False),  # prints the proposed changes, exits
        (["inventory.py", "deploy.py", "--debug-operations"], False),
        (["inventory.py", "deploy.py", "--debug-facts"], False),
    ],
)
def test_will_execute(argv, executes):
    assert lock.will_execute(argv) is executes


def test_will_execute_yes_from_environment(monkeypatch):
    monkeypatch.setenv("PYINFRA_YES", "1")
    assert lock.will_execute(["inventory.py", "deploy.py", "--json"]) is True


# --- the real commands ------------------------------------------------------------------------


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "litellm-runner.lock")


def take(path, mine=MINE, wait=0, stale_after=3600):
    notices = []
    status, _ = lock.acquire(
        run_local,
        "h",
        wait,
        stale_after,
        notice=notices.append,
        mine=mine,
        path=path,
        sleep=lambda s: time.sleep(min(s, 0.05)),
    )
    return status, notices


def other(mid=OTHER_MID, pid_pstart=ALIVE, run_id="feedfacecafe", machine="other-ctl") -> Owner:
    return Owner(run_id, "bob", machine, pid_pstart[0], pid_pstart[1], 0, mid)


def test_take_free_lock_writes_owner_with_host_time(path):
    before = int(time.time())
    assert take(path) == ("ACQUIRED", [])
    written = lock.parse_owner(pathlib.Path(path).read_text(), 0)
    assert written == Owner(
        MINE.run_id, MINE.user, MINE.machine, MINE.pid, MINE.pstart, written.started, MINE.mid, written.started
    )
    assert before <= written.started <= int(time.time())
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"  # the owner record is root's alone
    assert sorted(os.listdir(os.path.dirname(path))) == ["litellm-runner.lock", "litellm-runner.lock.d"]
    assert oct(os.stat(path + ".d").st_mode & 0o777) == "0o700"  # nobody else can open the guard
    assert oct(os.stat(path + ".d/guard").st_mode & 0o777) == "0o600"


def test_live_holder_from_other_machine_refused_after_wait(path):
    assert take(path, mine=other())[0] == "ACQUIRED"
    held = pathlib.Path(path).read_text()
    start = time.monotonic()
    with pytest.raises(lock.LockRefused) as refused:
        take(path, wait=1)
    assert time.monotonic() - start >= 1  # it waited
    message = str(refused.value)
    for part in (
        "bob@other-ctl",
        f"pid {ALIVE[0]}",
        "run feedfacecafe",
        "started ",
        "s ago",
        "waited 1 s",
        "litellm_lock_wait",
        "Let that run finish",
        f"remove {path}",
    ):
        assert part in message, (part, message)
    assert pathlib.Path(path).read_text() == held  # untouched


def test_waiting_run_gets_the_lock_when_released(path):
    holder = other()
    assert take(path, mine=holder)[0] == "ACQUIRED"
    releaser = subprocess.Popen(
        ["sh", "-c", "sleep 1; " + lock.release_command(holder.run_id, path)], stdout=subprocess.PIPE, text=True
    )
    status, notices = take(path, wait=20)
    assert releaser.communicate(timeout=30)[0].startswith("RELEASED")
    assert status == "ACQUIRED"
    assert len(notices) == 1 and notices[0].startswith("waiting up to ") and "bob@other-ctl" in notices[0]


def test_dead_holder_on_this_machine_taken_over_at_once(path):
    assert take(path, mine=other(mid=MINE.mid, pid_pstart=DEAD))[0] == "ACQUIRED"
    status, notices = take(path, wait=0)
    assert status == "TAKEN"
    assert len(notices) == 1 and "took over a stale lock" in notices[0] and "is gone" in notices[0]
    assert lock.parse_owner(pathlib.Path(path).read_text(), 0).run_id == MINE.run_id


def age_lock(path, started_by: int, beat_by: int) -> None:
    """Move the lock's start and heartbeat back by so many seconds (the holder's clock did not move)."""
    held = lock.parse_owner(pathlib.Path(path).read_text(), 0)
    text = pathlib.Path(path).read_text().replace(f"started={held.started}", f"started={held.started - started_by}")
    pathlib.Path(path).write_text(text.replace(f"beat={held.beat}", f"beat={held.beat - beat_by}"))


def test_silent_lock_from_other_machine_taken_over(path):
    assert take(path, mine=other())[0] == "ACQUIRED"
    age_lock(path, 4000, 4000)
    status, notices = take(path, wait=0, stale_after=3600)
    assert status == "TAKEN" and "longer than litellm_lock_stale_after" in notices[0]
    assert "bob@other-ctl" in notices[0] and "last heartbeat 66 min ago" in notices[0]


def test_same_hostname_other_machine_with_fresh_heartbeat_refused(path):
    # a live long run from a control machine with this machine's hostname and a dead-looking pid here
    assert take(path, mine=other(machine=MINE.machine, pid_pstart=DEAD))[0] == "ACQUIRED"
    age_lock(path, 4000, 0)
    with pytest.raises(lock.LockRefused, match=f"bob@{MINE.machine} pid {DEAD[0]}"):
        take(path, wait=0, stale_after=60)
    assert lock.parse_owner(pathlib.Path(path).read_text(), 0).run_id == "feedfacecafe"


def test_heartbeat_rewrites_only_its_own_lock(path):
    holder = other()
    status, started = lock.acquire(run_local, "h", 0, 300, mine=holder, path=path)
    assert status == "ACQUIRED"
    age_lock(path, 0, 100)  # as if the last heartbeat was 100 s ago
    ok, out, _ = run_local(lock.beat_command(holder, started, path))
    reply = lock.parse_reply(out)
    assert ok and reply.status == "BEAT"
    after = lock.parse_owner(pathlib.Path(path).read_text(), 0)
    assert (after.run_id, after.started, after.beat, after.mid) == (holder.run_id, started, reply.now, OTHER_MID)
    assert sorted(os.listdir(os.path.dirname(path))) == ["litellm-runner.lock", "litellm-runner.lock.d"]
    # taken over (its heartbeat looked stale to someone): the old holder's beat changes nothing
    age_lock(path, 0, 400)
    assert take(path, stale_after=300)[0] == "TAKEN"
    taken = pathlib.Path(path).read_text()
    ok, out, _ = run_local(lock.beat_command(holder, started, path))
    assert lock.parse_reply(out).status == "NOT-OURS" and f"run_id={MINE.run_id}" in out[1]
    assert pathlib.Path(path).read_text() == taken
    # released: a late heartbeat does not bring the lock back
    run_local(lock.release_command(MINE.run_id, path))
    ok, out, _ = run_local(lock.beat_command(MINE, started, path))
    assert lock.parse_reply(out).status == "NOT-OURS" and not os.path.exists(path)


def test_heartbeat_greenlet_beats_then_reports_a_takeover(path):
    import gevent

    holder = other()
    _, started = lock.acquire(run_local, "h", 0, 300, mine=holder, path=path)
    events = []
    beat = lock.heartbeat(run_local, holder, started, 300, lost=lambda text: events.append(("lost", text)), path=path)
    beat.interval = 0.05
    beat.beat = (lambda inner: lambda: events.append("beat") or inner())(beat.beat)
    age_lock(path, 0, 100)
    beat.start()

    def until(condition):
        for _ in range(400):
            if condition():
                return
            gevent.sleep(0.05)
        raise AssertionError(events)

    until(lambda: lock.parse_owner(pathlib.Path(path).read_text(), 0).beat >= started)  # refreshed
    # another run takes it over (written here without yielding: with pyinfra imported, gevent has patched
    # subprocess, and this beat, every 0.05 s, would keep the lock too fresh to take)
    pathlib.Path(path + ".new").write_text(
        f"run_id={MINE.run_id} user=u machine=m mid={MINE.mid} pid=1 started={started} beat={started}\n"
    )
    os.replace(path + ".new", path)
    until(lambda: beat.lost is not None)
    gevent.sleep(0.3)
    assert events[0] == "beat" and [e for e in events if e != "beat"] == [("lost", events[-1][1])]
    assert f"run_id={MINE.run_id}" in beat.lost  # it names the run that holds it now
    assert events.count(("lost", beat.lost)) == 1 and events[-1] == ("lost", beat.lost)  # and stopped beating
    assert lock.parse_owner(pathlib.Path(path).read_text(), 0).run_id == MINE.run_id


@pytest.mark.parametrize("stale_after, interval", [(300, 30), (3600, 360), (60, 6), (10, 1), (5, 1)])
def test_beat_interval_a_tenth_of_the_threshold(stale_after, interval):
    assert lock.beat_interval(stale_after) == interval


def test_machine_id_made_once_private_and_kept(tmp_path):
    directory = tmp_path / "state" / "litellm-runner"
    with ThreadPoolExecutor(8) as pool:  # first runs at once agree on one id
        ids = set(pool.map(lambda _: lock.machine_id(directory), range(8)))
    assert len(ids) == 1
    (made,) = ids
    assert len(made) == 32 and int(made, 16) >= 0
    assert oct(os.stat(directory / "machine-id").st_mode & 0o777) == "0o600"
    assert os.listdir(directory) == ["machine-id"]  # no temporary file left
    assert lock.machine_id(directory) == made
    assert lock.machine_id(tmp_path / "elsewhere") != made  # another machine (or account)
    (directory / "machine-id").write_text("garbage\n")
    replaced = lock.machine_id(directory)
    assert replaced != made and lock.machine_id(directory) == replaced


def test_unreadable_lock_judged_by_its_age(path):
    pathlib.Path(path).write_text("not an owner record\n")
    with pytest.raises(lock.LockRefused, match="unknown@unknown"):
        take(path, wait=0)
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert take(path, wait=0)[0] == "TAKEN"


def test_take_over_only_replaces_the_lock_it_judged(path):
    assert take(path, mine=other(mid=MINE.mid, pid_pstart=DEAD))[0] == "ACQUIRED"
    ok, out, _ = run_local(lock.take_command(MINE, path=path))
    seen = lock.parse_reply(out)
    assert seen.status == "HELD"
    # another run takes the stale lock over first ...
    assert take(path, mine=other(mid=MINE.mid, pid_pstart=ALIVE, run_id="aaaaaaaaaaaa"))[0] == "TAKEN"
    # ... so replacing what this run saw must not happen
    ok, out, _ = run_local(lock.take_command(MINE, seen.cksum, path))
    assert lock.parse_reply(out).status == "HELD"
    assert lock.parse_owner(pathlib.Path(path).read_text(), 0).run_id == "aaaaaaaaaaaa"


def test_release_only_by_the_owner(path):
    holder = other()
    assert take(path, mine=holder)[0] == "ACQUIRED"
    ok, out, _ = run_local(lock.release_command(MINE.run_id, path))
    assert out[0] == "NOT-OURS" and "run_id=feedfacecafe" in out[1]
    assert os.path.exists(path)
    ok, out, _ = run_local(lock.release_command(holder.run_id, path))
    assert out == ["RELEASED"] and not os.path.exists(path)


def test_racing_takers_exactly_one_wins(path):
    takers = [other(run_id=f"{i:012x}") for i in range(12)]
    with ThreadPoolExecutor(len(takers)) as pool:
        replies = list(
            pool.map(lambda o: lock.parse_reply(run_local(lock.take_command(o, path=path))[1]).status, takers)
        )
    assert sorted(replies) == ["ACQUIRED"] + ["HELD"] * 11
    winner = lock.parse_owner(pathlib.Path(path).read_text(), 0).run_id
    assert winner == takers[replies.index("ACQUIRED")].run_id


def test_owner_fields_cannot_break_the_record(path):
    odd = Owner("0123456789ab", "a b'; rm -rf /", "host\nrun_id=evil", 1, "", 0)
    assert take(path, mine=odd)[0] == "ACQUIRED"
    text = pathlib.Path(path).read_text()
    assert text.count("\n") == 1 and text.count("run_id=") == 1
    parsed = lock.parse_owner(text, 0)
    assert parsed.run_id == "0123456789ab" and " " not in parsed.user and "\n" not in parsed.machine


def test_cannot_write_lock_is_refused_clearly(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    try:
        if os.access(target, os.W_OK):  # root ignores the mode: use a path under a regular file instead
            path = str(tmp_path / "file" / "lock")
            (tmp_path / "file").write_text("")
        else:
            path = str(target / "lock")
        with pytest.raises(lock.LockRefused, match="cannot take the run lock"):
            take(path)
    finally:
        target.chmod(0o700)


def test_the_operation_order_is_sorted_once_per_set_of_prepared_operations():
    """The lock's callbacks ask for the order after every operation of every host: pyinfra sorts all hosts'
    operations on each call, so the order is kept until operations are added."""
    from litellm_runner.pyinfra_ext import lock
    from tests.unit.fakehost import FakeState

    sorts = []
    state = FakeState()
    state.op_meta, state.ops = {"a": 1, "b": 2}, {}
    state.get_op_order = lambda: sorts.append(1) or list(state.op_meta)
    host = "h"  # pyinfra's hosts are hashable; a name stands in
    state.ops[host] = {"a": 1}
    assert [lock._op_order(state) for _ in range(3)] == [["a", "b"]] * 3
    assert lock._last_op(state, host) == "a" and len(sorts) == 1
    state.op_meta["c"] = 3  # an operation added: sorted again
    assert lock._op_order(state) == ["a", "b", "c"] and len(sorts) == 2
