"""Preflight on the control machine: lint of the config and env file about to be written,
the CVE gate on the pins, the unit hardening gate; every problem names where it came from,
never a secret value. The real pyinfra runs are in tests/integration/test_refuse.py."""

import pytest

from litellm_runner.gates import preflight
from tests.unit.group_data import defaults

GOOD = {
    "LITELLM_MASTER_KEY": "sk-canary-master-0a1b2c",
    "LITELLM_SALT_KEY": "sk-canary-salt-9z8y7x",
    "DATABASE_URL": "postgresql://litellm:canarypw@127.0.0.1:5434/litellm",
    "VLLM_API_KEY": "dummy",
}


@pytest.fixture
def secrets_file(tmp_path, monkeypatch):
    def write(**overrides):
        path = tmp_path / "secrets.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in {**GOOD, **overrides}.items()))
        path.chmod(0o600)
        monkeypatch.setenv("LITELLM_SECRETS_FILE", str(path))
        for name in GOOD:
            monkeypatch.delenv(name, raising=False)
        return path

    return write


def run(data):
    return preflight.problems([("h1", data, lambda key: "group_data/all.py")])


def test_shipped_defaults_and_a_placeholder_vllm_key_pass(secrets_file):
    secrets_file()  # VLLM_API_KEY=dummy is written empty, as the sandbox's is
    assert run(defaults()) == ([], [])


def test_future_env_blanks_placeholders(secrets_file):
    secrets_file()
    env = preflight.future_env(defaults())
    assert env["VLLM_API_KEY"] == "" and env["LITELLM_MASTER_KEY"] == GOOD["LITELLM_MASTER_KEY"]
    assert env["REDIS_HOST"] == "127.0.0.1"


@pytest.mark.parametrize(
    "overrides, data, fragment",
    [
        ({"LITELLM_MASTER_KEY": "sk-1234"}, {}, "env LITELLM_MASTER_KEY: LINT-02 critical: the master key is empty"),
        ({"LITELLM_MASTER_KEY": "canary-no-prefix"}, {}, "env LITELLM_MASTER_KEY: LINT-03 critical"),
        ({"LITELLM_SALT_KEY": "changeme"}, {}, "env LITELLM_SALT_KEY: LINT-09 critical"),
        (
            {},
            {"litellm_settings": {"request_timeout": 120, "langfuse_secret": "lf-canary"}},
            "group_data/all.py: litellm_settings.langfuse_secret: LINT-04 critical: literal secret",
        ),
        (
            {},
            {"litellm_settings": {"request_timeout": 120, "host": "0.0.0.0"}},
            "group_data/all.py: litellm_settings.host: LINT-05 critical: listener on '0.0.0.0'",
        ),
        (
            {},
            {"general_settings": {**defaults()["general_settings"], "file_mode": "0777"}},
            "group_data/all.py: general_settings.file_mode: LINT-06 critical",
        ),
    ],
)
def test_lint_refuses_critical_findings_without_values(secrets_file, overrides, data, fragment):
    path = secrets_file(**overrides)
    found, _ = run(defaults(**data))
    text = "\n".join(found)
    assert fragment in text, text
    if overrides:
        assert f"secret source ({path} or the environment)" in text
    assert "canary" not in text and "changeme" not in text and "sk-1234" not in text


def test_missing_secret_is_refused_by_name(secrets_file, monkeypatch):
    path = secrets_file()
    path.write_text("LITELLM_MASTER_KEY=sk-canary\n")
    found, _ = run(defaults())
    assert len(found) == 1 and "secret(s) LITELLM_SALT_KEY, DATABASE_URL, VLLM_API_KEY not found" in found[0]
    assert "canary" not in found[0]


def test_incident_pins_are_refused_with_ids_and_fixed_versions(secrets_file, tmp_path):
    secrets_file()
    req = tmp_path / "incident.txt"
    req.write_text("fastapi-users==14.0.2\nurllib3==2.5.0\npyasn1==0.6.1\n")
    found, _ = run(defaults(litellm_venv_requirements=str(req)))
    text = "\n".join(found)
    assert f"group_data/all.py: litellm_venv_requirements = '{req}': CVE gate refuses" in text
    for line in (
        "fastapi-users 14.0.2: CVE-2025-68481 (fixed in 15.0.2)",
        "urllib3 2.5.0: CVE-2025-66471",
        "urllib3 2.5.0: CVE-2026-21441",
        "pyasn1 0.6.1: CVE-2026-23490",
    ):
        assert line in text, text


