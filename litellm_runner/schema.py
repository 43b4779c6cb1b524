"""Typed desired state: every group_data key checked before any host is touched.

``validate(data, source)`` returns one message per problem, each naming the
file the value came from, the key, the bad value and the expected form.
deploy.py calls ``preflight.check_inventory()`` for every host of the inventory before its
first operation, so a refusal leaves every host as it was.
"""

from __future__ import annotations

import functools
import ipaddress
import posixpath
import re
import shutil
import subprocess

from litellm_runner import mcp
from litellm_runner.render import TOOL_COMMANDS

USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
MODE = re.compile(r"^0[0-7]{3}$")
DEB_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?")  # Debian policy 5.6.1, optionally :ARCH
DURATION = re.compile(r"^(\d+(us|ms|s|sec|m|min|h|hr|d|w))( \d+(us|ms|s|sec|m|min|h|hr|d|w))*$|^\d+$")
CALENDAR = re.compile(
    r"^(minutely|hourly|daily|weekly|monthly|yearly|quarterly|semiannually|"
    r"([A-Za-z,.]+ )?[0-9*,./~-]+(-[0-9*,./~-]+){0,2}( [0-9*,./:-]+)?)$"
)
SECRETISH = re.compile(r"(key|secret|password|token|url)", re.I)
SECRET_VALUE = re.compile(r"^sk-|://[^/@\s]*:[^/@\s]*@")  # an API key, or a URL with a password
PATH_CHARS = re.compile(r"[A-Za-z0-9/._@+-]+")  # safe in a shell word and a unit file, unquoted
# A deployment root or home in (or equal to) one of these would hand the account system paths.
SYSTEM_DIRS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/lost+found",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
)
PARENT_DIRS = ("/home", "/media", "/mnt", "/opt", "/srv", "/var/lib")  # a dedicated NAME below these is fine
UNIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(@[A-Za-z0-9_.-]{1,63})?")  # no '/', no leading '-' or '.'
LINE_BREAKS = ("\n", "\r", "\0")
ROTATION = {  # litellm_key_rotation entry key: (check, expected form)
    "alias": (
        lambda v: isinstance(v, str) and 0 < len(v) <= 255 and v.isprintable(),
        "a key alias: a non-empty one-line string of at most 255 characters",
    ),
    "min_days_left": (lambda v: _int(1, 3650)(v), "days, 1-3650"),
    "valid_days": (lambda v: _int(1, 3650)(v), "days, 1-3650"),
    "grace_hours": (lambda v: _int(1, 720)(v), "hours the old key stays valid, 1-720"),
}


class SchemaError(ValueError):
    pass


def _show(key, value):
    """repr(VALUE), masked when KEY or the value itself looks like a secret (anywhere inside it)."""

    def secret(v):
        return isinstance(v, str) and bool(v) and not v.startswith("os.environ/") and bool(SECRET_VALUE.search(v))

    if (
        isinstance(value, str)
        and value
        and (SECRETISH.search(key.rsplit(".", 1)[-1]) and not value.startswith("os.environ/") or secret(value))
    ):
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


def _clean_path(v):
    """True, or what is wrong with V as a normalized absolute path of safe characters."""
    if not isinstance(v, str) or not v.startswith("/"):
        return "not absolute"
    if not PATH_CHARS.fullmatch(v):
        return "only letters, digits and / . _ - @ +"
    if v != "/" and (posixpath.normpath(v) != v or "//" in v):
        return "normalized: no '..', '.', '//' or trailing '/'"
    return True


def _dedicated(v):
    """True, or why V cannot be a deployment root or home: it is a system directory or inside one."""
    clean = _clean_path(v)
    if clean is not True:
        return clean
    if v == "/" or v in PARENT_DIRS:
        return f"not {v} itself: a directory of its own such as /srv/litellm"
    if any(v.startswith(p + "/") for p in PARENT_DIRS):
        return True
    for system in SYSTEM_DIRS:
        if v == system or v.startswith(system + "/"):
            return (
                f"{'inside ' * (v != system)}{system}, a system directory; "
                "/home/NAME, /srv/NAME, /opt/NAME and /var/lib/NAME are fine"
            )
    return True


def _rel_dir(v):
    """V is a normalized path relative to litellm_root, of safe characters."""
    return (
        isinstance(v, str)
        and bool(PATH_CHARS.fullmatch(v))
        and not v.startswith("/")
        and posixpath.normpath(v) == v
        and v != "."
        and ".." not in v.split("/")
    )


def _one_line(v):
    return isinstance(v, str) and not any(c in v for c in LINE_BREAKS)


def _port(v):
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535


def _loopback(v):
    try:
        return ipaddress.ip_address(v).is_loopback
    except (ValueError, TypeError):
        return False


