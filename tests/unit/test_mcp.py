"""litellm_mcp_servers: the shape, names and URL forms the runner accepts, and the stub MCP server's protocol."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from litellm_runner import mcp
from tests.unit.group_data import REPO

GOOD = {
    "url": "http://127.0.0.1:8091/mcp",
    "auth_type": "bearer_token",
    "authentication_token": "os.environ/LITELLM_MCP_STUB_TOKEN",
}
SECRETS = ("LITELLM_MASTER_KEY", "LITELLM_MCP_STUB_TOKEN", "OAUTH_SECRET")
OAUTH = {
    "url": "https://mcp.example.com/mcp",
    "auth_type": "oauth2",
    "oauth2_flow": "client_credentials",
    "client_id": "runner",
    "client_secret": "os.environ/OAUTH_SECRET",
    "token_url": "https://idp.example.com/token",
    "scopes": ["mcp.read"],
    "waivers": [{"rule": "LINT-13", "reason": "the vendor's hosted server, TLS only"}],
}


def entry(**kv):
    return {k: v for k, v in {**GOOD, **kv}.items() if v is not None}


@pytest.mark.parametrize(
    "servers",
    [
        {},
        {"stub": GOOD},
        {"stub": entry(transport="sse", access_groups=["ops", "team.a-1"], allow_all_keys=False)},
        {"stub": entry(allowed_tools=["echo"], disallowed_tools=["drop_all"], available_on_public_internet=True)},
        {"vendor": OAUTH, "Stub_2": entry(description="the sandbox's stub")},
        {"stub": entry(url="https://[::1]:8443/mcp")},
    ],
)
def test_good_servers(servers):
    assert mcp.problems(servers, SECRETS) == []


# (id, servers, expected (key, words in the expected form))
BAD = [
    ("not-a-mapping", [GOOD], ("litellm_mcp_servers", "a mapping of server name")),
    ("dash-in-name", {"my-stub": GOOD}, ("litellm_mcp_servers", "no '-'")),
    ("entry-without-url", {"stub": {"auth_type": "none"}}, ("litellm_mcp_servers[stub]", "url:")),
    ("typo", {"stub": entry(auth_typ="bearer_token")}, ("litellm_mcp_servers[stub].auth_typ", "is it misspelt?")),
    ("stdio", {"stub": entry(transport="stdio")}, ("litellm_mcp_servers[stub].transport", "litellm_services unit")),
    (
        "ftp-url",
        {"stub": entry(url="ftp://127.0.0.1/mcp")},
        ("litellm_mcp_servers[stub].url", "an http:// or https:// URL"),
    ),
    ("no-host", {"stub": entry(url="http:///mcp")}, ("litellm_mcp_servers[stub].url", "host name or address")),
    ("bad-port", {"stub": entry(url="http://127.0.0.1:99999/mcp")}, ("litellm_mcp_servers[stub].url", "valid port")),
    ("blank-in-url", {"stub": entry(url="http://127.0.0.1/m cp")}, ("litellm_mcp_servers[stub].url", "without blanks")),
    ("fragment", {"stub": entry(url="http://127.0.0.1/mcp#x")}, ("litellm_mcp_servers[stub].url", "#fragment")),
    (
        "auth-kind",
        {"stub": entry(auth_type="true_passthrough")},
        ("litellm_mcp_servers[stub].auth_type", "not desired state"),
    ),
    (
        "oauth-incomplete",
        {"vendor": {k: v for k, v in OAUTH.items() if k != "oauth2_flow"}},
        ("litellm_mcp_servers[vendor].oauth2_flow", "auth_type oauth2"),
    ),
    (
        "oauth-interactive",
        {"vendor": {**OAUTH, "oauth2_flow": "authorization_code"}},
        ("litellm_mcp_servers[vendor].oauth2_flow", "client_credentials"),
    ),
    (
        "secret-not-listed",
        {"stub": entry(authentication_token="os.environ/OTHER_TOKEN")},
        ("litellm_mcp_servers[stub].authentication_token", "litellm_env_secrets"),
    ),
    (
        "group-name",
        {"stub": entry(access_groups=["ops team"])},
        ("litellm_mcp_servers[stub].access_groups", "access group names"),
    ),
    (
        "allow-all-string",
        {"stub": entry(allow_all_keys="yes")},
        ("litellm_mcp_servers[stub].allow_all_keys", "true or false"),
    ),
    (
        "waiver-no-reason",
        {"stub": entry(waivers=[{"rule": "LINT-13"}])},
        ("litellm_mcp_servers[stub].waivers", "reason"),
    ),
    (
        "waiver-short-reason",
        {"stub": entry(waivers=[{"rule": "LINT-13", "reason": "ok"}])},
        ("litellm_mcp_servers[stub].waivers", "at least 20"),
    ),
    (
        "waiver-literal",
        {"stub": entry(waivers=[{"rule": "LINT-12", "reason": "we really need this literal"}])},
        ("litellm_mcp_servers[stub].waivers", "LINT-11 | LINT-13 | LINT-14"),
    ),
    (
        "waiver-twice",
        {"stub": entry(waivers=[{"rule": "LINT-13", "reason": "x" * 20}] * 2)},
        ("litellm_mcp_servers[stub].waivers", "each rule once"),
    ),
]


@pytest.mark.parametrize("case, servers, expected", BAD, ids=[b[0] for b in BAD])
def test_bad_servers(case, servers, expected):
    found = mcp.problems(servers, SECRETS)
    assert [key for key, _, _ in found] == [expected[0]], found
    assert expected[1] in found[0][2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def stub():
    """The stub MCP server on a free loopback port, its token from the environment: (base URL, token)."""
    port, token = _free_port(), "canary-stub-token-0f9e"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "files/bin/litellm-mcp-stub"), "--port", str(port)],
        env={**os.environ, "LITELLM_MCP_STUB_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", token
    proc.terminate()
    output = proc.communicate(timeout=10)[0]
    assert token not in output


def rpc(base, body, token=None):
    """POST BODY to /mcp: (status, JSON answer or None)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{base}/mcp", json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
            return response.status, json.loads(data) if data else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_stub_answers_tools_with_the_token_and_refuses_without(stub):
    base, token = stub
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
    assert rpc(base, init, token)[1]["result"]["protocolVersion"] == "2025-06-18"
    assert rpc(base, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token) == (202, None)
    status, listed = rpc(base, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, token)
    assert status == 200 and [t["name"] for t in listed["result"]["tools"]] == ["echo"]
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}
    assert rpc(base, call, token)[1]["result"]["content"] == [{"type": "text", "text": "echo: hi"}]
    for wrong in (None, "not-the-token", token + "x"):
        status, body = rpc(base, call, wrong)
        assert status == 401 and "result" not in (body or {})


def test_stub_refuses_to_start_without_a_token():
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_MCP_STUB_TOKEN"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "files/bin/litellm-mcp-stub"), "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "LITELLM_MCP_STUB_TOKEN is empty or unset" in proc.stderr
