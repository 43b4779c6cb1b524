"""Render the host's files from host data: LiteLLM config and systemd user units.

Pure functions of the data (no host access), so tests can render and check
them without a container.
"""

from __future__ import annotations

import functools
import json

import jinja2
import yaml

from litellm_runner import mcp
from litellm_runner.resources import shipped

SERVICE_DESCRIPTIONS = {
    "litellm-health-server": "LiteLLM health server (/healthz, /readyz, dashboard)",
    "litellm-metrics": "LiteLLM Prometheus metrics exporter",
    "litellm-rerank": "Rerank model server",
    "litellm-embed-arctic": "Embedding model server (arctic)",
}
TOOL_COMMANDS = {  # built-in services that run a tool shipped in files/bin/
    "litellm-health-server": "{python} {root}/bin/litellm-health-server --host {bind} --port {port}",
    "litellm-metrics": "{python} {root}/bin/litellm-metrics --host {bind} --port {port} --workers {workers}",
}


@functools.lru_cache(maxsize=1)  # one per process: each template is compiled once, not once per host
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([shipped("templates"), shipped("files", "systemd")]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 (YAML and systemd unit files, not HTML)
    )
    env.filters["to_json"] = json.dumps
    env.filters["to_yaml"] = lambda v: yaml.safe_dump(v, sort_keys=False, default_flow_style=False).rstrip()
    return env


def _get(data, key):
    return data[key] if isinstance(data, dict) else getattr(data, key)


def _get_or(data, key, default):
    return data.get(key, default) if isinstance(data, dict) else getattr(data, key, default)


def venv(data) -> str:
    return f"{_get(data, 'litellm_root')}/venv"


def render_config(data) -> str:
    """state/config.generated.yaml for DATA; parsed back to prove it is valid YAML."""
    text = (
        _env()
        .get_template("config.yaml.j2")
        .render(
            model_list=_get(data, "litellm_model_list"),
            general_settings=_get(data, "general_settings"),
            litellm_settings=_get(data, "litellm_settings"),
            sandbox=_get(data, "litellm_sandbox"),
            mcp_servers=mcp.config_entries(_get_or(data, "litellm_mcp_servers", {})),
        )
    )
    parsed = yaml.safe_load(text)
    for section in ("general_settings", "litellm_settings"):
        for key, value in _get(data, section).items():
            if parsed[section].get(key) != value:
                raise ValueError(
                    f"rendered config: {section}.{key} is {parsed[section].get(key)!r}, expected {value!r}"
                )
    if (parsed.get("mcp_servers") or {}) != mcp.config_entries(_get_or(data, "litellm_mcp_servers", {})):
        raise ValueError("rendered config: mcp_servers differs from litellm_mcp_servers")
    return text


def _fmt(data, port=None) -> dict:
    root = _get(data, "litellm_root")
    return {
        "root": root,
        "python": f"{venv(data)}/bin/python",
        "bind": _get(data, "litellm_bind"),
        "port": port,
        "workers": _get(data, "litellm_num_workers"),
    }


def render_units(data) -> dict[str, str]:
    """Every managed user unit: ``{"litellm.service": text, "litellm-backup.timer": text, ...}``."""
    env, root, sandbox = _env(), _get(data, "litellm_root"), _get(data, "litellm_sandbox")
    units = {}
    for name, svc in _get(data, "litellm_services").items():
        if name == "litellm":
            units["litellm.service"] = env.get_template("litellm.service.j2").render(
                root=root,
                bind=_get(data, "litellm_bind"),
                port=_get(data, "litellm_port"),
                num_workers=_get(data, "litellm_num_workers"),
                sandbox=sandbox,
            )
            continue
        command = svc.get("command") or TOOL_COMMANDS[name]
        units[f"{name}.service"] = env.get_template("litellm-tool.service.j2").render(
            description=SERVICE_DESCRIPTIONS.get(name, name),
            root=root,
            type="simple",
            after="",
            command=command.format(**_fmt(data, svc["port"])),
        )
    for name, timer in _get(data, "litellm_timers").items():
        units[f"{name}.service"] = env.get_template("litellm-tool.service.j2").render(
            description=f"{name} job (run by {name}.timer)",
            root=root,
            type="oneshot",
            after="",
            command=timer["command"].format(**_fmt(data, _get(data, "litellm_port"))),  # a job's {port}: the proxy's
        )
        units[f"{name}.timer"] = env.get_template("litellm-job.timer.j2").render(
            unit=name, on_calendar=timer["on_calendar"], randomized_delay=timer["randomized_delay"]
        )
    return units


def service_port(data, name: str, svc: dict) -> int:
    """The port a service listens on: the proxy's is litellm_port (its services entry has only ``enabled``)."""
    return _get(data, "litellm_port") if name == "litellm" else svc["port"]


def wanted_units(data) -> dict[str, bool]:
    """Units to enable and run (True) or stop and disable (False); timers' services are run by them."""
    wanted = {f"{n}.service": bool(s["enabled"]) for n, s in _get(data, "litellm_services").items()}
    wanted.update({f"{n}.timer": bool(t["enabled"]) for n, t in _get(data, "litellm_timers").items()})
    return wanted


def render_compliance(data) -> str:
    """The desired state litellm-compliance-check verifies on the host (no secrets)."""
    root, user = _get(data, "litellm_root"), _get(data, "litellm_user")
    mode = _get(data, "litellm_dir_mode")
    paths = [
        {"path": f"{root}/{rel}".rstrip("/"), "mode": mode, "user": user} for rel in ["", *_get(data, "litellm_dirs")]
    ]
    paths.append({"path": f"{root}/env.litellm", "mode": "0600", "user": user})
    ports = [service_port(data, n, s) for n, s in _get(data, "litellm_services").items() if s.get("enabled")]
    return (
        json.dumps(
            {
                "paths": paths,
                "units": wanted_units(data),
                "config": f"{root}/state/config.generated.yaml",
                "settings": {
                    "general_settings": _get(data, "general_settings"),
                    "litellm_settings": _get(data, "litellm_settings"),
                },
                "ports": ports,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
