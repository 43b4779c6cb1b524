"""Typed desired state: the shipped defaults pass; each bad input is named with
its file, key, value and expected form (secrets masked)."""

import pytest

from litellm_runner.schema import SchemaError, check_hosts, validate
from tests.unit.group_data import defaults


def test_shipped_defaults_are_valid():
    assert validate(defaults()) == []


D_SERVICES = defaults()["litellm_services"]
TIMER = {"enabled": True, "on_calendar": "hourly", "randomized_delay": "5min", "command": "{python} {bin}/x"}


def with_service(name, **kv):
    d = defaults()
    d["litellm_services"] = {**d["litellm_services"], name: {**d["litellm_services"][name], **kv}}
    return d


def with_timer(name, **kv):
    d = defaults()
    d["litellm_timers"] = {**d["litellm_timers"], name: {**d["litellm_timers"][name], **kv}}
    return d


def with_setting(section, **kv):
    d = defaults()
    d[section] = {**d[section], **kv}
    return d


BAD = [
    (defaults(litellm_user="Root User"), "litellm_user = 'Root User': expected a user name like 'litellm'"),
    (defaults(litellm_group="9x"), "litellm_group = '9x': expected a group name"),
    (
        defaults(litellm_root="relative/path"),
        "litellm_root = 'relative/path': expected a dedicated absolute path such as "
        "/home/litellm/litellm (not absolute)",
    ),
    (
        defaults(litellm_home="/home/../etc"),
        "litellm_home = '/home/../etc': expected a dedicated absolute path such as /home/litellm "
        "(normalized: no '..', '.', '//' or trailing '/')",
    ),
    (
        defaults(litellm_dir_mode="0777"),
        "litellm_dir_mode = '0777': expected an octal mode string such as '0750', not world-writable",
    ),
    (defaults(litellm_dir_mode="750"), "litellm_dir_mode = '750': expected an octal mode string"),
    (defaults(litellm_dirs=["/etc"]), "litellm_dirs[0] = '/etc': expected a normalized path relative to litellm_root"),
    (defaults(litellm_dirs="state"), "litellm_dirs = 'state': expected a list of paths relative to litellm_root"),
    (defaults(litellm_bind="0.0.0.0"), "litellm_bind = '0.0.0.0': expected a loopback address"),
    (defaults(litellm_port=70000), "litellm_port = 70000: expected a port 1-65535"),
    (defaults(litellm_num_workers=0), "litellm_num_workers = 0: expected a whole number of workers 1-64"),
    (defaults(litellm_num_workers="4"), "litellm_num_workers = '4': expected a whole number of workers 1-64"),
    (defaults(litellm_linger="yes"), "litellm_linger = 'yes': expected true or false"),
    (
        defaults(litellm_db_host="10.0.0.5"),
        "litellm_db_host = '10.0.0.5': expected no litellm_db_host/port/name/user: the database is the one the "
        "DATABASE_URL secret names",
    ),
    (defaults(litellm_db_port=5434), "litellm_db_port = 5434: expected no litellm_db_host/port/name/user"),
    (
        with_service("litellm", port=4000),
        "litellm_services[litellm].port = 4000: expected no port here: the proxy listens on litellm_port",
    ),
    (
        with_service("litellm", enabled="yes"),
        "litellm_services[litellm] = {'enabled': 'yes'}: expected {enabled: true|false} (the proxy's "
        "port is litellm_port)",
    ),
    (
        with_service("litellm-metrics", port=4000),
        "litellm_services[litellm-metrics].port = 4000: expected a port no other service uses (also litellm_port)",
    ),
    (defaults(litellm_db_idle_minutes=-5), "litellm_db_idle_minutes = -5: expected minutes, 1-1440"),
    (
        defaults(litellm_env_secrets=["LITELLM MASTER"]),
        "litellm_env_secrets = ['LITELLM MASTER']: expected a list of environment variable names",
    ),
    (
        defaults(litellm_num_worker=4),
        "litellm_num_worker = 4: expected a known setting (see docs/settings.md); is it misspelt?",
    ),
    (
        with_setting("general_settings", database_connection_pool_limit=-1),
        "general_settings.database_connection_pool_limit = -1: expected a whole number 1-1000",
    ),
    (
        with_setting("general_settings", store_prompts_in_spend_logs=True),
        "general_settings.store_prompts_in_spend_logs = True: expected false (prompts are personal data)",
    ),
    (
        with_setting("general_settings", disable_error_logs=True),
        "general_settings.disable_error_logs = True: expected false (error logs stay on)",
    ),
    (
        with_setting("general_settings", master_key="sk-secret-canary"),
        "general_settings.master_key = '***': expected no secret in group_data",
    ),
    (
        with_setting("litellm_settings", request_timeout=0),
        "litellm_settings.request_timeout = 0: expected seconds, 1-3600",
    ),
    (
        with_service("litellm-metrics", port=8181),
        "litellm_services[litellm-metrics].port = 8181: expected a port no other service uses (also "
        "litellm-health-server)",
    ),
    (with_service("litellm-rerank", port="8079"), "litellm_services[litellm-rerank] = "),
    (
        with_timer("litellm-backup", on_calendar="every day at 2"),
        "litellm_timers[litellm-backup].on_calendar = 'every day at 2': expected a systemd OnCalendar expression",
    ),
    (
        with_timer("litellm-backup", randomized_delay="soon"),
        "litellm_timers[litellm-backup].randomized_delay = 'soon': expected a systemd duration such as '15min' or '1h'",
    ),
    (
        defaults(
            litellm_model_list=[{"model_name": "m", "litellm_params": {"model": "x", "api_key": "sk-live-canary"}}]
        ),
        "litellm_model_list[0].litellm_params.api_key = '***': expected an os.environ/NAME reference",
    ),
    (
        defaults(litellm_key_rotation=[{"alias": "ops", "min_days_left": 100, "valid_days": 90}]),
        "litellm_key_rotation[0] = {'alias': 'ops', 'min_days_left': 100, 'valid_days': 90}: "
        "expected 1 <= min_days_left < valid_days <= 3650",
    ),
]


