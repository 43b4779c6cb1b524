"""The release matrix: the CI subset on one Debian release, trixie (13) by default.

    LITELLM_IT_DEBIAN=13 pytest tests/integration/test_release.py     # or 12, bookworm, trixie

On a sandbox of that release (its own PostgreSQL, Python and systemd; the same
incident state): converge from the incident state, the second run changes
nothing, the drift check exits 0, one planted drift is found (exit 2) and
repaired by a converge, one rolling restart of the proxy. The host is its own
(LITELLM_RELEASE_SANDBOX / LITELLM_RELEASE_PORT, by default one name and port
per release), so this file runs beside the rest of the suite.

Every run goes through a hosts file with the shipped desired state and one
override, ``litellm_num_workers: 1`` (as test_fleet.py): four uvicorn workers
on a loaded 2-core CI machine can restart for longer than the readiness
timeout, and the worker count is not what differs between releases.
"""

import json
import os
import shutil

import pytest
import yaml

from litellm_runner import sandbox
from tests.support import fleet
from tests.support.hosts import REPO, Host, drift_check, pyinfra

CODENAME = sandbox.release(os.environ.get("LITELLM_IT_DEBIAN", "13"))
RELEASE = sandbox.RELEASES[CODENAME]
NAME = os.environ.get("LITELLM_RELEASE_SANDBOX", f"litellm-sandbox-release-{RELEASE['version']}")
PORT = int(os.environ.get("LITELLM_RELEASE_PORT", {"trixie": "2405", "bookworm": "2415"}[CODENAME]))
COMMON = {"litellm_num_workers": 1}
CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
CONFIG = "/etc/litellm/config.generated.yaml"  # root's (issue #22)
INCIDENT_CONFIG = "/home/litellm/litellm/state/config.generated.yaml"  # the seed's, in the account's tree
CTL = "systemctl --user --machine=litellm@.host"


@pytest.fixture(scope="module")
def host():
    sandbox.down(NAME)
    shutil.rmtree(REPO / ".secrets" / "keys" / NAME, ignore_errors=True)  # keys of a host that is gone
    sandbox.up(NAME, PORT, debian=CODENAME)
    try:
        yield Host(NAME, PORT)
    finally:
        sandbox.down(NAME)


@pytest.fixture(scope="module")
def incident(host):
    """What the untouched host runs, read before the first converge."""
    return {
        "codename": host.out(". /etc/os-release && echo $VERSION_CODENAME"),
        "postgresql": host.out("runuser -u postgres -- psql -p 5434 -tAc 'SHOW server_version_num'")[:-4],
        "python": host.out("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'"),
        "systemd": host.out("systemctl --version | head -n 1").split()[1],
        "state_files_mode": host.out(f"stat -c %a {ROOT}/state/files"),
        "request_timeout": yaml.safe_load(host.out(f"cat {INCIDENT_CONFIG}"))["litellm_settings"]["request_timeout"],
    }


def converge(host: Host, tmp_path, *args: str, **overrides):
    """The real deploy against HOST through a hosts file: the sandbox's data, COMMON and OVERRIDES."""
    path = fleet.inventory(tmp_path / "hosts.yml", [host.name], {**COMMON, **overrides})
    return pyinfra([host.name], *(args or ("-y",)), env={"LITELLM_INVENTORY": str(path)})


def check(host: Host, tmp_path, name: str):
    """The drift check against HOST through the same hosts file: (process, JSON report or None)."""
    (tmp_path / name).mkdir()
    path = fleet.inventory(tmp_path / name / "hosts.yml", [host.name], COMMON)
    return drift_check(host, tmp_path / name, env={"LITELLM_INVENTORY": str(path)})


