"""MCP servers as desired state on a converged sandbox (issue #16 item 1 and the MCP part of item 4).

The session host is converged once more from a hosts file (``LITELLM_INVENTORY``, host data as an
operator writes it) that declares the sandbox's MCP server: ``files/bin/litellm-mcp-stub`` started as
the user unit ``litellm-mcp-stub`` through ``litellm_services``, bound to 127.0.0.1, requiring a bearer
token that comes from the secret source (``LITELLM_MCP_STUB_TOKEN`` in the operator's secrets file),
and declared in ``litellm_mcp_servers`` with ``auth_type: bearer_token`` and an ``os.environ/``
reference. Then, from the host itself (plain ssh, the proxy listens on the host's loopback only):

- the real MCP protocol through the proxy's gateway (``/mcp``, the ``mcp`` client of the host's venv,
  run as the service account, the master key read from env.litellm by the script itself) and the
  gateway's REST routes (``/mcp-rest/tools/list``, ``/mcp-rest/tools/call``) list and call the stub's
  tool with the master key; without a key, or with a wrong one, they answer 401;
- the stub itself refuses a caller without the token, so the answer through the proxy proves the proxy
  sent the upstream token it got from the secret source;
- the token is in env.litellm (compared by fingerprint) and in no output: converge runs, drift check,
  answers, the service account's journal, any command line on the host, the rendered config;
- the lint refuses the unauthenticated and exposed variants before any host is touched.

The sandbox proxy runs without DATABASE_URL (docs/sandbox.md): access by virtual key, team or
access group needs the database, so here access is the master key against no key.

Run: LITELLM_IT_SANDBOX=litellm-sandbox-h7 LITELLM_IT_PORT=2407 \\
     .venv/bin/python -m pytest tests/integration/test_mcp.py -v -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
from typing import Any

import pytest

from litellm_runner import envfile, sandbox
from tests.support.fleet import inventory
from tests.support.hosts import REPO, pyinfra
from tests.unit.group_data import defaults

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
PROXY = "http://127.0.0.1:4000"
STUB_PORT = 8091
TOKEN_NAME = "LITELLM_MCP_STUB_TOKEN"
SERVER = "sandbox_stub"
CTL = "systemctl --user --machine=litellm@.host"


def mcp_data() -> dict:
    """Host data that declares the stub MCP server: its unit, its secret, its entry in litellm_mcp_servers."""
    shipped = defaults()
    return {
        "litellm_services": {
            **shipped["litellm_services"],
            "litellm-mcp-stub": {
                "enabled": True,
                "port": STUB_PORT,
                "command": f"{{python}} {{bin}}/litellm-mcp-stub --host {{bind}} --port {{port}} "
                f"--token-env {TOKEN_NAME}",
            },
        },
        "litellm_env_secrets": [*shipped["litellm_env_secrets"], TOKEN_NAME],
        "litellm_mcp_servers": {
            SERVER: {
                "url": f"http://127.0.0.1:{STUB_PORT}/mcp",
                "transport": "http",
                "auth_type": "bearer_token",
                "authentication_token": f"os.environ/{TOKEN_NAME}",
                "description": "the sandbox's stub MCP server (one tool: echo)",
                "allowed_tools": ["echo"],
            }
        },
    }


def ssh_input(host, command: str, stdin: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """COMMAND on HOST as root with STDIN (a key travels on stdin, never on a command line)."""
    data = sandbox.host_data(host.name)
    return subprocess.run(
        ["ssh", "-i", data["ssh_key"], "-p", str(data["ssh_port"]), "-o", "BatchMode=yes"]
        + ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
        + ["root@127.0.0.1", command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def http(host, method: str, url: str, headers: dict | None = None, body: dict | None = None) -> tuple[int, Any]:
    """An HTTP request from the host itself, headers on curl's stdin: (status, JSON answer or text)."""
    command = f"curl -sS -m 120 -X {method} -H @- -w '\\n%{{http_code}}' {shlex.quote(url)}"
    if body is not None:
        command += f" -H 'Content-Type: application/json' --data-binary {shlex.quote(json.dumps(body))}"
    lines = "".join(f"{k}: {v}\n" for k, v in (headers or {}).items())
    proc = ssh_input(host, command, lines, timeout=180)
    text, _, status = proc.stdout.rpartition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status or 0), text


GATEWAY_SCRIPT = f"""
import asyncio, json, sys
sys.path.insert(0, "{CODE}/bin")
import litellm_envfile
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

key = litellm_envfile.read("/etc/litellm/env.litellm")["LITELLM_MASTER_KEY"]


async def main():
    headers = {{"x-litellm-api-key": "Bearer " + key}}
    async with streamablehttp_client("{PROXY}/mcp", headers=headers, timeout=60) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            names = [tool.name for tool in (await session.list_tools()).tools]
            echo = [name for name in names if name.endswith("echo")][0]
            result = await session.call_tool(echo, {{"text": "through the gateway"}})
            return {{"tools": names, "text": result.content[0].text, "isError": result.isError}}

print(json.dumps(asyncio.run(asyncio.wait_for(main(), 120))))
"""


