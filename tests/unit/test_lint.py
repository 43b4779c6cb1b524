"""Config security lint: the shipped render is clean, the incident's original
config is refused, each rule fires with its id and severity, and no secret
value is ever printed."""

import os
import subprocess
import sys

import pytest
import yaml

from litellm_runner.gates.lint import Finding, exit_code, lint_config
from litellm_runner.render import render_config
from tests.unit.group_data import REPO, defaults

GOOD_ENV = {
    "LITELLM_MASTER_KEY": "sk-canary-0a1b2c3d4e5f",
    "LITELLM_SALT_KEY": "sk-salt-canary-9z8y7x",
    "VLLM_API_KEY": "canary-vllm-token",
    "DATABASE_URL": "postgresql://litellm:canarypw@127.0.0.1:5434/litellm",
}


def shipped():
    return yaml.safe_load(render_config(defaults()))


def lint(*args):
    return subprocess.run(
        [sys.executable, "-m", "litellm_runner.gates.lint", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_shipped_defaults_are_clean_with_and_without_env():
    assert lint_config(shipped(), None) == []
    assert lint_config(shipped(), GOOD_ENV) == []


def test_incident_config_fails_on_the_command_line():
    proc = lint(REPO / "sandbox/incident/config.yaml", "--env-file", REPO / "sandbox/incident/env.litellm")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    ids = {line.split()[0] for line in proc.stdout.splitlines()}
    assert {"LINT-01", "LINT-07", "LINT-08", "LINT-09"} <= ids
    secrets = dict(
        line.split("=", 1)
        for line in (REPO / "sandbox/incident/env.litellm").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    for value in secrets.values():
        assert value.strip() not in proc.stdout + proc.stderr


def with_general(**kv):
    c = shipped()
    c["general_settings"].update(kv)
    return c


# (id, config, env, expected (id, severity, key))
RULES = [
    (
        "placeholder-master",
        shipped(),
        {**GOOD_ENV, "LITELLM_MASTER_KEY": "sk-1234"},
        ("LINT-01", "critical", "env LITELLM_MASTER_KEY"),
    ),
    ("dummy-api-key", shipped(), {**GOOD_ENV, "VLLM_API_KEY": "dummy"}, ("LINT-01", "critical", "env VLLM_API_KEY")),
    (
        "changeme-in-config",
        with_general(master_key="changeme"),
        None,
        ("LINT-01", "critical", "general_settings.master_key"),
    ),
    (
        "empty-master",
        shipped(),
        {**GOOD_ENV, "LITELLM_MASTER_KEY": ""},
        ("LINT-02", "critical", "env LITELLM_MASTER_KEY"),
    ),
    (
        "master-without-sk",
        shipped(),
        {**GOOD_ENV, "LITELLM_MASTER_KEY": "canary-master-key"},
        ("LINT-03", "critical", "env LITELLM_MASTER_KEY"),
    ),
    (
        "literal-secret",
        with_general(database_url="postgresql://u:canarypw@127.0.0.1/db"),
        None,
        ("LINT-04", "critical", "general_settings.database_url"),
    ),
    (
        "literal-model-key",
        {**shipped(), "model_list": [{"model_name": "m", "litellm_params": {"api_key": "canary-key-123"}}]},
        None,
        ("LINT-04", "critical", "model_list[0].litellm_params.api_key"),
    ),
    ("listener", with_general(host="0.0.0.0"), None, ("LINT-05", "critical", "general_settings.host")),
    ("listener-env", shipped(), {**GOOD_ENV, "HOST": "0.0.0.0"}, ("LINT-05", "critical", "env HOST")),
    ("world-writable", with_general(file_mode="0666"), None, ("LINT-06", "critical", "general_settings.file_mode")),
    (
        "prompts",
        with_general(store_prompts_in_spend_logs=True),
        None,
        ("LINT-07", "critical", "general_settings.store_prompts_in_spend_logs"),
    ),
    (
        "error-logs",
        with_general(disable_error_logs=True),
        None,
        ("LINT-08", "warning", "general_settings.disable_error_logs"),
    ),
    (
        "no-salt",
        shipped(),
        {k: v for k, v in GOOD_ENV.items() if k != "LITELLM_SALT_KEY"},
        ("LINT-09", "critical", "env LITELLM_SALT_KEY"),
    ),
]


STUB = {  # the sandbox's MCP server: loopback, bearer token from the secret source (clean)
    "url": "http://127.0.0.1:8091/mcp",
    "auth_type": "bearer_token",
    "authentication_token": "os.environ/LITELLM_MCP_STUB_TOKEN",
}
MCP_ENV = {**GOOD_ENV, "LITELLM_MCP_STUB_TOKEN": "canary-mcp-token"}
REASON = "vendor-hosted MCP server, reached over the company VPN only"


def with_mcp(**entry):
    """The shipped config with one MCP server: STUB changed by ENTRY (a None value removes the key)."""
    merged = {k: v for k, v in {**STUB, **entry}.items() if v is not None}
    return {**shipped(), "mcp_servers": {"stub": merged}}


def waive(rule, reason=REASON):
    return [{"rule": rule, "reason": reason}]


# (id, config, env, expected (id, severity, key)): each MCP rule, what a waiver does and does not accept
MCP_RULES = [
    (
        "mcp-auth-none",
        with_mcp(auth_type="none", authentication_token=None),
        MCP_ENV,
        ("LINT-11", "critical", "mcp_servers.stub"),
    ),
    (
        "mcp-auth-unset",
        with_mcp(auth_type=None, authentication_token=None),
        None,
        ("LINT-11", "critical", "mcp_servers.stub"),
    ),
    (
        "mcp-sse-token-missing",
        with_mcp(transport="sse", authentication_token=None),
        None,
        ("LINT-11", "critical", "mcp_servers.stub"),
    ),
    (
        "mcp-token-env-empty",
        with_mcp(),
        {**MCP_ENV, "LITELLM_MCP_STUB_TOKEN": ""},
        ("LINT-11", "critical", "mcp_servers.stub"),
    ),
    ("mcp-token-not-in-env", with_mcp(), GOOD_ENV, ("LINT-11", "critical", "mcp_servers.stub")),
    (
        "mcp-oauth-without-secret",
        with_mcp(
            auth_type="oauth2",
            authentication_token=None,
            oauth2_flow="client_credentials",
            client_id="runner",
            token_url="http://127.0.0.1:8092/token",
        ),
        None,
        ("LINT-11", "critical", "mcp_servers.stub"),
    ),
    (
        "mcp-auth-none-waived",
        with_mcp(auth_type="none", authentication_token=None, waivers=waive("LINT-11")),
        MCP_ENV,
        ("LINT-11", "warning", "mcp_servers.stub"),
    ),
    (
        "mcp-literal-token",
        with_mcp(authentication_token="canary-literal-token"),
        MCP_ENV,
        ("LINT-12", "critical", "mcp_servers.stub.authentication_token"),
    ),
    (
        "mcp-literal-client-secret",
        with_mcp(
            auth_type="oauth2",
            authentication_token=None,
            oauth2_flow="client_credentials",
            client_id="runner",
            client_secret="canary-secret",
            token_url="http://127.0.0.1:8092/token",
        ),
        MCP_ENV,
        ("LINT-12", "critical", "mcp_servers.stub.client_secret"),
    ),
    (
        "mcp-password-in-url",
        with_mcp(url="http://mcp:canarypw@127.0.0.1:8091/mcp"),
        MCP_ENV,
        ("LINT-12", "critical", "mcp_servers.stub.url"),
    ),
    (
        "mcp-token-in-query",
        with_mcp(url="http://127.0.0.1:8091/mcp?api_key=canary"),
        MCP_ENV,
        ("LINT-12", "critical", "mcp_servers.stub.url"),
    ),
    # LINT-12 is never waived
    (
        "mcp-literal-waiver-ignored",
        with_mcp(authentication_token="canary-literal-token", waivers=waive("LINT-12")),
        MCP_ENV,
        ("LINT-12", "critical", "mcp_servers.stub.authentication_token"),
    ),
    (
        "mcp-remote-https",
        with_mcp(url="https://mcp.example.com/mcp"),
        MCP_ENV,
        ("LINT-13", "critical", "mcp_servers.stub.url"),
    ),
    (
        "mcp-remote-token-url",
        with_mcp(
            auth_type="oauth2",
            authentication_token=None,
            oauth2_flow="client_credentials",
            client_id="runner",
            client_secret="os.environ/LITELLM_MCP_STUB_TOKEN",
            token_url="https://idp.example.com/token",
        ),
        MCP_ENV,
        ("LINT-13", "critical", "mcp_servers.stub.token_url"),
    ),
    (
        "mcp-remote-https-waived",
        with_mcp(url="https://mcp.example.com/mcp", waivers=waive("LINT-13")),
        MCP_ENV,
        ("LINT-13", "warning", "mcp_servers.stub.url"),
    ),
    (
        "mcp-remote-http",
        with_mcp(url="http://10.0.0.5:8091/mcp"),
        MCP_ENV,
        ("LINT-14", "critical", "mcp_servers.stub.url"),
    ),
    # a waiver names one rule: accepting https to another host does not accept clear text
    (
        "mcp-remote-http-wrong-waiver",
        with_mcp(url="http://mcp.example.com/mcp", waivers=waive("LINT-13")),
        MCP_ENV,
        ("LINT-14", "critical", "mcp_servers.stub.url"),
    ),
    (
        "mcp-remote-http-waived",
        with_mcp(url="http://mcp.example.com/mcp", waivers=waive("LINT-14")),
        MCP_ENV,
        ("LINT-14", "warning", "mcp_servers.stub.url"),
    ),
    (
        "mcp-empty-reason",
        with_mcp(url="https://mcp.example.com/mcp", waivers=waive("LINT-13", " ")),
        MCP_ENV,
        ("LINT-13", "critical", "mcp_servers.stub.url"),
    ),
]
RULES += MCP_RULES


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8091/mcp", "http://localhost:8091/mcp", "https://[::1]:8443/mcp", "http://127.0.0.2/mcp"]
)
def test_loopback_mcp_servers_with_a_secret_reference_are_clean(url):
    assert lint_config(with_mcp(url=url), MCP_ENV) == []
    assert lint_config(with_mcp(url=url, transport="sse"), None) == []


@pytest.mark.parametrize("case, config, env, expected", RULES, ids=[r[0] for r in RULES])
def test_each_rule(case, config, env, expected):
    findings = lint_config(config, env)
    assert [(f.id, f.severity, f.key) for f in findings] == [expected]
    assert "canary" not in str(findings[0]) and "sk-1234" not in str(findings[0])
    if expected[0] in ("LINT-11", "LINT-13", "LINT-14") and expected[1] == "warning":
        assert findings[0].message == f"waived: {REASON}"


@pytest.mark.parametrize(
    "findings, code",
    [
        ([], 0),
        ([Finding("LINT-08", "warning", "k", "m")], 2),
        ([Finding("LINT-08", "warning", "k", "m"), Finding("LINT-07", "critical", "k", "m")], 1),
    ],
)
def test_exit_codes(findings, code):
    assert exit_code(findings) == code


def test_command_exit_codes_and_file_modes(tmp_path):
    config, env = tmp_path / "config.yaml", tmp_path / "env.litellm"
    config.write_text(render_config(defaults()))
    env.write_text("".join(f"{k}={v}\n" for k, v in GOOD_ENV.items()))
    os.chmod(config, 0o640)
    os.chmod(env, 0o600)
    assert lint(config, "--env-file", env).returncode == 0
    os.chmod(env, 0o644)
    proc = lint(config, "--env-file", env)
    assert proc.returncode == 2 and proc.stdout.startswith("LINT-10 warning")
    os.chmod(config, 0o666)  # noqa: S103 (the world-writable file LINT-06 must refuse)
    proc = lint(config, "--env-file", env)
    assert proc.returncode == 1 and "LINT-06 critical" in proc.stdout
    assert "canary" not in proc.stdout + proc.stderr


def test_command_reports_a_waived_mcp_finding_as_a_warning(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(with_mcp(url="https://mcp.example.com/mcp", waivers=waive("LINT-13"))))
    os.chmod(config, 0o640)
    proc = lint(config)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"LINT-13 warning mcp_servers.stub.url: waived: {REASON}"]
    config.write_text(yaml.safe_dump(with_mcp(url="https://mcp.example.com/mcp")))
    proc = lint(config)
    assert proc.returncode == 1 and proc.stdout.startswith("LINT-13 critical mcp_servers.stub.url")
