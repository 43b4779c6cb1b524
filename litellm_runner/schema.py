"""Typed desired state: every setting checked before any host is touched.

The checks, expected forms and defaults are the settings spec's (litellm_runner/settings.py);
this module applies them, and checks the structures (services, timers, key rotation, MCP
servers, directories, the env) entry by entry and across keys.

``validate(data, source)`` returns one message per problem, each naming the
file the value came from, the key, the bad value and the expected form.
litellm_runner.validate runs it for every host of the inventory before pyinfra connects, and before its
first operation, so a refusal leaves every host as it was.
"""

from __future__ import annotations

import functools
import posixpath
import re
import shutil
import subprocess

from litellm_runner import mcp
from litellm_runner.render import TOOL_COMMANDS
from litellm_runner.resources import locate
from litellm_runner.settings import (
    BY_NAME,
    PATH_CHARS,
    REMOVED,
    SECTIONS,
    SPEC,
    UNSET,
    dedicated,
    list_of_str,
    section_keys,
    variable_names,
)
from litellm_runner.settings import port as _port
from litellm_runner.settings import whole as _int

DURATION = re.compile(r"^(\d+(us|ms|s|sec|m|min|h|hr|d|w))( \d+(us|ms|s|sec|m|min|h|hr|d|w))*$|^\d+$")
CALENDAR = re.compile(
    r"^(minutely|hourly|daily|weekly|monthly|yearly|quarterly|semiannually|"
    r"([A-Za-z,.]+ )?[0-9*,./~-]+(-[0-9*,./~-]+){0,2}( [0-9*,./:-]+)?)$"
)
SECRETISH = re.compile(r"(key|secret|password|token|url)", re.I)
SECRET_VALUE = re.compile(r"^sk-|://[^/@\s]*:[^/@\s]*@")  # an API key, or a URL with a password
UNIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(@[A-Za-z0-9_.-]{1,63})?")  # no '/', no leading '-' or '.'
LINE_BREAKS = ("\n", "\r", "\0")
ROTATION = {  # litellm_key_rotation entry key: (check, expected form)
    "alias": (
        lambda v: isinstance(v, str) and 0 < len(v) <= 255 and v.isprintable(),
        "a key alias: a non-empty one-line string of at most 255 characters",
    ),
    "min_days_left": (_int(1, 3650), "days, 1-3650"),
    "valid_days": (_int(1, 3650), "days, 1-3650"),
    "grace_hours": (_int(1, 720), "hours the old key stays valid, 1-720"),
}
SECRET_SETTINGS = ("master_key", "database_url", "salt_key")  # never in group_data: os.environ/ references


class SchemaError(ValueError):
    pass


def _show(key, value):
    """repr(VALUE), masked when KEY or the value itself looks like a secret (anywhere inside it)."""

    def secret(v):
        return isinstance(v, str) and bool(v) and not v.startswith("os.environ/") and bool(SECRET_VALUE.search(v))

    named_secret = key not in BY_NAME and bool(SECRETISH.search(key.rsplit(".", 1)[-1]))  # no setting is a secret
    if isinstance(value, str) and value and (named_secret and not value.startswith("os.environ/") or secret(value)):
        return "'***'"
    if key.endswith("_mode") and isinstance(value, int) and not isinstance(value, bool):
        return f"{value} (= {value:#o}, a number)"  # 0o750 in Python is 488: both, so either reads
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


_calendars: dict[str, tuple[bool, str]] = {}  # expression -> calendar_ok's answer, for this process (pure)


def calendar_ok(expr: str) -> tuple[bool, str]:
    """(valid?, how it was checked): ``systemd-analyze calendar`` when present, else a strict regex."""
    if expr not in _calendars:
        check_calendars([expr])
    return _calendars[expr]


def check_calendars(exprs) -> None:
    """Check every expression of EXPRS for ``calendar_ok``: one ``systemd-analyze calendar`` for all of
    them (it fails when one is invalid), and one each only when that one run fails."""
    todo = [e for e in dict.fromkeys(exprs) if e not in _calendars]
    if not todo:
        return
    analyze = shutil.which("systemd-analyze")
    if analyze:
        try:
            proc = subprocess.run([analyze, "calendar", "--", *todo], capture_output=True, text=True, timeout=10)
            if proc.returncode == 0 or len(todo) == 1:
                _calendars.update(dict.fromkeys(todo, (proc.returncode == 0, "checked with systemd-analyze calendar")))
            else:
                for expr in todo:
                    check_calendars([expr])
            return
        except subprocess.TimeoutExpired:
            pass
    for expr in todo:
        _calendars[expr] = (
            bool(CALENDAR.match(expr.strip())),
            "checked with a strict regex: systemd-analyze is not available",
        )


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


