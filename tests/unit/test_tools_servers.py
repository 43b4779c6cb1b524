"""The health server and the metrics exporter against a real PostgreSQL (LiteLLM's
schema), a real Redis and a real HTTP proxy stand-in."""

import datetime
import json
import os
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.localpg import LocalPostgres
from tests.support.services import BIN, Redis, free_port, tool, wait_http


@pytest.fixture(scope="module")
def deps(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    (root / "state" / "archive" / "backups").mkdir(parents=True)
    (root / "state" / "config.generated.yaml").write_text("general_settings:\n  database_connection_pool_limit: 25\n")
    with LocalPostgres() as pg, Redis() as redis:
        pg.apply_litellm_schema()
        with pg.connect() as conn:
            for i, (expires, blocked) in enumerate(
                [
                    ("now() - interval '1 day'", None),
                    ("now() - interval '1 day'", True),
                    ("now() + interval '9 days'", None),
                    ("NULL", None),
                ]
            ):
                conn.execute(
                    f'INSERT INTO "LiteLLM_VerificationToken" (token, expires, blocked) VALUES (%s, {expires}, %s)',
                    (f"t{i}", blocked),
                )
        env = root / "env.litellm"
        env.write_text(f"DATABASE_URL={pg.url}\nREDIS_HOST=127.0.0.1\nREDIS_PORT={redis.port}\n")
        env.chmod(0o600)
        proxy_port = free_port()
        proxy = tool("litellm-stub-server", "--name", "proxy", "--port", str(proxy_port))
        # bound before any other server asks for a free port: two would otherwise get the same one
        wait_http(f"http://127.0.0.1:{proxy_port}/health")
        yield {"root": root, "env": env, "pg": pg, "redis": redis, "proxy": f"http://127.0.0.1:{proxy_port}"}
        proxy.terminate()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def health(deps):
    port = free_port()
    proc = tool(
        "litellm-health-server",
        "--port",
        str(port),
        "--root",
        str(deps["root"]),
        "--env-file",
        str(deps["env"]),
        "--proxy-url",
        deps["proxy"] + "/x",
        env=tool_env(deps["root"]),
    )
    wait_http(f"http://127.0.0.1:{port}/healthz")
    assert proc.poll() is None, "the health server exited (its port was taken?)"  # it is ours that answered
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert deps["pg"].password not in out + err


def write_backup(root, verified=True, hours_old=1):
    t = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=hours_old)
    (root / "state" / "archive" / "backups" / "last-backup.json").write_text(
        json.dumps({"time": t.isoformat(), "file": "x.dump", "size_bytes": 1234, "verified": verified})
    )


def test_healthz(health):
    assert get(f"{health}/healthz") == (200, '{"status": "ok"}')


def test_readyz_names_each_dependency(health, deps):
    write_backup(deps["root"])
    code, body = get(f"{health}/readyz")
    doc = json.loads(body)
    # the stand-in answers /health only: the proxy check must fail and say so
    assert code == 503 and doc["checks"]["proxy"] == {"ok": False, "detail": "HTTP 404"}
    assert doc["checks"]["database"]["ok"] and doc["checks"]["redis"]["ok"] and doc["checks"]["backup"]["ok"]
    assert deps["pg"].password not in body


def test_stale_or_unverified_backup_is_unready(health, deps):
    write_backup(deps["root"], verified=False)
    assert "NOT verified" in json.loads(get(f"{health}/readyz")[1])["checks"]["backup"]["detail"]
    write_backup(deps["root"], hours_old=30)
    assert json.loads(get(f"{health}/readyz")[1])["checks"]["backup"]["ok"] is False
    write_backup(deps["root"])


def test_dashboard_is_html(health):
    code, body = get(f"{health}/")
    assert code == 200 and body.startswith("<!doctype html>") and "NOT ready" in body and "database" in body


def metrics(url):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(get(url)[1])
        for s in f.samples
    }


