"""One unreachable host fails only itself: a fleet of the session sandbox and two names that cannot be
reached: 127.0.0.1 on a closed port (connection refused), and a listener that drops every connection
before SSH's banner (what sshd does beyond its MaxStartups limit; plain pyinfra prints paramiko's
tracebacks for it). After a converge and a drift planted on the sandbox, the check tries each again
(pyinfra's connect retries), names each in one line, reports the sandbox's drift, exits 1 naming
both, and prints no traceback. On a terminal each host's result appears as it is known: the
unreachable ones (after the connect step) before the sandbox's (after its change detection),
though the report at the end lists the sandbox first."""

import json
import os
import re
import socket
import subprocess
import sys
import threading

import pytest
import yaml

from litellm_runner import exitcodes, sandbox
from litellm_runner.inventory import CONNECT_DEFAULTS
from tests.support.hosts import REPO

ROOT = "/home/litellm/litellm"
UNREACHABLE = ["unreachable-1", "unreachable-2"]  # sort after the sandbox's name: report order != event order
DRIFT = f"Directory {ROOT}/logs 0750 | fs-01"


def closed_port() -> int:
    """A loopback port nothing listens on (bound once by the kernel's choice, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Dropper:
    """A loopback listener that accepts every connection and closes it at once, counting them."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port, self.accepted, self.stop = self.server.getsockname()[1], 0, threading.Event()
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            conn.close()
            self.accepted += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.fixture
def dropper():
    listener = Dropper()
    yield listener
    listener.close()


@pytest.fixture
def fleet(host, converge, dropper, tmp_path):
    """A hosts file: the converged sandbox with a drifted directory mode, a closed port, a connection dropper."""
    converge()
    host.ssh(f"chmod 0777 {ROOT}/logs")
    data = {k: v for k, v in sandbox.host_data(host.name).items() if k != "name"}
    dead = {k: data[k] for k in ("ssh_user", "ssh_key", "litellm_secrets_file")}
    entries = [{"name": host.name, "data": data}]
    for name, port in zip(UNREACHABLE, (closed_port(), dropper.port), strict=True):
        entries.append({"name": name, "data": {**dead, "ssh_hostname": "127.0.0.1", "ssh_port": port}})
    hosts_file = tmp_path / "hosts.yml"
    hosts_file.write_text(yaml.safe_dump({"litellm_hosts": entries}))
    yield hosts_file
    host.ssh(f"chmod 0750 {ROOT}/logs")


def check_command(tmp_path) -> list[str]:
    json_path = str(tmp_path / "drift.json")
    return [sys.executable, "-m", "litellm_runner.cli.main", "check", "--json", json_path, "--timeout", "900"]


def test_unreachable_hosts_fail_only_themselves(host, fleet, dropper, tmp_path):
    proc = subprocess.run(
        check_command(tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "LITELLM_INVENTORY": str(fleet)},
    )
    assert proc.returncode == exitcodes.FAILED, proc.stdout + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"check: 2 hosts could not be reached: {', '.join(UNREACHABLE)}: exit 1" in proc.stderr.splitlines()
    reasons = ["Could not connect", "SSH error (Error reading SSH protocol banner"]
    for name, reason in zip(UNREACHABLE, reasons, strict=True):  # one line each, saying why
        lines = [line for line in proc.stdout.splitlines() if name in line]
        assert len(lines) == 1 and lines[0].startswith(f"{name}: unreachable: {reason}"), proc.stdout
    assert dropper.accepted == 1 + CONNECT_DEFAULTS["ssh_connect_retries"]  # tried again before giving up
    assert f"{host.name}: drift (1 items)" in proc.stdout.splitlines()
    report = json.loads((tmp_path / "drift.json").read_text())
    assert {n: report["hosts"][n]["status"] for n in report["hosts"]} == {
        host.name: "drift",
        **dict.fromkeys(UNREACHABLE, "unreachable"),
    }
    items = report["hosts"][host.name]["items"]
    assert [(i["id"], i["status"], i["before"]["mode"]) for i in items] == [(DRIFT, "drift", "0777")]
    assert report["totals"] == {"hosts": 3, "drifted_hosts": 1, "unreachable_hosts": 2, "items": 1}


def test_on_a_terminal_each_host_is_shown_as_its_result_is_known(host, fleet, tmp_path):
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        check_command(tmp_path),
        cwd=REPO,
        stdout=secondary,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LITELLM_INVENTORY": str(fleet)},
    )
    os.close(secondary)
    watchdog = threading.Timer(1000, proc.kill)  # the check's own --timeout is 900 s: never hang the test
    watchdog.start()
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the check closed its terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        stderr = proc.stderr.read() if proc.stderr else ""
        proc.wait(timeout=900)
    finally:
        watchdog.cancel()
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
    lines = [line for line in re.split(r"[\r\n]+", b"".join(chunks).decode().replace("\033[K", "")) if line]
    assert proc.returncode == exitcodes.FAILED, "\n".join(lines) + stderr[-3000:]
    assert "Traceback" not in "\n".join(lines) + stderr
    shown = [line.split(":")[0] for line in lines if re.match(r"^[\w-]+: (unreachable|drift|ok)", line)]
    # as known (progress), then the report (sorted): the sandbox's result comes after both refusals, then first
    assert sorted(shown[:2]) == UNREACHABLE and shown[2:] == [host.name, host.name, *UNREACHABLE], lines