def validate(data: dict, source=lambda key: "group_data/all.py") -> list[str]:
    """Every problem in DATA, one message each; ``source(key)`` names the file a key came from."""
    errors = []

    def bad(key, value, expected):
        errors.append(f"{source(key.split('.')[0].split('[')[0])}: {key} = {_show(key, value)}: expected {expected}")

    _check_spec(data, bad, errors.append, source)
    for check in (_check_paths, _check_env, _check_sections, _check_units, _check_models, _check_rotation):
        check(data, bad)
    # litellm_mcp_servers: shape, names, URL forms; credentials and reachability are the lint's (LINT-11..14)
    for where, value, expected in mcp.problems(data.get("litellm_mcp_servers", {}), _secret_names(data)):
        bad(where, value, expected)
    return errors


def _secret_names(data) -> list[str]:
    """litellm_env_secrets when it is a list of names (a wrong one is refused by its own check)."""
    names = data.get("litellm_env_secrets")
    return names if list_of_str(names) else []


def _check_spec(data, bad, missing, source):
    """Each setting of the spec with a check: present when it has a default, and passing its check;
    a key the spec does not know (or no longer knows) is refused by name."""
    for s in SPEC:
        if s.check is None or "." in s.name:  # structures and section keys: the _check_* below
            continue
        if s.name not in data:
            if s.default is not UNSET:
                missing(f"{source(s.name)}: {s.name} is missing: expected {s.expected}")
        elif (verdict := s.check(data[s.name])) is not True:  # False, or a str saying what is wrong
            bad(s.name, data[s.name], f"{s.expected} ({verdict})" if verdict else s.expected)
    for key in data:
        if key in REMOVED:
            bad(key, data[key], REMOVED[key])
        elif key.startswith("litellm_") and key not in BY_NAME and key not in SECTIONS:
            bad(key, data[key], "a known setting (see docs/settings.md); is it misspelt?")


def _check_sections(data, bad):
    """general_settings, litellm_settings: mappings; the keys the spec knows pass their check; no secret."""
    for section in SECTIONS:
        values, known = data.get(section), section_keys(section)
        if not isinstance(values, dict):
            bad(section, values, "a mapping of LiteLLM setting -> value")
            continue
        for key, value in values.items():
            check = known[key].check if key in known else None
            if check is not None and check(value) is not True:
                bad(f"{section}.{key}", value, known[key].expected)
            if key in SECRET_SETTINGS:
                bad(f"{section}.{key}", value, "no secret in group_data: the runner renders os.environ/ references")


MODEL_FORM = "{model_name: NAME, litellm_params: {model: PROVIDER/MODEL, api_key: os.environ/NAME, ...}}"
CREDENTIAL = re.compile(r"(key|secret|password|token|credentials)$", re.I)  # litellm_params keys carrying a credential


@functools.lru_cache(maxsize=4)
def providers(path: str = "files/locks/litellm-providers.txt") -> frozenset[str]:
    """The pinned litellm's provider names (scripts/provider-list writes them beside the locks)."""
    lines = locate(path).read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _check_models(data, bad):
    """litellm_model_list: typed entries, a provider the pinned litellm knows, credentials as declared references.

    ``model`` is PROVIDER/MODEL (or ``custom_llm_provider`` names the provider); a bare model name is left to
    litellm's own lookup. Every ``os.environ/NAME`` anywhere in an entry names a variable of
    litellm_env_secrets or litellm_env, so the proxy never starts with an empty value."""
    models = data.get("litellm_model_list")
    if not isinstance(models, list):
        bad("litellm_model_list", models, BY_NAME["litellm_model_list"].expected)
        return
    env = data.get("litellm_env")
    declared = set(_secret_names(data)) | set(env if isinstance(env, dict) else {})
    cross_check = variable_names(data.get("litellm_env_secrets"))  # a wrong list is refused by its own check
    for i, model in enumerate(models):
        where = f"litellm_model_list[{i}]"
        if not isinstance(model, dict):
            bad(where, model, MODEL_FORM)
            continue
        if not isinstance(model.get("model_name"), str) or not model["model_name"].strip():
            bad(f"{where}.model_name", model.get("model_name"), "a model name (non-empty string) clients ask for")
        params = model.get("litellm_params")
        if not isinstance(params, dict):
            bad(f"{where}.litellm_params", params, "a mapping with at least model: PROVIDER/MODEL")
            continue
        _check_model_params(where, params, declared, bad)
        for path, value in _references(model) if cross_check else ():
            name = value[len("os.environ/") :]
            if name not in declared:
                bad(
                    f"{where}.{path}",
                    value,
                    f"an os.environ/NAME reference to a name listed in litellm_env_secrets ({name} is not: the "
                    "proxy would start with an empty value)",
                )