def test_metrics_match_the_database(deps):
    port = free_port()
    write_backup(deps["root"])
    (deps["root"] / "state" / "compliance.json").write_text('{"ok": true}')
    proc = tool(
        "litellm-metrics",
        "--port",
        str(port),
        "--root",
        str(deps["root"]),
        "--env-file",
        str(deps["env"]),
        "--units",
        "none.service",
        env=tool_env(deps["root"]),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics")
        m = metrics(f"http://127.0.0.1:{port}/metrics")
        assert m[("litellm_db_up", ())] == 1
        assert m[("litellm_virtual_keys", (("state", "valid"),))] == 2
        assert m[("litellm_virtual_keys", (("state", "expired"),))] == 1
        assert m[("litellm_virtual_keys", (("state", "blocked"),))] == 1
        assert m[("litellm_spend_log_rows", ())] == 0
        assert m[("litellm_db_max_connections", ())] == 100
        assert m[("litellm_db_connections_in_use", ())] >= 1
        assert m[("litellm_db_connection_pool_limit", ())] == 25
        assert m[("litellm_db_connection_pool_total", ())] == 100
        assert m[("litellm_backup_verified", ())] == 1 and m[("litellm_backup_size_bytes", ())] == 1234
        assert m[("litellm_compliance_check_ok", ())] == 1
        assert m[("litellm_unit_active", (("unit", "none.service"),))] == 0
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert deps["pg"].password not in out + err


def test_metrics_survive_a_database_that_is_down(deps, tmp_path):
    env = tmp_path / "env"
    env.write_text("DATABASE_URL=postgresql://litellm:pw-canary-77@127.0.0.1:1/litellm\n")
    port = free_port()
    proc = tool(
        "litellm-metrics",
        "--port",
        str(port),
        "--root",
        str(deps["root"]),
        "--env-file",
        str(env),
        "--units",
        "",
        env=tool_env(deps["root"]),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics")
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "litellm_db_up 0.0" in body and "pw-canary-77" not in body
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def tool_env(root):
    """The tools' environment: no DATABASE_URL of the control machine; the rendered config in ROOT/state
    (LITELLM_CONFIG_DIR: on a host it is root's /etc/litellm)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {**env, "LITELLM_CONFIG_DIR": str(root / "state")}


def status(deps, *args):
    import subprocess
    import sys

    from tests.support.services import BIN

    return subprocess.run(
        [
            sys.executable,
            str(BIN / "litellm-status"),
            "--root",
            str(deps["root"]),
            "--env-file",
            str(deps["env"]),
            "--units",
            "none.service",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=tool_env(deps["root"]),
    )


def test_status_names_what_fails(deps):
    write_backup(deps["root"])
    config = deps["root"] / "state" / "config.generated.yaml"
    config.write_text(
        "general_settings:\n  database_connection_pool_limit: 25\n  store_prompts_in_spend_logs: true\n"
        "  disable_error_logs: false\n  master_key: sk-literal\n"
    )
    proc = status(
        deps, "--skip", "health", "--skip", "metrics", "--skip", "prisma"
    )  # see test_status_prisma_without_the_client
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1
    assert f"OK   database: 127.0.0.1:{deps['pg'].port}/litellm" in lines
    assert "OK   backups: verified, 1.0 h old" in lines
    assert "FAIL services: inactive: none.service" in lines
    assert "FAIL config: store_prompts_in_spend_logs is not false; master_key is a literal value" in lines
    assert [line for line in lines if line.startswith("FAIL keys: expiring within 14 days: (no alias) (None)")]
    assert lines[-1] == "status: 3 check(s) failed: services, keys, config"
    assert "sk-literal" not in proc.stdout and deps["pg"].password not in proc.stdout + proc.stderr


def test_status_passes_when_all_is_well(deps):
    write_backup(deps["root"])
    (deps["root"] / "state" / "config.generated.yaml").write_text(
        "general_settings:\n  store_prompts_in_spend_logs: false\n  disable_error_logs: false\n"
        "  master_key: os.environ/LITELLM_MASTER_KEY\n"
    )
    proc = status(
        deps,
        "--quiet",
        "--skip",
        "health",
        "--skip",
        "metrics",
        "--skip",
        "services",
        "--skip",
        "keys",
        "--skip",
        "prisma",
    )
    assert proc.returncode == 0 and proc.stdout == ""
    (deps["root"] / "state" / "config.generated.yaml").write_text(
        "general_settings:\n  database_connection_pool_limit: 25\n"
    )


BURST = """
import concurrent.futures, json, sys, threading, urllib.request
import psycopg

url, admin, role, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
stop, seen = threading.Event(), []


def sample():  # ROLE's connections in pg_stat_activity: (count, application names) per sample
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        while not stop.is_set():
            rows = conn.execute("SELECT application_name FROM pg_stat_activity WHERE usename = %s", (role,)).fetchall()
            seen.append((len(rows), sorted({r[0] for r in rows})))


def get(_):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


sampler = threading.Thread(target=sample)
sampler.start()
try:
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(get, range(n)))
finally:
    stop.set()
    sampler.join(timeout=30)
print(json.dumps({"answers": answers, "seen": seen}))
"""


def burst(url, pg, role, n):
    """N parallel GETs of URL while ROLE's connections are sampled, in a fresh interpreter (real threads:
    the unit run has gevent's monkey patching from pyinfra)."""
    import subprocess
    import sys

    admin = f"host={pg.socket_dir} port={pg.port} user=postgres dbname=postgres"
    proc = subprocess.run(
        [sys.executable, "-c", BURST, url, admin, role, str(n)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return doc["answers"], doc["seen"]


def test_parallel_readyz_share_one_connection(deps, tmp_path):
    """60 parallel /readyz: every one answered, the server never holds more connections than capacity.py
    budgets. The server's own role has CONNECTION LIMIT at that budget, so one more connection would fail
    a request's database check (before: 60 requests, 60 connections)."""
    from psycopg import sql

    from litellm_runner.gates.capacity import HEALTH_SERVER_CONNECTIONS

    pg, role, password = deps["pg"], "health_probe", "pw-probe-7f3e"
    with pg.admin() as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {}").format(
                sql.Identifier(role), sql.Literal(password), sql.Literal(HEALTH_SERVER_CONNECTIONS)
            )
        )
    env = tmp_path / "env.litellm"
    env.write_text(
        f"DATABASE_URL=postgresql://{role}:{password}@127.0.0.1:{pg.port}/litellm\n"
        f"REDIS_HOST=127.0.0.1\nREDIS_PORT={deps['redis'].port}\n"
    )
    port = free_port()
    proc = tool(
        "litellm-health-server",
        "--port",
        str(port),
        "--root",
        str(deps["root"]),
        "--env-file",
        str(env),
        "--proxy-url",
        deps["proxy"],
        env=tool_env(deps["root"]),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        answers, seen = burst(f"http://127.0.0.1:{port}/readyz", pg, role, 60)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        with pg.admin() as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert len(answers) == 60 and len({code for code, _ in answers}) == 1  # one shared probe, one verdict
    databases = [json.loads(body)["checks"]["database"] for _, body in answers]
    assert [d for d in databases if not d["ok"]] == []
    assert seen and max(count for count, _ in seen) <= HEALTH_SERVER_CONNECTIONS
    assert {name for _, names in seen for name in names} <= {"litellm-health-server"}
    assert password not in out + err + "".join(body for _, body in answers)


CANARY = "pw-canary-c4n4ry"
BAD_URLS = [
    f"postgresql://litellm:{CANARY}:x@127.0.0.1:1/litellm",  # a ':' in the password: parses, unreachable
    f"postgresql://litellm:{CANARY}@x@127.0.0.1:1/litellm",  # a raw '@': libpq would take 'x@127...' as host
    f"postgresql://litellm:{CANARY}%ZZ@127.0.0.1:1/litellm",  # libpq's error quotes a bad %-token
    f"postgresql://litellm:{CANARY}@127.0.0.1:abc/litellm",  # urlsplit raises on the port
    f"postgresql://litellm:{CANARY}@127.0.0.1:99999/litellm",
    f"postgresql://litellm:{CANARY}@[::1/litellm",
    f"litellm:{CANARY}@127.0.0.1",  # libpq's error quotes a conninfo string whole
]


def leaks(text):
    return [piece for piece in (CANARY, "c4n4ry", "canary", "Traceback") if piece in text]


@pytest.mark.parametrize("url", BAD_URLS)
def test_health_server_never_shows_the_password(deps, tmp_path, url):
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL={url}\n")
    port = free_port()
    proc = tool(
        "litellm-health-server",
        "--port",
        str(port),
        "--root",
        str(deps["root"]),
        "--env-file",
        str(env),
        "--proxy-url",
        deps["proxy"],
        env=tool_env(deps["root"]),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        code, body = get(f"http://127.0.0.1:{port}/readyz")
        dashboard_code, page = get(f"http://127.0.0.1:{port}/")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert code == 503 and json.loads(body)["checks"]["database"]["ok"] is False and dashboard_code == 200
    assert leaks(body + page + out + err) == []


@pytest.mark.parametrize("url", BAD_URLS)
def test_status_never_shows_the_password(deps, tmp_path, url):
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL={url}\n")
    proc = status({**deps, "env": env}, "--skip", "health", "--skip", "metrics", "--skip", "services")
    assert proc.returncode == 1
    assert [line for line in proc.stdout.splitlines() if line.startswith("FAIL database: ")]
    assert [line for line in proc.stdout.splitlines() if line.startswith("FAIL keys: ")]
    assert leaks(proc.stdout + proc.stderr) == []


def test_tool_sessions_carry_their_timeouts(deps):
    """tools.connect sets the session's statement and lock timeouts and name at connect (libpq options)."""
    import subprocess
    import sys

    from tests.support.services import BIN

    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import litellm_tools as t; "
        "c = t.connect(sys.argv[2], 5, statement_timeout=3, lock_timeout=2.5, application_name='litellm-status'); "
        "print([c.execute(q).fetchone()[0] for q in ('SHOW statement_timeout', 'SHOW lock_timeout', "
        "'SHOW application_name')])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(BIN), deps["pg"].url], capture_output=True, text=True, timeout=30
    )
    assert proc.stdout.strip() == "['3s', '2500ms', 'litellm-status']", proc.stderr


# --- the stub model server (files/bin/litellm-stub-server): what the proxy, the model inventory and the
# capability probes rely on. Each row: method, path, body (None: no body), expected status, expected JSON.
CHAT = {"model": "hosted_vllm/local-model", "messages": [{"role": "user", "content": "say pong please"}]}
ANSWER = {"role": "assistant", "content": "pong from rerank for local-model"}
STUB_ROWS = [
    ("GET", "/health", None, 200, {"status": "ok", "name": "rerank"}),
    (
        "GET",
        "/v1/models",
        None,
        200,
        {
            "object": "list",
            "data": [
                {"id": "local-model", "object": "model", "created": 0, "owned_by": "litellm-stub"},
                {"id": "other", "object": "model", "created": 0, "owned_by": "litellm-stub"},
            ],
        },
    ),
    ("POST", "/v1/chat/completions", CHAT, 200, {"message": ANSWER, "usage": [3, 5, 8]}),
    ("POST", "/chat/completions", {**CHAT, "model": "other"}, 200, {"content": "pong from rerank for other"}),
    ("POST", "/v1/chat/completions", {**CHAT, "model": "missing"}, 404, {"code": "model_not_found"}),
    ("POST", "/v1/chat/completions", {"model": "local-model", "messages": []}, 400, {"code": "invalid_request"}),
    ("POST", "/v1/chat/completions", "not json", 400, {"code": "invalid_json"}),
    ("POST", "/v1/embeddings", CHAT, 404, {"code": "not_found"}),
    ("GET", "/nothing", None, 404, {"code": "not_found"}),
]


@pytest.fixture(scope="module")
def stub():
    port = free_port()
    proc = tool(
        "litellm-stub-server", "--name", "rerank", "--port", str(port), "--model", "local-model", "--model", "other"
    )
    wait_http(f"http://127.0.0.1:{port}/health")
    assert proc.poll() is None, "the stub exited (its port was taken?)"
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.communicate(timeout=10)


def request(url, method, body):
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def summary(doc):
    """The parts of a stub answer a row compares."""
    if "choices" in doc:
        usage = doc["usage"]
        return {
            "message": doc["choices"][0]["message"],
            "content": doc["choices"][0]["message"]["content"],
            "usage": [usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]],
        }
    return {"code": doc["error"]["code"]} if "error" in doc else doc


@pytest.mark.parametrize(
    "method,path,body,status,expected", STUB_ROWS, ids=[f"{r[0]} {r[1]} {r[3]}" for r in STUB_ROWS]
)
def test_stub_server_speaks_openai(stub, method, path, body, status, expected):
    code, content_type, text = request(stub + path, method, body)
    got = summary(json.loads(text))
    assert (code, content_type) == (status, "application/json")
    assert {k: got[k] for k in expected} == expected


def test_stub_answers_are_deterministic(stub):
    first = json.loads(request(stub + "/v1/chat/completions", "POST", CHAT)[2])
    again = json.loads(request(stub + "/v1/chat/completions", "POST", CHAT)[2])
    other = json.loads(request(stub + "/v1/chat/completions", "POST", {**CHAT, "messages": [{"content": "x"}]})[2])
    assert first == again and first["id"].startswith("chatcmpl-stub-") and first["created"] == 0
    assert other["id"] != first["id"] and other["usage"]["prompt_tokens"] == 1


def test_stub_streams_server_sent_events(stub):
    code, content_type, text = request(stub + "/v1/chat/completions", "POST", {**CHAT, "stream": True})
    events = [line[len("data: ") :] for line in text.split("\n\n") if line]
    assert (code, content_type) == (200, "text/event-stream") and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks] == [ANSWER, {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "stop"]


def test_status_prisma_without_the_client(deps):
    """The runner's own interpreter has neither litellm nor prisma: the check says what a host without prisma
    suffers (the sandbox converge shows the installed, not generated case: tests/integration/test_traffic.py)."""
    others = [
        a
        for name in ("services", "database", "backups", "health", "metrics", "keys", "config", "models", "probes",
                     "proxy-database")
        for a in ("--skip", name)
    ]  # fmt: skip
    proc = status(deps, *others)
    assert proc.returncode == 1 and proc.stdout.splitlines() == [
        "FAIL prisma: prisma is not installed: the proxy answers 500 to a request without a key, and has no database",
        "status: 1 check(s) failed: prisma",
    ]


@pytest.fixture
def readiness():
    """A stand-in proxy whose /health/readiness answers what the test sets: ``(answer dict, its URL)``."""
    import http.server
    import threading

    answer = {"status": 200, "body": b"{}"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(answer["status"] if self.path == "/health/readiness" else 404)
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield answer, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


CANNOT = "the proxy cannot use its database"


@pytest.mark.parametrize(
    "status, body, ok, line",
    [
        (200, {"status": "healthy", "db": "connected"}, True,
         "OK   proxy-database: the proxy's /health/readiness: db connected"),
        (503, {"status": "unhealthy", "db": "Not connected"}, False,
         "FAIL proxy-database: the proxy's /health/readiness (HTTP 503): db Not connected: " + CANNOT),
        (200, {"status": "healthy", "db": "Not connected"}, False,
         "FAIL proxy-database: the proxy's /health/readiness (HTTP 200): db Not connected: " + CANNOT),
        (200, ["x"], False, "FAIL proxy-database: proxy {url}: /health/readiness HTTP 200, not a JSON object"),
    ],
    ids=["connected", "503", "200-not-connected", "not-json"],
)  # fmt: skip
def test_status_reports_the_database_as_the_proxy_sees_it(deps, readiness, tmp_path, status, body, ok, line):
    """proxy-database: the "db" of the proxy's own readiness answer, for a config with a database_url."""
    answer, url = readiness
    answer.update(status=status, body=json.dumps(body).encode())
    root = tmp_path / "root"
    (root / "state").mkdir(parents=True)
    (root / "state" / "config.generated.yaml").write_text(
        "general_settings:\n  database_url: os.environ/DATABASE_URL\n"
    )
    others = ("services", "database", "backups", "health", "metrics", "keys", "config", "models", "probes", "prisma")
    proc = subprocess.run(
        [sys.executable, str(BIN / "litellm-status"), "--root", str(root), "--env-file", str(deps["env"]),
         "--proxy-url", url, *[a for c in others for a in ("--skip", c)]],
        capture_output=True, text=True, timeout=60, check=False, env=tool_env(root),
    )  # fmt: skip
    assert proc.stdout.splitlines()[0] == line.format(url=url), proc.stdout + proc.stderr
    assert proc.returncode == (0 if ok else 1)
    assert deps["pg"].password not in proc.stdout


def test_status_proxy_database_is_not_asked_without_a_database_url(deps):
    proc = status(deps, *[a for c in ("services", "database", "backups", "health", "metrics", "keys", "config",
                                       "models", "probes", "prisma") for a in ("--skip", c)])  # fmt: skip
    assert proc.stdout.splitlines()[0] == (
        "OK   proxy-database: not used: the config has no database_url (the proxy runs without a database)"
    )


@pytest.mark.parametrize(
    "models, ok, line",
    [
        (["kept", "gone"], False, "FAIL probes: last run T: 1 ok, 2 failed, 0 skipped; failed: gone, kept"),
        (["kept"], False, "FAIL probes: last run T: 1 ok, 2 failed, 0 skipped; failed: kept; "
                          "1 failed model(s) no longer in the config"),
        (["fine"], True, "OK   probes: last run T: 1 ok, 2 failed, 0 skipped; "
                         "2 failed model(s) no longer in the config"),
    ],
    ids=["both-desired", "one-removed", "both-removed"],
)  # fmt: skip
def test_status_probes_count_only_models_still_in_the_config(deps, tmp_path, models, ok, line):
    """A model whose probe failed and that a converge has since removed from the config is no failure now."""
    root = tmp_path / "root"
    (root / "state").mkdir(parents=True)
    (root / "state" / "config.generated.yaml").write_text(
        "model_list:\n" + "".join(f"  - model_name: {m}\n    litellm_params: {{model: x/y}}\n" for m in models)
    )
    record = {"time": "T", "error": None, "ok": 1, "failed": 2, "skipped": 0,
              "models": {"fine": {"ok": True}, "kept": {"ok": False}, "gone": {"ok": False}}}  # fmt: skip
    (root / "state" / "capabilities.json").write_text(json.dumps(record))
    others = ("services", "database", "backups", "health", "metrics", "keys", "config", "models", "prisma",
              "proxy-database")  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(BIN / "litellm-status"), "--root", str(root), "--env-file", str(deps["env"]),
         *[a for c in others for a in ("--skip", c)]],
        capture_output=True, text=True, timeout=60, check=False, env=tool_env(root),
    )  # fmt: skip
    assert proc.stdout.splitlines()[0] == line, proc.stdout + proc.stderr
    assert proc.returncode == (0 if ok else 1)
