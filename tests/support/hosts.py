"""Reach sandbox hosts the way an operator does: real SSH, real pyinfra runs.

Verification goes through plain ``ssh`` commands, independent of pyinfra's
facts; pyinfra runs go through its CLI with ``--json`` (its structured output).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from litellm_runner import sandbox

REPO = pathlib.Path(__file__).resolve().parents[2]
PYINFRA = str(pathlib.Path(sys.executable).parent / "pyinfra")


def ssh_argv(name: str) -> list[str]:
    """ssh to the sandbox NAME's published port with its key; the caller adds USER@127.0.0.1 and the command."""
    data = sandbox.host_data(name)
    return [
        "ssh",
        "-i",
        data["ssh_key"],
        "-p",
        str(data["ssh_port"]),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
    ]


@dataclass
class Host:
    name: str
    port: int

    def ssh(
        self, command: str, timeout: float = 120, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """COMMAND as root on the host (INPUT on its stdin)."""
        proc = subprocess.run(
            [*ssh_argv(self.name), "root@127.0.0.1", command],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"ssh {self.name}: {command!r} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def out(self, command: str, **kwargs) -> str:
        return self.ssh(command, **kwargs).stdout.strip()

    def wait_for(self, command: str, timeout: float = 120, interval: float = 0.5) -> str:
        """Run COMMAND until it succeeds, every INTERVAL seconds (each try is an SSH session); its output."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            last = self.ssh(command, check=False, timeout=30)
            if last.returncode == 0:
                return last.stdout.strip()
            time.sleep(interval)
        raise AssertionError(f"{self.name}: {command!r} did not succeed within {timeout}s: {last.stderr.strip()}")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def why(self) -> str:
        """For an assertion's message: the lines of stderr that name an error or a failure (a failed item's
        line may be far from the end of a long run), then stderr's end."""
        lines = [ln for ln in self.stderr.splitlines() if re.search(r"error|fail|refus|timed out|traceback", ln, re.I)]
        return "\n".join(lines)[-4000:] + "\n--- end of stderr:\n" + self.stderr[-2000:]

    def changed(self, host: str | None = None) -> list[str]:
        """Names of the operations that changed a host (apply) or would change it (--dry)."""
        doc = self.json
        if doc.get("results"):
            ops = doc["results"]["operations"]
            return [o["name"] for o in ops if (host in o["success"] if host else o["success"])]
        return [o["name"] for o in doc["plan"] if (host in o["hosts_with_change"] if host else o["hosts_with_change"])]


def pyinfra(hosts: list[str], *args: str, timeout: float = 1800, env: dict | None = None) -> Run:
    """``pyinfra inventory.py deploy.py ARGS --json`` against the sandboxes HOSTS."""
    full_env = {k: v for k, v in os.environ.items() if k != "LITELLM_INVENTORY"}
    full_env.update({"LITELLM_SANDBOXES": ",".join(hosts), "PYINFRA_PROGRESS": "off", **(env or {})})
    proc = subprocess.run(
        [PYINFRA, "inventory.py", "deploy.py", *args, "--json"],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def drift_check(host: Host, tmp_path: pathlib.Path, env: dict | None = None, args: list[str] | None = None):
    """``python -m litellm_runner.cli.check --json --junit [ARGS]`` against HOST: (process, JSON report or None)."""
    report = tmp_path / "drift.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "litellm_runner.cli.check",
            "--json",
            str(report),
            "--junit",
            str(tmp_path / "drift.xml"),
            *(args or []),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "LITELLM_SANDBOXES": host.name, **(env or {})},
    )
    return proc, (json.loads(report.read_text()) if report.exists() else None)


@contextlib.contextmanager
def fresh_sandbox(name: str, port: int):
    """A new sandbox host NAME in the incident state (a leftover of that name removed first), removed afterwards."""
    sandbox.down(name)
    # keys delivered for an earlier sandbox of this name belong to a host that is gone
    shutil.rmtree(REPO / ".secrets" / "keys" / name, ignore_errors=True)
    sandbox.up(name, port)
    try:
        yield Host(name, port)
    finally:
        sandbox.down(name)