@pytest.mark.parametrize("data, message", BAD, ids=[m.split(" =")[0] for _, m in BAD])
def test_bad_input_is_named(data, message):
    errors = validate(data)
    assert len(errors) == 1, errors
    assert errors[0].startswith("group_data/all.py: ")
    assert message in errors[0]
    assert "canary" not in errors[0]


def test_check_hosts_lists_every_problem_of_every_host():
    with pytest.raises(SchemaError) as err:
        check_hosts([("a", defaults(litellm_port=0)), ("b", defaults(litellm_bind="::", litellm_num_workers=99))])
    text = str(err.value)
    assert text.startswith("refusing to touch any host, the desired state is invalid:")
    assert "host a: group_data/all.py: litellm_port = 0" in text
    assert (
        "host b: group_data/all.py: litellm_bind = '::'" in text
        and "host b: group_data/all.py: litellm_num_workers = 99" in text
    )


@pytest.mark.parametrize(
    "expr, ok",
    [
        ("*-*-* 02:00:00", True),
        ("hourly", True),
        ("Mon..Fri *-*-* 09:30", True),
        ("Mon *-*-* 25:00", False),
        ("every day at 2", False),
        ("*-*-* 02:00:00\nExecStart=/bin/sh", False),
    ],
)
def test_on_calendar_is_checked_by_systemd(expr, ok):
    errors = validate(with_timer("litellm-backup", on_calendar=expr))
    assert (errors == []) is ok, errors
    if not ok:
        assert "expected a systemd OnCalendar expression" in errors[0]


def test_every_timer_is_checked_and_only_the_bad_one_named(monkeypatch):
    """One systemd-analyze run checks all timers; when one is bad, each is checked on its own to name it."""
    from litellm_runner import schema

    monkeypatch.setattr(schema, "_calendars", {})
    data = with_timer("litellm-backup", on_calendar="Mon *-*-* 25:00")
    data["litellm_timers"]["job-b"] = {**TIMER, "on_calendar": "*-*-* 03:00:00"}
    errors = validate(data)
    assert len(errors) == 1 and "litellm_timers[litellm-backup].on_calendar = 'Mon *-*-* 25:00'" in errors[0]
    assert schema._calendars["*-*-* 03:00:00"][0] is True


@pytest.mark.parametrize(
    "delay, ok",
    [
        ("15min", True),
        ("5m", True),
        ("1h", True),
        ("1h 30min", True),
        ("90", True),
        ("15 minutes please", False),
        ("-5m", False),
        ("", False),
    ],
)
def test_durations(delay, ok):
    assert (validate(with_timer("litellm-backup", randomized_delay=delay)) == []) is ok


def test_secret_in_litellm_env_is_masked():
    errors = validate(defaults(litellm_env={"REDIS_HOST": "127.0.0.1", "VLLM_API_KEY": "canary-token"}))
    assert errors == [
        "group_data/all.py: litellm_env.VLLM_API_KEY = '***': expected no secret in litellm_env: "
        "list its name in litellm_env_secrets, its value comes from the secret source"
    ]


