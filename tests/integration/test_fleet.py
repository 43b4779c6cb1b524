"""A fleet of five sandbox hosts: one run converges and checks them all, the proxy
restarts in batches gated on readiness, and a host that fails readiness is rolled
back while the others keep their last good state (issue #7).

The five hosts run one proxy worker each (``litellm_num_workers: 1``): twenty
LiteLLM workers starting at once on a 2-core CI machine would spend minutes in
uvicorn's start-up restarts. Everything else is the shipped desired state.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.support import fleet
from tests.support.hosts import REPO, Host, pyinfra

HOSTS = {f"litellm-fleet-{i}": 2300 + i for i in range(1, 6)}
ROOT = "/home/litellm/litellm"
CONFIG = "/etc/litellm/config.generated.yaml"
COMMON = {"litellm_num_workers": 1, "litellm_restart_batch_size": 5, "litellm_ready_timeout": 240}


@pytest.fixture(scope="module")
def hosts():
    fleet.down_all(HOSTS)
    fleet.up_all(HOSTS)
    try:
        yield [Host(name, port) for name, port in HOSTS.items()]
    finally:
        fleet.down_all(HOSTS)


def run(tmp_path, *args, common=None, per_host=None, count=None):
    """The real deploy against the fleet, through a hosts file with overrides."""
    path = fleet.inventory(tmp_path / "hosts.yml", HOSTS, {**COMMON, **(common or {})}, per_host)
    env = {"LITELLM_INVENTORY": str(path)}
    if count:
        env["LITELLM_COMMAND_COUNT"] = str(count)
    return pyinfra(list(HOSTS), *args, env=env)


def proxy(host: Host) -> dict:
    out = host.out(
        "systemctl --user --machine=litellm@.host show litellm.service -p MainPID -p ExecMainStartTimestampMonotonic"
    )
    props = dict(line.split("=", 1) for line in out.splitlines())
    return {"pid": int(props["MainPID"]), "started": int(props["ExecMainStartTimestampMonotonic"]) / 1e6}


def ready(host: Host) -> bool:
    return (
        host.ssh("curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:4000/health/readiness", check=False).returncode
        == 0
    )


def ready_event(host: Host) -> float:
    """When the rollout last saw HOST's proxy answer readiness: the runner's journal
    line on the host, on the same monotonic clock as systemd's start timestamps
    (the sandboxes share one kernel)."""
    out = host.out("journalctl -t litellm-runner -o json --no-pager | grep 'litellm.service ready' | tail -n 1")
    assert out, f"{host.name}: no readiness event in the journal"
    return int(json.loads(out)["__MONOTONIC_TIMESTAMP"]) / 1e6


def timeout_of(host: Host) -> int:
    return yaml.safe_load(host.out(f"cat {CONFIG}"))["litellm_settings"]["request_timeout"]


@pytest.fixture(scope="module")
def converged(hosts, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    first = run(tmp, "-y")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run(tmp, "-y")
    assert second.returncode == 0, second.stderr[-3000:]
    return first, second


def test_one_run_converges_every_host_of_the_fleet(hosts, converged):
    first, second = converged
    for host in hosts:
        assert f"Rendered config {CONFIG} content | cfg-01" in first.changed(host.name)
        assert host.out(f"stat -c %a {ROOT}/state/files") == "750"
        assert ready(host), f"{host.name}: the proxy is not ready after the converge"
        assert timeout_of(host) == 120
    assert second.changed() == [], f"second converge changed: {second.changed()}"


def test_noop_check_of_the_fleet_needs_one_remote_command_per_host(hosts, converged, tmp_path):
    path = fleet.inventory(tmp_path / "hosts.yml", HOSTS, COMMON)
    counts = tmp_path / "counts.json"
    proc = subprocess.run(
        [sys.executable, "-m", "litellm_runner.cli.check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LITELLM_INVENTORY": str(path), "LITELLM_COMMAND_COUNT": str(counts)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "0 of 5 hosts drifted" in proc.stdout
    per_host = json.loads(counts.read_text())
    assert sorted(per_host) == sorted(HOSTS)
    for name, count in per_host.items():
        assert count["commands"] + count["uploads"] + count["downloads"] == 1, (name, count)  # issue #17, #22


def test_proxy_restarts_in_batches_each_ready_before_the_next(hosts, converged, tmp_path):
    before = {h.name: proxy(h) for h in hosts}
    result = run(tmp_path, "-y", common={"litellm_restart_batch_size": 2, "litellm_settings": {"request_timeout": 90}})
    assert result.returncode == 0, result.stderr[-3000:]
    after = {h.name: proxy(h) for h in hosts}
    for host in hosts:
        assert after[host.name]["pid"] != before[host.name]["pid"], f"{host.name} was not restarted"
        assert timeout_of(host) == 90 and ready(host)
    # 5 hosts in batches of 2: each host's proxy started after every proxy of the
    # earlier batches answered readiness, and before any of its own batch did.
    # Order only, from events the hosts recorded (no duration is assumed).
    ready_at = {h.name: ready_event(h) for h in hosts}
    ready_before_start = sorted(
        sum(1 for other in hosts if ready_at[other.name] < after[h.name]["started"]) for h in hosts
    )
    assert ready_before_start == [0, 0, 2, 2, 4], (
        f"hosts ready before each start {ready_before_start}; starts {after}, ready {ready_at}"
    )


def test_a_host_failing_readiness_is_rolled_back_and_the_rest_stay_on_their_last_good_state(hosts, converged, tmp_path):
    bad = "litellm-fleet-3"
    before = {h.name: proxy(h) for h in hosts}
    good_config = {h.name: h.out(f"sha256sum {CONFIG}") for h in hosts}
    # a new timeout for everyone; host 3 also gets a callback module that does not exist,
    # which makes the proxy fail at start
    result = run(
        tmp_path,
        "-y",
        common={
            "litellm_restart_batch_size": 1,
            "litellm_ready_timeout": 60,
            "litellm_settings": {"request_timeout": 60},
        },
        per_host={bad: {"litellm_settings": {"request_timeout": 60, "callbacks": ["no_such_module.handler"]}}},
    )
    assert result.returncode != 0
    assert f"[{bad}]" in result.stderr and "failed readiness" in result.stderr, result.stderr[-3000:]
    by_name = {h.name: h for h in hosts}
    # the failing host: previous config back, restarted on it, ready
    assert by_name[bad].out(f"sha256sum {CONFIG}") == good_config[bad]
    assert "no_such_module" not in by_name[bad].out(f"cat {CONFIG}")
    for host in hosts:
        assert host.wait_for("curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:4000/health/readiness", 240) == ""
        if host.name == bad:
            continue
        restarted = proxy(host)["pid"] != before[host.name]["pid"]
        if restarted:  # restarted before the failure: the new, good config, ready
            assert timeout_of(host) == 60
        else:  # after the failure: not restarted, its last good config back on disk
            assert host.out(f"sha256sum {CONFIG}") == good_config[host.name]
            assert f"[{host.name}]" in result.stderr and "rollout stopped" in result.stderr
    # without the broken value the next run converges every host
    fixed = run(tmp_path, "-y", common={"litellm_restart_batch_size": 5, "litellm_settings": {"request_timeout": 60}})
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert all(timeout_of(h) == 60 and ready(h) for h in hosts)
