"""Desired state of every LiteLLM host: this repository's values, the documented defaults.

The spec of every setting (default, check, description, control id) is
litellm_runner/settings.py; the packaged deploy takes its defaults from there, and
tests/unit/test_settings.py keeps every value below equal to them. Override per group
in group_data/<group>.py or per host in the inventory. Secrets never live
here: only the *names* of the secrets, whose values come from the operator's
secret source on the control machine (see docs/real-hosts.md, Secrets).

A setting keeps one name everywhere: the LiteLLM settings below use LiteLLM's
own key names, which are also the keys in config.generated.yaml, in the
LiteLLM_Config rows and in the drift report.
"""

# --- Service user (users-01) --------------------------------------------------
litellm_user = "litellm"  # owner of the deployment, runs the user units
litellm_group = "litellm"  # primary group of litellm_user
litellm_home = "/home/litellm"  # home of litellm_user
litellm_linger = True  # loginctl enable-linger: user units run without a login
# shell, home and primary group of an EXISTING litellm_user: None = managed only when the runner created
# the account; False = never (an adopted login account keeps its own); True = always
litellm_manage_account = None

# --- What the account leaves outside the services (acct-01, docs/sweep.md) ------
# None = quarantine for an account the runner manages, off for an adopted login account; or "off",
# "report" (drift only), "quarantine" (foreign files into root's quarantine, foreign processes stopped)
litellm_account_sweep = None
# declared items the sweep leaves alone, e.g. "~/.ssh/authorized_keys sha256:<64 hex>", "exe:/usr/bin/tmux",
# "port:8443"
litellm_account_allowed = []

# --- Filesystem (fs-01) -------------------------------------------------------
litellm_root = "/home/litellm/litellm"  # deployment root; all paths below are inside it
litellm_dirs = [  # relative to litellm_root; each owned by litellm_user (its state: code and config are root's)
    "state",
    "state/files",
    "state/redis",
    "state/archive",
    "state/archive/backups",
    "artifacts",
    "logs",
]
litellm_dir_mode = "0750"  # mode of litellm_root and every entry of litellm_dirs

# --- Python environment of the host (py-01) ------------------------------------
litellm_python = "/usr/bin/python3"  # interpreter the venv is created from
litellm_system_packages = [  # Debian packages the host needs (pg_dump for backups, ss for checks)
    "python3-venv",
    "postgresql-client",  # the client of the host's release: -15 on Debian 12, -17 on 13
    "iproute2",
    "curl",
]
litellm_venv_requirements = "files/litellm-venv-requirements.txt"  # pins of the host's venv
# (that file pins litellm[proxy]; 1.82.7 and 1.82.8 were compromised and are refused)
# when every venv file is compared with its RECORD (sha256, owner, mode): "converge" (in a converge only),
# "always" (the drift check too), "off" (docs/venv-integrity.md)
litellm_venv_integrity = "converge"

# --- LiteLLM settings (cfg-01) -------------------------------------------------
# Rendered into state/config.generated.yaml and converged key by key into the
# LiteLLM_Config rows of the same name (the database wins at proxy start).
general_settings = {
    # per worker process: litellm_num_workers x this + the other clients + the reserve must fit
    # under PostgreSQL's max_connections (read live; see "Gates" below). 4 x 20 = 80 + 5 + 10 = 95
    # fits a default PostgreSQL (100); the incident's 4 x 25 = 100 exhausted it on its own.
    "database_connection_pool_limit": 20,
    "store_prompts_in_spend_logs": False,  # no prompts (personal data) in spend logs
    "disable_error_logs": False,  # keep error logs
    "store_model_in_db": True,  # the proxy reads LiteLLM_Config rows at start
}
litellm_settings = {
    "request_timeout": 120,  # seconds (the incident had 600)
}
litellm_model_list = [  # the proxy's model_list; api_key values must be os.environ/ references
    {
        "model_name": "local-vllm",
        "litellm_params": {
            "model": "hosted_vllm/local-model",
            "api_base": "http://127.0.0.1:8000/v1",
            "api_key": "os.environ/VLLM_API_KEY",
        },
    },
]
litellm_config_backups_keep = 5  # timestamped copies of the replaced config kept
# The proxy's MCP servers (config mcp_servers; fields of litellm 1.102.4, see litellm_runner/mcp.py and
# docs/models.md): name (letters, digits, _) -> entry; credentials are os.environ/ references to
# names in litellm_env_secrets. The lint refuses one without upstream auth (LINT-11), a literal
# credential (LINT-12) and a URL on another host (LINT-13, https; LINT-14, plain http) unless waived. e.g.
# "tickets": {"url": "http://127.0.0.1:8091/mcp", "auth_type": "bearer_token",
#             "authentication_token": "os.environ/TICKETS_MCP_TOKEN", "access_groups": ["support"]},
litellm_mcp_servers = {}

