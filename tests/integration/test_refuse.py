"""Bad input is refused before any command reaches the host (issue #8).

Each row runs the real deploy (``pyinfra inventory.py deploy.py -y -vv``) against
the session's sandbox host, converged once, with one bad value injected through a
LITELLM_INVENTORY hosts file (the sandbox's own SSH data plus the bad key), a
secrets file (LITELLM_SECRETS_FILE) or a requirements file. Every row: exit 1,
the message names the file, the key, the value (or advisory ids, or the
arithmetic) and the expected form, no secret value is printed, and the host's
fingerprint (files, modes, mtimes, contents, unit PIDs, settings rows) is the same
before and after. Rows refused on the control machine also show, from pyinfra's
-vv output, that no fact and no operation ran; capacity rows read one read-only
fact (the live max_connections) and nothing else.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess

import pytest
import yaml

from litellm_runner import sandbox
from litellm_runner.gates.cve import RELOCK
from tests.support.hosts import PYINFRA, REPO
from tests.unit.group_data import defaults

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
CTL = "systemctl --user --machine=litellm@.host"
PSQL = "runuser -u postgres -- psql -p 5434 -d litellm -AtX -c"
D = defaults()
SRC = "{hosts}"  # where a bad host-data value comes from: the hosts file (its line numbers are left out below)
SECRET_SRC = "secret source ({path} or the environment)"
CANARY = "canary"  # every injected secret value contains it; it must never be printed

FINGERPRINT = " ; ".join(
    [
        # what the timers write on their own schedule (the hourly compliance check) is not the runner's: left out,
        # and a folder by its mode and owner only (its mtime moves when a timer replaces a file in it)
        f"find {ROOT} -path {CODE}/venv -prune -o -path {ROOT}/logs -prune -o -path {ROOT}/state/compliance.json "
        f"-prune -o -type d -printf '%p %m %u %g\\n' -o -printf '%p %m %u %g %s %T@\\n' | sort",
        "sha256sum /etc/litellm/env.litellm /etc/litellm/config.generated.yaml",
        "find /etc/systemd/user -printf '%p %m %s %T@\\n' | sort",
        f"{CTL} show -P MainPID litellm.service litellm-health-server.service litellm-metrics.service",
        f"{PSQL} 'SELECT param_name, param_value FROM \"LiteLLM_Config\" ORDER BY 1'",
        f"{PSQL} 'SELECT key_alias, blocked, expires FROM \"LiteLLM_VerificationToken\" ORDER BY 1'",
        "ls -l --time-style=+%s /var/lib/systemd/linger",
    ]
)


def gs(**kv):
    return {**D["general_settings"], **kv}


def timers(name, **kv):
    t = copy.deepcopy(D["litellm_timers"])
    t[name].update(kv)
    return t


# (id, host data, secrets overrides, requirements text, fragments the message must contain)
SCHEMA = [
    (
        "dir-mode-world-writable",
        {"litellm_dir_mode": "0777"},
        None,
        None,
        [SRC + ": litellm_dir_mode = '0777': expected an octal mode string such as '0750', not world-writable"],
    ),
    (
        "port-out-of-range",
        {"litellm_port": 70000},
        None,
        None,
        [SRC + ": litellm_port = 70000: expected a port 1-65535"],
    ),
    (
        "bind-not-loopback",
        {"litellm_bind": "0.0.0.0"},
        None,
        None,
        [SRC + ": litellm_bind = '0.0.0.0': expected a loopback address such as 127.0.0.1"],
    ),
    (
        "workers-a-string",
        {"litellm_num_workers": "4"},
        None,
        None,
        [SRC + ": litellm_num_workers = '4': expected a whole number of workers 1-64"],
    ),
    (
        "root-relative",
        {"litellm_root": "relative/path"},
        None,
        None,
        [
            SRC + ": litellm_root = 'relative/path': expected a dedicated absolute path such as /home/litellm/litellm "
            "(not absolute)"
        ],
    ),
    (
        "calendar-nonsense",
        {"litellm_timers": timers("litellm-backup", on_calendar="every day at 2")},
        None,
        None,
        [
            SRC + ": litellm_timers[litellm-backup].on_calendar = 'every day at 2': expected a systemd "
            "OnCalendar expression"
        ],
    ),
    (
        "typo-key",
        {"litellm_num_worker": 2},
        None,
        None,
        [SRC + ": litellm_num_worker = 2: expected a known setting (see docs/settings.md); is it misspelt?"],
    ),
    (
        "prompts-in-spend-logs",
        {"general_settings": gs(store_prompts_in_spend_logs=True)},
        None,
        None,
        [SRC + ": general_settings.store_prompts_in_spend_logs = True: expected false (prompts are personal data)"],
    ),
    (
        "literal-api-key-in-model-list",
        {"litellm_model_list": [{"model_name": "m", "litellm_params": {"model": "x", "api_key": "sk-live-canary"}}]},
        None,
        None,
        [SRC + ": litellm_model_list[0].litellm_params.api_key = '***': expected an os.environ/NAME reference"],
    ),
    (
        "db-host-setting-removed",
        {"litellm_db_host": "10.0.0.5"},
        None,
        None,
        [
            SRC + ": litellm_db_host = '10.0.0.5': expected no litellm_db_host/port/name/user: the database is the "
            "one the DATABASE_URL secret names"
        ],
    ),
]
ROTATE = {"alias": "ops-team", "min_days_left": 14, "valid_days": 90, "grace_hours": 24}
TIMER = {"enabled": True, "on_calendar": "hourly", "randomized_delay": "5min", "command": "{python} {root}/bin/x"}
SYSTEM_DIR = "a system directory; /home/NAME, /srv/NAME, /opt/NAME and /var/lib/NAME are fine"
GAPS = [  # issue #12 item 4: each of these passed before and reached the host
    (
        "root-is-slash",
        {"litellm_root": "/"},
        None,
        None,
        [SRC + ": litellm_root = '/': expected a dedicated absolute path such as /home/litellm/litellm (not / itself"],
    ),
    (
        "root-is-usr",
        {"litellm_root": "/usr"},
        None,
        None,
        [
            SRC + ": litellm_root = '/usr': expected a dedicated absolute path such as /home/litellm/litellm "
            f"(/usr, {SYSTEM_DIR})"
        ],
    ),
    (
        "home-in-etc",
        {"litellm_home": "/etc/litellm"},
        None,
        None,
        [
            SRC + ": litellm_home = '/etc/litellm': expected a dedicated absolute path such as /home/litellm "
            f"(inside /etc, {SYSTEM_DIR})"
        ],
    ),
    (
        "root-shell-command",
        {"litellm_root": "/srv/x;touch /tmp/h3-pwned"},
        None,
        None,
        [
            SRC + ": litellm_root = '/srv/x;touch /tmp/h3-pwned': expected a dedicated absolute path such as "
            "/home/litellm/litellm (only letters, digits and / . _ - @ +)"
        ],
    ),
    (
        "root-brace",
        {"litellm_root": "/srv/{litellm}"},
        None,
        None,
        [SRC + ": litellm_root = '/srv/{{litellm}}': expected a dedicated absolute path"],
    ),  # fragments are formatted
    (
        "home-inside-root",
        {"litellm_root": "/srv/litellm", "litellm_home": "/srv/litellm/home"},
        None,
        None,
        [SRC + ": litellm_home = '/srv/litellm/home': expected a home outside litellm_root ('/srv/litellm')"],
    ),
    (
        "timer-path-traversal",
        {"litellm_timers": {**D["litellm_timers"], "../../../../etc/systemd/system/evil": TIMER}},
        None,
        None,
        [
            SRC + ": litellm_timers = '../../../../etc/systemd/system/evil': expected timer names that are "
            "systemd unit names"
        ],
    ),
    (
        "timer-named-litellm",
        {"litellm_timers": {**D["litellm_timers"], "litellm": TIMER}},
        None,
        None,
        [
            SRC + ": litellm_timers = 'litellm': expected a timer name no service uses: the timer runs its own "
            "litellm.service, which would replace litellm_services[litellm]"
        ],
    ),
    (
        "timer-command-line-break",
        {"litellm_timers": timers("litellm-backup", command="{python} x\nExecStartPre=/bin/id")},
        None,
        None,
        [
            SRC + ": litellm_timers[litellm-backup].command = '{{python}} x\\nExecStartPre=/bin/id': expected a "
            "one-line command"
        ],
    ),
    (
        "env-line-break",
        {"litellm_env": {**D["litellm_env"], "REDIS_HOST": "127.0.0.1\nLITELLM_MASTER_KEY=sk-canary"}},
        None,
        None,
        [SRC + ": litellm_env.REDIS_HOST = '***': expected a one-line value (no \\n, \\r or NUL)"],
    ),
    (
        "bind-ipv6",
        {"litellm_bind": "::1"},
        None,
        None,
        [SRC + ": litellm_bind = '::1': expected a loopback address such as 127.0.0.1 (only 127.0.0.1:"],
    ),
    (
        "rotation-grace-hours",
        {"litellm_key_rotation": [{**ROTATE, "grace_hours": -1}]},
        None,
        None,
        [SRC + ": litellm_key_rotation[0].grace_hours = -1: expected hours the old key stays valid, 1-720"],
    ),
    (
        "rotation-unknown-key",
        {"litellm_key_rotation": [{**ROTATE, "grace_hour": 24}]},
        None,
        None,
        [
            SRC
            + ": litellm_key_rotation[0].grace_hour = 24: expected one of alias, min_days_left, valid_days, grace_hours"
        ],
    ),
    (
        "rotation-duplicate-alias",
        {"litellm_key_rotation": [ROTATE, {**ROTATE, "valid_days": 30}]},
        None,
        None,
        [
            SRC + ": litellm_key_rotation[1].alias = 'ops-team': expected an alias listed once (also "
            "litellm_key_rotation[0])"
        ],
    ),
    (
        "dirs-duplicate",
        {"litellm_dirs": [*D["litellm_dirs"], "state"]},
        None,
        None,
        [
            SRC + f": litellm_dirs[{len(D['litellm_dirs'])}] = 'state': expected a directory listed once (also "
            "litellm_dirs[0])"
        ],
    ),
]
LINT = [
    (
        "master-key-placeholder",
        {},
        {"LITELLM_MASTER_KEY": "sk-1234"},
        None,
        [
            SECRET_SRC + ": env LITELLM_MASTER_KEY: LINT-02 critical: the master key is empty or unset: "
            "expected a key starting with sk-"
        ],
    ),
    (
        "master-key-without-sk",
        {},
        {"LITELLM_MASTER_KEY": "canary-master-0a1b"},
        None,
        [SECRET_SRC + ": env LITELLM_MASTER_KEY: LINT-03 critical: the master key does not start with 'sk-'"],
    ),
    (
        "salt-key-placeholder",
        {},
        {"LITELLM_SALT_KEY": "changeme"},
        None,
        [SECRET_SRC + ": env LITELLM_SALT_KEY: LINT-09 critical: missing while a master key is set"],
    ),
    (
        "literal-secret-in-settings",
        {"litellm_settings": {"request_timeout": 120, "langfuse_secret": "lf-canary-1"}},
        None,
        None,
        [
            SRC
            + ": litellm_settings.langfuse_secret: LINT-04 critical: literal secret in config.yaml (value not shown): "
            "expected an os.environ/NAME reference"
        ],
    ),
    (
        "listener-in-settings",
        {"litellm_settings": {"request_timeout": 120, "host": "0.0.0.0"}},
        None,
        None,
        [SRC + ": litellm_settings.host: LINT-05 critical: listener on '0.0.0.0': expected a loopback address"],
    ),
    (
        "secret-missing",
        {},
        {"VLLM_API_KEY": None},
        None,
        [
            SECRET_SRC + ": secret(s) VLLM_API_KEY not found in the environment or {path}: "
            "expected every name of litellm_env_secrets with a value"
        ],
    ),
]
CVE = [
    (
        "urllib3-2.5.0",
        {},
        None,
        "urllib3==2.5.0\n",
        [
            "litellm_venv_requirements = '{req}': CVE gate refuses",
            "urllib3 2.5.0: CVE-2025-66471 (fixed in",
            "urllib3 2.5.0: CVE-2025-66418",
            "urllib3 2.5.0: CVE-2026-21441",
            "offline (files/advisories/osv.json)",
        ],
    ),
    (
        "incident-pins",
        {},
        None,
        "fastapi-users==14.0.2\npyasn1==0.6.1\n",
        [
            "fastapi-users 14.0.2: CVE-2025-68481 (fixed in 15.0.2)",
            "pyasn1 0.6.1: CVE-2026-23490",
            "pyasn1 0.6.1: CVE-2026-30922",
        ],
    ),
    (
        "litellm-compromised",
        {},
        None,
        "litellm[proxy]==1.82.7\n",
        ["litellm_venv_requirements = '{req}': CVE gate refuses", "1.82.7: "],
    ),
    ("pins-without-lock", {}, None, "redis\n", ["it has no current lock", "no lock of", RELOCK]),
]
UNITS = [  # scored on the host by its own systemd-analyze (read-only facts, no operation)
    (
        "exposure-max-5",
        {"litellm_unit_exposure_max": 5.0},
        None,
        None,
        [
            "litellm_unit_exposure_max = 5.0: unit hardening gate: exposure above 5.0 (host {name}, systemd 252",
            "litellm.service: 6.6",
            "expected every rendered service (litellm_services, litellm_timers) at or below 5.0 as this host's "
            "systemd scores it",
        ],
    ),
    (
        "exposure-max-0",
        {"litellm_unit_exposure_max": 0.0},
        None,
        None,
        ["litellm_unit_exposure_max = 0.0: unit hardening gate", "litellm-backup.service: 6.6"],
    ),
]
CAPACITY = [  # max_connections 100 (PostgreSQL's default, as in the sandbox)
    (
        "incident-4x25",
        {"general_settings": gs(database_connection_pool_limit=25), "litellm_num_workers": 4},
        None,
        None,
        [
            "4 workers x 25 pool = 100 + 5 other clients + 10 reserve = 115 > max_connections 100",
            "Expected general_settings.database_connection_pool_limit <= 21 for 4 workers",
        ],
    ),
    (
        "eight-workers",
        {"litellm_num_workers": 8},
        None,
        None,
        ["8 workers x 20 pool = 160 + 5 other clients + 10 reserve = 175 > max_connections 100"],
    ),
    (
        "big-reserve",
        {"litellm_db_reserve_connections": 30, "litellm_num_workers": 4},
        None,
        None,
        ["4 workers x 20 pool = 80 + 5 other clients + 30 reserve = 115 > max_connections 100"],
    ),
]
ROWS = [*SCHEMA, *GAPS, *LINT, *CVE, *UNITS, *CAPACITY]
ON_CONTROL_MACHINE = {r[0] for r in [*SCHEMA, *GAPS, *LINT, *CVE]}


@pytest.fixture(scope="module")
def ready(host, converged):
    """The sandbox converged (litellm-dbctl on it, so max_connections can be read). Through the
    session's ``converged``, so the dry run and drift check of the incident state come first
    whatever order the files run in."""
    assert host.out(f"{PSQL} 'SHOW max_connections'") == "100"
    return host


def deploy(tmp_path, host, data, secrets, requirements):
    """The real deploy with one bad input; (exit code, stdout + stderr, {placeholder: value})."""
    ssh = sandbox.host_data(host.name)
    ssh.pop("name", None)
    fill = {"name": host.name, "hosts": str(tmp_path / "hosts.yml")}
    if requirements is not None:
        req = tmp_path / "requirements.txt"
        req.write_text(requirements)
        data = {**data, "litellm_venv_requirements": str(req)}
        fill["req"] = str(req)
    env = {**os.environ, "PYINFRA_PROGRESS": "off"}
    env.pop("LITELLM_SANDBOXES", None)
    values = dict(line.split("=", 1) for line in pathlib_read(ssh["litellm_secrets_file"]).splitlines() if "=" in line)
    if secrets is not None:
        values = {k: v for k, v in {**values, **secrets}.items() if v is not None}
        path = tmp_path / "secrets.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
        env["LITELLM_SECRETS_FILE"] = str(path)
        fill["path"] = str(path)
    else:
        env.pop("LITELLM_SECRETS_FILE", None)
        fill["path"] = ssh["litellm_secrets_file"]
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(yaml.safe_dump({"litellm_hosts": [{"name": host.name, "data": {**ssh, **data}}]}))
    env["LITELLM_INVENTORY"] = str(hosts)
    proc = subprocess.run(
        [PYINFRA, "inventory.py", "deploy.py", "-y", "-vv"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr, fill, values


def pathlib_read(path):
    with open(path) as handle:
        return handle.read()


def test_the_table_is_large_enough():
    assert len(ROWS) >= 20 and len({r[0] for r in ROWS}) == len(ROWS)
    assert all(group for group in (SCHEMA, GAPS, LINT, CAPACITY, CVE, UNITS))


def test_shipped_defaults_pass_every_gate(ready, tmp_path):
    """The same hosts file with no bad value: every gate passes and the deploy runs."""
    code, out, _, _ = deploy(tmp_path, ready, {}, None, None)
    assert code == 0, out[-3000:]
    assert "refusing" not in out and "warnings (the run goes on)" not in out
    assert f"Venv {CODE}/venv has no known vulnerability | py-01" in out


@pytest.mark.parametrize("case, data, secrets, requirements, fragments", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_refused_and_the_host_is_untouched(ready, tmp_path, case, data, secrets, requirements, fragments):
    before = ready.out(FINGERPRINT)
    code, out, fill, values = deploy(tmp_path, ready, data, secrets, requirements)
    assert code == 1, out[-3000:]
    assert "refusing to touch any host" in out, out[-3000:]
    out = re.sub(r"(hosts\.yml):\d+: ", r"\1: ", out)  # the hosts file's line of the key, whatever it is
    for fragment in fragments:
        fragment = fragment.format(**fill)
        assert fragment in out, f"{fragment!r} not in:\n{out[-3000:]}"
    assert CANARY not in out
    for name, value in values.items():
        if name in D["litellm_env_secrets"] and len(value) > 8:
            assert value not in out, f"the value of {name} was printed"
    if case in ON_CONTROL_MACHINE:  # refused before pyinfra asked the host anything
        assert "Loaded fact" not in out and "Getting fact" not in out and "Starting operation" not in out, out[-3000:]
    else:  # capacity, unit exposure: read-only facts, no operation
        assert "Starting operation" not in out and "litellm-dbctl apply" not in out, out[-3000:]
    assert ready.out(FINGERPRINT) == before
