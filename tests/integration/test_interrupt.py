"""Concurrent converges and a converge killed midway, each on its own fresh sandbox in the incident state.

Not the session ``host`` fixture: these need the untouched incident state.
Verification goes over plain ssh; the runs are the real pyinfra CLI.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time

import pytest
import yaml

from litellm_runner.pyinfra_ext.lock import parse_owner
from tests.support.hosts import PYINFRA, REPO, Host, Run, fresh_sandbox
from tests.unit.group_data import defaults

# named after the session host's sandbox (LITELLM_IT_SANDBOX), as test_rotate.py's: two runs side by side
# (another LITELLM_IT_SANDBOX and LITELLM_IT_PORT) never remove each other's host
NAME = os.environ.get("LITELLM_IT_SANDBOX", "litellm-sandbox-it") + "-lock"
PORT = int(os.environ.get("LITELLM_IT_PORT", "2290")) + 6
CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
LOCK = "/run/litellm-runner.lock"
OP_DONE = re.compile(rf"^\s*\[{re.escape(NAME)}\] (Success|No changes|Error)")


class Converge:
    """``pyinfra inventory.py deploy.py -y -v --json ARGS`` in its own process group; every output line timed."""

    def __init__(self, *args: str, env: dict | None = None):
        env = {**{k: v for k, v in os.environ.items() if k != "LITELLM_INVENTORY"}, **(env or {})}
        env.update({"LITELLM_SANDBOXES": NAME, "PYINFRA_PROGRESS": "off"})
        self.proc = subprocess.Popen(
            [PYINFRA, "inventory.py", "deploy.py", "-y", "-v", "--json", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []  # (monotonic time, stderr line)
        self.stdout = ""
        self._threads = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_err(self):
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _read_out(self):
        self.stdout = self.proc.stdout.read()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait(self, timeout: float = 900) -> Run:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        for t in self._threads:
            t.join(timeout=30)
        return Run(self.proc.returncode, self.stdout, self.stderr)

    def wait_for_line(self, pattern: str, timeout: float = 900) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if pattern in line:
                    return at
            if self.proc.poll() is not None:
                time.sleep(0.5)  # let the reader catch up once
                if not any(pattern in line for _, line in self.lines):
                    raise AssertionError(
                        f"pyinfra exited {self.proc.returncode} before {pattern!r}:\n{self.stderr[-3000:]}"
                    )
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{self.stderr[-3000:]}")

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # pyinfra and its ssh children, no chance to clean up
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=60)

    def times(self, pattern: re.Pattern) -> list[float]:
        return [at for at, line in self.lines if pattern.search(line)]


@pytest.fixture
def fresh():
    """A new sandbox in the incident state, removed afterwards."""
    with fresh_sandbox(NAME, PORT) as sandbox_host:
        yield sandbox_host


def lock_file(host: Host) -> str | None:
    proc = host.ssh(f"cat {LOCK}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def test_two_converges_at_once_never_interleave(fresh):
    host = fresh
    # a dry run takes no lock and sends no lock command (the guard file is made by any lock command)
    dry = subprocess.run(
        [PYINFRA, "inventory.py", "deploy.py", "--dry"],
        cwd=REPO,
        timeout=600,
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "LITELLM_INVENTORY"},
            "LITELLM_SANDBOXES": NAME,
            "PYINFRA_PROGRESS": "off",
        },
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert host.ssh(f"test ! -e {LOCK} && test ! -e {LOCK}.guard", check=False).returncode == 0

    # 1. from the incident state (a first converge takes well over 5 s), both at once, waiting 5 s at most
    runs = [Converge("--data", "litellm_lock_wait=5"), Converge("--data", "litellm_lock_wait=5")]
    results = [r.wait() for r in runs]
    codes = sorted(r.returncode for r in results)
    assert codes[0] == 0 and codes[1] != 0, [r.stderr[-2000:] for r in results]
    winner, loser = (runs[0], runs[1]) if results[0].returncode == 0 else (runs[1], runs[0])
    refusal = loser.stderr
    assert "another converge holds the run lock /run/litellm-runner.lock" in refusal, refusal[-3000:]
    assert f"pid {winner.pid} " in refusal and "@" in refusal and "started " in refusal, refusal[-3000:]
    assert "waited 5 s (litellm_lock_wait)" in refusal and "Let that run finish" in refusal
    assert f"host {NAME}" in refusal
    # the refused run read no fact and ran no operation
    assert "Loaded fact" not in refusal and "Starting operation" not in refusal, refusal[-3000:]
    assert not loser.times(OP_DONE)
    assert lock_file(host) is None  # the winner released it

    # 2. a drift, then both at once again; the second waits (long enough) and only then looks at the host
    host.ssh(f"chmod 0777 {ROOT}/state/files")
    runs = [Converge("--data", "litellm_lock_wait=600"), Converge("--data", "litellm_lock_wait=600")]
    results = [r.wait() for r in runs]
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    waiting = [i for i, r in enumerate(runs) if "run lock: waiting up to" in r.stderr]
    assert len(waiting) == 1, [r.stderr[-2000:] for r in results]
    holder, waiter = runs[1 - waiting[0]], runs[waiting[0]]
    assert f"pid {holder.pid} " in waiter.stderr
    # the waiter's first fact came after the holder's last operation ended
    first_fact = min(waiter.times(re.compile(r"Loaded fact|Starting operation")))
    assert max(holder.times(OP_DONE)) < first_fact
    assert f"Directory {ROOT}/state/files 0750 | fs-01" in results[1 - waiting[0]].changed(NAME)
    assert results[waiting[0]].changed(NAME) == []  # it saw the host the holder left
    assert host.out(f"stat -c %a {ROOT}/state/files") == "750"
    assert lock_file(host) is None


def host_files(host: Host) -> dict:
    """What the kill left: config and env file (text, mode), config backups, leftovers."""

    def read(path):
        proc = host.ssh(f"test -e {path} && stat -c %a {path} && cat {path}", check=False)
        if proc.returncode != 0:
            return None
        mode, _, text = proc.stdout.partition("\n")
        return mode, text

    return {
        "config": read("/etc/litellm/config.generated.yaml"),
        "env": read("/etc/litellm/env.litellm"),
        "config_backups": host.out("ls -1 /etc/litellm/ | grep '^config.generated.yaml.bak-' || true").split(),
        "leftovers": host.out(
            f"find {ROOT} /etc/litellm {CODE} /etc/systemd/user -name '*.tmp-litellm-runner*' -o -name '.incomplete-*' "
            "| sort"
        ).split(),
        "backups": host.out(f"ls -1A {ROOT}/state/archive/backups").split(),
    }


def assert_complete(host: Host, files: dict) -> None:
    incident_config = (REPO / "sandbox" / "incident" / "config.yaml").read_text()
    incident_env = (REPO / "sandbox" / "incident" / "env.litellm").read_text()
    config = files["config"]
    if config is not None:  # the incident's, or the whole rendered one
        doc = yaml.safe_load(config[1])
        assert config[1] == incident_config or (
            isinstance(doc, dict)
            and {"model_list", "general_settings", "litellm_settings"} <= set(doc)
            and doc["litellm_settings"].get("request_timeout") == 120
        ), config[1][-500:]
    for name in files["config_backups"]:  # a kept copy of a replaced config is whole too
        text = host.out(f"cat /etc/litellm/{shlex.quote(name)}")
        assert isinstance(yaml.safe_load(text), dict) and "model_list" in text, name
    env = files["env"]
    if env is not None:
        mode, text = env
        if text != incident_env:  # not the incident's: the runner's, whole and 0640 (root:GROUP, issue #22)
            assert mode == "640", mode
            names = [line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")]
            data = defaults()  # the shipped desired state
            for name in [*data["litellm_env_secrets"], *data["litellm_env"]]:
                assert name in names, f"env file lacks {name}: truncated?"
            assert text.endswith("\n")
    for entry in files["backups"]:  # backup sets: only complete ones
        assert not entry.startswith(".incomplete-"), entry
        listing = host.out(f"ls -1 {ROOT}/state/archive/backups/{shlex.quote(entry)}").split()
        assert {"litellm.dump", "config.generated.yaml"} <= set(listing), (entry, listing)


def test_killed_converge_leaves_a_host_the_next_run_converges(fresh):
    host = fresh
    run = Converge()
    run.wait_for_line("Starting operation: Env file /etc/litellm/env.litellm content", timeout=900)
    time.sleep(0.3)  # inside the env file's and the config's writes
    run.kill()
    killed = run.pid
    assert run.proc.returncode == -signal.SIGKILL

    # the lock it held is left behind, naming the dead process
    held = lock_file(host)
    assert held is not None and f"pid={killed} " in held, held
    time.sleep(2)  # let whatever the dead run's ssh sessions still had running on the host finish
    files = host_files(host)
    print(
        f"after SIGKILL: leftovers {files['leftovers']}, config backups {files['config_backups']}, "
        f"backup sets {files['backups']}"
    )
    assert_complete(host, files)

    # the next converge takes the stale lock over (same machine, process gone) and converges
    second = Converge()
    result = second.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "run lock: took over a stale lock" in result.stderr and f"pid {killed} " in result.stderr
    assert "is gone" in result.stderr
    after = host_files(host)
    assert_complete(host, after)
    assert after["leftovers"] == [], after["leftovers"]
    assert after["env"][0] == "640" and "dummy" not in after["env"][1]  # root:GROUP 0640 (issue #22)
    assert yaml.safe_load(after["config"][1])["litellm_settings"]["request_timeout"] == 120
    assert lock_file(host) is None

    # and the one after that changes nothing
    third = Converge().wait()
    assert third.returncode == 0, third.stderr[-3000:]
    assert third.changed(NAME) == [], third.changed(NAME)


def test_live_long_run_keeps_its_lock_against_another_machine(fresh, tmp_path):
    """A run older than litellm_lock_stale_after, alive and beating, is not taken over from another machine.

    Both runs use this machine's hostname; the second has its own machine id (its own state dir), so
    only the holder's heartbeat can tell it the holder is alive.
    """
    host = fresh
    holder = Converge("--data", "litellm_lock_stale_after=10")  # beats every second
    owner, now = None, 0
    while owner is None or now - owner.started <= 12:  # the lock is older than the threshold, the run goes on
        assert holder.proc.poll() is None, holder.stderr[-3000:]
        text = lock_file(host)
        owner = parse_owner(text, 0) if text else None
        now = int(host.out("date +%s"))
        time.sleep(0.2)
    assert owner.pid == holder.pid
    second = Converge(
        "--data",
        "litellm_lock_stale_after=10",
        "--data",
        "litellm_lock_wait=0",
        env={"XDG_STATE_HOME": str(tmp_path / "another-machine")},
    )
    refused = second.wait()
    refused_at = second.lines[-1][0]
    during = parse_owner(lock_file(host) or "", 0)
    done = holder.wait()

    assert refused.returncode != 0, refused.stderr[-3000:]
    message = refused.stderr
    assert "another converge holds the run lock /run/litellm-runner.lock" in message, message[-3000:]
    assert f"pid {holder.pid} (run {owner.run_id}, machine id {owner.mid[:8]})" in message, message[-3000:]
    assert "from another machine whose last heartbeat was" in message, message[-3000:]
    assert "within litellm_lock_stale_after (10 s)" in message
    assert "took over" not in message and "Starting operation" not in message
    assert (tmp_path / "another-machine" / "litellm-runner" / "machine-id").read_text().strip() != owner.mid
    # the holder was alive and beating: still its lock after the refusal, heartbeat newer than its start,
    # and it ran operations after the refusal, then finished and released the lock
    assert during.run_id == owner.run_id and during.beat > during.started, during
    assert done.returncode == 0, done.stderr[-3000:]
    assert max(holder.times(OP_DONE)) > refused_at
    assert "run lock:" not in holder.stderr, holder.stderr[-3000:]  # it never lost its lock
    assert lock_file(host) is None
