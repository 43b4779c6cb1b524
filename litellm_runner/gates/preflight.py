"""Checks that run before the first command reaches any host (litellm_runner.validate runs them).

    problems(hosts) -> (problems, warnings)   # hosts: [(name, merged data dict, source(key) -> file)]

For every host, collecting every problem of every host before refusing:

1. typed desired state (schema.validate). A host with problems here is not
   checked further: the gates below need typed data.
2. config security lint (lint.lint_config) on the config the deploy WILL render
   (render.render_config) with the env values the env file WILL hold (the
   secret source, placeholders blanked as the env file operation writes them).
   Critical findings refuse (id, severity, key, never a value); warnings are
   printed and the run goes on.
3. CVE gate before install: the real pip-audit, offline by default, on the file
   named by ``litellm_venv_requirements`` (cve_gate runs it once per distinct pins).
   The installed venv is audited after converge by tasks/python_env.py.

Two gates need the host, so they run while pyinfra prepares the run (still before
any operation executes on any host): the capacity check reads PostgreSQL's live
max_connections (tasks/database.py), and the unit hardening gate scores the
rendered services with the host's own systemd-analyze (tasks/units.py: newer
systemd scores the same unit differently).

Only the control machine works here: no fact, no command, no connection.
"""

from __future__ import annotations

import yaml

from litellm_runner import secrets
from litellm_runner.gates import GateError, lint
from litellm_runner.gates import cve as cve_gate
from litellm_runner.render import render_config
from litellm_runner.resources import locate
from litellm_runner.schema import SchemaError, validate


def _secret_source(data) -> str:
    import os

    path = os.environ.get("LITELLM_SECRETS_FILE") or data.get("litellm_secrets_file")
    return f"secret source ({path} or the environment)" if path else "secret source (the environment)"


def future_env(data) -> dict[str, str]:
    """The KEY=value pairs the env file will hold: secrets.render_env, as env_file writes it."""
    values = secrets.load(list(data["litellm_env_secrets"]), data.get("litellm_secrets_file"))
    text, _blanked = secrets.render_env(values, dict(data["litellm_env"]), list(data["litellm_env_placeholders"]))
    return lint.parse_env_text(text)


def _lint(data, src) -> tuple[list[str], list[str]]:
    try:
        config = yaml.safe_load(render_config(data))
    except Exception as exc:  # noqa: BLE001 (any render failure refuses, with its reason; no value in it)
        return [f"{src('general_settings')}: the LiteLLM config does not render: {exc}"], []
    try:
        env = future_env(data)
    except secrets.SecretError as exc:  # names the key and the source, never a value
        expected = ": expected every name of litellm_env_secrets with a value" * isinstance(
            exc, secrets.MissingSecretError
        )
        return [f"{_secret_source(data)}: {exc}{expected}"], []
    problems: list[str] = []
    warnings: list[str] = []
    for f in lint.lint_config(config, env):
        if f.key.startswith("env "):
            name = f.key[4:]
            where = _secret_source(data) if name in data["litellm_env_secrets"] else src("litellm_env")
        else:
            section = f.key.split(".")[0].split("[")[0]
            where = src(
                {"model_list": "litellm_model_list", "mcp_servers": "litellm_mcp_servers"}.get(section, section)
            )
        line = f"{where}: {f.key}: {f.id} {f.severity}: {f.message}"
        (problems if f.severity == "critical" else warnings).append(line)
    return problems, warnings


def _cve(data, src) -> list[str]:
    req = data["litellm_venv_requirements"]
    path = locate(req).resolve()
    text = None
    if not path.is_file():
        text = f"file not found ({path}): expected a requirements file"
    else:
        try:
            cve_gate.audit_requirements(path)  # one pip-audit per distinct set of pins per run
        except GateError as exc:
            text = str(exc).replace("\n", "\n    ")
    return [f"{src('litellm_venv_requirements')}: litellm_venv_requirements = {req!r}: {text}"] if text else []


def host_problems(data: dict, src) -> tuple[list[str], list[str]]:
    """(problems, warnings) of one host's merged data; ``src(key)`` names the file a key came from."""
    problems = validate(data, src)
    if problems:
        return problems, []
    problems, warnings = _lint(data, src)
    problems += _cve(data, src)
    return problems, warnings


def problems(hosts) -> tuple[list[str], list[str]]:
    """Every (problem, warning) line of HOSTS ``[(name, data, src)]``, each prefixed by its host."""
    found, warned = [], []
    for name, data, src in hosts:
        p, w = host_problems(data, src)
        found += [f"host {name}: {x}" for x in p]
        warned += [f"host {name}: {x}" for x in w]
    return found, warned


__all__ = ["problems", "host_problems", "future_env", "SchemaError"]