def _bind(v):
    """127.0.0.1 only: the health server and the stub servers listen on IPv4 (AF_INET), the health
    server probes the proxy and the compliance check expects listeners on 127.0.0.1."""
    if not _loopback(v):
        return False
    return v == "127.0.0.1" or (
        "only 127.0.0.1: the health and stub servers listen on IPv4 only, the health "
        "server and the compliance check expect 127.0.0.1; ::1 and other loopback "
        "addresses are refused"
    )


def _mode(v):
    return isinstance(v, str) and bool(MODE.fullmatch(v)) and not int(v, 8) & 0o002


def _int(lo, hi):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _list_of_str(v):
    return isinstance(v, list) and all(isinstance(i, str) and i for i in v)


SCALARS = {  # key: (check, expected form)
    "litellm_user": (lambda v: isinstance(v, str) and bool(USER.fullmatch(v)), "a user name like 'litellm'"),
    "litellm_group": (lambda v: isinstance(v, str) and bool(USER.fullmatch(v)), "a group name like 'litellm'"),
    "litellm_home": (_dedicated, "a dedicated absolute path such as /home/litellm"),
    "litellm_root": (_dedicated, "a dedicated absolute path such as /home/litellm/litellm"),
    "litellm_python": (_clean_path, "an absolute path to python3"),
    "litellm_linger": (lambda v: isinstance(v, bool), "true or false"),
    "litellm_manage_account": (lambda v: v is None or isinstance(v, bool), "true, false or None"),
    "litellm_sandbox": (lambda v: isinstance(v, bool), "true or false"),
    "litellm_dir_mode": (_mode, "an octal mode string such as '0750', not world-writable"),
    "litellm_dirs": (_list_of_str, "a list of paths relative to litellm_root"),
    "litellm_system_packages": (
        lambda v: _list_of_str(v) and all(DEB_PACKAGE.fullmatch(p) for p in v),
        "a list of Debian package names such as 'postgresql-client-15' (apt gets them unquoted)",
    ),
    "litellm_venv_requirements": (lambda v: isinstance(v, str) and v.endswith(".txt"), "a requirements file path"),
    "litellm_bind": (_bind, "a loopback address such as 127.0.0.1"),
    "litellm_port": (_port, "a port 1-65535"),
    "litellm_num_workers": (_int(1, 64), "a whole number of workers 1-64"),
    "litellm_config_backups_keep": (_int(0, 100), "a whole number 0-100"),
    "litellm_env_secrets": (
        lambda v: _list_of_str(v) and all(s.isidentifier() for s in v),
        "a list of environment variable names",
    ),
    "litellm_env_placeholders": (_list_of_str, "a list of placeholder values"),
    "litellm_env": (
        lambda v: isinstance(v, dict) and all(k.isidentifier() and isinstance(x, str) for k, x in v.items()),
        "a mapping of variable name -> string",
    ),
    "litellm_db_host": (_loopback, "the database's loopback address, such as 127.0.0.1"),
    "litellm_db_port": (_port, "a port 1-65535"),
    "litellm_db_name": (
        lambda v: isinstance(v, str) and bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", v)),
        "a database name",
    ),
    "litellm_db_user": (lambda v: isinstance(v, str) and bool(USER.fullmatch(v)), "a role name"),
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
    "litellm_unit_exposure_max": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 10,
        "a systemd-analyze exposure 0.0-10.0, such as 6.6",
    ),
}
OPTIONAL = {  # keys without a shipped default: checked when set
    "litellm_secrets_file": (_abs, "an absolute path to a KEY=value secrets file"),
    # read by the inventory loader (litellm_runner/inventory.py): the secret holding the sudo password
    "litellm_sudo_password_secret": (
        lambda v: isinstance(v, str) and v.isidentifier(),
        "the name of a secret (environment variable) such as LITELLM_SUDO_PASSWORD",
    ),
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
        elif (verdict := check(data[key])) is not True:  # False, or a str saying what is wrong
            bad(key, data[key], f"{expected} ({verdict})" if verdict else expected)
    for key, (check, expected) in OPTIONAL.items():
        if key in data and not check(data[key]):
            bad(key, data[key], expected)
    for key in data:
        if (
            key.startswith("litellm_")
            and key not in SCALARS
            and key not in OPTIONAL
            and key
            not in (
                "litellm_services",
                "litellm_timers",
                "litellm_model_list",
                "litellm_key_rotation",
                "litellm_settings",
                "litellm_mcp_servers",
            )
        ):
            bad(key, data[key], "a known setting (see group_data/all.py); is it misspelt?")
    for check in (_check_paths, _check_env):
        check(data, bad)
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
    _check_units(data, bad)
    for i, model in enumerate(data.get("litellm_model_list") or []):
        key = ((model or {}).get("litellm_params") or {}).get("api_key")
        if key is not None and not str(key).startswith("os.environ/"):
            bad(f"litellm_model_list[{i}].litellm_params.api_key", key, "an os.environ/NAME reference")
    _check_rotation(data, bad)
    # litellm_mcp_servers: shape, names, URL forms; credentials and reachability are the lint's (LINT-11..14)
    secret_names = data.get("litellm_env_secrets") or ()
    for where, value, expected in mcp.problems(data.get("litellm_mcp_servers", {}), secret_names):
        bad(where, value, expected)
    return errors


def _check_paths(data, bad):
    """litellm_dirs: normalized relative paths, each once; litellm_home not inside litellm_root."""
    dirs = data.get("litellm_dirs")
    seen = {}
    for i, rel in enumerate(dirs if _list_of_str(dirs) else []):
        if not _rel_dir(rel):
            bad(
                f"litellm_dirs[{i}]",
                rel,
                "a normalized path relative to litellm_root (no leading '/', no '..', "
                "'.', '//' or trailing '/'; letters, digits and / . _ - @ + only)",
            )
        elif rel in seen:  # normalized, so one directory has one spelling
            bad(f"litellm_dirs[{i}]", rel, f"a directory listed once (also litellm_dirs[{seen[rel]}])")
        else:
            seen[rel] = i
    root, home = data.get("litellm_root"), data.get("litellm_home")
    if _dedicated(root) is True and _dedicated(home) is True and (home == root or home.startswith(root + "/")):
        bad(
            "litellm_home",
            home,
            f"a home outside litellm_root ({root!r}): the deployment root may be inside "
            "the home, never the home inside the deployment root",
        )


def _check_env(data, bad):
    """litellm_env: no secret, no line break (env.litellm holds one NAME=value a line)."""
    if not isinstance(data.get("litellm_env"), dict):
        return
    secret_names = set(data.get("litellm_env_secrets") or [])
    for name, value in data["litellm_env"].items():
        if (
            name in secret_names
            or re.search(r"(KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL)$", str(name))
            or (isinstance(value, str) and SECRET_VALUE.search(value))
        ):
            bad(
                f"litellm_env.{name}",
                "***" if value else value,
                "no secret in litellm_env: list its name in litellm_env_secrets, its value comes from the secret source",
            )
        if isinstance(value, str) and not _one_line(value):
            bad(
                f"litellm_env.{name}",
                "***",
                "a one-line value (no \\n, \\r or NUL): env.litellm holds one NAME=value a line",
            )


def _command_problem(command) -> str | None:
    """None, or why COMMAND cannot become one ExecStart= line."""
    if not isinstance(command, str) or not command.strip():
        return "a command line"
    if not _one_line(command):
        return "a one-line command (no \\n, \\r or NUL: it becomes one ExecStart= line)"
    try:
        command.format(python="", root="", bind="", port="", workers="")
    except (KeyError, IndexError, ValueError, AttributeError):
        return "a command line whose only {placeholders} are {python}, {root}, {bind}, {port}, {workers}"
    return None


TIMER_KEYS = ("enabled", "on_calendar", "randomized_delay", "command")
UNIT_NAME_FORM = (
    "systemd unit names: letters, digits, _ . - and at most one inner @, 1-64 characters, "
    "not starting with . or -, no '..'"
)


def _unit_name(name):
    return isinstance(name, str) and bool(UNIT_NAME.fullmatch(name)) and ".." not in name


def _check_units(data, bad):
    """litellm_services and litellm_timers: safe unit names, unique ports, no unit file rendered twice.

    render.py writes NAME.service for a service and NAME.service + NAME.timer for a timer, so a
    timer may not share its name with a service (``litellm`` is the proxy's)."""
    ports = {data["litellm_db_port"]: "litellm_db_port"} if _port(data.get("litellm_db_port")) else {}
    services = data.get("litellm_services")
    if not isinstance(services, dict) or "litellm" not in services:
        bad("litellm_services", services, "a mapping of unit name -> {enabled, port}, including 'litellm'")
        services = {}
    for name, svc in services.items():
        if not _unit_name(name):
            bad("litellm_services", name, f"service names that are {UNIT_NAME_FORM}")
            continue
        if (
            not isinstance(svc, dict)
            or not isinstance(svc.get("enabled"), bool)
            or not _port(svc.get("port"))
            or not isinstance(svc.get("command", ""), str)
        ):
            bad(f"litellm_services[{name}]", svc, "{enabled: true|false, port: 1-65535, command: optional string}")
            continue
        if _unknown_keys(f"litellm_services[{name}]", svc, ("enabled", "port", "command"), bad):
            continue
        if (
            name != "litellm"
            and ("command" in svc or name not in TOOL_COMMANDS)
            and (problem := _command_problem(svc.get("command")))
        ):
            bad(
                f"litellm_services[{name}].command",
                svc.get("command"),
                problem + f" (only {' and '.join(TOOL_COMMANDS)} have a built-in one)" * ("command" not in svc),
            )
        if name == "litellm" and _port(data.get("litellm_port")) and svc["port"] != data["litellm_port"]:
            bad(
                "litellm_services[litellm].port", svc["port"], f"the same port as litellm_port ({data['litellm_port']})"
            )
        if svc["port"] in ports:
            bad(
                f"litellm_services[{name}].port",
                svc["port"],
                f"a port no other service uses (also {ports[svc['port']]})",
            )
        ports[svc["port"]] = name
    timers = data.get("litellm_timers")
    if not isinstance(timers, dict):
        bad("litellm_timers", timers, "a mapping of timer name -> {enabled, on_calendar, randomized_delay, command}")
        timers = {}
    for name, timer in timers.items():
        if not _unit_name(name):
            bad("litellm_timers", name, f"timer names that are {UNIT_NAME_FORM}")
        elif name in services:
            bad(
                "litellm_timers",
                name,
                f"a timer name no service uses: the timer runs its own {name}.service, "
                f"which would replace litellm_services[{name}]",
            )
        elif not isinstance(timer, dict):
            bad(f"litellm_timers[{name}]", timer, "{enabled, on_calendar, randomized_delay, command}")
        elif not _unknown_keys(f"litellm_timers[{name}]", timer, TIMER_KEYS, bad):
            _check_timer(name, timer, bad)


def _unknown_keys(where, entry, known, bad) -> bool:
    """Report every key of ENTRY not in KNOWN; True when there was one."""
    unknown = [k for k in entry if k not in known]
    for key in unknown:
        bad(f"{where}.{key}", entry[key], f"one of {', '.join(known)} (is it misspelt?)")
    return bool(unknown)


def _check_timer(name, timer, bad):
    """One entry of litellm_timers."""
    if not isinstance(timer.get("enabled"), bool):
        bad(f"litellm_timers[{name}].enabled", timer.get("enabled"), "true or false")
    on_calendar = timer.get("on_calendar")
    ok, how = (
        calendar_ok(on_calendar)
        if isinstance(on_calendar, str) and on_calendar.strip() and _one_line(on_calendar)
        else (False, "not a one-line string")
    )
    if not ok:
        bad(
            f"litellm_timers[{name}].on_calendar",
            on_calendar,
            f"a systemd OnCalendar expression such as '*-*-* 02:00:00' or 'hourly' ({how})",
        )
    if not isinstance(timer.get("randomized_delay"), str) or not DURATION.fullmatch(timer["randomized_delay"]):
        bad(
            f"litellm_timers[{name}].randomized_delay",
            timer.get("randomized_delay"),
            "a systemd duration such as '15min' or '1h'",
        )
    if problem := _command_problem(timer.get("command")):
        bad(f"litellm_timers[{name}].command", timer.get("command"), problem)


def _check_rotation(data, bad):
    """litellm_key_rotation: a list of typed entries, no unknown key, each alias once."""
    entries = data.get("litellm_key_rotation", [])
    if not isinstance(entries, list):
        bad(
            "litellm_key_rotation",
            entries,
            "a list of {alias: NAME, min_days_left: 14, valid_days: 90, grace_hours: 24}",
        )
        return
    aliases = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "alias" not in entry:
            bad(
                f"litellm_key_rotation[{i}]", entry, "{alias: NAME, min_days_left: 14, valid_days: 90, grace_hours: 24}"
            )
            continue
        if _unknown_keys(f"litellm_key_rotation[{i}]", entry, tuple(ROTATION), bad):
            continue
        wrong = [key for key, value in entry.items() if not ROTATION[key][0](value)]
        for key in wrong:
            bad(f"litellm_key_rotation[{i}].{key}", entry[key], ROTATION[key][1])
        if wrong:
            continue
        if entry.get("min_days_left", 14) >= entry.get("valid_days", 90):
            bad(f"litellm_key_rotation[{i}]", entry, "1 <= min_days_left < valid_days <= 3650")
        if entry["alias"] in aliases:
            bad(
                f"litellm_key_rotation[{i}].alias",
                entry["alias"],
                f"an alias listed once (also litellm_key_rotation[{aliases[entry['alias']]}])",
            )
        aliases.setdefault(entry["alias"], i)


def check_hosts(hosts) -> None:
    """Validate every (name, data dict) pair; raise SchemaError listing all problems."""
    problems = []
    for name, data in hosts:
        problems += [f"host {name}: {p}" for p in validate(data)]
    if problems:
        raise SchemaError("refusing to touch any host, the desired state is invalid:\n  " + "\n  ".join(problems))
