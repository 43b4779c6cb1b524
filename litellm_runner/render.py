"""Render the host's files from host data: LiteLLM config and systemd user units.

Pure functions of the data (no host access), so tests can render and check
them without a container.
"""

from __future__ import annotations

import functools
import json
from urllib.parse import urlsplit

import jinja2
import yaml

from litellm_runner import layout, mcp, query_engine
from litellm_runner.resources import locate, shipped

SERVICE_DESCRIPTIONS = {
    "litellm-health-server": "LiteLLM health server (/healthz, /readyz, dashboard)",
    "litellm-metrics": "LiteLLM Prometheus metrics exporter",
    "litellm-rerank": "Rerank model server",
    "litellm-embed-arctic": "Embedding model server (arctic)",
}
TOOL_COMMANDS = {  # built-in services that run a tool shipped in files/bin/
    "litellm-health-server": "{python} {bin}/litellm-health-server --host {bind} --port {port}",
    "litellm-metrics": "{python} {bin}/litellm-metrics --host {bind} --port {port} --workers {workers}",
}


@functools.lru_cache(maxsize=1)  # one per process: each template is compiled once, not once per host
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(shipped("templates")),
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
    """The host's venv as the units and tools name it: root's link ``layout.VENV``, whatever DATA says."""
    return layout.VENV