def rotation(*entries):
    return defaults(litellm_key_rotation=list(entries))


OPS = {"alias": "ops", "min_days_left": 14, "valid_days": 90, "grace_hours": 24}
LEAVE_ROOT = "the deployment root may be inside the home, never the home inside the deployment root"
SYSTEM = "a system directory; /home/NAME, /srv/NAME, /opt/NAME and /var/lib/NAME are fine"
# (data, fragment of the one message): issue #12 item 4, each reproduced gap
GAPS = [
    (
        defaults(litellm_root="/"),
        "litellm_root = '/': expected a dedicated absolute path such as /home/litellm/litellm "
        "(not / itself: a directory of its own such as /srv/litellm)",
    ),
    (
        defaults(litellm_root="/etc"),
        f"litellm_root = '/etc': expected a dedicated absolute path such as /home/litellm/litellm (/etc, {SYSTEM})",
    ),
    (
        defaults(litellm_root="/usr"),
        f"litellm_root = '/usr': expected a dedicated absolute path such as /home/litellm/litellm (/usr, {SYSTEM})",
    ),
    (
        defaults(litellm_root="/usr/local/litellm"),
        "litellm_root = '/usr/local/litellm': expected a dedicated absolute path such as "
        f"/home/litellm/litellm (inside /usr, {SYSTEM})",
    ),
    (defaults(litellm_root="/var"), f"(/var, {SYSTEM})"),
    (
        defaults(litellm_root="/var/lib"),
        "litellm_root = '/var/lib': expected a dedicated absolute path such as /home/litellm/litellm "
        "(not /var/lib itself",
    ),
    (defaults(litellm_root="/var/log/litellm"), f"(inside /var, {SYSTEM})"),
    (defaults(litellm_root="/tmp/litellm"), f"(inside /tmp, {SYSTEM})"),
    (defaults(litellm_root="/root/litellm"), f"(inside /root, {SYSTEM})"),
    (defaults(litellm_root="/run/litellm"), f"(inside /run, {SYSTEM})"),
    (defaults(litellm_root="/srv"), "(not /srv itself"),
    (defaults(litellm_root="/opt"), "(not /opt itself"),
    (
        defaults(litellm_home="/home"),
        "litellm_home = '/home': expected a dedicated absolute path such as /home/litellm (not /home itself",
    ),
    (
        defaults(litellm_home="/etc/litellm"),
        "litellm_home = '/etc/litellm': expected a dedicated absolute path such as /home/litellm "
        f"(inside /etc, {SYSTEM})",
    ),
    (
        defaults(litellm_root="/srv/x;touch /tmp/pwned"),
        "litellm_root = '/srv/x;touch /tmp/pwned': expected a dedicated absolute path such as /home/litellm/litellm "
        "(only letters, digits and / . _ - @ +)",
    ),
    (defaults(litellm_root="/srv/{x}"), "(only letters, digits and / . _ - @ +)"),
    (defaults(litellm_root="/srv/lit llm"), "(only letters, digits and / . _ - @ +)"),
    (
        defaults(litellm_root="/srv//litellm"),
        "litellm_root = '/srv//litellm': expected a dedicated absolute path such as /home/litellm/litellm (normalized",
    ),
    (defaults(litellm_root="/srv/litellm/"), "(normalized: no '..', '.', '//' or trailing '/')"),
    (defaults(litellm_root="/srv/./litellm"), "(normalized: no '..', '.', '//' or trailing '/')"),
    (defaults(litellm_root="/srv/litellm\n"), "(only letters, digits and / . _ - @ +)"),
    (
        defaults(litellm_python="/usr/bin/python3 -c 'import os'"),
        "litellm_python = \"/usr/bin/python3 -c 'import os'\": expected an absolute path to python3 (only letters",
    ),
    (
        defaults(litellm_root="/srv/litellm", litellm_home="/srv/litellm/home"),
        f"litellm_home = '/srv/litellm/home': expected a home outside litellm_root ('/srv/litellm'): {LEAVE_ROOT}",
    ),
    (
        defaults(litellm_root="/srv/litellm", litellm_home="/srv/litellm"),
        "litellm_home = '/srv/litellm': expected a home outside litellm_root",
    ),
    (
        with_timer("litellm-backup", command="{python} x\nExecStartPre=/bin/sh -c id"),
        "litellm_timers[litellm-backup].command = '{python} x\\nExecStartPre=/bin/sh -c id': "
        "expected a one-line command",
    ),
    (
        with_timer("litellm-backup", command="{python} x\r"),
        "litellm_timers[litellm-backup].command = '{python} x\\r': expected a one-line command",
    ),
    (
        with_timer("litellm-backup", command="{python} {home}/x"),
        "litellm_timers[litellm-backup].command = '{python} {home}/x': expected a command line whose "
        "only {placeholders} are",
    ),
    (
        with_service("litellm-rerank", command="x --host {bind}\nExecStartPost=/bin/id"),
        "litellm_services[litellm-rerank].command = 'x --host {bind}\\nExecStartPost=/bin/id': "
        "expected a one-line command",
    ),
    (
        with_service("litellm-rerank", command=""),
        "litellm_services[litellm-rerank].command = '': expected a command line",
    ),
    (
        defaults(litellm_services={**D_SERVICES, "vllm": {"enabled": True, "port": 8000}}),
        "litellm_services[vllm].command = None: expected a command line (only litellm-health-server "
        "and litellm-metrics have a built-in one)",
    ),
    (
        defaults(litellm_env={"REDIS_HOST": "127.0.0.1\nLITELLM_MASTER_KEY=sk-canary"}),
        "litellm_env.REDIS_HOST = '***': expected a one-line value (no \\n, \\r or NUL)",
    ),
    (defaults(litellm_env={"REDIS_HOST": "127.0.0.1\r"}), "litellm_env.REDIS_HOST = '***': expected a one-line value"),
    (
        defaults(litellm_timers={"../../../etc/systemd/system/evil": TIMER}),
        "litellm_timers = '../../../etc/systemd/system/evil': expected timer names that are systemd unit names",
    ),
    (
        defaults(litellm_timers={"litellm": TIMER}),
        "litellm_timers = 'litellm': expected a timer name no service uses: the timer runs its own litellm.service, "
        "which would replace litellm_services[litellm]",
    ),
    (
        defaults(litellm_timers={"litellm-metrics": TIMER}),
        "litellm_timers = 'litellm-metrics': expected a timer name no service uses",
    ),
    (defaults(litellm_timers={"-litellm": TIMER}), "litellm_timers = '-litellm': expected timer names that are"),
    (defaults(litellm_timers={".hidden": TIMER}), "litellm_timers = '.hidden': expected timer names that are"),
    (defaults(litellm_timers={"a..b": TIMER}), "litellm_timers = 'a..b': expected timer names that are"),
    (defaults(litellm_timers={"job@": TIMER}), "litellm_timers = 'job@': expected timer names that are"),
    (defaults(litellm_timers={"x" * 65: TIMER}), "expected timer names that are"),
    (defaults(litellm_timers={"a\nb": TIMER}), "litellm_timers = 'a\\nb': expected timer names that are"),
    (
        defaults(litellm_services={**D_SERVICES, "../x": {"enabled": True, "port": 8000, "command": "x"}}),
        "litellm_services = '../x': expected service names that are systemd unit names",
    ),
    (
        defaults(litellm_timers={"job": {**TIMER, "oncalendar": "hourly"}}),
        "litellm_timers[job].oncalendar = 'hourly': expected one of enabled, on_calendar, "
        "randomized_delay, command (is it misspelt?)",
    ),
    (
        with_service("litellm-rerank", Command="x"),
        "litellm_services[litellm-rerank].Command = 'x': expected one of enabled, port, command (is it misspelt?)",
    ),
    (
        defaults(litellm_bind="::1"),
        "litellm_bind = '::1': expected a loopback address such as 127.0.0.1 (only 127.0.0.1: the "
        "health and stub servers listen on IPv4 only",
    ),
    (
        defaults(litellm_bind="127.0.0.2"),
        "litellm_bind = '127.0.0.2': expected a loopback address such as 127.0.0.1 (only 127.0.0.1:",
    ),
    (defaults(litellm_user="litellm\n"), "litellm_user = 'litellm\\n': expected a user name"),
    (
        with_timer("litellm-backup", randomized_delay="15min\n"),
        "litellm_timers[litellm-backup].randomized_delay = '15min\\n'",
    ),
    (
        rotation({**OPS, "grace_hours": -1}),
        "litellm_key_rotation[0].grace_hours = -1: expected hours the old key stays valid, 1-720",
    ),
    (
        rotation({**OPS, "grace_hours": "24"}),
        "litellm_key_rotation[0].grace_hours = '24': expected hours the old key stays valid, 1-720",
    ),
    (rotation({**OPS, "grace_hours": 10000}), "litellm_key_rotation[0].grace_hours = 10000: expected hours"),
    (rotation({**OPS, "valid_days": True}), "litellm_key_rotation[0].valid_days = True: expected days, 1-3650"),
    (rotation({**OPS, "min_days_left": 0}), "litellm_key_rotation[0].min_days_left = 0: expected days, 1-3650"),
    (
        rotation({**OPS, "grace_hour": 24}),
        "litellm_key_rotation[0].grace_hour = 24: expected one of alias, min_days_left, valid_days, "
        "grace_hours (is it misspelt?)",
    ),
    (
        rotation({**OPS, "alias": ""}),
        "litellm_key_rotation[0].alias = '': expected a key alias: a non-empty one-line string",
    ),
    (rotation({**OPS, "alias": "ops\nx"}), "litellm_key_rotation[0].alias = 'ops\\nx': expected a key alias"),
    (rotation({"min_days_left": 1}), "litellm_key_rotation[0] = {'min_days_left': 1}: expected {alias: NAME"),
    (
        rotation(OPS, {**OPS, "valid_days": 30}),
        "litellm_key_rotation[1].alias = 'ops': expected an alias listed once (also litellm_key_rotation[0])",
    ),
    (
        defaults(litellm_key_rotation={"alias": "ops"}),
        "litellm_key_rotation = {'alias': 'ops'}: expected a list of {alias",
    ),
    (
        defaults(litellm_dirs=["state", "logs", "state"]),
        "litellm_dirs[2] = 'state': expected a directory listed once (also litellm_dirs[0])",
    ),
    (
        defaults(litellm_dirs=["state", "state/"]),
        "litellm_dirs[1] = 'state/': expected a normalized path relative to litellm_root",
    ),
    (defaults(litellm_dirs=["state/../../etc"]), "litellm_dirs[0] = 'state/../../etc': expected a normalized path"),
    (defaults(litellm_dirs=["state//x"]), "litellm_dirs[0] = 'state//x': expected a normalized path"),
    (defaults(litellm_dirs=["."]), "litellm_dirs[0] = '.': expected a normalized path"),
    (defaults(litellm_dirs=["a;b"]), "litellm_dirs[0] = 'a;b': expected a normalized path"),
    (
        defaults(litellm_system_packages=["curl; touch /tmp/pwned"]),
        "litellm_system_packages = ['curl; touch /tmp/pwned']: expected a list of Debian package names",
    ),
    (
        defaults(litellm_system_packages=["Curl"]),
        "litellm_system_packages = ['Curl']: expected a list of Debian package names",
    ),
]


