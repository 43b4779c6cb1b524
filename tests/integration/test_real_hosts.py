"""Real hosts as operators have them (issue #15 items 2 and 3).

One sandbox that refuses root over SSH: it is reached only as the login user
``deploy`` through sudo with a password, the password only in the operator's
secret source. On it, an existing login account ``alice`` (zsh, extra groups)
is adopted as the service account with the deployment under ``/LAB/@litellm``.
Two converges, a drift check over the same connection, and an unprivileged
user on the host reading everything it can under /tmp while they run.
Verification goes through ``podman exec`` (root inside the container), not
through pyinfra or SSH.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from litellm_runner import sandbox
from litellm_runner.pyinfra_ext.facts import hostside_args
from tests.support import fleet
from tests.support.hosts import REPO, fresh_sandbox, pyinfra, ssh_argv

NAME = "litellm-sandbox-sudo"
PORT = 2297
ROOT = "/LAB/@litellm"
ADOPT = {"litellm_user": "alice", "litellm_group": "alice", "litellm_home": "/home/alice", "litellm_root": ROOT}
GROUPS = "alice audio lab research"  # alice's groups before the runner (id -Gn, sorted)
SETUP = """
groupadd lab && groupadd research
useradd --create-home --shell /usr/bin/zsh --groups audio,lab,research alice
install -d -m 0755 -o root -g root /LAB
useradd --create-home --shell /bin/sh mallory
"""
# as mallory (no rights): every file under /tmp it can read, and every command line it can see
WATCH = """
while :; do
  find /tmp -mindepth 1 -printf 'SEEN %p %u %m\\n' -type f -readable -exec cat {} + 2>/dev/null >> ~/tmp.log
  cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -a -o 'PYINFRA_SUDO_PASSWOR[D]=[^ ]*' >> ~/proc.log
  sleep 0.05
done
"""


def root(command: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """COMMAND as root inside the sandbox (podman exec), independent of SSH and pyinfra."""
    proc = subprocess.run(
        ["podman", "exec", NAME, "sh", "-euc", command], capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{command!r} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def secret_values() -> dict[str, str]:
    path = pathlib.Path(sandbox.host_data(NAME)["litellm_secrets_file"])
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")


def hosts_file(tmp: pathlib.Path, **extra) -> pathlib.Path:
    """A LITELLM_INVENTORY hosts file: the sandbox's SSH data (operator, _sudo) and the adoption overrides."""
    return fleet.inventory(tmp / "hosts.yml", [NAME], common={**ADOPT, **extra})


def run(inventory: pathlib.Path, *args: str):
    return pyinfra([NAME], *args, env={"LITELLM_INVENTORY": str(inventory)})