@functools.lru_cache(maxsize=16)  # every host of a fleet asks, several times; the locks do not change in a run
def _venv_name(pins: str, python: str) -> str:
    import hashlib
    import pathlib

    path = pathlib.Path(pins)
    digest = hashlib.sha256(python.encode() + b"\0")
    for lock in sorted((path.parent / "locks").glob(f"{path.stem}.py*.txt")):  # gates.cve.lock_path's names
        digest.update(lock.name.encode() + b"\0" + lock.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def venv_target(data) -> str:
    """The versioned venv DATA's lock installs: ``layout.VENVS/<16 hex digits>``, the sha256 of litellm_python and
    every lock of litellm_venv_requirements (every Python's: the name is known before the host says which
    Python it has, so it is asked in the host's first snapshot). A new pin or lock gives a new folder, built
    beside the running venv; ``layout.VENV`` is switched to it before the proxy's restart (docs/venv-switch.md)."""
    pins = str(locate(_get(data, "litellm_venv_requirements")))
    return f"{layout.VENVS}/{_venv_name(pins, str(_get(data, 'litellm_python')))}"


def uses_database(data) -> bool:
    """Whether the proxy runs with DATABASE_URL: everywhere but a sandbox without the query engine."""
    return not _get(data, "litellm_sandbox") or bool(_get_or(data, "litellm_query_engine", False))


def engine_environment(data) -> dict[str, str]:
    """The proxy's own environment for the query engine (``litellm_query_engine``), else nothing."""
    return query_engine.environment() if _get_or(data, "litellm_query_engine", False) else {}


def unit_engine_environment(data) -> dict[str, str]:
    """The query engine's environment in the proxy's unit: ``engine_environment`` and a 1 s budget for the
    Prisma CLI. With the shipped engine there is no schema engine, so the ``prisma migrate diff`` LiteLLM
    runs at every start (with ``DISABLE_SCHEMA_UPDATE``) can only fail; its default budget is 60 s, and
    it spent 8-15 s failing before the proxy could start. The runner checks the schema itself (db-02)."""
    env = engine_environment(data)
    return {**env, "LITELLM_PRISMA_COMMAND_TIMEOUT": "1"} if env else {}


PRISMA_ENGINES_HOST = "https://binaries.prisma.sh"  # Prisma's default download host (PRISMA_ENGINES_MIRROR replaces it)
PRISMA_LOCAL_ENGINES = ("PRISMA_QUERY_ENGINE_BINARY", "PRISMA_SCHEMA_ENGINE_BINARY")  # both set: nothing is downloaded
PRISMA_PROBE_TIMEOUT = 5  # seconds to connect to the engines' download host


def prisma_env(data) -> dict[str, str]:
    """The PRISMA_* settings of litellm_env (engine paths, mirror, ...), and the shipped query engine's
    (``litellm_query_engine``: they win, as in the proxy's unit): what ``prisma generate`` runs with."""
    env = {**_get(data, "litellm_env"), **engine_environment(data)}
    return {k: str(v) for k, v in sorted(env.items()) if k.startswith("PRISMA_")}


def probe_url(settings: dict[str, str]) -> str | None:
    """Where Prisma's engines would be downloaded from with SETTINGS (``prisma_env``), or None when local
    engine files are set."""
    if all(settings.get(name) for name in PRISMA_LOCAL_ENGINES):
        return None
    return settings.get("PRISMA_ENGINES_MIRROR") or PRISMA_ENGINES_HOST


def prisma_probe(settings: dict[str, str]) -> dict | None:
    """The engines' download host the Prisma client's state probes when the client is not generated
    (``{"host", "port", "timeout"}``, ``hostside.prisma_client``), or None when nothing is downloaded."""
    url = probe_url(settings)
    if url is None:
        return None
    parts = urlsplit(url)
    return {"host": parts.hostname or "", "port": parts.port or 443, "timeout": PRISMA_PROBE_TIMEOUT}


def canonical_model(entry):
    """A model entry in one key order (``model_name``, ``litellm_params`` with ``model`` first, the rest sorted), so
    the rendered config does not change with the order an inventory happens to write its keys in."""
    if not isinstance(entry, dict):
        return entry
    params = entry.get("litellm_params")
    if isinstance(params, dict):
        params = {k: params[k] for k in sorted(params, key=lambda k: (k != "model", str(k)))}
    head = {k: v for k, v in (("model_name", entry.get("model_name")), ("litellm_params", params)) if k in entry}
    return {**head, **{k: entry[k] for k in sorted(entry, key=str) if k not in head}}


def render_config(data) -> str:
    """The rendered config (``layout.CONFIG_FILE``) for DATA; parsed back to prove it is valid YAML."""
    text = (
        _env()
        .get_template("config.yaml.j2")
        .render(
            model_list=[canonical_model(entry) for entry in _get(data, "litellm_model_list")],
            general_settings=_get(data, "general_settings"),
            litellm_settings=_get(data, "litellm_settings"),
            database=uses_database(data),
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
        "bin": layout.BIN,
        "bind": _get(data, "litellm_bind"),
        "port": port,
        "workers": _get(data, "litellm_num_workers"),
    }


def _paths(data) -> dict:
    """What every unit template names: the account's state root and root's layout (``layout``)."""
    return {
        "root": _get(data, "litellm_root"),
        "user": _get(data, "litellm_user"),
        "venv": venv(data),
        "env_file": layout.ENV_FILE,
        "config_dir": layout.CONFIG,
        "config_file": layout.CONFIG_FILE,
        "unset": " ".join(layout.UNSET_ENVIRONMENT),
    }


def render_units(data) -> dict[str, str]:
    """Every managed user unit: ``{"litellm.socket": text, "litellm.service": text, "litellm-backup.timer": ...}``.

    The proxy's listening socket is its own unit (``litellm.socket``): systemd holds it, the proxy serves on
    it (``files/bin/litellm-serve``), and connections wait in its queue while the proxy restarts."""
    env = _env()
    units = {}
    for name, svc in _get(data, "litellm_services").items():
        if name == "litellm":
            where = {"bind": _get(data, "litellm_bind"), "port": _get(data, "litellm_port")}
            units["litellm.socket"] = env.get_template("litellm.socket.j2").render(**_paths(data), **where)
            units["litellm.service"] = env.get_template("litellm.service.j2").render(
                **_paths(data),
                **where,
                bin=layout.BIN,
                num_workers=_get(data, "litellm_num_workers"),
                worker_healthcheck_timeout=_get(data, "litellm_worker_healthcheck_timeout"),
                database=uses_database(data),
                engine_env=unit_engine_environment(data),
            )
            continue
        command = svc.get("command") or TOOL_COMMANDS[name]
        units[f"{name}.service"] = env.get_template("litellm-tool.service.j2").render(
            description=SERVICE_DESCRIPTIONS.get(name, name),
            **_paths(data),
            type="simple",
            after="",
            command=command.format(**_fmt(data, svc["port"])),
        )
    for name, timer in _get(data, "litellm_timers").items():
        units[f"{name}.service"] = env.get_template("litellm-tool.service.j2").render(
            description=f"{name} job (run by {name}.timer)",
            **_paths(data),
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
    """Units to enable and run (True) or stop and disable (False); timers' services are run by them.
    The proxy's socket comes right before the proxy: it takes the port first (tasks/units.py)."""
    wanted = {}
    for n, s in _get(data, "litellm_services").items():
        if n == "litellm":
            wanted["litellm.socket"] = bool(s["enabled"])
        wanted[f"{n}.service"] = bool(s["enabled"])
    wanted.update({f"{n}.timer": bool(t["enabled"]) for n, t in _get(data, "litellm_timers").items()})
    return wanted


def render_compliance(data) -> str:
    """The desired state litellm-compliance-check verifies on the host (no secrets)."""
    root, user = _get(data, "litellm_root"), _get(data, "litellm_user")
    mode = _get(data, "litellm_dir_mode")
    paths = [
        {"path": f"{root}/{rel}".rstrip("/"), "mode": mode, "user": user} for rel in ["", *_get(data, "litellm_dirs")]
    ]
    paths.append({"path": layout.ENV_FILE, "mode": layout.CONFIG_FILE_MODE, "user": "root"})
    ports = [service_port(data, n, s) for n, s in _get(data, "litellm_services").items() if s.get("enabled")]
    return (
        json.dumps(
            {
                "paths": paths,
                "units": wanted_units(data),
                "config": layout.CONFIG_FILE,
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