def declare(host, tmp) -> dict:
    """Write the operator's secrets file (the sandbox's secrets and the stub's token) and a hosts file
    that declares the MCP server for HOST: {"hosts": path, "token": ..., "key": the master key}."""
    shared = envfile.read(sandbox.host_data(host.name)["litellm_secrets_file"])
    token = secrets.token_hex(24)
    secrets_file = tmp / "secrets.env"
    secrets_file.touch(mode=0o600)
    secrets_file.write_text(envfile.dumps({**shared, TOKEN_NAME: token}))
    hosts = inventory(tmp / "hosts.yml", [host.name], {**mcp_data(), "litellm_secrets_file": str(secrets_file)})
    return {"hosts": hosts, "token": token, "key": shared["LITELLM_MASTER_KEY"]}


# The REST routes over one connection (one worker): litellm 1.102.4 resolves a tool name in
# /mcp-rest/tools/call from the tool list that worker process has fetched, so with several workers a
# call on a fresh connection can land on a worker that has not listed the tools yet (500 "Tool echo not
# found"); a client lists and calls on one connection, or uses /mcp.
REST_SCRIPT = f"""
import json, sys
sys.path.insert(0, "{CODE}/bin")
import httpx
import litellm_envfile

key = litellm_envfile.read("/etc/litellm/env.litellm")["LITELLM_MASTER_KEY"]
with httpx.Client(base_url="{PROXY}", headers={{"Authorization": "Bearer " + key}}, timeout=120) as client:
    listed = client.get("/mcp-rest/tools/list")
    tools = [tool for tool in listed.json().get("tools", []) if tool["name"].endswith("echo")]
    call = {{"server_id": tools[0]["mcp_info"]["server_id"], "name": tools[0]["name"], "arguments": {{"text": "rest"}}}}
    called = client.post("/mcp-rest/tools/call", json=call)
print(json.dumps({{"list_status": listed.status_code, "tools": tools, "call_status": called.status_code,
                  "call": called.json()}}))
"""


@pytest.fixture(scope="module")
def declared(host, tmp_path_factory):
    """The session host (incident state, or converged by an earlier module) converged twice with the MCP
    server declared: {"runs": [first, second], "hosts": ..., "token": ..., "key": ...}; afterwards
    converged back to the sandbox's own desired state."""
    state = declare(host, tmp_path_factory.mktemp("mcp"))
    env = {"LITELLM_INVENTORY": str(state["hosts"])}
    first = pyinfra([host.name], "-y", env=env)
    assert first.returncode == 0, first.why
    second = pyinfra([host.name], "-y", env=env)
    assert second.returncode == 0, second.why
    host.wait_for(f"curl -sf {PROXY}/health/liveliness", timeout=600)
    yield {**state, "runs": [first, second]}
    # back to the session's desired state for the test files after this one: the stub stopped and
    # disabled, config and env file without the MCP server (the sandbox's own inventory then has no drift)
    services = {**mcp_data()["litellm_services"]}
    services["litellm-mcp-stub"] = {**services["litellm-mcp-stub"], "enabled": False}
    restore = inventory(state["hosts"].parent / "restore.yml", [host.name], {"litellm_services": services})
    back = pyinfra([host.name], "-y", env={"LITELLM_INVENTORY": str(restore)})
    assert back.returncode == 0, back.why
    assert host.out(f"{CTL} is-active litellm-mcp-stub.service", check=False) == "inactive"
    default = pyinfra([host.name], "-y")  # the sandbox's own inventory: the compliance record without the stub
    assert default.returncode == 0, default.why
    assert pyinfra([host.name], "--dry").changed(host.name) == []


def test_second_converge_changes_nothing(declared, host):
    assert declared["runs"][0].changed(host.name), "the first run declared the MCP server"
    assert declared["runs"][1].changed(host.name) == []


def test_stub_runs_on_loopback_and_refuses_a_caller_without_the_token(declared, host):
    assert host.out(f"{CTL} is-active litellm-mcp-stub.service") == "active"
    listeners = host.out(f"ss -Hltn 'sport = :{STUB_PORT}'")
    assert [line.split()[3] for line in listeners.splitlines()] == [f"127.0.0.1:{STUB_PORT}"], listeners
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    url = f"http://127.0.0.1:{STUB_PORT}/mcp"
    assert http(host, "POST", url, {}, ping)[0] == 401
    assert http(host, "POST", url, {"Authorization": "Bearer not-the-token"}, ping)[0] == 401
    status, answer = http(host, "POST", url, {"Authorization": f"Bearer {declared['token']}"}, ping)
    assert status == 200 and [t["name"] for t in answer["result"]["tools"]] == ["echo"]


def test_config_holds_a_reference_and_the_env_file_the_token(declared, host):
    config = host.out("cat /etc/litellm/config.generated.yaml")
    assert f"authentication_token: os.environ/{TOKEN_NAME}" in config
    assert declared["token"] not in config
    script = f"import sys; sys.path.insert(0, '{CODE}/bin'); import litellm_envfile as e; "
    script += f"print(e.fingerprint(e.read('/etc/litellm/env.litellm')['{TOKEN_NAME}']))"
    printed = host.out(f"runuser -u litellm -- {CODE}/venv/bin/python -I -c {shlex.quote(script)}")
    assert printed == envfile.fingerprint(declared["token"])


