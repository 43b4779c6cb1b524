"""The runner's settings: one spec of every setting an operator may give a LiteLLM host.

Each ``Setting`` in ``SPEC`` carries the setting's documented default, its check (a
predicate: True, False, or a text saying what is wrong), the expected form a refusal
names, its description and its control id. Everything else is derived from it:

- ``DEFAULTS``: the default of every setting, pyinfra's ``data_defaults`` of the packaged
  deploy (an inventory's own group data and host data take precedence); a project's
  ``group_data`` holds only what it overrides, as the repository's own and examples/ do;
- ``litellm_runner.schema.validate``: the checks and expected forms;
- the settings reference, docs/settings.md: its table is ``markdown()``, put in when the site
  is built (docs/hooks/settings_table.py; also ``python -m litellm_runner.settings --markdown``).

A setting whose ``check`` is None is a structure (services, timers, key rotation, ...) that
``litellm_runner.schema`` checks entry by entry; its ``expected`` is the form the settings reference shows.
A dotted name (``general_settings.request_timeout``) is a key of a LiteLLM settings section:
the section's default is the mapping of its keys' defaults.
"""

from __future__ import annotations

import argparse
import ipaddress
import posixpath
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], "bool | str"]


class _Unset:
    """The default of a setting without a shipped default (checked only when set)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Setting:
    name: str  # group data key; "section.key" for a key of a LiteLLM settings section
    default: Any  # UNSET: no shipped default
    check: Check | None  # True, False or what is wrong; None: a structure schema.py checks entry by entry
    expected: str  # the form a refusal names ("expected ...")
    description: str  # what it does (the settings reference)
    control: str  # control id of the operations it drives
    shown: str = ""  # the default as the settings reference shows it, when the value itself is too long


# --- checks (each: True, False, or a text saying what is wrong) -----------------------------------

USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
MODE = re.compile(r"^0[0-7]{3}$")
DEB_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?")  # Debian policy 5.6.1, optionally :ARCH
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


def is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def whole(lo: int, hi: int) -> Check:
    """A whole number (not a bool) from LO to HI."""
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def port(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535


def name_like_user(v: Any) -> bool:
    return isinstance(v, str) and bool(USER.fullmatch(v))


def service_account(v: Any) -> bool | str:
    """A user name like 'litellm', never root: the account runs the proxy (uid 0 is refused on the host too)."""
    if not name_like_user(v):
        return False
    return v != "root" or "not root: the proxy runs as an unprivileged account of its own"


def list_of_str(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(i, str) and i for i in v)


def absolute(v: Any) -> bool:
    return isinstance(v, str) and v.startswith("/") and ".." not in v.split("/")


def clean_path(v: Any) -> bool | str:
    """True, or what is wrong with V as a normalized absolute path of safe characters."""
    if not isinstance(v, str) or not v.startswith("/"):
        return "not absolute"
    if not PATH_CHARS.fullmatch(v):
        return "only letters, digits and / . _ - @ +"
    if v != "/" and (posixpath.normpath(v) != v or "//" in v):
        return "normalized: no '..', '.', '//' or trailing '/'"
    return True


def dedicated(v: Any) -> bool | str:
    """True, or why V cannot be a deployment root or home: it is a system directory or inside one."""
    clean = clean_path(v)
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


def loopback(v: Any) -> bool:
    try:
        return ipaddress.ip_address(v).is_loopback
    except ValueError:
        return False


def bind(v: Any) -> bool | str:
    if not isinstance(v, str) or not loopback(v):
        return False
    return v == "127.0.0.1" or (
        "only 127.0.0.1: the health and stub servers listen on IPv4 only, the health "
        "server and the compliance check expect 127.0.0.1; ::1 and other loopback "
        "addresses are refused"
    )


def mode(v: Any) -> bool:
    return isinstance(v, str) and bool(MODE.fullmatch(v)) and not int(v, 8) & 0o002


def state_dirs(v: Any) -> bool | str:
    """True, or why V cannot be litellm_dirs: each entry the account's state, never a folder of root's code."""
    if not list_of_str(v):
        return False
    root_own = [d for d in v if d.split("/")[0] in ROOTS_OWN]
    return not root_own or (
        f"{root_own[0]!r} is root's code (litellm_runner/layout.py: {', '.join(ROOTS_OWN)} live in "
        "/usr/local/lib/litellm-runner and /etc/litellm): list only the account's state folders"
    )


def debian_packages(v: Any) -> bool:
    return list_of_str(v) and all(DEB_PACKAGE.fullmatch(p) for p in v)


def variable_names(v: Any) -> bool:
    return list_of_str(v) and all(s.isidentifier() for s in v)


def plain_env(v: Any) -> bool:
    return isinstance(v, dict) and all(k.isidentifier() and isinstance(x, str) for k, x in v.items())


def exposure(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 10


def manage_account(v: Any) -> bool:
    return v is None or isinstance(v, bool)


SWEEP_MODES = ("off", "report", "quarantine")
SHA256 = re.compile(r"[0-9a-f]{64}")


def account_sweep(v: Any) -> bool:
    return v is None or v in SWEEP_MODES


VENV_INTEGRITY = ("converge", "always", "off")


def venv_integrity(v: Any) -> bool:
    return v in VENV_INTEGRITY


def account_allowed(v: Any) -> bool | str:
    """True, or which entry of V is not a declared sweep item (``PATH``, ``PATH sha256:HEX``, ``exe:PATH``,
    ``port:N``; a PATH absolute or ``~/``-relative to the account's home)."""
    if not list_of_str(v):
        return False
    for entry in v:
        if entry.startswith("exe:"):
            ok = clean_path(entry[4:]) is True
        elif entry.startswith("port:"):
            ok = entry[5:].isdigit() and port(int(entry[5:]))
        else:
            path, sep, digest = entry.partition(" sha256:")
            path = "/" + path[2:] if path.startswith("~/") else path
            ok = clean_path(path) is True and path != "/" and (not sep or bool(SHA256.fullmatch(digest)))
        if not ok:
            return f"{entry!r} is not PATH, 'PATH sha256:HEX' (64 lowercase hex digits), exe:PATH or port:N"
    return True


# --- the spec -------------------------------------------------------------------------------------

_STUB = "{python} {bin}/litellm-stub-server --name %s --host {bind} --port {port}"
_STATUS = "{python} {bin}/%s --proxy-url http://{bind}:{port}"
SERVICES = {
    "litellm": {"enabled": True},  # the proxy: its port is litellm_port
    "litellm-health-server": {"enabled": True, "port": 8181},
    "litellm-metrics": {"enabled": True, "port": 9090},
    "litellm-rerank": {"enabled": True, "port": 8079, "command": _STUB % "rerank"},
    "litellm-embed-arctic": {"enabled": True, "port": 8082, "command": _STUB % "embed-arctic"},
}
TIMERS = {
    "litellm-backup": {
        "enabled": True,
        "on_calendar": "*-*-* 02:00:00",
        "randomized_delay": "15min",
        "command": "{python} {bin}/litellm-backup --keep-daily 7 --keep-weekly 4 --keep-monthly 3",
    },
    "litellm-compliance-check": {
        "enabled": True,
        "on_calendar": "hourly",
        "randomized_delay": "5min",
        "command": "{python} {bin}/litellm-compliance-check",
    },
    "litellm-knowledge-refresh": {  # site-specific: shipped disabled, its command only says so and fails
        "enabled": False,
        "on_calendar": "*-*-* 04:30:00",
        "randomized_delay": "10min",
        "command": "/bin/sh -c 'echo no site job: set litellm_timers.litellm-knowledge-refresh.command >&2; exit 1'",
    },
    "litellm-model-inventory": {
        "enabled": True,
        "on_calendar": "*-*-* 05:00:00",
        "randomized_delay": "10min",
        "command": _STATUS % "litellm-model-inventory",
    },
    "litellm-probe-capabilities": {
        "enabled": True,
        "on_calendar": "*-*-* 05:30:00",
        "randomized_delay": "10min",
        "command": _STATUS % "litellm-probe-capabilities" + " --timeout 30",
    },
}
MODEL_LIST = [
    {
        "model_name": "local-vllm",
        "litellm_params": {
            "model": "hosted_vllm/local-model",
            "api_base": "http://127.0.0.1:8000/v1",
            "api_key": "os.environ/VLLM_API_KEY",
        },
    },
]
DIRS = ["state", "state/files", "state/redis", "state/archive", "state/archive/backups", "artifacts", "logs"]
ROOTS_OWN = ("bin", "venv", "env.litellm")  # root's (litellm_runner.layout): never an account-owned folder
_TRUE_FALSE = "true or false"

SPEC: tuple[Setting, ...] = (
    # --- service account
    Setting("litellm_user", "litellm", service_account, "a user name like 'litellm'",
            "service account: owns the state (litellm_root), runs the user units; created when missing", "users-01"),
    Setting("litellm_group", "litellm", name_like_user, "a group name like 'litellm'",
            "primary group of litellm_user", "users-01"),
    Setting("litellm_home", "/home/litellm", dedicated, "a dedicated absolute path such as /home/litellm",
            "home of litellm_user (never inside litellm_root)", "users-01"),
    Setting("litellm_linger", True, is_bool, _TRUE_FALSE,
            "`loginctl enable-linger`: the user units run without a login", "users-02"),
    Setting("litellm_manage_account", None, manage_account, "true, false or None",
            "shell, home and primary group of an EXISTING account: managed only when the runner created it "
            "(`None`), never (`False`: an adopted login account keeps its own) or always (`True`)", "users-01"),
    Setting("litellm_account_sweep", None, account_sweep, "None, 'off', 'report' or 'quarantine'",
            "what the account may leave outside the managed services (sshd keys, crontab, at jobs, shell start "
            "files, processes, listeners; docs/sweep.md): `quarantine` moves foreign files into root's quarantine "
            "and stops foreign processes, `report` only reports them, `off` does not look; `None`: `quarantine` for "
            "an account the runner manages (it created it, or litellm_manage_account is true), `off` for an "
            "adopted login account", "acct-01"),
    Setting("litellm_account_allowed", [], account_allowed,
            "a list of 'PATH', 'PATH sha256:HEX', 'exe:PATH' or 'port:N' ('~/' is the account's home)",
            "the account sweep's declared items: a file (any content, or pinned to its sha256), the processes of "
            "an executable, a listener's port; everything else it finds is foreign", "acct-01"),
    # --- filesystem
    Setting("litellm_root", "/home/litellm/litellm", dedicated,
            "a dedicated absolute path such as /home/litellm/litellm",
            "deployment root, every path below is inside it: a dedicated absolute path (not `/`, not a system "
            "directory or inside one; `/LAB/@litellm`, `/srv/x`, `/home/x/y` are fine)", "fs-01"),
    Setting("litellm_dirs", DIRS, state_dirs, "a list of paths relative to litellm_root",
            "the account's state folders relative to litellm_root, each owned by litellm_user, each listed once "
            "(code and config are root's: docs/trust-boundary.md)", "fs-01"),
    Setting("litellm_dir_mode", "0750", mode, "an octal mode string such as '0750', not world-writable",
            "mode of litellm_root and every entry of litellm_dirs", "fs-01"),
    # --- the host's Python
    Setting("litellm_python", "/usr/bin/python3", clean_path, "an absolute path to python3",
            "interpreter the venv is created from", "py-01"),
    Setting("litellm_system_packages", ["python3-venv", "postgresql-client", "iproute2", "curl"],
            debian_packages, "a list of Debian package names such as 'postgresql-client-15' (apt gets them unquoted); "
            "postgresql-client: the client of the host's release (-15 on Debian 12, -17 on 13)",
            "Debian packages the host needs (pg_dump for backups, ss for checks)", "py-00"),
    Setting("litellm_venv_requirements", "files/litellm-venv-requirements.txt",
            lambda v: isinstance(v, str) and v.endswith(".txt"), "a requirements file path",
            "pins of the host's venv, installed from their lock (litellm 1.82.7 and 1.82.8 are refused)", "py-01"),
    Setting("litellm_venv_integrity", "converge", venv_integrity, "'converge', 'always' or 'off'",
            "when every file of the venv is compared with its RECORD (sha256, owner, mode; a few seconds of the "
            "host's CPU, reported): `converge` in a converge only (the drift check then costs the host a few "
            "milliseconds for the venv: docs/venv-integrity.md), `always` in the drift check too (on demand: "
            "`--data litellm_venv_integrity=always`), `off` never", "py-01"),
    # --- LiteLLM settings: LiteLLM's own key names, in the config and the LiteLLM_Config rows
    Setting("general_settings.database_connection_pool_limit", 20, whole(1, 1000), "a whole number 1-1000",
            "per worker process: litellm_num_workers x this + the other clients + the reserve must fit under "
            "PostgreSQL's max_connections, read live (capacity gate: 4 x 20 + 5 + 10 = 95 fits a default 100; the "
            "incident's 4 x 25 = 100 exhausted it on its own)", "db-01"),
    Setting("general_settings.store_prompts_in_spend_logs", False, lambda v: v is False,
            "false (prompts are personal data)", "no prompts (personal data) in spend logs", "cfg-01"),
    Setting("general_settings.disable_error_logs", False, lambda v: v is False, "false (error logs stay on)",
            "keep error logs", "cfg-01"),
    Setting("general_settings.store_model_in_db", True, is_bool, _TRUE_FALSE,
            "the proxy reads the LiteLLM_Config rows at start (the database wins)", "cfg-01"),
    Setting("litellm_settings.request_timeout", 120, whole(1, 3600), "seconds, 1-3600",
            "seconds a request may take (the incident had 600)", "cfg-01"),
    Setting("litellm_model_list", MODEL_LIST, None, "a list of models whose api_key is an os.environ/NAME reference",
            "`model_list` of the config", "cfg-01", shown="one vLLM model"),
    Setting("litellm_config_backups_keep", 5, whole(0, 100), "a whole number 0-100",
            "timestamped copies of a replaced config kept", "cfg-02"),
    Setting("litellm_mcp_servers", {}, None, "a mapping of server name -> entry (litellm_runner/mcp.py)",
            "the proxy's MCP servers (config `mcp_servers`, litellm 1.102.4's fields); credentials are os.environ/ "
            "references to names in litellm_env_secrets; the lint refuses one without upstream auth (LINT-11), a "
            "literal credential (LINT-12) and a URL on another host (LINT-13/14) unless waived (docs/models.md); "
            "e.g. `tickets: {url: http://127.0.0.1:8091/mcp, auth_type: bearer_token, authentication_token: "
            "os.environ/TICKETS_MCP_TOKEN, access_groups: [support]}`",
            "cfg-01"),
    # --- env file and secrets
    Setting("litellm_env_secrets", ["LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "DATABASE_URL", "VLLM_API_KEY"],
            variable_names, "a list of environment variable names",
            "names of the secrets written to /etc/litellm/env.litellm (root:litellm_group 0640); values come from "
            "the control machine's environment or the file named by LITELLM_SECRETS_FILE", "sec-01"),
    Setting("litellm_env_placeholders", ["dummy", "changeme", "change-me", "sk-1234", "placeholder", "xxx"],
            list_of_str, "a list of placeholder values",
            "a secret with one of these values is written empty; the config lint (LINT-01) refuses them", "sec-01"),
    Setting("litellm_env", {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
            plain_env, "a mapping of variable name -> string",
            "non-secret environment of the proxy, written to env.litellm too (LITELLM_LOCAL_MODEL_COST_MAP: the "
            "bundled cost map, no fetch at start)", "sec-01"),
    Setting("litellm_secrets_file", UNSET, absolute, "an absolute path to a KEY=value secrets file",
            "secret source when LITELLM_SECRETS_FILE is not set (the sandbox inventory sets it)", "sec-01"),
    Setting("litellm_sudo_password_secret", UNSET, lambda v: isinstance(v, str) and v.isidentifier(),
            "the name of a secret (environment variable) such as LITELLM_SUDO_PASSWORD",
            "the secret holding the sudo password, per host in the hosts file (read by the inventory loader)",
            "users-01"),
    # --- the proxy and its services
    Setting("litellm_bind", "127.0.0.1", bind, "a loopback address such as 127.0.0.1",
            "every listener binds here: `127.0.0.1` only (the health and stub servers are IPv4-only)", "svc-01"),
    Setting("litellm_port", 4000, port, "a port 1-65535",
            "the proxy's port (the `{port}` of every timer's command)", "svc-01"),
    Setting("litellm_num_workers", 4, whole(1, 64), "a whole number of workers 1-64",
            "proxy worker processes", "svc-01"),
    Setting("litellm_worker_healthcheck_timeout", 60, whole(5, 3600), "seconds, 5-3600",
            "seconds a proxy worker may take to answer its supervisor's ping (uvicorn's timeout_worker_healthcheck, "
            "LiteLLM's --timeout_worker_healthcheck; uvicorn's default is 5): a worker still importing LiteLLM on a "
            "busy small host misses a 5 s ping, is killed and starts over, and the proxy takes minutes to be ready",
            "svc-01"),
    Setting("litellm_restart_batch_size", 1, whole(1, 1000), "a whole number of hosts restarted at once, 1-1000",
            "rolling restarts: hosts whose proxy restarts at once (one value for the run: set it in group data, "
            "not per host); each batch must answer /health/readiness before the next starts, and a host that "
            "fails gets its previous config back and fails the run (the hosts after it keep theirs)", "svc-01"),
    Setting("litellm_ready_timeout", 300, whole(10, 3600), "seconds, 10-3600",
            "seconds a restarted proxy has to answer /health/readiness before its config is rolled back (4 workers "
            "on a busy 2-core host need a minute or two)", "svc-01"),
    Setting("litellm_services", SERVICES, None, "a mapping of unit name -> {enabled, port, command}",
            "user services; `enabled: False` stops one; `litellm` (the proxy) has only `enabled`, its port is "
            "litellm_port; `command` fills in {python}, {bin}, {root}, {bind}, {port}", "svc-01",
            shown="proxy, health (8181), metrics (9090), rerank (8079), embed-arctic (8082)"),
    Setting("litellm_unit_exposure_max", 6.6, exposure, "a systemd-analyze exposure 0.0-10.0, such as 6.6",
            "unit hardening gate: the highest `systemd-analyze security --offline --user` exposure a rendered "
            "service may score (every shipped one scores 6.6)", "svc-01"),
    # --- timers
    Setting("litellm_timers", TIMERS, None, "a mapping of timer name -> {enabled, on_calendar, randomized_delay, "
            "command}", "schedule (systemd OnCalendar), random delay and command of each job ({python}, {bin}, {root}, "
            "and the proxy's {bind}, {port} filled in)", "tmr-01",
            shown="backup (02:00), compliance-check (hourly), knowledge-refresh (off: site job), model-inventory, "
            "probe-capabilities"),
    # --- the database (the connection is the DATABASE_URL secret)
    Setting("litellm_db_connect_timeout", 5, whole(1, 120), "seconds, 1-120",
            "seconds for every database connection", "db-01"),
    Setting("litellm_db_other_clients", 5, whole(0, 1000), "a whole number of other database clients 0-1000",
            "capacity gate: connections of the host tools, one each of backup, metrics, health server (one probe "
            "shared by all requests), dbctl, status (`capacity.CLIENTS`)", "db-01"),
    Setting("litellm_db_reserve_connections", 10, whole(0, 1000), "a whole number of reserved connections 0-1000",
            "capacity gate: superuser_reserved_connections (3) + an operator's psql and migrations", "db-01"),
    Setting("litellm_db_block_expired_keys", True, is_bool, _TRUE_FALSE,
            "set blocked = true on expired, unblocked keys", "db-03"),
    Setting("litellm_db_terminate_idle", False, is_bool, _TRUE_FALSE,
            "opt-in: terminate the proxy's database role's idle connections", "db-04"),
    Setting("litellm_db_idle_minutes", 5, whole(1, 1440), "minutes, 1-1440",
            "idle longer than this is terminated (when opted in)", "db-04"),
    Setting("litellm_key_rotation", [], None,
            "a list of {alias: NAME, min_days_left: 14, valid_days: 90, grace_hours: 24}",
            "aliases whose virtual key is kept valid, rotated with a grace period", "db-05"),
    Setting("litellm_migrations_maintenance_window", False, is_bool, _TRUE_FALSE,
            "an upgrade's migration that the release still running until the restart may not read through (it drops, "
            "renames or retypes a table or column, or makes a column NOT NULL): False, the run stops before it and "
            "applies nothing (the old proxy keeps serving); True, it is applied (a run in a maintenance window: "
            "requests may fail until the restart)", "db-02"),
    Setting("litellm_migrations_backup_timeout", 900, whole(30, 86400), "seconds, 30-86400",
            "seconds the verified backup an upgrade's migrations wait for may take (dump, restore into a scratch "
            "database, row counts); past it the backup is stopped, its scratch database dropped, and nothing is "
            "applied", "db-02"),
    # --- run lock
    Setting("litellm_lock_wait", 30, whole(0, 86400), "seconds, 0-86400",
            "seconds a second converge waits for the run lock's holder before it refuses (exit 1); a converge "
            "holds /run/litellm-runner.lock from its first fact to its last operation, dry runs and the drift "
            "check take none (docs/run-lock.md)", "fs-02"),
    Setting("litellm_lock_stale_after", 300, whole(10, 604800), "seconds, 10-604800",
            "seconds without a heartbeat after which a lock from another machine counts as abandoned (the holder "
            "beats every tenth of it); on the holder's own machine (same machine id) a lock whose process is gone "
            "is taken at once", "fs-02"),
    # --- the query engine (docs/query-engine.md)
    Setting("litellm_query_engine", False, is_bool, _TRUE_FALSE,
            "opt-in for hosts that cannot download Prisma's engines (air-gapped): the proxy's database client runs "
            "on the query engine the runner ships (Prisma's engine compiled to WebAssembly, npm packages locked in "
            "files/query-engine, on Debian's nodejs) from /usr/local/lib/litellm-query-engine; hosts that can "
            "download Prisma's engines keep them (docs/query-engine.md)", "py-03"),
    # --- sandbox only
    Setting("litellm_sandbox", False, is_bool, _TRUE_FALSE,
            "true only for the throwaway podman host: the proxy runs without DATABASE_URL unless "
            "litellm_query_engine is on (the sandbox turns it on)", "sandbox"),
)  # fmt: skip
BY_NAME = {s.name: s for s in SPEC}
# Settings that were removed, with what to set instead: refused by name, never silently ignored.
REMOVED = {
    name: "no litellm_db_host/port/name/user: the database is the one the DATABASE_URL secret names"
    for name in ("litellm_db_host", "litellm_db_port", "litellm_db_name", "litellm_db_user")
}
SECTIONS = ("general_settings", "litellm_settings")  # LiteLLM's own settings sections


def _defaults() -> dict:
    defaults: dict = {}
    for s in SPEC:
        if s.default is UNSET:
            continue
        if "." in s.name:
            section, key = s.name.split(".", 1)
            defaults.setdefault(section, {})[key] = s.default
        else:
            defaults[s.name] = s.default
    return defaults


DEFAULTS: dict = _defaults()
# Mapping settings: merged key by key across the layers of host data (see ``merge``).
MAPPINGS: tuple[str, ...] = tuple(name for name, value in DEFAULTS.items() if isinstance(value, dict))
DROP = None  # a key of a mapping setting set to this is removed from the merged mapping


def merge(layers) -> dict:
    """The host data of LAYERS, lowest first (DEFAULTS, group ``all``, each group, the host, ``--data``).

    A later layer wins setting by setting; a mapping setting (MAPPINGS: ``general_settings``,
    ``litellm_settings``, ``litellm_env``, ``litellm_services``, ``litellm_timers``,
    ``litellm_mcp_servers``) is merged key by key, at every depth, so an override changes only the
    keys it names and the defaults' other keys stay. A key whose value is ``None`` (DROP) is removed:
    the one way to drop a default key on purpose. A mapping setting given as anything but a mapping
    replaces the value (the schema then refuses it)::

        merge([DEFAULTS, {"general_settings": {"database_connection_pool_limit": 25}}])["general_settings"]
        # {"database_connection_pool_limit": 25, "store_prompts_in_spend_logs": False, ...}
    """
    merged: dict = {}
    for layer in layers:
        for name, value in layer.items():
            if name in MAPPINGS and isinstance(value, dict) and isinstance(merged.get(name), dict):
                merged[name] = _merge_mapping(merged[name], value)
            elif name in MAPPINGS and isinstance(value, dict):
                merged[name] = _merge_mapping({}, value)
            else:
                merged[name] = value
    return merged


def _merge_mapping(base: dict, over: dict) -> dict:
    """BASE with OVER's keys: mappings merged key by key, DROP removes a key."""
    out = dict(base)
    for key, value in over.items():
        if value is DROP:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_mapping(out[key], value)
        else:
            out[key] = _merge_mapping({}, value) if isinstance(value, dict) else value
    return out


def section_keys(section: str) -> dict[str, Setting]:
    """The settings of a LiteLLM section (``general_settings``) by their key inside it."""
    return {s.name.split(".", 1)[1]: s for s in SPEC if s.name.startswith(section + ".")}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _shown(s: Setting) -> str:
    if s.shown:
        return s.shown
    if s.default is UNSET:
        return "not set"
    if s.default in ([], {}):
        return "none"
    if isinstance(s.default, str):
        return f"`{s.default}`"
    if isinstance(s.default, list) and all(isinstance(v, str) for v in s.default):
        return ", ".join(f"`{v}`" for v in s.default)
    if isinstance(s.default, dict) and all(isinstance(v, str) for v in s.default.values()):
        return ", ".join(f"`{k}={v}`" for k, v in s.default.items())
    return f"`{s.default!r}`"


def markdown() -> str:
    """The settings reference's table (docs/settings.md), one row per setting."""
    rows = ["| key | default | control | what | expected |", "|---|---|---|---|---|"]
    for s in SPEC:
        rows.append(f"| `{s.name}` | {_cell(_shown(s))} | {s.control} | {_cell(s.description)} | {_cell(s.expected)} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litellm_runner.settings", description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the settings reference's table")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown())
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
