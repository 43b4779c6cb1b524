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

The runner's other database fixes, each seen where it takes effect: the key it rotated (db-05)
completes and the key it replaced lasts its grace; ``store_prompts_in_spend_logs`` turned on in the
database is drift the check names and the converge repairs (db-01); under a bounded burst the
proxy's connections stay within workers x pool, which fits max_connections less the reserve; idle
connections of the proxy's role older than the age are ended, and nothing else (db-04). Each
docstring says which assertion fails with the runner's part undone.

Every key and model a test creates is deleted at its end (another file's ``litellm-status``
reports keys that expire within 14 days), and every spend-log row it caused.

Run: LITELLM_IT_SANDBOX=h-engine-it LITELLM_IT_PORT=2401 \
     .venv/bin/python -m pytest tests/integration/test_proxy_database.py -v -p no:cacheprovider
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import select
import shlex
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pytest
import yaml

from litellm_runner import layout, sandbox
from litellm_runner.gates import capacity
from litellm_runner.gates.capacity import HEALTH_SERVER_CONNECTIONS, OTHER_CLIENTS, RESERVE
from litellm_runner.secrets import read_secrets_file
from tests.support import proxyload
from tests.support.hosts import REPO, drift_check, pyinfra, ssh_argv

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
        f"cd / && runuser -u litellm -- {layout.VENV}/bin/python -I -c {shlex.quote(CLIENT)}",
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


def add_model(host, name: str, backend: str) -> tuple[dict, str | None]:
    """``/model/new`` with the master key: NAME served by the stub model server's BACKEND; (answer, model id)."""
    added = call(
        host,
        "POST",
        "/model/new",
        master_key(),
        {
            "model_name": name,
            "litellm_params": {
                "model": f"hosted_vllm/{backend}",
                "api_base": "http://127.0.0.1:8079/v1",
                "api_key": "none",
            },
        },
    )
    return added, added["body"].get("model_id") or added["body"].get("model_info", {}).get("id")


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
    unit = host.out(f"cat {layout.UNITS}/litellm.service")
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
    # the key's sha256 in the URL, never the key: URLs reach the proxy's access log
    info = call(host, "GET", f"/key/info?key={hashlib.sha256(key.encode()).hexdigest()}", master_key())
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
        row = spend_row(host, request_id)
        assert canary not in row and ANSWER not in row, row
    finally:
        sql(host, "DELETE FROM \"LiteLLM_SpendLogs\" WHERE request_id = :'rid'", rid=request_id)


def test_a_model_stored_in_the_database_is_served(ready, host):
    """store_model_in_db: a model added through the proxy is in LiteLLM_ProxyModelTable, and the proxy serves it (four
    answers in a row: workers that have not polled the table yet answer 4xx until they have)."""
    name = f"h-engine-db-{uuid.uuid4().hex[:8]}"
    added, model_id = add_model(host, name, "db-model")
    assert added["status"] == 200, added
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


MODELS_ITEM = "No database model takes a config model's name | db-06"  # tasks/database.py
SHADOW_ANSWER = "pong from rerank for db-shadow"  # the stub's answer for the database row's backend model


