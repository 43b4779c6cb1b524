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
    assert "UnsetEnvironment=DATABASE_URL" not in render_units(defaults())["litellm.service"]


def test_the_query_engine_gives_the_sandbox_its_database_and_names_the_engine_in_the_proxys_unit():
    from litellm_runner import query_engine

    data = defaults(litellm_sandbox=True, litellm_query_engine=True)
    assert yaml.safe_load(render_config(data))["general_settings"]["database_url"] == "os.environ/DATABASE_URL"
    unit = render_units(data)["litellm.service"]
    assert "UnsetEnvironment=DATABASE_URL" not in unit
    env = dict(line.split("=", 2)[1:] for line in unit.splitlines() if line.startswith("Environment=PRISMA_"))
    where = query_engine.install_dir()
    assert env == {
        "PRISMA_QUERY_ENGINE_BINARY": f"{where}/query-engine",
        "PRISMA_SCHEMA_ENGINE_BINARY": f"{where}/schema-engine",
        "PRISMA_BINARY_CACHE_DIR": where,
    }
    assert "Environment=DISABLE_SCHEMA_UPDATE=true" in unit.splitlines()  # no schema engine: db-02 makes the tables
    # LiteLLM's start-up `prisma migrate diff` needs the schema engine: a 1 s budget to fail, not 60 s
    assert "Environment=LITELLM_PRISMA_COMMAND_TIMEOUT=1" in unit.splitlines()
    assert "LITELLM_PRISMA_COMMAND_TIMEOUT" not in render_units(defaults())["litellm.service"]  # Prisma's own engines
    # node is killed with SIGSYS under @system-service alone (seen in the sandbox): V8 uses pkey_mprotect
    assert "SystemCallFilter=@pkey" in unit.splitlines() and "SystemCallFilter=@system-service" in unit.splitlines()
    for other, text in render_units(data).items():  # only the proxy runs prisma-client-py
        assert other == "litellm.service" or "PRISMA_" not in text
    assert "PRISMA_" not in render_units(defaults())["litellm.service"]  # off by default: Prisma's own engines
    assert "@pkey" not in render_units(defaults())["litellm.service"]


def test_a_setting_from_group_data_reaches_the_config():
    data = defaults()
    data["general_settings"] = {**data["general_settings"], "database_connection_pool_limit": 15}
    assert yaml.safe_load(render_config(data))["general_settings"]["database_connection_pool_limit"] == 15


def test_proxy_unit():
    unit = render_units(defaults())["litellm.service"]
    five = render_units(defaults(litellm_worker_healthcheck_timeout=5))["litellm.service"]
    assert re.search(r"^ExecStart=.* --timeout_worker_healthcheck 5$", five, re.M)
    assert re.search(
        r"^ExecStart=/usr/local/lib/litellm-runner/venv/bin/python /usr/local/lib/litellm-runner/bin/litellm-serve "
        r"--config "
        r"/etc/litellm/config.generated.yaml --host 127.0.0.1 --port 4000 "
        r"--num_workers 4 --timeout_worker_healthcheck 60$",
        unit,
        re.M,
    )
    assert "EnvironmentFile=/etc/litellm/env.litellm" in unit
    assert "ConditionUser=litellm" in unit  # /etc/systemd/user: only the account's manager runs it
    assert re.search(r"^UnsetEnvironment=PYTHONPATH .*LD_PRELOAD", unit, re.M)  # the manager's environment
    assert "Restart=on-failure" in unit
    assert "NoNewPrivileges=yes" in unit


EXPECTED_UNITS = {
    "litellm.socket",
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
    shipped_off = {unit for unit, on in wanted_units(defaults()).items() if not on}
    wanted = wanted_units(data)
    assert {unit for unit, on in wanted.items() if not on} == shipped_off | {f"{service}.service"}


STUB_MCP = {
    "url": "http://127.0.0.1:8091/mcp",
    "auth_type": "bearer_token",
    "authentication_token": "os.environ/LITELLM_MCP_STUB_TOKEN",
    "access_groups": ["ops"],
}


def test_no_mcp_section_without_mcp_servers():
    assert "mcp_servers" not in render_config(defaults())
    assert "mcp_servers" not in render_config(defaults(litellm_mcp_servers={}))


def test_mcp_servers_reach_the_config_with_the_runner_defaults():
    waivers = [{"rule": "LINT-13", "reason": "vendor-hosted, reached over the VPN only"}]
    data = defaults(
        litellm_mcp_servers={"stub": STUB_MCP, "vendor": {**STUB_MCP, "transport": "sse", "waivers": waivers}}
    )
    config = yaml.safe_load(render_config(data))
    assert config["mcp_servers"] == {
        # LiteLLM 1.102.4's own defaults are transport http, allow_all_keys false, available_on_public_internet true
        "stub": {**STUB_MCP, "transport": "http", "allow_all_keys": False, "available_on_public_internet": False},
        "vendor": {
            **STUB_MCP,
            "transport": "sse",
            "waivers": waivers,
            "allow_all_keys": False,
            "available_on_public_internet": False,
        },
    }
    assert list(config) == ["model_list", "mcp_servers", "general_settings", "litellm_settings"]


def test_mcp_credentials_stay_references_and_operator_choices_win():
    data = defaults(
        litellm_mcp_servers={"stub": {**STUB_MCP, "allow_all_keys": True, "available_on_public_internet": True}}
    )
    text = render_config(data)
    assert "authentication_token: os.environ/LITELLM_MCP_STUB_TOKEN" in text
    entry = yaml.safe_load(text)["mcp_servers"]["stub"]
    assert entry["allow_all_keys"] is True and entry["available_on_public_internet"] is True


@pytest.mark.parametrize(
    ("overrides", "listen", "wanted"),
    [
        ({}, "127.0.0.1:4000", True),
        ({"litellm_bind": "10.0.0.5", "litellm_port": 4100}, "10.0.0.5:4100", True),
        ({"litellm_services": {"litellm": {"enabled": False}}}, "127.0.0.1:4000", False),
    ],
)
def test_the_proxys_socket_unit_holds_its_address_and_passes_it_to_the_proxy(overrides, listen, wanted):
    """litellm.socket listens where the proxy serves, only the account's manager runs it, and the proxy's
    unit takes its socket from it; the socket is converged right before the proxy, as the proxy is."""
    data = defaults(**overrides)
    units = render_units(data)
    socket, service = units["litellm.socket"].splitlines(), units["litellm.service"].splitlines()
    assert f"ListenStream={listen}" in socket and "Service=litellm.service" in socket
    assert f"ConditionUser={data['litellm_user']}" in socket and "WantedBy=sockets.target" in socket
    assert {"Requires=litellm.socket", "After=litellm.socket", "Sockets=litellm.socket"} <= set(service)
    assert f"--host {listen.rpartition(':')[0]} --port {listen.rpartition(':')[2]}" in units["litellm.service"]
    order = list(wanted_units(data))
    assert order.index("litellm.socket") + 1 == order.index("litellm.service")
    assert wanted_units(data)["litellm.socket"] is wanted is wanted_units(data)["litellm.service"]
    assert list(units).index("litellm.socket") < list(units).index("litellm.service")
