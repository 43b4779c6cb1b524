"""litellm-runner: one command, every subcommand's --help, and one exit-code table (docs/command-line.md's) that
every subcommand keeps, run as an operator runs them (a real process, real inputs)."""

import os
import re
import signal
import subprocess
import sys
import threading

import pytest

from litellm_runner import exitcodes
from litellm_runner.cli.main import COMMANDS
from litellm_runner.render import render_config
from tests.unit.group_data import REPO, defaults

INCIDENT = REPO / "sandbox" / "incident"
GOOD_ENV = {
    "LITELLM_MASTER_KEY": "sk-canary-0a1b2c3d4e5f",
    "LITELLM_SALT_KEY": "sk-salt-canary-9z8y7x",
    "VLLM_API_KEY": "canary-vllm-token",
    "DATABASE_URL": "postgresql://litellm:canarypw@127.0.0.1:5434/litellm",
}


def runner(*args, env=None, module="litellm_runner.cli.main", timeout=300):
    """``litellm-runner ARGS`` (its module form: the console script calls the same main)."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def lint_inputs(tmp_path_factory):
    """The shipped config with a good env file (0600: clean), the same env readable by others (a warning only)."""
    folder = tmp_path_factory.mktemp("lint")
    config = folder / "config.yaml"
    config.write_text(render_config(defaults()))
    os.chmod(config, 0o640)
    for name, mode in (("env.private", 0o600), ("env.readable", 0o644)):
        (folder / name).write_text("".join(f"{k}={v}\n" for k, v in GOOD_ENV.items()))
        os.chmod(folder / name, mode)
    return folder


def documented_tables() -> list[list[str]]:
    """The Markdown tables of the "litellm-runner" section of docs/command-line.md, each a list of its rows."""
    page = (REPO / "docs" / "command-line.md").read_text()
    section = page[page.index("\n## litellm-runner\n") + 1 :].split("\n## ")[0]
    return [block.splitlines() for block in section.split("\n\n") if block.startswith("|")]


def test_the_documented_table_is_the_exit_code_table():
    commands, codes = documented_tables()
    assert "\n".join(codes) == exitcodes.markdown()
    documented = [row.split("`")[1].split()[0] for row in commands[2:]]
    assert documented == list(COMMANDS)
    assert [code for code, _, _ in exitcodes.TABLE] == [
        exitcodes.OK,
        exitcodes.FAILED,
        exitcodes.FINDINGS,
        exitcodes.USAGE,
        exitcodes.INTERRUPTED,
    ]
    assert len({code for code, _, _ in exitcodes.TABLE}) == len(exitcodes.TABLE)


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)], ids=["litellm-runner", *COMMANDS])
def test_help_of_the_tool_and_every_subcommand(command):
    proc = runner(*command, "--help")
    assert proc.returncode == exitcodes.OK, proc.stderr
    prog = " ".join(["litellm-runner", *command])
    assert proc.stdout.startswith(f"usage: {prog} ") and proc.stderr == ""
    for code, name, _ in exitcodes.TABLE:  # every --help shows the one table
        assert re.search(rf"^  {code}\s+{name}$", proc.stdout, re.M), proc.stdout
    if not command:
        for name in COMMANDS:
            assert re.search(rf"^  {name}\s+\S", proc.stdout, re.M)


# (id, arguments ({lint} = the lint inputs' folder), expected code, a fragment of stdout + stderr)
CASES = [
    ("no-command", [], exitcodes.USAGE, "the following arguments are required: COMMAND"),
    ("version", ["--version"], exitcodes.OK, "litellm-runner 0.1.0"),
    ("unknown-command", ["deploy"], exitcodes.USAGE, "invalid choice: 'deploy'"),
    ("lint-clean", ["lint", "{lint}/config.yaml", "--env-file", "{lint}/env.private"], exitcodes.OK, "lint: clean"),
    (
        "lint-warnings-only",
        ["lint", "{lint}/config.yaml", "--env-file", "{lint}/env.readable"],
        exitcodes.FINDINGS,
        "LINT-10 warning",
    ),
    (
        "lint-critical",
        ["lint", INCIDENT / "config.yaml", "--env-file", INCIDENT / "env.litellm"],
        exitcodes.FAILED,
        "lint: critical findings",
    ),
    ("lint-unreadable", ["lint", "{lint}/missing.yaml"], exitcodes.FAILED, "No such file or directory"),
    ("lint-no-config", ["lint"], exitcodes.USAGE, "the following arguments are required: config"),
    ("lint-unknown-option", ["lint", "{lint}/config.yaml", "--fix"], exitcodes.USAGE, "unrecognized arguments: --fix"),
    ("cve-gate-clean", ["cve-gate", "files/litellm-venv-requirements.txt"], exitcodes.OK, "no known vulnerability"),
    (
        "cve-gate-refused",
        ["cve-gate", INCIDENT / "venv-requirements.txt"],
        exitcodes.FAILED,
        "CVE gate refuses",
    ),
    ("cve-gate-unreadable", ["cve-gate", "{lint}/missing.txt"], exitcodes.FAILED, "No such file or directory"),
    ("cve-gate-two-files", ["cve-gate", "a.txt", "b.txt"], exitcodes.USAGE, "unrecognized arguments: b.txt"),
    ("osv-server-unreadable", ["osv-server", "{lint}/missing.json"], exitcodes.FAILED, "No such file or directory"),
    ("osv-server-two-files", ["osv-server", "a.json", "b.json"], exitcodes.USAGE, "unrecognized arguments: b.json"),
    ("sandbox-no-action", ["sandbox"], exitcodes.USAGE, "the following arguments are required: action"),
    ("sandbox-unknown-action", ["sandbox", "start"], exitcodes.USAGE, "invalid choice: 'start'"),
    ("sandbox-bad-port", ["sandbox", "up", "--port", "ssh"], exitcodes.USAGE, "invalid int value: 'ssh'"),
    (
        "check-bad-parallel",
        ["check", "--parallel", "many"],
        exitcodes.USAGE,
        "'many': expected a whole number of hosts",
    ),
    ("check-negative-parallel", ["check", "--parallel", "-3"], exitcodes.USAGE, "-3: expected a whole number of hosts"),
    ("check-unknown-option", ["check", "--bogus"], exitcodes.USAGE, "No such option '--bogus'"),
    (
        "check-report-in-a-missing-folder",
        ["check", "--json", "/nonexistent/dir/x.json"],
        exitcodes.USAGE,
        "/nonexistent/dir/x.json: the folder /nonexistent/dir does not exist: expected a path in an existing folder",
    ),
    ("check-report-a-folder", ["check", "--junit", "{lint}"], exitcodes.USAGE, ": is a folder: expected a file path"),
    ("validate-unknown-option", ["validate", "--bogus"], exitcodes.USAGE, "unrecognized arguments: --bogus"),
    ("validate-no-inventory", ["validate"], exitcodes.FAILED, "sandbox no-such-sandbox is not running"),
    ("lock-no-pins", ["lock", "--project", "{lint}"], exitcodes.FAILED, "no pins file: expected the file"),
    ("lock-two-pins", ["lock", "a.txt", "b.txt"], exitcodes.USAGE, "unrecognized arguments: b.txt"),
    ("check-yes-refused", ["check", "-y"], exitcodes.FAILED, "-y/--yes skips change detection"),
    ("check-no-inventory", ["check"], exitcodes.FAILED, "sandbox no-such-sandbox is not running"),
    ("report-yes-refused", ["report", "-y"], exitcodes.USAGE, "-y/--yes: the report reads the hosts in a dry run"),
    ("report-unreadable-input", ["report", "--second", "{lint}/x.json"], exitcodes.FAILED, "no host was contacted"),
    ("report-no-inventory", ["report"], exitcodes.FAILED, "sandbox no-such-sandbox is not running"),
]


@pytest.mark.parametrize("args, code, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_subcommand_exits_with_the_documented_code(lint_inputs, args, code, fragment):
    argv = [str(a).replace("{lint}", str(lint_inputs)) for a in args]
    proc = runner(*argv, env={"LITELLM_SANDBOXES": "no-such-sandbox", "LITELLM_INVENTORY": ""})
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert fragment in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# the python -m forms stay, with the same codes
MODULE_FORMS = [
    ("litellm_runner.gates.lint", [], exitcodes.USAGE),
    ("litellm_runner.gates.cve", [], exitcodes.USAGE),
    ("litellm_runner.gates.osv_server", ["--help"], exitcodes.OK),
    ("litellm_runner.sandbox", ["--help"], exitcodes.OK),
    ("litellm_runner.cli.check", ["--parallel", "many"], exitcodes.USAGE),
]


@pytest.mark.parametrize("module, args, code", MODULE_FORMS, ids=[m[0] for m in MODULE_FORMS])
def test_python_m_forms_keep_the_codes(module, args, code):
    proc = runner(*args, module=module)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert f"usage: python -m {module} " in proc.stdout + proc.stderr


TGKILL = {"x86_64": 234, "aarch64": 131}  # tgkill(2)'s syscall number: a signal to one thread of a process


def _to_a_server_thread(proc) -> None:
    """SIGINT to a thread of PROC other than its main thread, as the kernel may choose for Ctrl-C."""
    import ctypes

    tids = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
    assert tids, "the server runs in a thread of its own"
    assert ctypes.CDLL(None).syscall(TGKILL[os.uname().machine], proc.pid, tids[0], signal.SIGINT) == 0


@pytest.mark.parametrize(
    "deliver",
    [lambda proc: proc.send_signal(signal.SIGINT), _to_a_server_thread],
    ids=["to the process", "to the server's thread"],
)
def test_ctrl_c_exits_interrupted_without_a_traceback(deliver):
    """osv-server serves until interrupted: SIGINT once it printed its URL is exit 130, one line, no traceback,
    whichever of its threads the signal reaches."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "litellm_runner.cli.main", "osv-server"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, proc.kill)  # a server that never prints its URL fails the test, never hangs it
    watchdog.start()
    try:
        url = proc.stdout.readline() if proc.stdout else ""
        assert url.startswith("http://127.0.0.1:") and url.rstrip().endswith("/v1/query")
        deliver(proc)
        out, err = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == exitcodes.INTERRUPTED, err
    assert "Traceback" not in out + err
