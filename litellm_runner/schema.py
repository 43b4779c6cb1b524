"""Typed desired state: every group_data key checked before any host is touched.

``validate(data, source)`` returns one message per problem, each naming the
file the value came from, the key, the bad value and the expected form.
deploy.py calls ``preflight.check_inventory()`` for every host of the inventory before its
first operation, so a refusal leaves every host as it was.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import shutil
import subprocess

USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
MODE = re.compile(r"^0[0-7]{3}$")
DURATION = re.compile(r"^(\d+(us|ms|s|sec|m|min|h|hr|d|w))( \d+(us|ms|s|sec|m|min|h|hr|d|w))*$|^\d+$")
CALENDAR = re.compile(r"^(minutely|hourly|daily|weekly|monthly|yearly|quarterly|semiannually|"
                      r"([A-Za-z,.]+ )?[0-9*,./~-]+(-[0-9*,./~-]+){0,2}( [0-9*,./:-]+)?)$")
SECRETISH = re.compile(r"(key|secret|password|token|url)", re.I)
SECRET_VALUE = re.compile(r"^sk-|://[^/@\s]*:[^/@\s]*@")  # an API key, or a URL with a password


class SchemaError(ValueError):
    pass


def _show(key, value):
    """repr(VALUE), masked when KEY or the value itself looks like a secret (anywhere inside it)."""
    def secret(v):
        return isinstance(v, str) and bool(v) and not v.startswith("os.environ/") and bool(SECRET_VALUE.search(v))
    if isinstance(value, str) and value and (SECRETISH.search(key.rsplit(".", 1)[-1]) and not value.startswith("os.environ/")
                                            or secret(value)):
        return "'***'"
    if any(secret(v) for _, v in _leaves(value)):
        return "<value not shown: it contains a secret>"
    return repr(value)


def _leaves(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from ((k, x) for _, x in _leaves(v))
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _leaves(v)
    else:
        yield None, node


@functools.lru_cache(maxsize=256)
def calendar_ok(expr: str) -> tuple[bool, str]:
    """(valid?, how it was checked): ``systemd-analyze calendar`` when present, else a strict regex."""
    analyze = shutil.which("systemd-analyze")
    if analyze:
        try:
            proc = subprocess.run([analyze, "calendar", "--", expr], capture_output=True, text=True, timeout=10)
            return proc.returncode == 0, "checked with systemd-analyze calendar"
        except subprocess.TimeoutExpired:
            pass
    return bool(CALENDAR.match(expr.strip())), "checked with a strict regex: systemd-analyze is not available"


def _abs(v):
    return isinstance(v, str) and v.startswith("/") and ".." not in v.split("/")


def _port(v):
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535


def _loopback(v):
    try:
        return ipaddress.ip_address(v).is_loopback
    except (ValueError, TypeError):
        return False


def _mode(v):
    return isinstance(v, str) and bool(MODE.match(v)) and not int(v, 8) & 0o002


def _int(lo, hi):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _list_of_str(v):
    return isinstance(v, list) and all(isinstance(i, str) and i for i in v)


SCALARS = {  # key: (check, expected form)
    "litellm_user": (lambda v: isinstance(v, str) and bool(USER.match(v)), "a user name like 'litellm'"),
    "litellm_group": (lambda v: isinstance(v, str) and bool(USER.match(v)), "a group name like 'litellm'"),
    "litellm_home": (_abs, "an absolute path"),
    "litellm_root": (_abs, "an absolute path"),
    "litellm_python": (_abs, "an absolute path to python3"),
    "litellm_linger": (lambda v: isinstance(v, bool), "true or false"),
    "litellm_sandbox": (lambda v: isinstance(v, bool), "true or false"),
    "litellm_dir_mode": (_mode, "an octal mode string such as '0750', not world-writable"),
    "litellm_dirs": (lambda v: _list_of_str(v) and all(not d.startswith("/") and ".." not in d for d in v),
                     "a list of paths relative to litellm_root"),
    "litellm_system_packages": (_list_of_str, "a list of Debian package names"),
    "litellm_venv_requirements": (lambda v: isinstance(v, str) and v.endswith(".txt"), "a requirements file path"),
    "litellm_bind": (_loopback, "a loopback address such as 127.0.0.1"),
    "litellm_port": (_port, "a port 1-65535"),
    "litellm_num_workers": (_int(1, 64), "a whole number of workers 1-64"),
    "litellm_config_backups_keep": (_int(0, 100), "a whole number 0-100"),
    "litellm_env_secrets": (lambda v: _list_of_str(v) and all(s.isidentifier() for s in v),
                            "a list of environment variable names"),
    "litellm_env_placeholders": (_list_of_str, "a list of placeholder values"),
    "litellm_env": (lambda v: isinstance(v, dict) and all(k.isidentifier() and isinstance(x, str) for k, x in v.items()),
                    "a mapping of variable name -> string"),
    "litellm_db_host": (_loopback, "the database's loopback address, such as 127.0.0.1"),
    "litellm_db_port": (_port, "a port 1-65535"),
    "litellm_db_name": (lambda v: isinstance(v, str) and bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", v)),
                        "a database name"),
    "litellm_db_user": (lambda v: isinstance(v, str) and bool(USER.match(v)), "a role name"),
    "litellm_db_connect_timeout": (_int(1, 120), "seconds, 1-120"),
    "litellm_db_block_expired_keys": (lambda v: isinstance(v, bool), "true or false"),
    "litellm_db_terminate_idle": (lambda v: isinstance(v, bool), "true or false"),
    "litellm_db_idle_minutes": (_int(1, 1440), "minutes, 1-1440"),
    "litellm_restart_batch_size": (_int(1, 1000), "a whole number of hosts restarted at once, 1-1000"),
    "litellm_ready_timeout": (_int(10, 3600), "seconds, 10-3600"),
    "litellm_lock_wait": (_int(0, 86400), "seconds, 0-86400"),
    "litellm_lock_stale_after": (_int(10, 604800), "seconds, 10-604800"),
    "litellm_db_other_clients": (_int(0, 1000), "a whole number of other database clients 0-1000"),
    "litellm_db_reserve_connections": (_int(0, 1000), "a whole number of reserved connections 0-1000"),
    "litellm_unit_exposure_max": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 10,
                                  "a systemd-analyze exposure 0.0-10.0, such as 6.6"),
}
OPTIONAL = {  # keys without a shipped default: checked when set
    "litellm_secrets_file": (_abs, "an absolute path to a KEY=value secrets file"),
}
SETTINGS = {  # LiteLLM settings: key -> (check, expected form)
    "database_connection_pool_limit": (_int(1, 1000), "a whole number 1-1000"),
    "store_prompts_in_spend_logs": (lambda v: v is False, "false (prompts are personal data)"),
    "disable_error_logs": (lambda v: v is False, "false (error logs stay on)"),
    "store_model_in_db": (lambda v: isinstance(v, bool), "true or false"),
    "request_timeout": (_int(1, 3600), "seconds, 1-3600"),
}


def validate(data: dict, source=lambda key: "group_data/all.py") -> list[str]:
    """Every problem in DATA, one message each; ``source(key)`` names the file a key came from."""
    errors = []

    def bad(key, value, expected):
        errors.append(f"{source(key.split('.')[0].split('[')[0])}: {key} = {_show(key, value)}: expected {expected}")

    for key, (check, expected) in SCALARS.items():
        if key not in data:
            errors.append(f"{source(key)}: {key} is missing: expected {expected}")
        elif not check(data[key]):
            bad(key, data[key], expected)
    for key, (check, expected) in OPTIONAL.items():
        if key in data and not check(data[key]):
            bad(key, data[key], expected)
    for key in data:
        if key.startswith("litellm_") and key not in SCALARS and key not in OPTIONAL and key not in (
                "litellm_services", "litellm_timers", "litellm_model_list", "litellm_key_rotation",
                "litellm_settings"):
            bad(key, data[key], "a known setting (see group_data/all.py); is it misspelt?")
    if isinstance(data.get("litellm_env"), dict):
        secret_names = set(data.get("litellm_env_secrets") or [])
        for name, value in data["litellm_env"].items():
            if name in secret_names or re.search(r"(KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL)$", str(name)) \
                    or (isinstance(value, str) and SECRET_VALUE.search(value)):
                bad(f"litellm_env.{name}", "***" if value else value,
                    "no secret in litellm_env: list its name in litellm_env_secrets, its value comes from the secret source")
    for section in ("general_settings", "litellm_settings"):
        values = data.get(section)
        if not isinstance(values, dict):
            bad(section, values, "a mapping of LiteLLM setting -> value")
            continue
        for key, value in values.items():
            if key in SETTINGS and not SETTINGS[key][0](value):
                bad(f"{section}.{key}", value, SETTINGS[key][1])
            if key in ("master_key", "database_url", "salt_key"):
                bad(f"{section}.{key}", value, "no secret in group_data: the runner renders os.environ/ references")
    ports = {data["litellm_db_port"]: "litellm_db_port"} if _port(data.get("litellm_db_port")) else {}
    services = data.get("litellm_services")
    if not isinstance(services, dict) or "litellm" not in services:
        bad("litellm_services", services, "a mapping of unit name -> {enabled, port}, including 'litellm'")
        services = {}
    for name, svc in services.items():
        if (not isinstance(svc, dict) or not isinstance(svc.get("enabled"), bool) or not _port(svc.get("port"))
                or not isinstance(svc.get("command", ""), str) or not USER.match(str(name))):
            bad(f"litellm_services[{name}]", svc, "{enabled: true|false, port: 1-65535, command: optional string}")
            continue
        if name == "litellm" and _port(data.get("litellm_port")) and svc["port"] != data["litellm_port"]:
            bad("litellm_services[litellm].port", svc["port"], f"the same port as litellm_port ({data['litellm_port']})")
        if svc["port"] in ports:
            bad(f"litellm_services[{name}].port", svc["port"], f"a port no other service uses (also {ports[svc['port']]})")
        ports[svc["port"]] = name
    timers = data.get("litellm_timers")
    if not isinstance(timers, dict):
        bad("litellm_timers", timers, "a mapping of timer name -> {enabled, on_calendar, randomized_delay, command}")
        timers = {}
    for name, timer in timers.items():
        if not isinstance(timer, dict):
            bad(f"litellm_timers[{name}]", timer, "{enabled, on_calendar, randomized_delay, command}")
            continue
        if not isinstance(timer.get("enabled"), bool):
            bad(f"litellm_timers[{name}].enabled", timer.get("enabled"), "true or false")
        on_calendar = timer.get("on_calendar")
        ok, how = calendar_ok(on_calendar) if isinstance(on_calendar, str) and on_calendar.strip() \
            and "\n" not in on_calendar else (False, "not a one-line string")
        if not ok:
            bad(f"litellm_timers[{name}].on_calendar", on_calendar,
                f"a systemd OnCalendar expression such as '*-*-* 02:00:00' or 'hourly' ({how})")
        if not isinstance(timer.get("randomized_delay"), str) or not DURATION.match(timer["randomized_delay"]):
            bad(f"litellm_timers[{name}].randomized_delay", timer.get("randomized_delay"),
                "a systemd duration such as '15min' or '1h'")
        if not isinstance(timer.get("command"), str) or not timer["command"].strip():
            bad(f"litellm_timers[{name}].command", timer.get("command"), "a command line")
    for i, model in enumerate(data.get("litellm_model_list") or []):
        key = ((model or {}).get("litellm_params") or {}).get("api_key")
        if key is not None and not str(key).startswith("os.environ/"):
            bad(f"litellm_model_list[{i}].litellm_params.api_key", key, "an os.environ/NAME reference")
    for i, entry in enumerate(data.get("litellm_key_rotation") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("alias"), str) or not entry["alias"]:
            bad(f"litellm_key_rotation[{i}]", entry, "{alias: NAME, min_days_left: 14, valid_days: 90, grace_hours: 24}")
        elif not (_int(1, 3650)(entry.get("valid_days", 90)) and _int(0, 3650)(entry.get("min_days_left", 14))
                  and entry.get("min_days_left", 14) < entry.get("valid_days", 90)):
            bad(f"litellm_key_rotation[{i}]", entry, "0 <= min_days_left < valid_days <= 3650")
    return errors


def check_hosts(hosts) -> None:
    """Validate every (name, data dict) pair; raise SchemaError listing all problems."""
    problems = []
    for name, data in hosts:
        problems += [f"host {name}: {p}" for p in validate(data)]
    if problems:
        raise SchemaError("refusing to touch any host, the desired state is invalid:\n  " + "\n  ".join(problems))