def _check_model_params(where, params, declared, bad):
    """One model's litellm_params: its model and provider, no literal credential."""
    model, custom = params.get("model"), params.get("custom_llm_provider")
    if not isinstance(model, str) or not model.strip():
        bad(f"{where}.litellm_params.model", model, "a model such as 'hosted_vllm/local-model' (PROVIDER/MODEL)")
    elif custom is not None:
        if custom not in providers():
            bad(f"{where}.litellm_params.custom_llm_provider", custom, _provider_form())
    elif "/" in model and model.split("/", 1)[0] not in providers():
        bad(f"{where}.litellm_params.model", model, _provider_form())
    for key, value in params.items():
        if isinstance(key, str) and CREDENTIAL.search(key) and value is not None:
            if not isinstance(value, str) or not value.startswith("os.environ/"):
                bad(f"{where}.litellm_params.{key}", "***", "an os.environ/NAME reference (never a literal credential)")


def _provider_form() -> str:
    return (
        "PROVIDER/MODEL with a provider of the pinned litellm (files/locks/litellm-providers.txt, e.g. openai, "
        "hosted_vllm, anthropic, azure); is the prefix misspelt?"
    )


def _references(node, path=""):
    """(dotted path, value) of every os.environ/ string inside NODE."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _references(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _references(value, f"{path}[{i}]")
    elif isinstance(node, str) and node.startswith("os.environ/"):
        yield path, node


def _check_paths(data, bad):
    """litellm_dirs: normalized relative paths, each once; litellm_home not inside litellm_root."""
    dirs = data.get("litellm_dirs")
    seen: dict[str, int] = {}
    for i, rel in enumerate(dirs if list_of_str(dirs) else []):
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
    if dedicated(root) is True and dedicated(home) is True and (home == root or home.startswith(root + "/")):
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
    secret_names = set(_secret_names(data))
    for name, value in data["litellm_env"].items():
        if (
            name in secret_names
            or re.search(r"(KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL)$", str(name))
            or (isinstance(value, str) and SECRET_VALUE.search(value))
        ):
            bad(
                f"litellm_env.{name}",
                "***" if value else value,
                "no secret in litellm_env: list its name in litellm_env_secrets, "
                "its value comes from the secret source",
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
        command.format(python="", root="", bin="", bind="", port="", workers="")
    except (KeyError, IndexError, ValueError, AttributeError):
        return "a command line whose only {placeholders} are {python}, {root}, {bin}, {bind}, {port}, {workers}"
    if "{root}/bin/" in command or "{root}/venv/" in command:
        return "a command that runs root's code: {bin}/TOOL and {python}, not the account's {root}/bin or {root}/venv"
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
    ports = {data["litellm_port"]: "litellm_port"} if _port(data.get("litellm_port")) else {}
    services = data.get("litellm_services")
    if not isinstance(services, dict) or "litellm" not in services:
        bad("litellm_services", services, "a mapping of unit name -> {enabled, port}, including 'litellm'")
        services = {}
    for name, svc in services.items():
        if not _unit_name(name):
            bad("litellm_services", name, f"service names that are {UNIT_NAME_FORM}")
        elif name == "litellm":
            _check_proxy_service(svc, bad)
        elif _check_service(name, svc, bad):
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
    check_calendars(  # one systemd-analyze run for every timer's expression
        t["on_calendar"]
        for t in timers.values()
        if isinstance(t, dict) and isinstance(t.get("on_calendar"), str) and t["on_calendar"].strip()
    )
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


def _check_proxy_service(svc, bad) -> None:
    """litellm_services[litellm], the proxy: only ``enabled`` (its port is litellm_port, its command the runner's)."""
    if not isinstance(svc, dict) or not isinstance(svc.get("enabled"), bool):
        bad("litellm_services[litellm]", svc, "{enabled: true|false} (the proxy's port is litellm_port)")
    elif "port" in svc:
        bad("litellm_services[litellm].port", svc["port"], "no port here: the proxy listens on litellm_port")
    else:
        _unknown_keys("litellm_services[litellm]", svc, ("enabled",), bad)


def _check_service(name, svc, bad) -> bool:
    """One entry of litellm_services but the proxy; True when its port can be compared with the others'."""
    if (
        not isinstance(svc, dict)
        or not isinstance(svc.get("enabled"), bool)
        or not _port(svc.get("port"))
        or not isinstance(svc.get("command", ""), str)
    ):
        bad(f"litellm_services[{name}]", svc, "{enabled: true|false, port: 1-65535, command: optional string}")
        return False
    if _unknown_keys(f"litellm_services[{name}]", svc, ("enabled", "port", "command"), bad):
        return False
    if ("command" in svc or name not in TOOL_COMMANDS) and (problem := _command_problem(svc.get("command"))):
        bad(
            f"litellm_services[{name}].command",
            svc.get("command"),
            problem + f" (only {' and '.join(TOOL_COMMANDS)} have a built-in one)" * ("command" not in svc),
        )
    return True


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
    aliases: dict[str, int] = {}
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
