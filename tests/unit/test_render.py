"""The rendered config and units carry the desired state from group_data."""

import re

import pytest
import yaml

from litellm_runner.render import render_config, render_units, wanted_units
from tests.unit.group_data import defaults


def test_config_carries_the_incident_fixes():
    config = yaml.safe_load(render_config(defaults()))
    gs = config["general_settings"]
    assert gs["database_connection_pool_limit"] == 20
    assert gs["store_prompts_in_spend_logs"] is False
    assert gs["disable_error_logs"] is False
    assert gs["store_model_in_db"] is True
    assert gs["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert gs["database_url"] == "os.environ/DATABASE_URL"
    assert config["litellm_settings"]["request_timeout"] == 120
    assert config["model_list"][0]["litellm_params"]["api_key"] == "os.environ/VLLM_API_KEY"


def test_sandbox_config_has_no_database_url_and_production_has():
    assert "database_url" not in yaml.safe_load(render_config(defaults(litellm_sandbox=True)))["general_settings"]
    unit = render_units(defaults(litellm_sandbox=True))["litellm.service"]
    assert "UnsetEnvironment=DATABASE_URL" in unit
    assert "UnsetEnvironment" not in render_units(defaults())["litellm.service"]


def test_a_setting_from_group_data_reaches_the_config():
    data = defaults()
    data["general_settings"] = {**data["general_settings"], "database_connection_pool_limit": 15}
    assert yaml.safe_load(render_config(data))["general_settings"]["database_connection_pool_limit"] == 15


def test_proxy_unit():
    unit = render_units(defaults())["litellm.service"]
    assert re.search(
        r"^ExecStart=/home/litellm/litellm/venv/bin/litellm --config "
        r"/home/litellm/litellm/state/config.generated.yaml --host 127.0.0.1 --port 4000 "
        r"--num_workers 4$",
        unit,
        re.M,
    )
    assert "EnvironmentFile=/home/litellm/litellm/env.litellm" in unit
    assert "Restart=on-failure" in unit
    assert "NoNewPrivileges=yes" in unit


EXPECTED_UNITS = {
    "litellm.service",
    "litellm-health-server.service",
    "litellm-metrics.service",
    "litellm-rerank.service",
    "litellm-embed-arctic.service",
    *(
        f"litellm-{n}.{k}"
        for n in ("backup", "compliance-check", "knowledge-refresh", "model-inventory", "probe-capabilities")
        for k in ("service", "timer")
    ),
}


def test_every_unit_is_rendered_and_bound_to_loopback():
    units = render_units(defaults())
    assert set(units) == EXPECTED_UNITS
    for name, port in (
        ("litellm-health-server", 8181),
        ("litellm-metrics", 9090),
        ("litellm-rerank", 8079),
        ("litellm-embed-arctic", 8082),
    ):
        assert f"--host 127.0.0.1 --port {port}" in units[f"{name}.service"]


def test_backup_timer_schedule():
    timer = render_units(defaults())["litellm-backup.timer"]
    assert "OnCalendar=*-*-* 02:00:00" in timer
    assert "RandomizedDelaySec=15min" in timer
    assert "Persistent=true" in timer


@pytest.mark.parametrize("service", ["litellm-rerank", "litellm-embed-arctic", "litellm-metrics"])
def test_a_service_can_be_disabled_per_host(service):
    data = defaults()
    data["litellm_services"] = {
        **data["litellm_services"],
        service: {**data["litellm_services"][service], "enabled": False},
    }
    wanted = wanted_units(data)
    assert wanted[f"{service}.service"] is False
    assert sum(not v for v in wanted.values()) == 1
