"""`litellm-runner validate`: every bad input an operator can write, reported before any host is contacted.

Each case builds a real pyinfra project in a temporary folder (this repository's inventory.py, deploy.py
and group_data/all.py, a YAML hosts file, a secrets file), makes one mistake in it, and runs
``litellm-runner validate --project DIR`` as an operator does (a real process). The hosts file names a
host that cannot be reached (port 2549 of 127.0.0.1: nothing listens there); nothing is contacted
anyway. tests/integration/test_validate_run.py feeds the same table through a real pyinfra run.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from litellm_runner import exitcodes
from litellm_runner.settings import DEFAULTS, merge
from tests.unit.group_data import REPO

CANARY = "sk-canary-validate-7f3e9d"  # a secret value that must never be printed
SECRETS = {
    "LITELLM_MASTER_KEY": CANARY,
    "LITELLM_SALT_KEY": "sk-salt-canary-validate-42",
    "DATABASE_URL": "postgresql://litellm:canarypw@127.0.0.1:5434/litellm",
    "VLLM_API_KEY": "vllm-canary-validate-99",
}
UNREACHABLE = {"name": "unreachable-host", "data": {"ssh_hostname": "127.0.0.1", "ssh_port": 2549}}
ALL_LINES = len((REPO / "group_data" / "all.py").read_text().splitlines())
AT = ALL_LINES + 2  # the line a case appends to group_data/all.py (after a blank line)


def project(folder: pathlib.Path, hosts: list[dict] | None = None, secrets: dict | None = None) -> dict[str, str]:
    """A pyinfra project in FOLDER, valid as made; the environment that runs it (hosts file, secrets file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("inventory.py", "deploy.py"):
        shutil.copy(REPO / name, folder / name)
    (folder / "group_data").mkdir(exist_ok=True)
    shutil.copy(REPO / "group_data" / "all.py", folder / "group_data" / "all.py")
    (folder / "hosts.yml").write_text(yaml.safe_dump({"litellm_hosts": hosts or [UNREACHABLE]}, sort_keys=False))
    secrets_file = folder / "secrets.env"
    secrets_file.write_text("".join(f"{k}={v}\n" for k, v in (SECRETS if secrets is None else secrets).items()))
    secrets_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    env.update(
        {
            "LITELLM_INVENTORY": str(folder / "hosts.yml"),
            "LITELLM_SECRETS_FILE": str(secrets_file),
            "LITELLM_GATE_CACHE": os.environ.get("LITELLM_GATE_CACHE", str(REPO / ".litellm-runner" / "cache")),
            "PYINFRA_PROGRESS": "off",
            "PYTHONPATH": str(REPO),  # the runner as if installed: the project folder holds none of it
        }
    )
    return env


def append(folder: pathlib.Path, text: str, name: str = "all.py") -> None:
    with (folder / "group_data" / name).open("a") as handle:
        handle.write("\n" + text + "\n" if name == "all.py" else text)


def host_data(folder: pathlib.Path, **data) -> None:
    """The unreachable host's data in the hosts file (its first entry), with DATA added (one line a key, in order);
    the other hosts stay."""
    hosts = yaml.safe_load((folder / "hosts.yml").read_text())["litellm_hosts"]
    hosts[0] = {"name": UNREACHABLE["name"], "data": {**UNREACHABLE["data"], **data}}
    (folder / "hosts.yml").write_text(yaml.safe_dump({"litellm_hosts": hosts}, sort_keys=False))


def secrets_text(folder: pathlib.Path, text: str, mode: int = 0o600) -> None:
    (folder / "secrets.env").write_bytes(text.encode())
    (folder / "secrets.env").chmod(mode)


def good_secrets(**changes) -> str:
    return "".join(f"{k}={v}\n" for k, v in {**SECRETS, **changes}.items() if v is not None)


MCP = "http://127.0.0.1:8091/mcp"
# (id, edit(folder, env), fragments of the output ("!": must NOT be in it); {at} = the line appended to
# group_data/all.py, {dir} = the project)
CASES = [
    (
        "setting-misspelt",
        lambda f, e: append(f, "litellm_num_wrokers = 2"),
        ["group_data/all.py:{at}: litellm_num_wrokers = 2: expected a known setting (see docs/settings.md); is it"],
    ),
    (
        "mode-as-a-number",
        lambda f, e: append(f, "litellm_dir_mode = 0o750"),
        ["litellm_dir_mode = 488 (= 0o750, a number): expected an octal mode string such as '0750'"],
    ),
    ("mode-world-writable", lambda f, e: append(f, 'litellm_dir_mode = "0777"'), ["litellm_dir_mode = '0777': "]),
    (
        "root-account",
        lambda f, e: append(f, 'litellm_user = "root"'),
        ["litellm_user = 'root': expected a user name like 'litellm' (not root"],
    ),
    (
        "model-without-name",
        lambda f, e: append(f, 'litellm_model_list = [{"litellm_params": {"model": "openai/gpt-4o"}}]'),
        ["litellm_model_list[0].model_name = None: expected a model name"],
    ),
    (
        "model-params-a-string",
        lambda f, e: append(f, 'litellm_model_list = [{"model_name": "m", "litellm_params": "openai/gpt-4o"}]'),
        ["litellm_model_list[0].litellm_params = 'openai/gpt-4o': expected a mapping with at least model"],
    ),
    (
        "model-without-model",
        lambda f, e: append(f, 'litellm_model_list = [{"model_name": "m", "litellm_params": {}}]'),
        ["litellm_model_list[0].litellm_params.model = None: expected a model such as 'hosted_vllm/local-model'"],
    ),
    (
        "model-unknown-provider",
        lambda f, e: append(
            f, 'litellm_model_list = [{"model_name": "m", "litellm_params": {"model": "nosuchprovider/foo"}}]'
        ),
        ["litellm_params.model = 'nosuchprovider/foo': expected PROVIDER/MODEL with a provider of the pinned litellm"],
    ),
    (
        "model-unknown-custom-provider",
        lambda f, e: append(
            f,
            'litellm_model_list = [{"model_name": "m", "litellm_params": '
            '{"model": "x/y", "custom_llm_provider": "nosuch"}}]',
        ),
        ["litellm_params.custom_llm_provider = 'nosuch': expected PROVIDER/MODEL with a provider"],
    ),
    (
        "model-key-not-declared",
        lambda f, e: append(
            f,
            'litellm_model_list = [{"model_name": "m", "litellm_params": '
            '{"model": "openai/gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"}}]',
        ),
        [
            "litellm_model_list[0].litellm_params.api_key = 'os.environ/OPENAI_API_KEY': expected an os.environ/NAME "
            "reference to a name listed in litellm_env_secrets (OPENAI_API_KEY is not"
        ],
    ),
    (
        "model-literal-key",
        lambda f, e: append(
            f,
            'litellm_model_list = [{"model_name": "m", "litellm_params": '
            f'{{"model": "openai/gpt-4o", "api_key": "{CANARY}"}}}}]',
        ),
        ["litellm_model_list[0].litellm_params.api_key = '***': expected an os.environ/NAME reference"],
    ),
    (
        "model-list-not-a-list",
        lambda f, e: append(f, 'litellm_model_list = {"model_name": "m"}'),
        ["litellm_model_list = {{'model_name': 'm'}}: expected a list of models"],
    ),
    (
        "group-file-misspelt",
        lambda f, e: append(f, "litellm_num_workers = 2\n", name="litellm_host.py"),
        [
            "group_data/litellm_host.py: group 'litellm_host' has no host in the inventory: expected a file named "
            "after a group of the inventory (all, inventory, litellm_hosts); is it misspelt?"
        ],
    ),
    (
        "group-data-syntax-error",
        lambda f, e: append(f, "litellm_num_workers = = 2"),
        ["group_data/all.py:{at}: invalid syntax: expected valid Python"],
    ),
    (
        "group-data-python-error",
        lambda f, e: append(f, "litellm_num_workers = WORKERS * 2"),
        ["group_data/all.py:{at}: NameError: name 'WORKERS' is not defined: expected group data that loads"],
    ),
    (
        "host-data-misspelt",
        lambda f, e: host_data(f, litellm_num_wrokers=2),
        ["hosts.yml:6: litellm_num_wrokers = 2: expected a known setting"],
    ),
    (
        "host-data-bad-port",
        lambda f, e: host_data(f, litellm_port=99999),
        ["hosts.yml:6: litellm_port = 99999: expected a port 1-65535"],
    ),
    (
        "hosts-file-not-yaml",
        lambda f, e: (f / "hosts.yml").write_text("litellm_hosts: [unclosed\n"),
        ["hosts.yml: not valid YAML"],
    ),
    (
        "password-in-hosts-file",
        lambda f, e: host_data(f, _sudo_password=CANARY),
        ["litellm_hosts[0].data._sudo_password = ***: a password is never written in a hosts file"],
    ),
    (
        "secrets-file-carriage-return",
        lambda f, e: secrets_text(f, good_secrets(VLLM_API_KEY="abc\rdef")),
        ["secrets.env:4: a carriage return (\\r) inside a value: systemd reads it as a line break", "!found no ="],
    ),
    (
        "secrets-file-missing",
        lambda f, e: e.update(LITELLM_SECRETS_FILE=str(f / "nowhere.env")),
        ["nowhere.env: the secrets file named by LITELLM_SECRETS_FILE does not exist", "!(set LITELLM_SECRETS_FILE"],
    ),
    (
        "secrets-file-readable-by-others",
        lambda f, e: secrets_text(f, good_secrets(), mode=0o644),
        ["secrets.env: mode 0644 lets others read secrets; expected 0600"],
    ),
    (
        "secret-with-a-line-break",
        lambda f, e: e.update(VLLM_API_KEY="first\nsecond"),
        [
            "the environment: VLLM_API_KEY: the value contains a line break (\\n); expected a single line",
            "!expected every name of litellm_env_secrets",
        ],
    ),
    (
        "secret-missing",
        lambda f, e: secrets_text(f, good_secrets(VLLM_API_KEY=None)),
        ["secret(s) VLLM_API_KEY not found in the environment or", "expected every name of litellm_env_secrets"],
    ),
    (
        "ports-not-distinct",
        lambda f, e: append(f, "litellm_port = 8181"),
        ["litellm_services[litellm-health-server].port = 8181: expected a port no other service uses"],
    ),
    (
        "bind-not-loopback",
        lambda f, e: append(f, 'litellm_bind = "0.0.0.0"'),
        ["litellm_bind = '0.0.0.0': expected a loopback address"],
    ),
    (
        "root-in-a-system-folder",
        lambda f, e: append(f, 'litellm_root = "/etc/litellm"'),
        ["litellm_root = '/etc/litellm': expected a dedicated absolute path", "inside /etc, a system directory"],
    ),
    (
        "settings-not-a-mapping",
        lambda f, e: append(f, 'general_settings = "pool=25"'),
        ["general_settings = 'pool=25': expected a mapping of LiteLLM setting -> value"],
    ),
    (
        "prompts-in-spend-logs",
        lambda f, e: append(f, 'general_settings = {"store_prompts_in_spend_logs": True}'),
        ["general_settings.store_prompts_in_spend_logs = True: expected false (prompts are personal data)"],
    ),
    (
        "master-key-in-settings",
        lambda f, e: append(f, f'general_settings = {{"master_key": "{CANARY}"}}'),
        ["general_settings.master_key = '***': expected no secret in group_data"],
    ),
    (
        "removed-setting",
        lambda f, e: append(f, 'litellm_db_host = "db.example.net"'),
        ["litellm_db_host = 'db.example.net': expected no litellm_db_host/port/name/user"],
    ),
    (
        "secret-in-plain-env",
        lambda f, e: append(f, f'litellm_env = {{"OPENAI_API_KEY": "{CANARY}"}}'),
        ["litellm_env.OPENAI_API_KEY = '***': expected no secret in litellm_env"],
    ),
    (
        "directory-listed-twice",
        lambda f, e: append(f, 'litellm_dirs = ["state", "logs", "state"]'),
        ["litellm_dirs[2] = 'state': expected a directory listed once (also litellm_dirs[0])"],
    ),
    (
        "timer-bad-calendar",
        lambda f, e: append(f, 'litellm_timers = {"litellm-backup": {"on_calendar": "every tuesday"}}'),
        ["litellm_timers[litellm-backup].on_calendar = 'every tuesday': expected a systemd OnCalendar expression"],
    ),
    (
        "mcp-server-bad-name",
        lambda f, e: append(f, f'litellm_mcp_servers = {{"tickets-1": {{"url": "{MCP}"}}}}'),
        ["litellm_mcp_servers = 'tickets-1': expected server names of letters, digits and _"],
    ),
    (
        "mcp-credential-not-declared",
        lambda f, e: append(
            f,
            f'litellm_mcp_servers = {{"tickets": {{"url": "{MCP}", "auth_type": "bearer_token", '
            '"authentication_token": "os.environ/TICKETS_TOKEN"}}',
        ),
        ["litellm_mcp_servers[tickets].authentication_token", "TICKETS_TOKEN"],
    ),
    (
        "secrets-file-path-relative",
        lambda f, e: host_data(f, litellm_secrets_file="secrets.env"),
        ["litellm_secrets_file = 'secrets.env': expected an absolute path to a KEY=value secrets file"],
    ),
    (
        "workers-zero",
        lambda f, e: append(f, "litellm_num_workers = 0"),
        ["litellm_num_workers = 0: expected a whole number of workers 1-64"],
    ),
    (
        "rotation-alias-twice",
        lambda f, e: append(f, 'litellm_key_rotation = [{"alias": "ci"}, {"alias": "ci"}]'),
        ["litellm_key_rotation[1].alias = 'ci': expected an alias listed once (also litellm_key_rotation[0])"],
    ),
]


def validate(folder: pathlib.Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "litellm_runner.cli.main", "validate", "--project", str(folder)],
        cwd="/",  # run from outside the project: --project names it
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def expected(fragment: str, folder: pathlib.Path) -> str:
    return fragment.format(at=AT, dir=folder)


def reported(fragment: str, folder: pathlib.Path, out: str) -> bool:
    """FRAGMENT is in OUT, or (with a leading "!") is not."""
    if fragment.startswith("!"):
        return expected(fragment[1:], folder) not in out
    return expected(fragment, folder) in out


def test_the_table_is_large_enough():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


def test_a_valid_project_validates(tmp_path):
    env = project(tmp_path)
    proc = validate(tmp_path, env)
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert proc.stdout.strip() == "valid: 1 hosts, no host contacted"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("case, edit, fragments", CASES, ids=[c[0] for c in CASES])
def test_each_bad_input_is_reported_with_its_expected_form(tmp_path, case, edit, fragments):
    env = project(tmp_path)
    edit(tmp_path, env)
    proc = validate(tmp_path, env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == exitcodes.FAILED, out
    for fragment in fragments:
        assert reported(fragment, tmp_path, out), f"{fragment!r}:\n{out}"
    assert "Traceback" not in out
    for value in SECRETS.values():
        assert value not in out
    assert "Connected" not in out and "Could not connect" not in out


def test_every_problem_is_reported_at_once(tmp_path):
    env = project(tmp_path)
    for _case, edit, _fragments in CASES[:8]:
        edit(tmp_path, env)  # the appended assignments: the last of each name wins, as in Python
    append(tmp_path, "litellm_num_wrokers = 2\nlitellm_user = 'root'\n")
    host_data(tmp_path, litellm_port=99999)
    proc = validate(tmp_path, env)
    assert proc.returncode == exitcodes.FAILED
    found = [line for line in proc.stderr.splitlines() if line.startswith("  host ")]
    assert len(found) >= 5, proc.stderr
    for fragment in ("litellm_num_wrokers = 2", "litellm_user = 'root'", "litellm_port = 99999", "nosuchprovider/foo"):
        assert fragment in proc.stderr


def test_no_project_is_said_as_such(tmp_path):
    proc = validate(tmp_path / "nowhere", project(tmp_path / "p"))
    assert proc.returncode == exitcodes.FAILED
    assert f"{tmp_path / 'nowhere'}: no such project folder" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = validate(empty, project(tmp_path / "p"))
    assert proc.returncode == exitcodes.FAILED
    assert "inventory.py: no inventory file: run from a pyinfra project's folder" in proc.stderr


# --- mapping settings merge key by key ----------------------------------------------------------


def test_a_partial_override_keeps_the_incident_fixes(tmp_path):
    """general_settings = {pool: 25} changes the pool only: the GDPR and logging fixes stay in the rendered config."""
    from litellm_runner.render import render_config

    merged = merge([DEFAULTS, {"general_settings": {"database_connection_pool_limit": 25}}])
    config = yaml.safe_load(render_config(merged))["general_settings"]
    assert config["database_connection_pool_limit"] == 25
    assert config["store_prompts_in_spend_logs"] is False
    assert config["disable_error_logs"] is False
    assert config["store_model_in_db"] is True


def test_the_partial_override_from_a_group_file_is_merged_by_the_project(tmp_path):
    """The same through pyinfra's own inventory loading: group_data/all.py, a group file, the host's data."""
    env = project(tmp_path)
    append(tmp_path, 'general_settings = {"database_connection_pool_limit": 25}\n', name="litellm_hosts.py")
    host_data(tmp_path, litellm_settings={"request_timeout": 60}, litellm_env={"EXTRA": "1"})
    proc = subprocess.run(
        [sys.executable, "-c", MERGED_OF_THE_PROJECT, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(proc.stdout)
    assert data["general_settings"] == {
        "database_connection_pool_limit": 25,
        "store_prompts_in_spend_logs": False,
        "disable_error_logs": False,
        "store_model_in_db": True,
    }
    assert data["litellm_settings"] == {"request_timeout": 60}
    assert data["litellm_env"] == {**DEFAULTS["litellm_env"], "EXTRA": "1"}


MERGED_OF_THE_PROJECT = """
import pathlib, sys, yaml
from litellm_runner.cli.validate import load_inventory
from litellm_runner import validate
inventory, problems = load_inventory(pathlib.Path(sys.argv[1]), "inventory.py")
assert not problems, problems
(host,) = list(inventory)
data = validate.host_data(inventory, host)
print(yaml.safe_dump({k: data[k] for k in ("general_settings", "litellm_settings", "litellm_env")}))
"""


@pytest.mark.parametrize(
    "layers, section, want",
    [
        ([{"general_settings": {"store_model_in_db": None}}], "general_settings", {"store_model_in_db": "absent"}),
        (
            [{"litellm_services": {"litellm-rerank": {"enabled": False}}}],
            "litellm_services",
            {"litellm-rerank": {**DEFAULTS["litellm_services"]["litellm-rerank"], "enabled": False}},
        ),
        (
            [{"litellm_timers": {"litellm-backup": {"on_calendar": "daily"}}}, {"litellm_timers": {"x": None}}],
            "litellm_timers",
            {"litellm-backup": {**DEFAULTS["litellm_timers"]["litellm-backup"], "on_calendar": "daily"}},
        ),
        ([{"general_settings": "not a mapping"}], "general_settings", "not a mapping"),
        (
            [{"litellm_mcp_servers": {"a": {"url": MCP}}}, {"litellm_mcp_servers": {"a": None}}],
            "litellm_mcp_servers",
            {},
        ),
    ],
    ids=["none-drops-a-key", "service-disabled-keeps-its-port", "timer-calendar-only", "non-mapping-replaces", "drop"],
)
def test_mapping_settings_merge_key_by_key(layers, section, want):
    merged = merge([DEFAULTS, *layers])[section]
    if isinstance(want, dict) and "absent" in want.values():
        assert [k for k, v in want.items() if v == "absent"][0] not in merged
        assert merged["database_connection_pool_limit"] == DEFAULTS[section]["database_connection_pool_limit"]
    elif isinstance(want, dict) and section != "litellm_mcp_servers":
        for key, value in want.items():
            assert merged[key] == value
    else:
        assert merged == want
    assert DEFAULTS["general_settings"]["store_model_in_db"] is True  # the defaults themselves never change


def test_the_provider_list_is_the_pinned_litellms():
    pins = (REPO / "files" / "litellm-venv-requirements.txt").read_text()
    version = re.search(r"^litellm(\[[^]]*\])?==(\S+)", pins, re.M).group(2)
    header = (REPO / "files" / "locks" / "litellm-providers.txt").read_text().splitlines()[0]
    assert header.startswith(f"# litellm {version}:"), "run scripts/provider-list after changing the litellm pin"
    from litellm_runner.schema import providers

    assert {"openai", "hosted_vllm", "anthropic", "azure", "bedrock"} <= providers()


# --- Ctrl-C during the checks ---------------------------------------------------------------------


HOOK = pathlib.Path(__file__).parent / "ctrl_c"  # its sitecustomize presses Ctrl-C at a moment of the gate
MOMENTS = {  # the moment of Ctrl-C: the hook's name of it (None: pressed from here, once ps shows pip-audit)
    "pip-audit runs": None,
    "pip-audit is being started": "start",
    "pip-audit asks the OSV server": "query",
}


def _audits(root: int) -> list[int]:
    """The pids of the processes below ROOT whose command line names pip-audit."""
    rows = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, timeout=30).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for row in rows.splitlines():
        pid, ppid, *args = row.split(None, 2)
        children.setdefault(int(ppid), []).append((int(pid), args[0] if args else ""))
    found, todo = [], [root]
    while todo:
        for pid, args in children.get(todo.pop(), []):
            found += [pid] if "pip-audit" in args else []
            todo.append(pid)
    return found


def _press_once_pip_audit_runs(proc: subprocess.Popen) -> list[int]:
    """Ctrl-C to PROC's process group once pip-audit runs below it (at most 60 s); the pids of pip-audit."""
    for _ in range(1200):
        audits = _audits(proc.pid)
        if proc.poll() is not None or audits:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    return audits


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "litellm_runner.cli.main", "validate", "--project", "{dir}"],
        [sys.executable, "-m", "litellm_runner.cli.main", "check", "--project", "{dir}"],
        [str(pathlib.Path(sys.executable).parent / "pyinfra"), "inventory.py", "deploy.py", "-y"],
    ],
    ids=["validate", "check", "pyinfra-run"],
)
def test_ctrl_c_during_the_checks_exits_130_interrupted(tmp_path, command, moment):
    """Ctrl-C (SIGINT to the terminal's process group) while pip-audit runs, at the moment it is being started
    (Popen has not returned) or asks the gate's OSV server (the SIGINT is handled where the query is answered):
    exit 130, "interrupted", no traceback, no pip-audit left running, no temporary file left; no host contacted."""
    folder, tmp, events = tmp_path / "project", tmp_path / "tmp", tmp_path / "events"
    tmp.mkdir()
    env = {**project(folder), "LITELLM_GATE_CACHE": "off", "TMPDIR": str(tmp)}  # pip-audit runs, in its own session
    if MOMENTS[moment]:
        env.update(PYTHONPATH=f"{HOOK}{os.pathsep}{env['PYTHONPATH']}", LITELLM_TEST_CTRL_C=str(events))
        env.update(LITELLM_TEST_CTRL_C_AT=MOMENTS[moment])
    proc = subprocess.Popen(
        [part.format(dir=folder) for part in command],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        audits = [] if MOMENTS[moment] else _press_once_pip_audit_runs(proc)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if MOMENTS[moment]:  # what the hook recorded: Ctrl-C at the moment, and nothing after it
        recorded = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
        assert [event["event"] for event in recorded] == [MOMENTS[moment]], (recorded, err)
        audits = recorded[0]["audits"]
    assert audits, "pip-audit was running when Ctrl-C was pressed"
    assert proc.returncode == exitcodes.INTERRUPTED, err
    assert "interrupted" in err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, err
    assert "pip-audit failed" not in err and "refusing" not in err
    assert "Connected" not in out + err
    assert [pid for pid in audits if pathlib.Path(f"/proc/{pid}").exists()] == []  # killed and reaped
    assert sorted(tmp.iterdir()) == []
