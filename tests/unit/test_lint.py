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
        l.split("=", 1)
        for l in (REPO / "sandbox/incident/env.litellm").read_text().splitlines()
        if "=" in l and not l.startswith("#")
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


@pytest.mark.parametrize("case, config, env, expected", RULES, ids=[r[0] for r in RULES])
def test_each_rule(case, config, env, expected):
    findings = lint_config(config, env)
    assert [(f.id, f.severity, f.key) for f in findings] == [expected]
    assert "canary" not in str(findings[0]) and "sk-1234" not in str(findings[0])


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
    os.chmod(config, 0o666)
    proc = lint(config, "--env-file", env)
    assert proc.returncode == 1 and "LINT-06 critical" in proc.stdout
    assert "canary" not in proc.stdout + proc.stderr
