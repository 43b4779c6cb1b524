"""``pyinfra inventory.py deploy.py --dry --diff`` shows what would change, secrets as fingerprints only
(issue #14 item 5).

On the session's converged sandbox host, a person hand-edits the rendered config and the env file holds an
old secret (a canary); the operator's secret source holds a new one (another canary). The dry run with
``--diff`` shows the config's changed line as pyinfra shows a file diff, the env file as one line per
changed key with the fingerprints of the old and new values, and neither canary anywhere in its output.
The host is what it was after the plants (a dry run), and is put back afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from litellm_runner import envfile, sandbox
from tests.support.hosts import PYINFRA, REPO, pyinfra

ROOT = "/home/litellm/litellm"
CONFIG = "/etc/litellm/config.generated.yaml"
ENV = "/etc/litellm/env.litellm"
OLD = "vllm-canary-old-4b7e1d9a2f63"  # the env file's value on the host
NEW = "vllm-canary-new-8c2f5a0e7d14"  # the secret source's value
ANSI = re.compile(r"\x1b\[[0-9;]*m")
KEEP = "/root/litellm-runner-test-diff"  # root's copies of the two files, outside the account's tree


@pytest.fixture
def planted(converged, host, tmp_path):
    """The plants on the host and the new secret in a copy of the sandbox's secret source; put back after.
    The host is first converged to the repository's desired state (another file may have left its own)."""
    run = pyinfra([host.name], "-y")
    assert run.returncode == 0, run.why
    host.ssh(f"mkdir -p -m 0700 {KEEP} && cp -p {CONFIG} {ENV} {KEEP}/")
    try:
        host.ssh(
            f"sed -i 's/store_prompts_in_spend_logs: false/store_prompts_in_spend_logs: true/' {CONFIG} && "
            f"sed -i \"s/^VLLM_API_KEY=.*/VLLM_API_KEY='{OLD}'/\" {ENV}"
        )
        source = sandbox.host_data(host.name)["litellm_secrets_file"]
        values = envfile.read(source)
        secrets = tmp_path / "secrets.env"
        secrets.write_text(envfile.dumps({**values, "VLLM_API_KEY": NEW}))
        secrets.chmod(0o600)
        yield host, secrets, values
    finally:
        host.ssh(f"cp -p {KEEP}/config.generated.yaml {CONFIG} && cp -p {KEEP}/env.litellm {ENV} && rm -rf {KEEP}")


def dry_diff(host, secrets) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_INVENTORY"}
    env.update({"LITELLM_SANDBOXES": host.name, "PYINFRA_PROGRESS": "off", "LITELLM_SECRETS_FILE": str(secrets)})
    proc = subprocess.run(
        [PYINFRA, "inventory.py", "deploy.py", "--dry", "--diff"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return proc.returncode, ANSI.sub("", proc.stdout + proc.stderr)


def block(out: str, title: str) -> list[str]:
    """The lines pyinfra printed under TITLE (up to the blank line that ends a diff), without the log's indent."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().endswith(title))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].strip())
    indent = min(len(line) - len(line.lstrip()) for line in lines[start + 1 : end])
    return [line[indent:] for line in lines[start + 1 : end]]


def changed(lines: list[str]) -> list[str]:
    """The removed and added lines of a diff block (``- ``/``+ `` in the marker column), blanks squeezed."""
    return [re.sub(r"\s+", " ", line) for line in lines if line[:2] in ("- ", "+ ")]


def test_dry_diff_shows_the_config_line_and_only_fingerprints_of_the_env_file(planted):
    host, secrets, values = planted
    code, out = dry_diff(host, secrets)
    assert code == 0, out[-3000:]

    config = block(out, f"Will modify {CONFIG}")
    assert config[0].startswith("@@ "), config  # a unified diff hunk, as pyinfra's files.put shows one
    assert changed(config) == ["- store_prompts_in_spend_logs: true", "+ store_prompts_in_spend_logs: false"], config

    assert block(out, f"Will modify {ENV} (secrets shown as fingerprints)") == [
        f"- VLLM_API_KEY={envfile.fingerprint(OLD)}",
        f"+ VLLM_API_KEY={envfile.fingerprint(NEW)}",
    ]
    for value in [OLD, NEW, *(v for v in values.values() if len(v) > 8)]:
        assert value not in out, "a secret value was printed"
    assert "canary" not in out

    # a dry run: the host still holds the plants
    assert host.out(f"grep -c 'store_prompts_in_spend_logs: true' {CONFIG}") == "1"
    assert host.out(f"grep -c {OLD} {ENV}") == "1"


def test_a_litellm_python_the_account_can_write_is_refused_and_never_run(host, tmp_path):
    """#17 item 2: the snapshot reads litellm_python's version as root; one in the account's home (a
    script that leaves a marker when run) is refused before any operation, with pyinfra's DeployError
    (exit 1, the message naming the path and its owner), and never runs."""
    trojan, marker = "/home/litellm/python3", "/root/litellm-runner-test-python-ran"
    host.ssh(
        f"rm -f {marker} && printf '#!/bin/sh\\ntouch {marker}\\necho 3.11\\n' > {trojan} && "
        f"chown litellm: {trojan} && chmod 0755 {trojan}"
    )
    try:
        ssh = sandbox.host_data(host.name)
        ssh.pop("name", None)
        hosts = tmp_path / "hosts.yml"
        hosts.write_text(
            yaml.safe_dump({"litellm_hosts": [{"name": host.name, "data": {**ssh, "litellm_python": trojan}}]})
        )
        env = {k: v for k, v in os.environ.items() if k != "LITELLM_SANDBOXES"}
        env.update({"LITELLM_INVENTORY": str(hosts), "PYINFRA_PROGRESS": "off"})
        proc = subprocess.run(
            [PYINFRA, "inventory.py", "deploy.py", "--dry", "-v"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        out = ANSI.sub("", proc.stdout + proc.stderr)
        assert proc.returncode == 1, out[-3000:]
        assert "pyinfra error" in out and "refusing to touch any host" in out, out[-3000:]
        assert f"litellm_python {trojan}: /home/litellm is owned by uid" in out, out[-3000:]
        assert "Detected changes" not in out and "Traceback" not in out  # refused while preparing
        assert host.ssh(f"test -e {marker}", check=False).returncode == 1, "the account's file was run as root"
    finally:
        host.ssh(f"rm -f {trojan} {marker}")
