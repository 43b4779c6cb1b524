"""Preflight: every bad input is refused before any host is touched, each problem
naming the file, the key, the value (masked if secret) and the expected form."""

import os
import pathlib
import subprocess
import sys

import pytest

from litellm_runner.preflight import PreflightError, check_inventory
from tests.unit.group_data import REPO, defaults

INCIDENT_PINS = "fastapi-users==14.0.2\nurllib3==2.5.0\npyasn1==0.6.1\n"
OK = {"postgresql_max_connections": 150}  # the defaults' 4 x 25 + 5 + 10 = 115 fit under it


def data(**kv):
    return defaults(**{**OK, **kv})


def nested(key, sub, **kv):
    d = data()
    d[key] = {**d[key], sub: {**d[key][sub], **kv}} if sub else {**d[key], **kv}
    return d


@pytest.fixture(scope="module")
def incident_requirements(tmp_path_factory):
    path = tmp_path_factory.mktemp("req") / "incident.txt"
    path.write_text(INCIDENT_PINS)
    return str(path)


# (id, data, {key: source}, fragments every one of which the message must contain)
BAD = [
    ("user-name", data(litellm_user="Root User"), {},
     ["group_data/all.py: litellm_user = 'Root User'", "expected a user name"]),
    ("group-name", data(litellm_group="9x"), {"litellm_group": "group_data/proxies.py"},
     ["group_data/proxies.py: litellm_group = '9x'", "expected a group name"]),
    ("relative-path", data(litellm_root="relative/path"), {"litellm_root": "inventory (host h1)"},
     ["inventory (host h1): litellm_root = 'relative/path'", "expected an absolute path"]),
    ("dotdot-path", data(litellm_home="/home/../etc"), {}, ["litellm_home = '/home/../etc'", "expected an absolute path"]),
    ("world-writable-mode", data(litellm_dir_mode="0777"), {}, ["litellm_dir_mode = '0777'", "not world-writable"]),
    ("mode-not-octal-string", data(litellm_dir_mode=750), {}, ["litellm_dir_mode = 750", "octal mode string such as '0750'"]),
    ("bind-not-loopback", data(litellm_bind="0.0.0.0"), {}, ["litellm_bind = '0.0.0.0'", "expected a loopback address"]),
    ("port-range", data(litellm_port=70000), {}, ["litellm_port = 70000", "expected a port 1-65535"]),
    ("port-type", data(litellm_db_port="5434"), {}, ["litellm_db_port = '5434'", "expected a port 1-65535"]),
    ("duplicate-service-port", nested("litellm_services", "litellm-metrics", port=8181), {},
     ["litellm_services[litellm-metrics].port = 8181", "a port no other service uses (also litellm-health-server)"]),
    ("service-port-is-db-port", nested("litellm_services", "litellm-rerank", port=5434), {},
     ["litellm_services[litellm-rerank].port = 5434", "(also litellm_db_port)"]),
    ("workers-type", data(litellm_num_workers="4"), {}, ["litellm_num_workers = '4'", "a whole number of workers 1-64"]),
    ("bool-type", data(litellm_linger="yes"), {}, ["litellm_linger = 'yes'", "expected true or false"]),
    ("db-host-remote", data(litellm_db_host="10.0.0.5"), {}, ["litellm_db_host = '10.0.0.5'", "loopback"]),
    ("idle-minutes-range", data(litellm_db_idle_minutes=-5), {}, ["litellm_db_idle_minutes = -5", "minutes, 1-1440"]),
    ("typo-key", data(litellm_num_worker=4), {"litellm_num_worker": "inventory (host h1)"},
     ["inventory (host h1): litellm_num_worker = 4", "a known setting", "misspelt"]),
    ("calendar-nonsense", nested("litellm_timers", "litellm-backup", on_calendar="every day at 2"), {},
     ["litellm_timers[litellm-backup].on_calendar = 'every day at 2'", "OnCalendar expression", "checked with"]),
    ("calendar-hour-25", nested("litellm_timers", "litellm-backup", on_calendar="Mon *-*-* 25:00"), {},
     ["litellm_timers[litellm-backup].on_calendar = 'Mon *-*-* 25:00'", "OnCalendar expression"]),
    ("duration", nested("litellm_timers", "litellm-compliance-check", randomized_delay="soon"), {},
     ["litellm_timers[litellm-compliance-check].randomized_delay = 'soon'", "a systemd duration such as '15min' or '1h'"]),
    ("model-literal-api-key", data(litellm_model_list=[
        {"model_name": "m", "litellm_params": {"model": "x", "api_key": "sk-live-canary"}}]), {},
     ["litellm_model_list[0].litellm_params.api_key = '***'", "an os.environ/NAME reference"]),
    ("master-key-in-group-data", nested("general_settings", None, master_key="sk-canary-master"), {},
     ["general_settings.master_key = '***'", "no secret in group_data"]),
    ("secret-in-litellm-env", nested("litellm_env", None, DATABASE_URL="postgresql://litellm:canarypw@127.0.0.1/litellm"), {},
     ["litellm_env.DATABASE_URL = '***'", "no secret in litellm_env"]),
    ("prompts-in-spend-logs", nested("general_settings", None, store_prompts_in_spend_logs=True), {},
     ["general_settings.store_prompts_in_spend_logs = True", "expected false (prompts are personal data)"]),
    ("pool-limit-range", nested("general_settings", None, database_connection_pool_limit=-1), {},
     ["general_settings.database_connection_pool_limit = -1", "a whole number 1-1000"]),
    ("request-timeout", nested("litellm_settings", None, request_timeout=0), {},
     ["litellm_settings.request_timeout = 0", "seconds, 1-3600"]),
    ("max-connections-type", data(postgresql_max_connections="lots"), {},
     ["postgresql_max_connections = 'lots'", "a whole number 20-10000"]),
    ("lint-literal-secret", nested("litellm_settings", None, langfuse_secret="lf-canary-secret"), {},
     ["group_data/all.py: litellm_settings.langfuse_secret: LINT-04", "expected an os.environ/NAME reference"]),
    ("capacity-incident-4x25", defaults(), {},
     ["litellm_num_workers x general_settings.database_connection_pool_limit",
      "4 workers x 25 pool = 100 + 5 other clients + 10 reserve = 115 > max_connections 100",
      "postgresql_max_connections (not set: PostgreSQL default 100)"]),
    ("capacity-max-connections-set", data(postgresql_max_connections=100, litellm_num_workers=8),
     {"postgresql_max_connections": "group_data/db.py"},
     ["group_data/db.py", "8 workers x 25 pool = 200 + 5 other clients + 10 reserve = 215 > max_connections 100"]),
]