def test_a_database_model_under_a_config_models_name_is_drift_then_moved_out(ready, host, tmp_path):
    """db-06, the rule of docs/database.md: a model added through the proxy under the config's ``local-vllm``
    becomes one more deployment of that name, and the proxy answers part of local-vllm's completions from the
    row's backend. The check names the row (exit 2); the converge moves it into litellm_runner_quarantined_models
    (kept, not served) and restarts the proxy; then every completion of local-vllm is the config's backend's, and
    a second run changes nothing. Fails with the runner's part undone (no db-06): the check exits 0 and the row's
    backend keeps answering."""
    added, model_id = add_model(host, "local-vllm", "db-shadow")
    assert added["status"] == 200, added
    assert model_id, added
    try:
        deadline, answers = time.monotonic() + MODEL_WAIT, []
        while SHADOW_ANSWER not in answers and time.monotonic() < deadline:
            answer = chat(host, master_key())
            assert answer["status"] == 200, answer
            answers.append(answer["body"]["choices"][0]["message"]["content"])
        assert SHADOW_ANSWER in answers, answers  # LiteLLM serves the row beside the config's deployment

        proc, report = drift_check(host, tmp_path)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        drifted = [i for i in report["hosts"][host.name]["items"] if i["status"] == "drift"]
        named = f"database model local-vllm ({model_id})"
        assert any(i["id"] == MODELS_ITEM and named in json.dumps(i["before"]) for i in drifted), drifted

        run = pyinfra([host.name], "-y")
        assert run.returncode == 0, run.why
        assert MODELS_ITEM in run.changed(host.name)
        host.wait_for(f"curl -sf {PROXY}/health/readiness", timeout=600)  # restarted in the rolling order
        answers = [chat(host, master_key()) for _ in range(12)]
        assert [a["status"] for a in answers] == [200] * 12, answers
        assert {a["body"]["choices"][0]["message"]["content"] for a in answers} == {ANSWER}
        assert sql(host, "SELECT count(*) FROM \"LiteLLM_ProxyModelTable\" WHERE model_id = :'i'", i=model_id) == "0"
        assert (
            sql(
                host,
                "SELECT row->>'model_name' FROM litellm_runner_quarantined_models WHERE model_id = :'i'",
                i=model_id,
            )
            == "local-vllm"
        )
        again = pyinfra([host.name], "-y")
        assert again.returncode == 0 and again.changed(host.name) == [], again.why
    finally:
        sql(host, "DELETE FROM \"LiteLLM_ProxyModelTable\" WHERE model_id = :'i'", i=model_id)
        if sql(host, "SELECT to_regclass('litellm_runner_quarantined_models') IS NOT NULL") == "t":
            sql(host, "DELETE FROM litellm_runner_quarantined_models WHERE model_id = :'i'", i=model_id)


# -- the runner's rotation, the settings drift, the pool under load, idle connections ---------------------------

OLD_OPS_KEY = "sk-sandbox-rotate-0004"  # sandbox/incident/seed.py: the incident's ops-team key (5 days left)
SETTINGS_ITEM = "LiteLLM_Config settings rows | db-01"  # tasks/database.py: the item the check names
IDLE_ITEM = "Idle connections terminated (opt-in) | db-04"
HOST_TOOLS = ("litellm-dbctl", "litellm-health-server", "litellm-metrics", "litellm-status")  # their application_name
OURS = "pd-"  # application_name prefix of this file's own connections
AGED = "pd-idle-aged"  # the proxy's role, idle since the module began: older than the age the runner is given
OTHER = "pd-idle-other"  # another role (postgres), idle as long: not the runner's to end
IDLE_MINUTES = 1  # litellm_db_idle_minutes given to the converge of the idle test (its smallest value)

# Holds one connection open and idle (after one SELECT) for SECONDS: as the proxy's role (its DATABASE_URL,
# read from the env file by the runner's own codec) or, for "other", as whoever runs it over the local socket.
HOLD = r"""
import sys, time
name, seconds, tools, who = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
sys.path.insert(0, tools)
import psycopg
if who == "proxy-role":
    import litellm_envfile
    conninfo = litellm_envfile.read(sys.argv[5])["DATABASE_URL"]
else:
    conninfo = "host=/var/run/postgresql port=5434 dbname=litellm"
with psycopg.connect(conninfo, connect_timeout=10, application_name=name, autocommit=True) as conn:
    conn.execute("SELECT 1")
    time.sleep(seconds)
"""

# Samples pg_stat_activity (as postgres, over the local socket) every 0.1 s until the file STOP exists or
# LIMIT seconds passed: the connections of ROLE by application_name, and max_connections, as JSON.
SAMPLER = r"""
import json, os, sys, time
import psycopg
role, stop, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
samples = []
with psycopg.connect("host=/var/run/postgresql port=5434 dbname=litellm", connect_timeout=10,
                     application_name="pd-sampler", autocommit=True) as conn:
    conn.execute("SET statement_timeout = '5s'")
    max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
    print("sampling", flush=True)
    end = time.monotonic() + limit
    while not os.path.exists(stop) and time.monotonic() < end:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE usename = %s GROUP BY 1", (role,)
        ).fetchall()
        samples.append(dict(rows))
        time.sleep(0.1)
print(json.dumps({"samples": samples, "max_connections": max_connections}))
"""


def redacted(obj, *secret: str) -> str:
    """OBJ as JSON with every SECRET replaced: what an assertion message may show."""
    text = json.dumps(obj, default=str)
    for value in secret:
        text = text.replace(value, "[key]")
    return text


