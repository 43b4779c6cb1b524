"""Typed desired state: the shipped defaults pass; each bad input is named with
its file, key, value and expected form (secrets masked)."""

import pytest

from litellm_runner.schema import SchemaError, check_hosts, validate
from tests.unit.group_data import defaults


def test_shipped_defaults_are_valid():
    assert validate(defaults()) == []


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
    (defaults(litellm_root="relative/path"), "litellm_root = 'relative/path': expected an absolute path"),
    (defaults(litellm_home="/home/../etc"), "litellm_home = '/home/../etc': expected an absolute path"),
    (defaults(litellm_dir_mode="0777"), "litellm_dir_mode = '0777': expected an octal mode string such as '0750', not world-writable"),
    (defaults(litellm_dir_mode="750"), "litellm_dir_mode = '750': expected an octal mode string"),
    (defaults(litellm_dirs=["/etc"]), "litellm_dirs = ['/etc']: expected a list of paths relative to litellm_root"),
    (defaults(litellm_bind="0.0.0.0"), "litellm_bind = '0.0.0.0': expected a loopback address"),
    (defaults(litellm_port=70000), "litellm_port = 70000: expected a port 1-65535"),
    (defaults(litellm_num_workers=0), "litellm_num_workers = 0: expected a whole number of workers 1-64"),
    (defaults(litellm_num_workers="4"), "litellm_num_workers = '4': expected a whole number of workers 1-64"),
    (defaults(litellm_linger="yes"), "litellm_linger = 'yes': expected true or false"),
    (defaults(litellm_db_host="10.0.0.5"), "litellm_db_host = '10.0.0.5': expected the database's loopback address"),
    (defaults(litellm_db_idle_minutes=-5), "litellm_db_idle_minutes = -5: expected minutes, 1-1440"),
    (defaults(litellm_env_secrets=["LITELLM MASTER"]), "litellm_env_secrets = ['LITELLM MASTER']: expected a list of environment variable names"),
    (defaults(litellm_num_worker=4), "litellm_num_worker = 4: expected a known setting (see group_data/all.py); is it misspelt?"),
    (with_setting("general_settings", database_connection_pool_limit=-1),
     "general_settings.database_connection_pool_limit = -1: expected a whole number 1-1000"),
    (with_setting("general_settings", store_prompts_in_spend_logs=True),
     "general_settings.store_prompts_in_spend_logs = True: expected false (prompts are personal data)"),
    (with_setting("general_settings", disable_error_logs=True),
     "general_settings.disable_error_logs = True: expected false (error logs stay on)"),
    (with_setting("general_settings", master_key="sk-secret-canary"),
     "general_settings.master_key = '***': expected no secret in group_data"),
    (with_setting("litellm_settings", request_timeout=0), "litellm_settings.request_timeout = 0: expected seconds, 1-3600"),
    (with_service("litellm-metrics", port=8181),
     "litellm_services[litellm-metrics].port = 8181: expected a port no other service uses (also litellm-health-server)"),
    (with_service("litellm-rerank", port="8079"), "litellm_services[litellm-rerank] = "),
    (with_timer("litellm-backup", on_calendar="every day at 2"),
     "litellm_timers[litellm-backup].on_calendar = 'every day at 2': expected a systemd OnCalendar expression"),
    (with_timer("litellm-backup", randomized_delay="soon"),
     "litellm_timers[litellm-backup].randomized_delay = 'soon': expected a systemd duration such as '15min' or '1h'"),
    (defaults(litellm_model_list=[{"model_name": "m", "litellm_params": {"model": "x", "api_key": "sk-live-canary"}}]),
     "litellm_model_list[0].litellm_params.api_key = '***': expected an os.environ/NAME reference"),
    (defaults(litellm_key_rotation=[{"alias": "ops", "min_days_left": 100, "valid_days": 90}]),
     "litellm_key_rotation[0] = {'alias': 'ops', 'min_days_left': 100, 'valid_days': 90}: expected 0 <= min_days_left < valid_days <= 3650"),
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
    assert "host b: group_data/all.py: litellm_bind = '::'" in text and "host b: group_data/all.py: litellm_num_workers = 99" in text


@pytest.mark.parametrize("expr, ok", [
    ("*-*-* 02:00:00", True), ("hourly", True), ("Mon..Fri *-*-* 09:30", True),
    ("Mon *-*-* 25:00", False), ("every day at 2", False), ("*-*-* 02:00:00\nExecStart=/bin/sh", False),
])
def test_on_calendar_is_checked_by_systemd(expr, ok):
    errors = validate(with_timer("litellm-backup", on_calendar=expr))
    assert (errors == []) is ok, errors
    if not ok:
        assert "expected a systemd OnCalendar expression" in errors[0]


@pytest.mark.parametrize("delay, ok", [("15min", True), ("5m", True), ("1h", True), ("1h 30min", True), ("90", True),
                                       ("15 minutes please", False), ("-5m", False), ("", False)])
def test_durations(delay, ok):
    assert (validate(with_timer("litellm-backup", randomized_delay=delay)) == []) is ok


def test_secret_in_litellm_env_is_masked():
    errors = validate(defaults(litellm_env={"REDIS_HOST": "127.0.0.1", "VLLM_API_KEY": "canary-token"}))
    assert errors == ["group_data/all.py: litellm_env.VLLM_API_KEY = '***': expected no secret in litellm_env: "
                      "list its name in litellm_env_secrets, its value comes from the secret source"]
