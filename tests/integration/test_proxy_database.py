"""The real proxy on its real database (issue #24): the database fixes seen where they take effect.

The session sandbox converged (the ``converged`` fixture) runs the real LiteLLM proxy with
``DATABASE_URL`` through the query engine the runner ships (``litellm_query_engine``, turned on
by the sandbox; docs/query-engine.md), its model routed to the stub model server. Requests are
made from inside the sandbox (the proxy listens on its loopback) by the openai SDK and httpx of
the proxy's own venv, run as the service account; every key travels on standard input, never on
a command line. What the proxy wrote is read back with psql (parameterized: psql variables).

Each test fails when the runner's part is undone: without the engine (or without DATABASE_URL
in the proxy's unit) readiness says the database is not connected and no key can be generated;
with ``store_prompts_in_spend_logs: true`` the spend log holds the prompt; with
``store_model_in_db: false`` a model added through the proxy is not served.

Every key and model a test creates is deleted at its end (another file's ``litellm-status``
reports keys that expire within 14 days), and every spend-log row it caused.

Run: LITELLM_IT_SANDBOX=h-engine-it LITELLM_IT_PORT=2401 \
     .venv/bin/python -m pytest tests/integration/test_proxy_database.py -v -p no:cacheprovider
"""

from __future__ import annotations

import json
import shlex
import time
import uuid

import pytest

from litellm_runner import sandbox
from litellm_runner.secrets import read_secrets_file

VENV = "/usr/local/lib/litellm-runner/venv"  # litellm_runner.layout.VENV: root's, the account runs it
PROXY = "http://127.0.0.1:4000"
PSQL = "runuser -u postgres -- psql -p 5434 -d litellm -AtX -v ON_ERROR_STOP=1"
ANSWER = "pong from rerank for local-model"  # the stub model server's documented answer
SPEND_LOG_WAIT = 180  # seconds for the proxy's batched spend-log writer to write a row
MODEL_WAIT = 120  # seconds for every proxy worker to load a model added to the database

# Run by the service account with its venv: requests to the proxy, as JSON on stdin, answers on stdout.
CLIENT = r"""
import json, sys
import httpx, openai
PROXY = "http://127.0.0.1:4000"
out = []
for step in json.load(sys.stdin):
    key = step["key"]
    if step["kind"] == "chat":
        client = openai.OpenAI(api_key=key, base_url=PROXY, max_retries=0, timeout=120)
        try:
            answer = client.chat.completions.create(
                model=step["model"], messages=[{"role": "user", "content": step["prompt"]}], max_tokens=8)
            out.append({"status": 200, "body": answer.model_dump()})
        except openai.APIStatusError as exc:
            out.append({"status": exc.status_code, "body": exc.body})
    else:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        r = httpx.request(step["method"], PROXY + step["path"], json=step.get("json"), headers=headers, timeout=120)
        try:
            body = r.json()
        except ValueError:
            body = r.text[:2000]
        out.append({"status": r.status_code, "body": body})
print(json.dumps(out))
"""


def master_key() -> str:
    """The master key from the sandbox's secret source (never printed)."""
    return read_secrets_file(sandbox.secrets_file())["LITELLM_MASTER_KEY"]