# --- Env file and secrets (sec-01) ---------------------------------------------
# Names of the secrets written to env.litellm (mode 0600). Values come from the
# control machine: environment variables of the same name, or the file named by
# LITELLM_SECRETS_FILE (KEY=value lines). A placeholder value is written empty.
litellm_env_secrets = [
    "LITELLM_MASTER_KEY",
    "LITELLM_SALT_KEY",
    "DATABASE_URL",
    "VLLM_API_KEY",
]
litellm_env_placeholders = ["dummy", "changeme", "change-me", "sk-1234", "placeholder", "xxx"]  # also the lint's
litellm_env = {  # non-secret environment of the proxy, written to env.litellm too
    "REDIS_HOST": "127.0.0.1",
    "REDIS_PORT": "6379",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # use the bundled cost map, no fetch at start
}

# --- Proxy and helper services (svc-01) ------------------------------------------
litellm_bind = "127.0.0.1"  # every listener binds here
litellm_port = 4000  # the proxy
litellm_num_workers = 4  # proxy worker processes
litellm_worker_healthcheck_timeout = 60  # seconds a worker may take to answer its supervisor's ping (uvicorn: 5)
# Rolling restarts: when a change restarts the proxy, hosts restart this many at a
# time (set it here, not per host: it is one value for the run); each restarted proxy
# must answer /health/readiness within litellm_ready_timeout seconds before the next
# batch starts. A host that fails gets its previous config back and fails the run;
# the hosts after it are not restarted and keep their last good config.
litellm_restart_batch_size = 1
litellm_ready_timeout = 300  # seconds (4 workers on a busy 2-core host need a minute or two)
litellm_services = {  # user units; set enabled: False to stop and disable one on a host
    "litellm": {"enabled": True},  # the proxy: its port is litellm_port
    "litellm-health-server": {"enabled": True, "port": 8181},
    "litellm-metrics": {"enabled": True, "port": 9090},
    "litellm-rerank": {
        "enabled": True,
        "port": 8079,
        # what the rerank service runs; {python} (the venv's), {bin} (root's host tools), {root}, {bind}, {port}
        # are filled in
        "command": "{python} {bin}/litellm-stub-server --name rerank --host {bind} --port {port}",
    },
    "litellm-embed-arctic": {
        "enabled": True,
        "port": 8082,
        "command": "{python} {bin}/litellm-stub-server --name embed-arctic --host {bind} --port {port}",
    },
}

