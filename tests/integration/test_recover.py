"""Recover from the states an incident leaves (issue #13 items 1 and 2).

Each row breaks the converged sandbox in one way; the drift check exits 2 naming
what is wrong, a converge repairs it, and the converge after that changes
nothing. With the database stopped, only the database items fail: the check
exits 1 naming host, port, database and cause; a converge converges everything
else and exits 1 naming the database; once it is started, the next converge
finishes the job.
"""

import urllib.parse

import pytest

from litellm_runner import envfile
from tests.support.hosts import drift_check, pyinfra

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
VENV = f"{CODE}/venv"  # root's link to the versioned venv the services run (docs/venv-switch.md)
SITE = f"{VENV}/lib/python3.11/site-packages"
UNITS = "/etc/systemd/user"
CTL = "systemctl --user --machine=litellm@.host"
VENV_OP = f"Venv {VENV} satisfies its pins | py-01"
ACCOUNT_PIP = f"runuser -u litellm -- {VENV}/bin/python -c 'import litellm, urllib3, pyasn1'"
DB = "127.0.0.1:5434/litellm"


check = drift_check


def named(report, host, status="drift") -> set[str]:
    return {i["id"] for i in report["hosts"][host.name]["items"] if i["status"] == status}


TRUNCATED = f": > {SITE}/urllib3/__init__.py"  # root's mistake: only the RECORD check sees it in a drift check
RECORD_CHECK = ["--data", "litellm_venv_integrity=always"]  # docs/venv-integrity.md

ROWS = [  # (breakage, items the check must name, a command that succeeds once repaired)
    pytest.param(f'rm -rf "$(readlink -e {VENV})"', {VENV_OP}, ACCOUNT_PIP, id="no-venv"),  # the folder it leads to
    pytest.param(
        f"rm -rf {SITE}/pyasn1-*.dist-info", {VENV_OP}, f"ls -d {SITE}/pyasn1-*.dist-info", id="dist-info-removed"
    ),
    pytest.param(
        TRUNCATED,
        {VENV_OP},
        f"test -s {SITE}/urllib3/__init__.py && {ACCOUNT_PIP}",
        id="files-truncated",
    ),
    pytest.param(
        f"sed -i 's/^version = .*/version = 3.9.2/' {VENV}/pyvenv.cfg",
        {VENV_OP},
        f"grep -q '^version = 3.11' {VENV}/pyvenv.cfg",
        id="other-interpreter-cfg",
    ),
    pytest.param(
        f"ln -sfn /opt/sandbox/venv/bin/python3 {VENV}/bin/python3",
        {VENV_OP},
        f"test $(readlink {VENV}/bin/python3) = /usr/bin/python3 && {ACCOUNT_PIP}",
        id="python-elsewhere",
    ),
    pytest.param(
        f"ln -sfn /usr/bin/python3.99 {VENV}/bin/python3",
        {VENV_OP},
        f"test -e {VENV}/bin/python && {ACCOUNT_PIP}",
        id="dangling-python",
    ),
    pytest.param(  # root's hand-made chmod where a .pth file would run in every service: the cheap check sees it
        f"chmod g+w {SITE}",
        {VENV_OP},
        f"test $(stat -c %a {SITE}) = 755",
        id="site-packages-group-writable",
    ),
    pytest.param(
        f"rm {CODE}/bin/litellm-dbctl",
        {f"Tool {CODE}/bin/litellm-dbctl content | cfg-02"},
        f"test -f {CODE}/bin/litellm-dbctl",
        id="dbctl-missing",
    ),
    pytest.param(
        f"echo '# an older one' >> {CODE}/bin/litellm-dbctl",
        {f"Tool {CODE}/bin/litellm-dbctl content | cfg-02"},
        f"! grep -q 'an older one' {CODE}/bin/litellm-dbctl",
        id="dbctl-old",
    ),
    pytest.param(
        "rm /etc/litellm/env.litellm",
        {"Env file /etc/litellm/env.litellm content | sec-01"},
        "test -f /etc/litellm/env.litellm",
        id="env-file-missing",
    ),
    pytest.param(
        f"rm {UNITS}/litellm-metrics.service",  # root's unit file (issue #22: /etc/systemd/user), its link dangling
        {"Unit file litellm-metrics.service content | svc-01"},
        f"test -f {UNITS}/litellm-metrics.service && {CTL} is-active litellm-metrics.service && "
        f"{CTL} is-enabled litellm-metrics.service",
        id="unit-file-missing",
    ),
    pytest.param(
        "touch /etc/litellm/config.generated.yaml.tmp-litellm-runner "
        f"{CODE}/bin/litellm-status.tmp-litellm-runner-bak",  # root's run killed midway
        {"No temporary file of an interrupted run | fs-02"},
        f"! ls /etc/litellm/*.tmp-litellm-runner* {CODE}/bin/*.tmp-litellm-runner* 2>/dev/null",
        id="leftover-temp-files",
    ),
    # a lock from another control machine whose run died 1000 s ago (no heartbeat since)
    pytest.param(
        "old=$(( $(date +%s) - 1000 )); printf 'run_id=dead0000 user=op machine=gone mid=feedfacefeedface "
        "pid=4242 pstart= started=%s beat=%s\\n' $old $old > /run/litellm-runner.lock",
        {"No run lock left by an interrupted run | fs-02"},
        "! test -e /run/litellm-runner.lock",
        id="lock-of-a-killed-run",
    ),
]