@pytest.mark.parametrize("data, message", GAPS, ids=[m.split(":")[0][:60] for _, m in GAPS])
def test_gaps_are_closed(data, message):
    errors = validate(data)
    assert len(errors) == 1, errors
    assert errors[0].startswith("group_data/all.py: ")
    assert message in errors[0], errors[0]
    assert "canary" not in errors[0]


@pytest.mark.parametrize(
    "overrides",
    [
        dict(litellm_root="/LAB/@litellm", litellm_home="/LAB/home+x"),
        dict(litellm_root="/var/lib/litellm", litellm_home="/var/lib/litellm-home"),
        dict(litellm_root="/srv/litellm", litellm_home="/home/litellm"),
        dict(litellm_root="/opt/litellm/deploy", litellm_home="/opt/litellm"),
        dict(litellm_root="/home/litellm/litellm", litellm_home="/home/litellm"),
        dict(litellm_root="/litellm", litellm_home="/home/litellm"),
        dict(litellm_key_rotation=[OPS, {"alias": "ci", "grace_hours": 1}]),
        dict(litellm_timers={"Nightly_job.v2": TIMER, "report@daily": TIMER}),
    ],
)
def test_dedicated_paths_and_names_pass(overrides):
    assert validate(defaults(**overrides)) == []


@pytest.mark.parametrize("command", ["{python} {root}/bin/litellm-backup", "{root}/venv/bin/python -m x"])
def test_a_command_that_runs_the_accounts_copy_of_roots_code_is_refused(command):
    errors = validate(with_timer("litellm-backup", command=command))
    assert len(errors) == 1 and "litellm_timers[litellm-backup].command" in errors[0], errors
    assert "{bin}/TOOL and {python}, not the account's {root}/bin or {root}/venv" in errors[0]


def test_root_s_folders_are_no_state_folders_of_the_account():
    errors = validate(defaults(litellm_dirs=["state", "bin"]))
    assert len(errors) == 1 and "litellm_dirs" in errors[0] and "'bin' is root's code" in errors[0], errors