def test_compromised_litellm_is_refused(secrets_file, tmp_path):
    secrets_file()
    req = tmp_path / "compromised.txt"
    req.write_text("litellm[proxy]==1.82.7\n")
    text = "\n".join(run(defaults(litellm_venv_requirements=str(req)))[0])
    assert "litellm[proxy] 1.82.7" in text or "litellm 1.82.7" in text, text


def test_requirements_file_missing(secrets_file):
    secrets_file()
    found, _ = run(defaults(litellm_venv_requirements="files/nope.txt"))
    assert len(found) == 1 and "litellm_venv_requirements = 'files/nope.txt': file not found" in found[0]


def test_schema_problems_stop_the_other_gates(secrets_file):
    secrets_file()
    found, _ = run(defaults(litellm_bind="0.0.0.0", litellm_unit_exposure_max=0.0))
    assert found == [
        "host h1: group_data/all.py: litellm_bind = '0.0.0.0': expected a loopback address such as 127.0.0.1"
    ]


MCP_TOKEN = "canary-mcp-token-5e6f"
STUB_MCP = {
    "url": "http://127.0.0.1:8091/mcp",
    "auth_type": "bearer_token",
    "authentication_token": "os.environ/LITELLM_MCP_STUB_TOKEN",
}
WAIVER = {"rule": "LINT-13", "reason": "vendor-hosted MCP server, TLS only, contract 2026-17"}


def with_mcp(**entry) -> dict:
    """Defaults with one MCP server ``stub`` (STUB_MCP changed by ENTRY; None removes a key) and its secret."""
    merged = {k: v for k, v in {**STUB_MCP, **entry}.items() if v is not None}
    secrets = [*defaults()["litellm_env_secrets"], "LITELLM_MCP_STUB_TOKEN"]
    return defaults(litellm_mcp_servers={"stub": merged}, litellm_env_secrets=secrets)


def run_named(data):
    """preflight.problems with a source that names the key it was asked about."""
    return preflight.problems([("h1", data, lambda key: f"source of {key}")])


@pytest.mark.parametrize(
    "data, fragment",
    [
        (with_mcp(), None),
        (with_mcp(auth_type="none", authentication_token=None), "mcp_servers.stub: LINT-11 critical"),
        (with_mcp(authentication_token=MCP_TOKEN), "mcp_servers.stub.authentication_token: LINT-12 critical"),
        (with_mcp(url="https://mcp.example.com/mcp"), "mcp_servers.stub.url: LINT-13 critical"),
        (with_mcp(url="http://10.0.0.5:8091/mcp"), "mcp_servers.stub.url: LINT-14 critical"),
        (with_mcp(url="http://10.0.0.5:8091/mcp", waivers=[WAIVER]), "mcp_servers.stub.url: LINT-14 critical"),
    ],
    ids=["clean", "no-auth", "literal-token", "remote-https", "remote-http", "remote-http-wrong-waiver"],
)
def test_mcp_servers_are_linted_before_any_host(secrets_file, data, fragment):
    secrets_file(LITELLM_MCP_STUB_TOKEN=MCP_TOKEN)
    found, warned = run_named(data)
    if fragment is None:
        assert (found, warned) == ([], [])
        return
    assert len(found) == 1 and found[0].startswith(f"host h1: source of litellm_mcp_servers: {fragment}"), found
    assert MCP_TOKEN not in "\n".join(found + warned)


def test_a_waived_mcp_finding_is_a_warning_with_its_reason(secrets_file):
    secrets_file(LITELLM_MCP_STUB_TOKEN=MCP_TOKEN)
    found, warned = run_named(with_mcp(url="https://mcp.example.com/mcp", waivers=[WAIVER]))
    assert found == []
    assert warned == [
        f"host h1: source of litellm_mcp_servers: mcp_servers.stub.url: LINT-13 warning: waived: {WAIVER['reason']}"
    ]


def test_an_mcp_credential_whose_secret_is_not_listed_is_refused_by_the_schema(secrets_file):
    secrets_file(LITELLM_MCP_STUB_TOKEN=MCP_TOKEN)
    found, _ = run_named(defaults(litellm_mcp_servers={"stub": STUB_MCP}))
    assert found == [
        "host h1: source of litellm_mcp_servers: litellm_mcp_servers[stub].authentication_token = "
        "'os.environ/LITELLM_MCP_STUB_TOKEN': expected a NAME listed in litellm_env_secrets "
        "(its value comes from the secret source)"
    ]
