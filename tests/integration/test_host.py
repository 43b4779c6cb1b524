"""Converge the incident sandbox, then check the host itself (not pyinfra's facts)."""

import json
import re

import pytest
import yaml
from packaging.version import Version

from litellm_runner import envfile, sandbox
from tests.unit.group_data import defaults

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
D = defaults()


def test_dry_run_on_the_incident_host_reports_drift_and_changes_nothing(host, dry_before):
    assert dry_before.returncode == 0, dry_before.stderr[-2000:]
    would = dry_before.changed(host.name)
    for expected in (
        "Linger for litellm | users-02",
        f"Directory {ROOT}/state/files 0750 | fs-01",
        f"Venv {CODE}/venv satisfies its pins | py-01",
        "Rendered config /etc/litellm/config.generated.yaml content | cfg-01",
    ):
        assert expected in would
    # --dry touched nothing: right after it, the incident was still there
    assert dry_before.host_after == {"state_files_mode": "777", "linger": False}


def test_first_converge_changes_the_incident_host(converged, host):
    first, _ = converged
    assert first.json["results"]["failed_hosts"] == []
    assert len(first.changed(host.name)) > 20


def test_second_converge_changes_nothing(converged, host):
    _, second = converged
    results = second.json["results"]
    assert results["totals"]["success"] == 0, second.changed(host.name)
    assert results["totals"]["error"] == 0
    assert results["totals"]["no_change"] == results["totals"]["hosts"] > 40


def test_dry_run_after_converge_reports_nothing(converged, host):
    from tests.support.hosts import pyinfra

    dry = pyinfra([host.name], "--dry")
    assert dry.returncode == 0
    assert dry.changed(host.name) == []


def test_linger_and_user_manager(converged, host):
    host.ssh("test -e /var/lib/systemd/linger/litellm")
    assert host.out("systemctl is-active user@$(id -u litellm).service") == "active"


@pytest.mark.parametrize("rel", ["", *D["litellm_dirs"]])
def test_directory_mode_and_owner(converged, host, rel):
    assert host.out(f"stat -c '%a %U %G' {ROOT}/{rel}") == "750 litellm litellm"


def test_venv_versions(converged, host):
    installed = {
        p["name"].lower(): p["version"]
        for p in json.loads(host.out(f"{CODE}/venv/bin/pip list --format=json --disable-pip-version-check"))
    }
    assert installed["litellm"] == "1.102.4"
    assert Version(installed["fastapi-users"]) >= Version("15.0.2")
    assert Version(installed["urllib3"]) >= Version("2.7.0")
    assert Version(installed["pyasn1"]) >= Version("0.6.3")
    assert installed["ecdsa"] == "0.19.1"
    assert "psycopg" in installed
    assert host.out(f"stat -c %U {CODE}/venv/lib") == "root"  # root's venv (issue #22)


def test_rendered_settings(converged, host):
    config = yaml.safe_load(host.out("cat /etc/litellm/config.generated.yaml"))
    gs = config["general_settings"]
    assert gs["database_connection_pool_limit"] == 20
    assert gs["store_prompts_in_spend_logs"] is False
    assert gs["disable_error_logs"] is False
    assert gs["store_model_in_db"] is True
    assert gs["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert config["litellm_settings"]["request_timeout"] == 120
    # the incident config (the account's copy, in its tree) was kept: moved into root's quarantine (issue #22)
    legacy = f"{ROOT}/state/config.generated.yaml"
    kept = host.out(f"grep -l '\"{legacy}\"' /var/lib/litellm-runner/quarantine/*/manifest.json")
    assert kept and host.out(f"stat -c %U {kept.splitlines()[0]}") == "root"


def test_no_secret_in_rendered_config_or_unit_files(converged, host):
    secrets = [
        v for v in (line.partition("=")[2] for line in sandbox.secrets_file().read_text().splitlines()) if len(v) > 8
    ]
    text = host.out("cat /etc/litellm/config.generated.yaml /etc/systemd/user/*.service /etc/systemd/user/*.timer")
    for value in secrets:
        assert value not in text


def test_env_file(converged, host):
    assert host.out("stat -c '%a %U %G' /etc/litellm/env.litellm") == "640 root litellm"
    env = envfile.loads(host.out("cat /etc/litellm/env.litellm"), "env.litellm")  # as systemd reads it
    assert set(env) >= {"LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "DATABASE_URL", "VLLM_API_KEY"}
    assert env["VLLM_API_KEY"] == ""  # the placeholder 'dummy' is written empty
    assert env["LITELLM_MASTER_KEY"].startswith("sk-") and env["LITELLM_MASTER_KEY"] != "sk-1234"


SERVICES = ["litellm", "litellm-health-server", "litellm-metrics", "litellm-rerank", "litellm-embed-arctic"]
TIMERS = [
    "litellm-backup",
    "litellm-compliance-check",
    "litellm-model-inventory",
    "litellm-probe-capabilities",
]
CTL = "systemctl --user --machine=litellm@.host"


@pytest.mark.parametrize("service", SERVICES)
def test_service_enabled_and_active(converged, host, service):
    assert host.out(f"{CTL} is-enabled {service}.service") == "enabled"
    host.wait_for(f"{CTL} is-active {service}.service", timeout=60)


@pytest.mark.parametrize("timer", TIMERS)
def test_timer_enabled_with_next_elapse(converged, host, timer):
    assert host.out(f"{CTL} is-enabled {timer}.timer") == "enabled"
    assert host.out(f"{CTL} is-active {timer}.timer") == "active"
    nxt = host.out(f"{CTL} show -P NextElapseUSecRealtime {timer}.timer")
    assert nxt and nxt != "n/a", nxt


def test_site_specific_timer_ships_disabled(converged, host):
    """litellm-knowledge-refresh's job is the site's: its unit is installed, not enabled, not scheduled."""
    assert host.out(f"{CTL} is-enabled litellm-knowledge-refresh.timer", check=False) == "disabled"
    assert host.out(f"{CTL} is-active litellm-knowledge-refresh.timer", check=False) == "inactive"


def test_backup_timer_schedule_on_host(converged, host):
    assert host.out(f"{CTL} show -P TimersCalendar litellm-backup.timer").find("02:00:00") >= 0
    assert host.out(f"{CTL} show -P Persistent litellm-backup.timer") == "yes"


def test_proxy_answers(converged, host):
    code = host.wait_for(
        "curl -fsS -o /dev/null -w '%{http_code}' http://127.0.0.1:4000/health/liveliness", timeout=180
    )
    assert code == "200"
    # the sandbox host's own litellm_num_workers (its host data, litellm_runner/sandbox)
    exec_start = host.out(f"{CTL} show -P ExecStart litellm.service")
    assert re.search(rf"--num_workers {sandbox.SANDBOX_WORKERS}\b", exec_start), exec_start


@pytest.mark.parametrize("port", [4000, 8181, 9090, 8079, 8082])
def test_service_ports_answer_on_loopback(converged, host, port):
    host.wait_for(f"ss -Hltn 'sport = :{port}' | grep -q '127.0.0.1:{port}'", timeout=180)


def test_nothing_listens_outside_loopback(converged, host):
    host.wait_for("ss -Hltn 'sport = :4000' | grep -q .", timeout=180)
    listeners = host.out("ss -Hltn").splitlines()
    outside = [
        line
        for line in listeners
        if not line.split()[3].startswith("127.0.0.1:") and not line.split()[3].endswith(":22")
    ]
    # sshd on :22 is how the sandbox is reached (published on the control machine's 127.0.0.1 only)
    assert outside == []