def check(inventory: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LITELLM_INVENTORY": str(inventory)}
    return subprocess.run(
        [sys.executable, "-m", "litellm_runner.cli.check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def host():
    with fresh_sandbox(NAME, PORT) as sandbox_host:
        sandbox.up(NAME, PORT, operator="password", root_login=False)
        root(SETUP)
        yield sandbox_host


@pytest.fixture(scope="module")
def converged(host, tmp_path_factory):
    """Two converges and a drift check as deploy with its sudo password, watched by mallory."""
    tmp = tmp_path_factory.mktemp("hosts")
    inventory = hosts_file(tmp)
    before = {"passwd": root("getent passwd alice").stdout, "groups": root("id -Gn alice").stdout}
    watcher = subprocess.Popen(
        ["podman", "exec", NAME, "runuser", "-u", "mallory", "--", "sh", "-c", WATCH],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = run(inventory, "-y", "-vv")
        second = run(inventory, "-y", "-v")
        drift = check(inventory)
        (tmp / "first.log").write_text(first.stderr)  # -vv: kept for reading after a failure
    finally:
        root("pkill -u mallory || true")
        watcher.wait(timeout=60)
    return {
        "first": first,
        "second": second,
        "check": drift,
        "before": before,
        "tmp_log": root("cat /home/mallory/tmp.log", check=False).stdout,
        "proc_log": root("cat /home/mallory/proc.log", check=False).stdout,
    }


def test_root_is_refused_and_operator_needs_its_password(host):
    data = sandbox.host_data(NAME)
    ssh = ssh_argv(NAME)
    as_root = subprocess.run([*ssh, "root@127.0.0.1", "true"], capture_output=True, text=True, timeout=60)
    sudo_n = subprocess.run([*ssh, "deploy@127.0.0.1", "sudo -n true"], capture_output=True, text=True, timeout=60)
    assert as_root.returncode == 255 and "Permission denied" in as_root.stderr
    assert sudo_n.returncode == 1 and "a password is required" in sudo_n.stderr
    assert data["ssh_user"] == "deploy" and data["_sudo"] is True and "_sudo_password" not in data


def test_converges_twice_through_sudo_with_a_password(converged):
    first, second = converged["first"], converged["second"]
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.changed(NAME)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.changed(NAME) == []


def test_every_command_and_fact_goes_through_sudo(converged):
    """-vv prints operations' and facts' commands: all run under sudo with the private askpass.

    (The runner's FunctionCommands are not printed; they write into alice's 0750 tree, which
    ``deploy`` cannot, so the converge succeeding shows they ran under sudo too.)
    """
    commands = [line.split(" >>> ", 1)[1] for line in converged["first"].stderr.splitlines() if " >>> " in line]
    plain = [c for c in commands if not c.startswith("env SUDO_ASKPASS=/tmp/litellm-runner-askpass.")]
    # the host snapshot (root's own interpreter, isolated) takes _sudo from host data like operations
    assert any("sudo -H -A -k sh -c" in c and "/usr/bin/python3 -I -S -c" in c for c in commands)
    assert [c for c in plain if not c.startswith("umask 077 && mktemp -d /tmp/litellm-runner.")] == []
    # the database plan runs as alice inside that snapshot (root forks it: hostside.Planning), no command of its own;
    # the snapshot's arguments end its command, after the lines of its program
    blobs = re.findall(r" snapshot ([A-Za-z0-9+/=]{16,})", converged["first"].stderr)
    assert any(hostside_args(b).get("plan", {}).get("user") == "alice" for b in blobs)
    assert any("runuser -u root -- env -i HOME=/root " in c and "/bin/pip install" in c for c in commands)  # root's


def test_drift_check_works_over_the_same_connection(converged):
    drift = converged["check"]
    assert drift.returncode == 0, drift.stdout[-2000:] + drift.stderr[-2000:]


def test_adopted_account_keeps_shell_and_groups(converged):
    assert converged["before"]["passwd"].split(":")[6].strip() == "/usr/bin/zsh"
    assert root("getent passwd alice").stdout == converged["before"]["passwd"]
    assert sorted(root("id -Gn alice").stdout.split()) == GROUPS.split()
    assert root(f"stat -c '%U:%G %a' {ROOT} /LAB").stdout.split("\n")[:2] == ["alice:alice 750", "root:root 755"]
    # alice keeps her state; what her services run is root's (issue #22)
    # the venv path is root's link to root's venv of this lock (docs/venv-switch.md)
    venv = "/usr/local/lib/litellm-runner/venv"
    assert root(f"stat -c '%U:%G %F' {venv}").stdout.strip() == "root:root symbolic link"
    assert root(f"readlink {venv}").stdout.startswith("venvs/")
    assert root(f"stat -L -c '%U:%G %a' {venv} /etc/litellm/env.litellm").stdout.split("\n")[:2] == [
        "root:root 755",
        "root:alice 640",
    ]
    assert root("systemctl --user --machine=alice@.host is-active litellm.service").stdout.strip() == "active"
    for run_ in (converged["first"], converged["second"]):
        assert "alice is an existing account the runner did not create" in run_.stderr
        assert "(/usr/bin/zsh)" in run_.stderr


def test_no_secret_in_output_or_readable_under_tmp(converged):
    assert any(k == "LITELLM_SUDO_PASSWORD" for k in secret_values())
    seen = converged["tmp_log"]
    # the watcher did see /tmp while the runs went on: the private askpass helper (for the whole run)
    assert "SEEN /tmp/litellm-runner-askpass." in seen
    staged = [line for line in seen.splitlines() if line.startswith("SEEN /tmp/litellm-runner")]
    assert [line for line in staged if not line.endswith((" deploy 700", " deploy 600"))] == []
    # another user reads no secret under /tmp nor in any command line (/proc/PID/cmdline)
    leaks = [
        (name, where)
        for name, value in secret_values().items()
        if len(value) >= 8
        for where in ("tmp_log", "proc_log")
        if value in converged[where]
    ]
    assert leaks == []
    # what the watcher could see on command lines: only the marker, never a password
    assert {word.replace("'", "") for word in converged["proc_log"].split()} <= {
        "PYINFRA_SUDO_PASSWORD=private-askpass"
    }
    shown = [
        (name, run_)
        for name, value in secret_values().items()
        if len(value) >= 8
        for run_ in ("first", "second", "check")
        if value in converged[run_].stdout + converged[run_].stderr
    ]
    assert shown == []


# what another user may see under /tmp during the runs: pyinfra's askpass helper (a script, no secret),
# the 0700 staging dirs of the connecting user and private dirs of the account and of systemd (its units'
# PrivateTmp, and systemd-analyze --offline's own work dir when the unit gate scores on the host)
VISIBLE = (
    "/tmp/litellm-runner-askpass.",
    "/tmp/litellm-runner.",
    "/tmp/pip-",
    "/tmp/systemd-private-",
    "/tmp/systemd-temporary-",
    "/tmp/.",
)


def test_uploads_land_in_the_private_directory(converged):
    """No upload (pyinfra's temporary file included) ever appeared anywhere else under /tmp."""
    seen = {line.split()[1]: line for line in converged["tmp_log"].splitlines() if line.startswith("SEEN ")}
    # the account's own temporary files, and root's (pip and `prisma generate` run as root into root's venv,
    # issue #22): private to their owner
    private = (" alice 600", " alice 700", " root 600", " root 700")
    assert [line for p, line in seen.items() if not p.startswith(VISIBLE) and not line.endswith(private)] == []
    assert [p for p in seen if p.startswith("/tmp/litellm-runner.") and p.count("/") > 2] == []
    askpass = [line for line in seen.values() if line.startswith("SEEN /tmp/litellm-runner-askpass.")]
    assert askpass and all(line.endswith(" deploy 700") for line in askpass)
    assert "*MASKED*" in converged["first"].stderr  # -vv printed sudo's commands, the password masked


def test_nopasswd_sudo_without_a_password_secret(converged, tmp_path):
    """A NOPASSWD rule and no password in the secret source: pyinfra runs sudo -n; the check is clean."""
    sandbox.up(NAME, PORT, operator="nopasswd", root_login=False)
    inventory = hosts_file(tmp_path, litellm_sudo_password_secret="LITELLM_H8_NO_SUCH_SECRET")
    drift = check(inventory)
    assert drift.returncode == 0, drift.stdout[-2000:] + drift.stderr[-2000:]
    assert root("cat /etc/sudoers.d/deploy").stdout.strip() == "deploy ALL=(ALL:ALL) NOPASSWD: ALL"


def test_a_literal_sudo_password_in_a_hosts_file_is_refused(host, tmp_path):
    inventory = hosts_file(tmp_path, _sudo_password="canary-Sudo-Pw-4711")
    result = run(inventory, "--dry")
    assert result.returncode == 1
    assert f"{inventory}: litellm_hosts[0].data._sudo_password = ***" in result.stderr
    assert "canary-Sudo-Pw-4711" not in result.stdout + result.stderr