@pytest.mark.parametrize("breakage, items, repaired", ROWS)
def test_broken_state_is_drift_then_repaired(converged, host, converge, tmp_path, breakage, items, repaired):
    host.ssh(breakage, timeout=600)
    assert host.ssh(repaired, check=False, timeout=120).returncode != 0, "the breakage broke nothing"
    proc, report = check(host, tmp_path, args=RECORD_CHECK if breakage == TRUNCATED else None)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-3000:]
    assert items <= named(report, host), proc.stdout
    assert converge().returncode == 0
    host.wait_for(repaired, timeout=120)
    assert converge().changed(host.name) == []


def test_user_manager_stopped_is_drift_then_repaired(converged, host, converge, tmp_path):
    host.ssh("systemctl stop --no-block user@$(id -u litellm).service")
    # stopped, not stopping: the old manager's process gone too (in podman it can outlive its unit while the
    # proxy's processes survive SIGKILL, docs/sandbox.md, and keep the proxy's socket bound meanwhile)
    stopped = "! systemctl is-active -q user@$(id -u litellm).service && ! pgrep -u litellm -x systemd"
    host.wait_for(stopped, timeout=300)
    proc, report = check(host, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-3000:]
    assert {"Linger for litellm | users-02", "Unit litellm.service enabled and running | svc-01"} <= named(report, host)
    converge()
    host.wait_for(f"{CTL} is-active litellm.service litellm-backup.timer", timeout=300)
    assert converge().changed(host.name) == []


def test_database_down_fails_only_the_database_items(converged, host, converge, tmp_path):
    password = urllib.parse.urlsplit(envfile.loads(host.out("cat /etc/litellm/env.litellm"))["DATABASE_URL"]).password
    assert password  # the check below looks for it
    host.ssh(f"chmod 0777 {ROOT}/logs && rm {UNITS}/litellm-metrics.service")  # non-database drift besides
    host.ssh("systemctl stop postgresql", timeout=300)
    try:
        proc, report = check(host, tmp_path)
        assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
        errors = named(report, host, "error")
        assert errors and all("| db-0" in e for e in errors), errors
        assert f"database settings: database {DB} unreachable" in proc.stdout, proc.stdout
        assert {f"Directory {ROOT}/logs 0750 | fs-01", "Unit file litellm-metrics.service content | svc-01"} <= named(
            report, host
        )
        assert not password or password not in proc.stdout + proc.stderr

        run = pyinfra([host.name], "-y")
        assert run.returncode != 0
        assert f"database {DB} unreachable" in run.stderr, run.why
        assert not password or password not in run.stdout + run.stderr
        host.ssh(f"test $(stat -c %a {ROOT}/logs) = 750 && test -f {UNITS}/litellm-metrics.service")
        host.wait_for(f"{CTL} is-active litellm-metrics.service", timeout=120)
        proc, report = check(host, tmp_path)
        assert proc.returncode == 1 and named(report, host) == set(), proc.stdout  # only the database is left
    finally:
        host.ssh("systemctl start postgresql", timeout=300)
    converge()
    proc, report = check(host, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert converge().changed(host.name) == []