# --- Timers (tmr-01) -------------------------------------------------------------
litellm_timers = {  # schedule (systemd OnCalendar) and command of each timer's service; {python} (the venv's),
    # {root}, and {bind}, {port} of the proxy are filled in
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
    # site-specific (what "knowledge" is differs per site): shipped disabled; set enabled: True and
    # `command` to the site's job; the shipped command only says so and fails
    "litellm-knowledge-refresh": {
        "enabled": False,
        "on_calendar": "*-*-* 04:30:00",
        "randomized_delay": "10min",
        "command": "/bin/sh -c 'echo no site job: set litellm_timers.litellm-knowledge-refresh.command >&2; exit 1'",
    },
    # asks the proxy ({port}: litellm_port) which models it serves, compares them with litellm_model_list,
    # writes state/model-inventory.json; fails when a desired model is not served
    "litellm-model-inventory": {
        "enabled": True,
        "on_calendar": "*-*-* 05:00:00",
        "randomized_delay": "10min",
        "command": "{python} {bin}/litellm-model-inventory --proxy-url http://{bind}:{port}",
    },
    # one small request per served model through the proxy, one at a time: state/capabilities.json
    "litellm-probe-capabilities": {
        "enabled": True,
        "on_calendar": "*-*-* 05:30:00",
        "randomized_delay": "10min",
        "command": "{python} {bin}/litellm-probe-capabilities --proxy-url http://{bind}:{port} --timeout 30",
    },
}

# --- Database (db-01) ----------------------------------------------------------------
# The database is the one the DATABASE_URL secret names (user, password, host, port, database).
litellm_db_connect_timeout = 5  # seconds, every connection
litellm_db_block_expired_keys = True  # set blocked = true on expired, unblocked keys
litellm_db_terminate_idle = False  # opt-in: terminate idle connections of the proxy's database role
litellm_db_idle_minutes = 5  # idle longer than this is terminated (when opted in)
# an upgrade's migration the running release may not read through (drops, renames, retypes, NOT NULL):
# False stops the run before it, True applies it (a maintenance window) (docs/migrations.md, Upgrades)
litellm_migrations_maintenance_window = False
litellm_key_rotation = [  # aliases whose key is kept valid; e.g.
    # {"alias": "ops-team", "min_days_left": 14, "valid_days": 90, "grace_hours": 24},
]


# --- Gates (checked before any command reaches a host; see docs/gates.md) ---
# Capacity: litellm_num_workers x general_settings.database_connection_pool_limit
# + litellm_db_other_clients + litellm_db_reserve_connections <= max_connections, read from
# the live PostgreSQL (the runner never changes max_connections: that needs a restart).
litellm_db_other_clients = (
    5  # host tools' connections: backup, metrics, health server (1 shared probe), dbctl, status (capacity.CLIENTS)
)
litellm_db_reserve_connections = 10  # superuser_reserved_connections (3) + an operator's psql and migrations
# Unit hardening: the highest `systemd-analyze security --offline --user` exposure (0.0 best,
# 10.0 worst) any rendered service may score; every shipped service scores 6.6 (systemd 252).
litellm_unit_exposure_max = 6.6


# --- Run lock ----------------------------------------------------------------------------
# A converge holds /run/litellm-runner.lock on the host from before its first fact
# until its last operation (dry runs and the drift check take no lock). See docs/run-lock.md.
litellm_lock_wait = 30  # seconds a second converge waits for the holder before it refuses (exit 1)
litellm_lock_stale_after = 300  # seconds without a heartbeat after which a lock taken from another machine
# counts as abandoned and is taken over (a live holder beats every tenth of this: 30 s); from the holder's own
# machine (same machine id) a lock whose process is gone is taken at once


# --- The query engine (docs/query-engine.md) ---------------------------------------------
# Opt-in for hosts that cannot download Prisma's engines (air-gapped): the proxy's database
# client runs on the query engine the runner ships (Prisma's engine compiled to WebAssembly,
# files/query-engine, on Debian's nodejs). Hosts that can download Prisma's engines keep them.
litellm_query_engine = False


# --- Sandbox only ----------------------------------------------------------------------
# True only for the throwaway podman host: there the proxy runs without DATABASE_URL unless
# litellm_query_engine is on (the sandbox turns it on: Prisma's engines cannot be downloaded
# there). Production hosts never set it.
litellm_sandbox = False