def test_mcp_protocol_through_the_gateway_with_the_master_key(declared, host):
    proc = ssh_input(host, f"cd /tmp && runuser -u litellm -- {CODE}/venv/bin/python -I -", GATEWAY_SCRIPT, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["tools"] == [f"{SERVER}-echo"], answer
    assert answer == {**answer, "text": "echo: through the gateway", "isError": False}
    declared["outputs"] = declared.get("outputs", []) + [proc.stdout, proc.stderr]


def test_rest_routes_list_and_call_the_tool_with_the_master_key(declared, host):
    proc = ssh_input(host, f"cd /tmp && runuser -u litellm -- {CODE}/venv/bin/python -I -", REST_SCRIPT, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["list_status"] == 200, answer
    assert [(t["name"], t["mcp_info"]["server_name"]) for t in answer["tools"]] == [("echo", SERVER)], answer
    assert answer["call_status"] == 200, answer
    assert [c.get("text") for c in answer["call"]["content"]] == ["echo: rest"], answer
    declared["outputs"] = declared.get("outputs", []) + [proc.stdout, proc.stderr]


# (id, the gateway key sent, the refusal): a key that is not the master key is looked up among the
# virtual keys, which live in the database; the sandbox has none, so litellm 1.102.4 answers 400
# "No connected db" there, where production answers 401
# with its database (issue #24) the proxy looks a wrong key up and refuses it as unknown: 401, as a missing one
REFUSED = [("no-key", None, 401), ("wrong-key", "sk-not-the-master-key", 401)]


@pytest.mark.parametrize("case, key, status", REFUSED, ids=[r[0] for r in REFUSED])
def test_gateway_refuses_without_the_master_key(declared, host, case, key, status):
    rest = {"Authorization": f"Bearer {key}"} if key else {}
    answers = [http(host, "GET", f"{PROXY}/mcp-rest/tools/list", rest)]
    call = {"server_id": "any", "name": f"{SERVER}-echo", "arguments": {"text": "x"}}
    answers.append(http(host, "POST", f"{PROXY}/mcp-rest/tools/call", rest, call))
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
    gateway = {
        "Accept": "application/json, text/event-stream",
        **({"x-litellm-api-key": f"Bearer {key}"} if key else {}),
    }
    answers.append(http(host, "POST", f"{PROXY}/mcp", gateway, init))
    assert [code for code, _ in answers] == [status] * 3, answers
    assert "echo" not in json.dumps(answers)
    if status == 400:
        assert all("No connected db" in json.dumps(answer) for _, answer in answers), answers


def test_the_upstream_token_is_in_no_output(declared, host, tmp_path):
    check = subprocess.run(
        [sys.executable, "-m", "litellm_runner.cli.check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "LITELLM_INVENTORY": str(declared["hosts"]), "LITELLM_SANDBOXES": host.name},
    )
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    seen = [check.stdout, check.stderr, *declared.get("outputs", [])]
    seen += [run.stdout + run.stderr for run in declared["runs"]]
    seen.append(host.out("journalctl --no-pager -o cat _UID=$(id -u litellm)", timeout=120))
    seen.append(host.out("ps -eo args"))
    seen.append(host.out("cat /etc/litellm/config.generated.yaml"))
    for text in seen:
        assert declared["token"] not in text


BAD = [  # (id, entry changes (None removes a key), the refusal)
    (
        "no-upstream-auth",
        {"auth_type": "none", "authentication_token": None},
        f"mcp_servers.{SERVER}: LINT-11 critical",
    ),
    ("literal-token", {"authentication_token": "canary-literal-mcp-token"}, "authentication_token: LINT-12 critical"),
    ("remote-plain-http", {"url": "http://10.20.30.40:8091/mcp"}, f"mcp_servers.{SERVER}.url: LINT-14 critical"),
]


@pytest.mark.parametrize("case, change, refusal", BAD, ids=[b[0] for b in BAD])
def test_lint_refuses_unauthenticated_and_exposed_variants(declared, host, tmp_path, case, change, refusal):
    data = mcp_data()
    entry = {k: v for k, v in {**data["litellm_mcp_servers"][SERVER], **change}.items() if v is not None}
    data["litellm_mcp_servers"] = {SERVER: entry}
    secrets_file = declared["hosts"].parent / "secrets.env"
    hosts = inventory(tmp_path / "hosts.yml", [host.name], {**data, "litellm_secrets_file": str(secrets_file)})
    before = host.out("sha256sum /etc/litellm/config.generated.yaml")
    run = pyinfra([host.name], "-y", env={"LITELLM_INVENTORY": str(hosts)})
    assert run.returncode == 1, run.why
    assert "refusing to touch any host" in run.stderr and refusal in run.stderr, run.why
    assert "canary" not in run.stdout + run.stderr and declared["token"] not in run.stdout + run.stderr
    assert host.out("sha256sum /etc/litellm/config.generated.yaml") == before