def proxy_role() -> str:
    """The database role the proxy connects as: the user of DATABASE_URL in the secret source (not a secret)."""
    return urlsplit(read_secrets_file(sandbox.secrets_file())["DATABASE_URL"]).username or ""


def expires(info: dict) -> datetime.datetime:
    """The ``expires`` of a /key/info answer, as an aware datetime (the proxy writes UTC)."""
    when = datetime.datetime.fromisoformat(info["body"]["info"]["expires"].replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def hold(host, name: str, who: str, seconds: int) -> str:
    """Open one idle connection NAME (application_name) on HOST in the background; the pid of its process."""
    script = f"{layout.VENV}/bin/python -I -c {shlex.quote(HOLD)} {name} {seconds} {layout.BIN} {who} {layout.ENV_FILE}"
    runner = "" if who == "proxy-role" else "runuser -u postgres -- "
    # only the command goes to the background (an `a && b &` list would keep the session's output open)
    pid = host.out(f"cd /; setsid timeout {seconds + 60} {runner}{script} </dev/null >/dev/null 2>&1 & echo $!")
    deadline = time.monotonic() + 60
    while idle_for(host, name) < 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert idle_for(host, name) >= 0, f"connection {name} not idle within 60 s"
    return pid


def idle_for(host, name: str) -> float:
    """Seconds the connection NAME has been idle (-1: it is gone or not idle)."""
    age = sql(
        host,
        "SELECT extract(epoch FROM now() - state_change) FROM pg_stat_activity "
        "WHERE application_name = :'n' AND state = 'idle'",
        n=name,
    )
    return float(age) if age else -1.0


def spend_row(host, request_id: str) -> str:
    """The spend-log row of REQUEST_ID (messages, response, proxy_server_request as JSON text), once the proxy's
    batched writer has written it."""
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
    return row


@pytest.fixture(scope="module")
def spent(ready, host):
    """Request ids of the completions this module's new tests make; their spend-log rows are deleted at its end
    (once the proxy's batched writer has written them, or after SPEND_LOG_WAIT)."""
    ids: list[str] = []
    yield ids
    if not ids:
        return
    joined = ",".join(ids)
    count = "SELECT count(*) FROM \"LiteLLM_SpendLogs\" WHERE request_id = ANY(string_to_array(:'ids', ','))"
    deadline, written, changed = time.monotonic() + SPEND_LOG_WAIT, -1, time.monotonic()
    # until every row is there, or none came for 45 s (the writer's batches are seconds apart)
    while written < len(ids) and time.monotonic() < min(deadline, changed + 45):
        now_written = int(sql(host, count, ids=joined))
        if now_written != written:
            written, changed = now_written, time.monotonic()
        time.sleep(3)
    sql(host, "DELETE FROM \"LiteLLM_SpendLogs\" WHERE request_id = ANY(string_to_array(:'ids', ','))", ids=joined)


@pytest.fixture(scope="module", autouse=True)
def aged_connections(ready, host):
    """Two idle connections opened as the module begins, so they are old by its last test (the idle test):
    AGED as the proxy's role, OTHER as another role. Ended at the module's end (their processes, by pid)."""
    pids = [hold(host, AGED, "proxy-role", 1800), hold(host, OTHER, "other", 1800)]
    yield
    host.ssh(f"kill {' '.join(pids)} 2>/dev/null; true")


def test_prompts_turned_on_in_the_database_are_drift_then_repaired(keys, host, spent, tmp_path):
    """db-01: ``store_prompts_in_spend_logs`` set to true in the database's general_settings row (the proxy reads
    the row at start and the database wins, LiteLLM #31968) is drift the check names (exit 2); the converge sets it
    back (and restarts the proxy); then a completion leaves no prompt in the spend log. Fails with the
    repair undone (dbctl's settings scope not writing that key): the check after the converge exits 2."""
    flag = (
        "SELECT param_value->'store_prompts_in_spend_logs' FROM \"LiteLLM_Config\" "
        "WHERE param_name = 'general_settings'"
    )
    set_flag = (
        'UPDATE "LiteLLM_Config" SET param_value = '
        "jsonb_set(param_value, '{store_prompts_in_spend_logs}', :'v'::jsonb) WHERE param_name = 'general_settings'"
    )
    sql(host, set_flag, v="true")
    try:
        proc, report = drift_check(host, tmp_path)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        drifted = [i for i in report["hosts"][host.name]["items"] if i["status"] == "drift"]
        key = "general_settings.store_prompts_in_spend_logs"
        assert {"id": SETTINGS_ITEM, "before": {key: True}, "after": {key: False}} in [
            {k: i[k] for k in ("id", "before", "after")} for i in drifted
        ], drifted
        assert "store_prompts_in_spend_logs" in proc.stdout
        run = pyinfra([host.name], "-y")
        assert run.returncode == 0, run.why
        assert SETTINGS_ITEM in run.changed(host.name)
    finally:
        if sql(host, flag) != "false":  # a failure above must not leave prompts on for the other tests
            sql(host, set_flag, v="false")
    host.wait_for(f"curl -sf {PROXY}/health/readiness", timeout=600)  # the proxy restarted on the new row
    proc, _ = drift_check(host, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    canary = f"canary-{uuid.uuid4().hex}"
    answer = chat(host, keys(), prompt=f"say pong {canary}")
    assert answer["status"] == 200, answer
    spent.append(answer["body"]["id"])
    row = spend_row(host, answer["body"]["id"])
    assert canary not in row and ANSWER not in row, row


def test_the_key_the_runner_rotated_authenticates_and_the_old_one_lasts_its_grace(ready, host, spent):
    """db-05 through the proxy. The converge found the incident's ops-team key 5 days from expiry (min_days_left
    14), made a new key on the control machine (delivered to .secrets/keys/<host>/ops-team-<time>.key) and wrote
    only its sha256. The new key completes and /key/info (asked with the key itself) reports 90 days from the
    rotation. The rotation policy (docs/database.md): the replaced key keeps working until the rotation + grace_hours
    (24), or its own expiry if sooner; then the proxy refuses it as expired (401, test_an_expired_key_gets_401) and
    the next converge blocks it (db-03). Fails with the grace undone (dbctl's UPDATE of the old key left out):
    the old key would report its seeded expiry, 5 days away, not 24 h."""
    delivered = sorted((REPO / ".secrets" / "keys" / host.name).glob("ops-team-*.key"))
    assert delivered, "the converge delivered no rotated key for ops-team"
    new = delivered[-1].read_text().strip()
    rotated = datetime.datetime.strptime(delivered[-1].stem.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.UTC
    )
    for key in (new, OLD_OPS_KEY):
        answer = chat(host, key)
        assert answer["status"] == 200, redacted(answer, new, OLD_OPS_KEY)
        spent.append(answer["body"]["id"])
        assert answer["body"]["choices"][0]["message"]["content"] == ANSWER
    new_info, old_info = call(host, "GET", "/key/info", new), call(host, "GET", "/key/info", OLD_OPS_KEY)
    assert new_info["status"] == 200 and old_info["status"] == 200, redacted([new_info, old_info], new, OLD_OPS_KEY)
    minute = datetime.timedelta(minutes=1)
    grace = expires(old_info) - rotated
    valid = expires(new_info) - rotated
    assert datetime.timedelta(days=90) - minute <= valid <= datetime.timedelta(days=90) + 10 * minute, valid
    assert datetime.timedelta(hours=24) - minute <= grace <= datetime.timedelta(hours=24) + 10 * minute, grace
    assert expires(old_info) > datetime.datetime.now(datetime.UTC)


def test_under_load_the_proxys_connections_stay_within_workers_times_pool(keys, host, spent):
    """A bounded burst (60 completions, 20 at a time, each with a 60 s timeout) with a virtual key, while
    pg_stat_activity is sampled every 0.1 s: the proxy's connections (its role, without the host tools' and this
    file's application names) never exceed workers x pool, where workers is the unit's --num_workers and pool the
    rendered config's (and the database row's) database_connection_pool_limit, and every engine the proxy started
    was given that pool; that product + the other clients fits max_connections less the reserve (capacity gate);
    the health server holds at most its one connection. Fails with the pool limit undone (the engine
    ignoring connection_limit): its workers log "pool of 10", not the configured 20."""
    unit = host.out(f"cat {layout.UNITS}/litellm.service")
    workers = int(re.search(r"--num_workers (\d+)", unit).group(1))  # type: ignore[union-attr]
    pool = yaml.safe_load(host.out(f"cat {layout.CONFIG_FILE}"))["general_settings"]["database_connection_pool_limit"]
    row = sql(
        host,
        "SELECT param_value->>'database_connection_pool_limit' FROM \"LiteLLM_Config\" "
        "WHERE param_name = 'general_settings'",
    )
    assert row == str(pool), (row, pool)  # the database's value wins over the config's: they agree
    started = re.findall(
        r"query-engine: ready in \d+ ms \(pool of (\d+)\)",
        host.out(
            "journalctl -q --no-pager -o cat _SYSTEMD_USER_UNIT=litellm.service "
            "| grep 'query-engine: ready' | tail -n 50"
        ),
    )
    assert len(started) >= workers and set(started[-workers:]) == {str(pool)}, started[-workers:]

    key = keys()
    stop = f"/tmp/pd-burst-stop-{uuid.uuid4().hex}"
    sampler = subprocess.Popen(
        [
            *ssh_argv(host.name),
            "root@127.0.0.1",
            f"cd / && runuser -u postgres -- {layout.VENV}/bin/python -I -c {shlex.quote(SAMPLER)} "
            f"{shlex.quote(proxy_role())} {stop} 240",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sampler.stdout is not None and select.select([sampler.stdout], [], [], 60)[0], "no sampler in 60 s"
        assert sampler.stdout.readline().strip() == "sampling"
        run = proxyload.burst(host, key, requests=60, concurrency=20, timeout=60)
    finally:
        host.ssh(f"touch {stop}")
        try:
            out, err = sampler.communicate(timeout=60)
        finally:
            sampler.kill()  # a no-op once it has exited
            host.ssh(f"rm -f {stop}")
    spent.extend(r["id"] for r in run["results"] if r["id"])
    statuses = [r["status"] for r in run["results"]]
    assert statuses == [200] * 60, {s: statuses.count(s) for s in set(statuses)}
    sampled = json.loads(out.splitlines()[-1]) if out.strip() else None
    assert sampled and sampled["samples"], err[-2000:]

    def proxys(sample: dict) -> int:
        return sum(n for name, n in sample.items() if name not in HOST_TOOLS and not name.startswith(OURS))

    most = max(proxys(s) for s in sampled["samples"])
    health = max(s.get("litellm-health-server", 0) for s in sampled["samples"])
    assert 1 <= most <= workers * pool, (most, workers, pool)
    assert health <= HEALTH_SERVER_CONNECTIONS, health
    assert workers * pool + OTHER_CLIENTS <= sampled["max_connections"] - RESERVE, capacity.arithmetic(
        workers, pool, sampled["max_connections"]
    )


def test_idle_connections_older_than_the_age_are_ended_and_nothing_else(ready, host, spent):
    """db-04, opt-in (litellm_db_terminate_idle, litellm_db_idle_minutes): the converge ends the proxy's role's
    connections idle longer than the age, and only those. AGED (the proxy's role, idle since the module began)
    is ended; OTHER (another role, as old) and a young one of the proxy's role survive; the proxy still serves
    (its pool closes its own idle connections within seconds). Fails with the fix undone (the converge
    without litellm_db_terminate_idle, or dbctl not terminating): AGED is still there."""
    deadline = time.monotonic() + 120
    while idle_for(host, AGED) < IDLE_MINUTES * 60 + 5 and time.monotonic() < deadline:
        time.sleep(2)
    assert idle_for(host, AGED) >= IDLE_MINUTES * 60 + 5 and idle_for(host, OTHER) >= IDLE_MINUTES * 60 + 5
    young = hold(host, "pd-idle-young", "proxy-role", 300)
    try:
        run = pyinfra(
            [host.name],
            "-y",
            "--data",
            "litellm_db_terminate_idle=true",
            "--data",
            f"litellm_db_idle_minutes={IDLE_MINUTES}",
        )
        assert run.returncode == 0, run.why
        assert IDLE_ITEM in run.changed(host.name)
        assert idle_for(host, AGED) == -1.0
        assert idle_for(host, OTHER) > 0 and idle_for(host, "pd-idle-young") >= 0
    finally:
        host.ssh(f"kill {young} 2>/dev/null; true")
    answer = chat(host, master_key())
    assert answer["status"] == 200, answer
    spent.append(answer["body"]["id"])