@pytest.mark.parametrize("case, host_data, sources, fragments", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_with_file_key_value_and_expected_form(case, host_data, sources, fragments):
    with pytest.raises(PreflightError) as err:
        check_inventory([("h1", host_data, sources)])
    text = str(err.value)
    assert text.startswith("refusing to touch any host: 1 problem(s)"), text
    assert "host h1: " in text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert "canary" not in text


def test_incident_pins_are_refused_offline_with_advisory_ids(incident_requirements):
    with pytest.raises(PreflightError) as err:
        check_inventory([("h1", data(litellm_venv_requirements=incident_requirements), {})])
    text = str(err.value)
    assert f"group_data/all.py: litellm_venv_requirements = '{incident_requirements}'" in text
    for advisory in ("CVE-2025-68481", "CVE-2025-66471", "CVE-2025-66418", "CVE-2026-21441",
                     "CVE-2026-44431", "CVE-2026-44432", "CVE-2026-23490", "CVE-2026-30922"):
        assert advisory in text


def test_every_problem_of_every_host_is_listed():
    with pytest.raises(PreflightError) as err:
        check_inventory([("a", data(litellm_port=0), {}),
                         ("b", data(litellm_bind="::", litellm_num_workers=99), {"litellm_bind": "inventory (host b)"})])
    text = str(err.value)
    assert "3 problem(s)" in text
    assert "host a: group_data/all.py: litellm_port = 0" in text
    assert "host b: inventory (host b): litellm_bind = '::'" in text
    assert "host b: group_data/all.py: litellm_num_workers = 99" in text


def test_shipped_defaults_pass_once_max_connections_fits():
    assert check_inventory([("h1", data(), {}), ("h2", data(), {})]) is None


def test_refusal_exits_1_before_any_host_command(tmp_path):
    """The real pyinfra CLI on @local (dry run): exit 1, the message, and the host untouched."""
    root = tmp_path / "never" / "root"
    proc = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "pyinfra"), "--dry", "-y", "@local", "deploy.py",
         "--data", "litellm_bind=0.0.0.0", "--data", f"litellm_root={root}", "-vv"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYINFRA_PROGRESS": "off"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "pyinfra --data: litellm_bind = '0.0.0.0': expected a loopback address" in out
    assert "Starting operation" not in out and "Loaded fact" not in out and "Getting fact" not in out
    assert not root.parent.exists()
