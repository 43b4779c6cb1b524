"""The bad inputs of tests/unit/test_validate.py through a real pyinfra run whose inventory holds the session's
sandbox and one host that cannot be reached: each is reported before pyinfra connects to any host, exit 1.

Then the same project without a mistake: the unreachable host fails alone, after validation, and the sandbox
is checked; and a partial ``general_settings`` override in a group file renders the config the defaults render
(the defaults' other keys stay).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from litellm_runner import exitcodes, sandbox
from tests.support.hosts import PYINFRA
from tests.unit.test_validate import CASES, SECRETS, UNREACHABLE, append, project, reported

# the session host's state folder and env file, in whichever layout it is when the test runs (the incident
# seed's, or root's after another file on this worker converged it): modes and modification times
FINGERPRINT = (
    "stat -c '%n %a %.9Y' /home/litellm/litellm/state"
    " $(ls -d /home/litellm/litellm/env.litellm /etc/litellm/env.litellm 2>/dev/null)"
)


def sandbox_entry(host) -> dict:
    data = sandbox.host_data(host.name)
    data.pop("name", None)
    return {"name": host.name, "data": data}


def two_hosts(tmp_path, host) -> dict:
    """The project: the unreachable host first (its lines as in the unit table), then the sandbox."""
    return project(tmp_path, hosts=[UNREACHABLE, sandbox_entry(host)])


def run(tmp_path, env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYINFRA, "inventory.py", "deploy.py", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("case, edit, fragments", CASES, ids=[c[0] for c in CASES])
def test_each_bad_input_is_refused_before_pyinfra_connects(host, tmp_path, case, edit, fragments):
    before = host.out(FINGERPRINT)
    env = two_hosts(tmp_path, host)
    edit(tmp_path, env)
    proc = run(tmp_path, env, "-y")
    out = proc.stdout + proc.stderr
    assert proc.returncode == exitcodes.FAILED, out[-3000:]
    for fragment in fragments:
        assert reported(fragment, tmp_path, out), f"{fragment!r}:\n{out[-3000:]}"
    # pyinfra tried no host: neither the sandbox ("Connected") nor the unreachable one ("Could not connect")
    assert "Connected" not in out and "Could not connect" not in out and "No hosts remaining" not in out, out[-3000:]
    assert "Loaded fact" not in out and "Starting operation" not in out
    assert "Traceback" not in out and "internal exception" not in out
    for value in SECRETS.values():
        assert value not in out
    assert host.out(FINGERPRINT) == before


def test_a_valid_project_checks_the_reachable_host_and_names_the_unreachable_one(host, tmp_path):
    """Validation passes; the unreachable host fails alone afterwards and the sandbox is still checked."""
    entry = sandbox_entry(host)
    env = {**two_hosts(tmp_path, host), "LITELLM_SECRETS_FILE": entry["data"]["litellm_secrets_file"]}
    report = tmp_path / "drift.json"
    proc = subprocess.run(
        [sys.executable, "-m", "litellm_runner.cli.main", "check", "--project", str(tmp_path), "--json", str(report)],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == exitcodes.FAILED, proc.stderr[-3000:]
    doc = json.loads(report.read_text())
    assert doc["hosts"][UNREACHABLE["name"]]["status"] == "unreachable"
    assert doc["hosts"][host.name]["status"] in ("ok", "drift"), doc["hosts"][host.name]
    assert f"check: 1 hosts could not be reached: {UNREACHABLE['name']}: exit 1" in proc.stderr
    assert "refusing" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_partial_settings_override_renders_the_same_config(host, tmp_path):
    """general_settings = {pool: 20} in a group file (the default's value) renders the config the defaults render:
    the drift check's item for the rendered config is the same with and without it (had the override replaced
    the section, the config would lose store_prompts_in_spend_logs, disable_error_logs and store_model_in_db)."""
    entry = sandbox_entry(host)
    found = {}
    for name, override in (
        ("defaults", None),
        ("override", 'general_settings = {"database_connection_pool_limit": 20}'),
    ):
        folder = tmp_path / name
        env = {**project(folder, hosts=[entry]), "LITELLM_SECRETS_FILE": entry["data"]["litellm_secrets_file"]}
        if override:
            append(folder, override + "\n", name="litellm_hosts.py")
        proc = subprocess.run(
            [sys.executable, "-m", "litellm_runner.cli.main", "check", "--project", str(folder), "--json",
             str(folder / "drift.json")],
            cwd="/",
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )  # fmt: skip
        assert proc.returncode in (exitcodes.OK, exitcodes.FINDINGS), proc.stderr[-3000:]
        items = json.loads((folder / "drift.json").read_text())["hosts"][host.name]["items"]
        found[name] = [i for i in items if "Rendered config" in i["id"]]
    assert found["override"] == found["defaults"]
