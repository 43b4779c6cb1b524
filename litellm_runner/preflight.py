"""Every check that runs before the first command reaches any host; a refusal leaves every host as it was.

    check_inventory([(host name, merged host data, {key: source file}), ...])   # raises PreflightError
    check_inventory(pyinfra.state)                  # deploy.py: prints the problems and exits 1

For every host, in this order, collecting EVERY problem before refusing:

1. typed desired state (schema.validate): types, ranges, ports, paths, names,
   modes, OnCalendar expressions, durations, loopback, unknown ``litellm_*`` keys;
2. the config security lint (lint.lint_config) on ``render_config(data)``:
   critical findings refuse (the env file's secrets are linted where they are
   written, not here: preflight never reads secret values);
3. capacity: ``litellm_num_workers x database_connection_pool_limit`` + other
   clients + reserve <= ``postgresql_max_connections`` (default 100, the
   PostgreSQL default; the live value is read by the deploy later);
4. the CVE gate (offline unless LITELLM_CVE_GATE=online) on the file named by
   ``litellm_venv_requirements``, once per distinct file;
5. the unit hardening gate on ``render_units(data)`` (exposure <= UNIT_THRESHOLD).

Each problem names the host, the file the value came from, the key, the value
(masked when it looks like a secret) and the expected form.
"""

from __future__ import annotations

import pathlib
import sys

from . import capacity, cve_gate, lint, unit_gate
from .render import render_config, render_units
from .schema import SchemaError, validate

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_MAX_CONNECTIONS = 100  # PostgreSQL's default max_connections
DEFAULT_POOL_LIMIT = 10  # LiteLLM's default database_connection_pool_limit
UNIT_THRESHOLD = 7.0  # systemd-analyze security exposure; the shipped units score 6.6 (--user)
DEFAULT_SOURCE = "group_data/all.py"

_done = False


class PreflightError(SchemaError):
    """The desired state of one or more hosts is refused; str() is the full message, one problem a line."""


def _host_problems(name: str, data: dict, sources: dict, cve_cache: dict) -> list[str]:
    def src(key):
        return sources.get(key, DEFAULT_SOURCE)

    problems = validate(data, src)
    if problems:  # rendering needs typed data: report what is wrong first
        return problems

    try:
        import yaml
        config = yaml.safe_load(render_config(data))
    except Exception as exc:  # noqa: BLE001 (any render failure refuses, with its reason)
        return [f"{src('general_settings')}: the LiteLLM config does not render: {exc}"]
    for finding in lint.lint_config(config, None):
        if finding.severity == "critical":
            section = finding.key.split(".")[0].split("[")[0]
            key = {"model_list": "litellm_model_list"}.get(section, section)
            problems.append(f"{src(key)}: {finding.key}: {finding.id} {finding.message}")

    workers = data["litellm_num_workers"]
    pool = data["general_settings"].get("database_connection_pool_limit", DEFAULT_POOL_LIMIT)
    max_conn = data.get("postgresql_max_connections", DEFAULT_MAX_CONNECTIONS)
    try:
        capacity.check(workers, pool, max_conn,
                       data.get("litellm_db_other_clients", capacity.OTHER_CLIENTS),
                       data.get("litellm_db_reserve_connections", capacity.RESERVE))
    except capacity.CapacityError as exc:
        files = sorted({src("litellm_num_workers"), src("general_settings"), src("postgresql_max_connections")})
        problems.append(f"{', '.join(files)}: litellm_num_workers x general_settings.database_connection_pool_limit"
                        f" vs postgresql_max_connections"
                        f"{'' if 'postgresql_max_connections' in data else ' (not set: PostgreSQL default 100)'}: {exc}")

    req = data["litellm_venv_requirements"]
    path = pathlib.Path(req) if pathlib.Path(req).is_absolute() else REPO / req
    if path not in cve_cache:
        cve_cache[path] = None
        if not path.is_file():
            cve_cache[path] = f"file not found ({path}): expected a requirements file"
        else:
            try:
                cve_gate.audit_requirements(path)
            except cve_gate.CveGateError as exc:
                cve_cache[path] = str(exc).replace("\n", "\n    ")
    if cve_cache[path]:
        problems.append(f"{src('litellm_venv_requirements')}: litellm_venv_requirements = {req!r}: {cve_cache[path]}")

    try:
        unit_gate.check_units(render_units(data), UNIT_THRESHOLD)
    except unit_gate.UnitGateError as exc:
        problems.append(f"{src('litellm_services')}, {src('litellm_timers')}: rendered units: {exc}")
    return problems


def check_inventory(hosts) -> None:
    """Check every host; raise PreflightError listing every problem of every host.

    HOSTS is a list of ``(name, data, {key: source file})``. Given pyinfra's
    state instead (deploy.py), the problems are printed and the run exits 1,
    once per run, before any operation or fact reaches a host.
    """
    if hasattr(hosts, "inventory"):
        return _check_state(hosts)
    problems, cve_cache = [], {}
    for name, data, sources in hosts:
        problems += [f"host {name}: {p}" for p in _host_problems(name, data, sources or {}, cve_cache)]
    if problems:
        raise PreflightError(f"refusing to touch any host: {len(problems)} problem(s) in the desired state:\n  "
                             + "\n  ".join(problems))


def _source(inventory, host, key) -> str:
    if key in (getattr(inventory, "override_data", None) or {}):
        return "pyinfra --data"
    if key in (inventory.get_host_data(host.name) or {}):
        return f"inventory (host {host.name})"
    for group in host.groups:
        if key in (inventory.get_group_data(group) or {}):
            return f"group_data/{group}.py"
    return DEFAULT_SOURCE


def _check_state(state) -> None:
    global _done
    if _done:
        return
    _done = True
    hosts = []
    for host in state.inventory:
        data = host.data.dict()
        hosts.append((host.name, data, {k: _source(state.inventory, host, k) for k in data}))
    try:
        check_inventory(hosts)
    except PreflightError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


__all__ = ["check_inventory", "PreflightError"]