def proxy(host, *steps: dict) -> list[dict]:
    """STEPS run in order against the proxy from inside HOST: ``[{"status": ..., "body": ...}]``."""
    proc = host.ssh(
        f"cd / && runuser -u litellm -- {VENV}/bin/python -I -c {shlex.quote(CLIENT)}",
        input=json.dumps(list(steps)),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def call(host, method: str, path: str, key: str | None, body: dict | None = None) -> dict:
    return proxy(host, {"kind": "http", "method": method, "path": path, "key": key, "json": body})[0]


def chat(host, key: str, prompt: str = "say pong", model: str = "local-vllm") -> dict:
    return proxy(host, {"kind": "chat", "key": key, "model": model, "prompt": prompt})[0]


def sql(host, query: str, **params: str) -> str:
    """QUERY with psql variables PARAMS (``:'name'``: quoted by psql), as root on the host."""
    variables = " ".join(f"-v {k}={shlex.quote(v)}" for k, v in params.items())
    return host.out(f"{PSQL} {variables}", input=query + "\n")


@pytest.fixture(scope="module")
def ready(converged, host):
    """The converged proxy answers readiness (the converge waited for it; a worker may still be starting)."""
    host.wait_for(f"curl -sf {PROXY}/health/readiness", timeout=600)


@pytest.fixture
def keys(ready, host):
    """Generates keys through the proxy; every one is deleted at the end of the test."""
    made: list[str] = []

    def generate(**body) -> str:
        answer = call(
            host, "POST", "/key/generate", master_key(), {"key_alias": f"h-engine-{uuid.uuid4().hex[:8]}", **body}
        )
        assert answer["status"] == 200, answer
        made.append(answer["body"]["key"])
        return answer["body"]["key"]

    yield generate
    if made:
        answer = call(host, "POST", "/key/delete", master_key(), {"keys": made})
        assert answer["status"] == 200, answer


def test_readiness_says_the_database_is_connected(ready, host):
    readiness = json.loads(host.out(f"curl -sf {PROXY}/health/readiness"))
    assert readiness["db"] == "connected", readiness
    unit = host.out("cat /etc/systemd/user/litellm.service")
    assert "UnsetEnvironment=DATABASE_URL" not in unit and "Environment=PRISMA_QUERY_ENGINE_BINARY=" in unit


def test_the_engine_is_roots_and_read_only_for_the_account(ready, host):
    engine = host.out("systemctl --user --machine=litellm@.host show -P Environment litellm.service")
    path = next(p.split("=", 1)[1] for p in engine.split() if p.startswith("PRISMA_QUERY_ENGINE_BINARY="))
    folder = path.rsplit("/", 1)[0]
    assert host.out(f"find {shlex.quote(folder)} ! -user root | head -n 3") == ""
    assert host.out(f"find {shlex.quote(folder)} -perm /022 | head -n 3") == ""
    denied = host.ssh(f"runuser -u litellm -- touch {shlex.quote(folder)}/planted", check=False)
    assert denied.returncode != 0


def test_completion_with_the_master_key_right_after_converge(ready, host):
    answer = chat(host, master_key())
    assert answer["status"] == 200, answer
    assert answer["body"]["choices"][0]["message"]["content"] == ANSWER


def test_a_key_generated_through_the_proxy_authenticates_a_completion(keys, host):
    key = keys()
    answer = chat(host, key)
    assert answer["status"] == 200, answer
    assert answer["body"]["choices"][0]["message"]["content"] == ANSWER
    info = call(host, "GET", f"/key/info?key={key}", master_key())
    assert info["status"] == 200, info
    assert info["body"]["info"]["key_alias"].startswith("h-engine-")


def test_an_expired_key_gets_401(keys, host):
    key = keys(duration="2s")  # never used before it expired: no worker holds it in its cache as valid
    time.sleep(4)
    answer = chat(host, key)
    assert answer["status"] == 401, answer
    assert "expired" in json.dumps(answer["body"]).lower(), answer


def test_a_blocked_key_gets_401(keys, host):
    key = keys()
    blocked = call(host, "POST", "/key/block", master_key(), {"key": key})
    assert blocked["status"] == 200, blocked
    answer = chat(host, key)
    assert answer["status"] == 401, answer
    assert "blocked" in json.dumps(answer["body"]).lower(), answer


def test_a_completion_leaves_a_spend_log_row_without_prompt_or_response(keys, host):
    """store_prompts_in_spend_logs: false (the runner's config and settings row): the row has neither."""
    canary = f"canary-{uuid.uuid4().hex}"
    key = keys()
    answer = chat(host, key, prompt=f"say pong {canary}")
    assert answer["status"] == 200, answer
    request_id = answer["body"]["id"]
    try:
        deadline, row = time.monotonic() + SPEND_LOG_WAIT, ""
        while not row and time.monotonic() < deadline:
            row = sql(
                host,
                "SELECT json_build_object('messages', messages, 'response', response, 'proxy_server_request', "
                "proxy_server_request)::text FROM \"LiteLLM_SpendLogs\" WHERE request_id = :'rid'",
                rid=request_id,
            )
            if not row:
                time.sleep(3)
        assert row, f"no spend log row for {request_id} within {SPEND_LOG_WAIT} s"
        assert canary not in row and ANSWER not in row, row
    finally:
        sql(host, "DELETE FROM \"LiteLLM_SpendLogs\" WHERE request_id = :'rid'", rid=request_id)


def test_a_model_stored_in_the_database_is_served(ready, host):
    """store_model_in_db: a model added through the proxy is in LiteLLM_ProxyModelTable, and the proxy serves it (four
    answers in a row: workers that have not polled the table yet answer 4xx until they have)."""
    name = f"h-engine-db-{uuid.uuid4().hex[:8]}"
    added = call(
        host,
        "POST",
        "/model/new",
        master_key(),
        {
            "model_name": name,
            "litellm_params": {
                "model": "hosted_vllm/db-model",
                "api_base": "http://127.0.0.1:8079/v1",
                "api_key": "none",
            },
        },
    )
    assert added["status"] == 200, added
    model_id = added["body"].get("model_id") or added["body"].get("model_info", {}).get("id")
    try:
        assert sql(host, "SELECT model_name FROM \"LiteLLM_ProxyModelTable\" WHERE model_name = :'n'", n=name) == name
        deadline, served = time.monotonic() + MODEL_WAIT, 0
        while served < 4 and time.monotonic() < deadline:
            answer = chat(host, master_key(), model=name)
            served = served + 1 if answer["status"] == 200 else 0
            if answer["status"] != 200:
                time.sleep(3)
        assert served >= 4, answer
        assert answer["body"]["choices"][0]["message"]["content"] == "pong from rerank for db-model"
    finally:
        if model_id:
            call(host, "POST", "/model/delete", master_key(), {"id": model_id})
        sql(host, "DELETE FROM \"LiteLLM_ProxyModelTable\" WHERE model_name = :'n'", n=name)