@pytest.fixture(scope="module")
def converged(host, incident, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release")
    first = converge(host, tmp)
    assert first.returncode == 0, first.stderr[-3000:]
    second = converge(host, tmp)
    assert second.returncode == 0, second.stderr[-3000:]
    return first, second


def proxy(host: Host) -> dict:
    out = host.out(f"{CTL} show litellm.service -p MainPID -p ExecMainStartTimestampMonotonic")
    props = dict(line.split("=", 1) for line in out.splitlines())
    return {"pid": int(props["MainPID"]), "started": int(props["ExecMainStartTimestampMonotonic"]) / 1e6}


def ready_events(host: Host) -> list[float]:
    """When the runner saw the proxy answer readiness (its journal lines on the host; systemd's monotonic clock)."""
    out = host.out("journalctl -t litellm-runner -o json --no-pager | grep 'litellm.service ready' || true")
    return [int(json.loads(line)["__MONOTONIC_TIMESTAMP"]) / 1e6 for line in out.splitlines()]


def ready(host: Host) -> bool:
    probe = "curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:4000/health/readiness"
    return host.ssh(probe, check=False).returncode == 0


def test_the_sandbox_runs_the_release_in_the_incident_state(incident):
    assert {k: incident[k] for k in ("codename", "postgresql", "python", "systemd")} == {
        "codename": CODENAME,
        "postgresql": RELEASE["postgresql"],
        "python": RELEASE["python"],
        "systemd": RELEASE["systemd"],
    }
    assert (incident["state_files_mode"], incident["request_timeout"]) == ("777", 600)


def test_converges_from_the_incident_state_then_changes_nothing(host, converged):
    first, second = converged
    assert f"Rendered config {CONFIG} content | cfg-01" in first.changed(host.name)
    assert host.out(f"stat -c %a {ROOT}/state/files") == "750"
    assert yaml.safe_load(host.out(f"cat {CONFIG}"))["litellm_settings"]["request_timeout"] == 120
    # the venv is made from the release's own interpreter, with the lock of that Python
    assert host.out(f"sed -n 's/^version = //p' {CODE}/venv/pyvenv.cfg").startswith(RELEASE["python"] + ".")
    lock = REPO / "files" / "locks" / f"litellm-venv-requirements.py{RELEASE['python']}.txt"
    assert host.out(f"cat {CODE}/venv-requirements.txt") == lock.read_text().strip()
    # pg_dump (backups) is the release's PostgreSQL client, the one that matches its server
    assert host.out("pg_dump --version").split()[-1].split(".")[0] == RELEASE["postgresql"]
    assert ready(host), "the proxy is not ready after the converge"
    assert second.changed(host.name) == [], f"second converge changed: {second.changed(host.name)}"


def test_drift_check_is_clean_then_finds_and_a_converge_repairs_a_planted_drift(host, converged, tmp_path):
    proc, report = check(host, tmp_path, "clean")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    host.ssh(f"chmod 0777 {ROOT}/state/files")
    proc, report = check(host, tmp_path, "drifted")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{ROOT}/state/files" in json.dumps(report)
    run = converge(host, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.changed(host.name) == [f"Directory {ROOT}/state/files 0750 | fs-01"]
    assert host.out(f"stat -c %a {ROOT}/state/files") == "750"
    proc, _ = check(host, tmp_path, "repaired")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_rolling_restart_starts_the_new_proxy_then_waits_for_its_readiness(host, converged, tmp_path):
    """A settings change restarts the proxy; the runner records its readiness after the new process started."""
    before = proxy(host)
    settings = {"litellm_settings": {"request_timeout": 90}}
    run = converge(host, tmp_path, **settings)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Unit litellm.service enabled and running | svc-01" in run.changed(host.name)
    after = proxy(host)
    assert after["pid"] != before["pid"] and after["started"] > before["started"]
    assert any(t > after["started"] for t in ready_events(host)), "no readiness recorded after the new start"
    assert yaml.safe_load(host.out(f"cat {CONFIG}"))["litellm_settings"]["request_timeout"] == 90 and ready(host)
    again = converge(host, tmp_path, **settings)
    assert again.returncode == 0 and again.changed(host.name) == [], again.changed(host.name)
