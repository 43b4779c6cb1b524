"""litellm-rotate (files/bin): LiteLLM's encryption as data, then plan/apply against a real PostgreSQL
with LiteLLM's real schema, run as a subprocess exactly as the rotation runs it on the host."""

import hashlib
import http.server
import importlib.machinery
import importlib.util
import json
import subprocess
import sys
import threading
import urllib.parse

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.support.localpg import LocalPostgres
from tests.support.services import BIN

TOOL = BIN / "litellm-rotate"
SALT = "sk-test-salt-0000"
NEW_SALT = "sk-new-salt-1111"
# made by litellm 1.102.4's own functions (litellm/proxy/common_utils/encrypt_decrypt_utils.py) with SALT:
# base64.urlsafe_b64encode(encrypt_value("upstream-key-123", SALT)), _encrypt_aes_gcm("upstream-key-123", SALT),
# encrypt_secret_map({"Authorization": "Bearer mcp-secret"}, new_encryption_key=SALT)
NACL = "yxRBZ4ZLrzIUIVhr2FB7SUF9DGLqTbziLCPUrliItiSWCS0VN6Ldwk5shv7meicJMJpRUVkhA8k="
GCM = "v2:gcm:mhWUKFyo8oTUjaA3dtFjj16GIY5Lj8QhOHbuBxF2CUeE1Q27zjcPe2YW4sc="
SECRET_MAP = (
    '"tvaFqg2FlD1lXF6Ak2iNbssUR6Mbvz1-1672HzVYJ_yGKce325c3C6pmYAm6eW-1M5JZYjrCuRNCbzA_XrKEMd3TwfUBSCAw5wY9gl8="'
)


def load():
    sys.path.insert(0, str(TOOL.parent))  # litellm_tools, litellm_envfile: next to the tool, as on the host
    loader = importlib.machinery.SourceFileLoader("litellm_rotate", str(TOOL))
    spec = importlib.util.spec_from_loader("litellm_rotate", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


rotate = load()


@pytest.mark.parametrize(
    "stored, salt, plaintext",
    [
        (NACL, SALT, "upstream-key-123"),
        (GCM, SALT, "upstream-key-123"),
        (json.loads(SECRET_MAP), SALT, '{"Authorization":"Bearer mcp-secret"}'),
        (NACL, NEW_SALT, None),  # another salt: not decryptable (the MAC fails)
        (GCM, NEW_SALT, None),
        ("openai/gpt-4o", SALT, None),  # plain values stay plain
        ("", SALT, None),
        (NACL[:-8] + "AAAAAAA=", SALT, None),  # a damaged ciphertext
    ],
)
def test_decrypt_litellm_ciphertexts(stored, salt, plaintext):
    assert rotate.decrypt(stored, salt) == plaintext


@pytest.mark.parametrize("like", [NACL, GCM])
def test_encrypt_keeps_the_format_and_round_trips(like):
    sealed = rotate.encrypt("upstream-key-123", NEW_SALT, like=like)
    assert sealed.startswith("v2:gcm:") == like.startswith("v2:gcm:")
    assert rotate.decrypt(sealed, NEW_SALT) == "upstream-key-123"
    assert rotate.decrypt(sealed, SALT) is None


def test_rotate_json_walks_every_string_and_keeps_shapes():
    counts = {"rotated": 0, "already": 0}
    doc = {
        "model": "openai/gpt-4o",
        "api_key": NACL,
        "nested": [GCM, {"x": "litellm_enc::" + NACL}],
        "headers": SECRET_MAP,  # a secret map: a JSON string holding a JSON-quoted ciphertext
        "n": 3,
    }
    out = rotate.rotate_json(doc, SALT, NEW_SALT, counts)
    assert counts == {"rotated": 4, "already": 0}
    assert out["model"] == "openai/gpt-4o" and out["n"] == 3
    assert out["nested"][0].startswith("v2:gcm:") and out["nested"][1]["x"].startswith("litellm_enc::")
    assert out["headers"].startswith('"') and out["headers"].endswith('"')
    assert (
        rotate.plaintexts(out, NEW_SALT)
        == rotate.plaintexts(doc, SALT)
        == [
            "upstream-key-123",
            "upstream-key-123",
            "upstream-key-123",
            '{"Authorization":"Bearer mcp-secret"}',
        ]
    )
    assert rotate.plaintexts(out, SALT) == []
    again = {"rotated": 0, "already": 0}
    assert rotate.rotate_json(out, SALT, NEW_SALT, again) == out  # a second pass changes nothing
    assert again == {"rotated": 0, "already": 4}


def test_with_password_quotes_the_new_password():
    url = rotate.with_password("postgresql://litellm:old@127.0.0.1:5434/litellm", "n/w@:x")
    assert urllib.parse.unquote(urllib.parse.urlsplit(url).password) == "n/w@:x"
    assert url.startswith("postgresql://litellm:") and url.endswith("@127.0.0.1:5434/litellm")
    assert rotate.with_password("postgresql://u%40x:p@[::1]:5434/db", "q") == "postgresql://u%40x:q@[::1]:5434/db"


# -- against a real PostgreSQL -------------------------------------------------------------------------
KEYS = [("sk-live-0001", "ci", None), ("sk-live-0002", None, None), ("sk-dead-0003", "old", True)]


@pytest.fixture(scope="module")
def pg():
    with LocalPostgres() as pg:
        pg.apply_litellm_schema(skip={"LiteLLM_SkillsTable"})
        yield pg


@pytest.fixture
def db(pg, tmp_path):
    """A database holding encrypted model, credential and MCP values and three keys, its env file."""
    with pg.admin(pg.db) as admin:
        admin.execute(f"ALTER ROLE litellm PASSWORD '{pg.password}'")  # a test before may have rotated it
    with pg.connect() as conn:
        for table in ("LiteLLM_ProxyModelTable", "LiteLLM_CredentialsTable", "LiteLLM_MCPServerTable"):
            conn.execute(f'DELETE FROM "{table}"')
        conn.execute('DELETE FROM "LiteLLM_VerificationToken"')
        conn.execute(
            'INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, created_by, updated_by) '
            "VALUES ('m1', 'stub', %s, 'test', 'test'), ('m2', 'stub-gcm', %s, 'test', 'test')",
            (Jsonb({"model": "openai/stub", "api_key": NACL}), Jsonb({"model": "openai/stub", "api_key": GCM})),
        )
        conn.execute(
            'INSERT INTO "LiteLLM_CredentialsTable" (credential_id, credential_name, credential_values, '
            "created_by, updated_by) VALUES ('c1', 'cred', %s, 'test', 'test')",
            (Jsonb({"api_key": NACL, "api_base": "http://127.0.0.1:9"}),),
        )
        conn.execute(
            'INSERT INTO "LiteLLM_MCPServerTable" (server_id, url, transport, credentials, static_headers, '
            "created_by, updated_by) VALUES ('s1', 'http://127.0.0.1:9/mcp', 'http', %s, %s, 'test', 'test')",
            (Jsonb({"auth_value": NACL}), Jsonb(SECRET_MAP)),
        )
        for raw, alias, blocked in KEYS:
            conn.execute(
                'INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, blocked) VALUES (%s, %s, %s, %s)',
                (hashlib.sha256(raw.encode()).hexdigest(), f"sk-...{raw[-4:]}", alias, blocked),
            )
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL={pg.url}\nLITELLM_SALT_KEY={SALT}\n")
    env.chmod(0o600)
    return pg, env


def run(action, env, stdin="", *extra):
    return subprocess.run(
        [sys.executable, str(TOOL), action, "--env-file", str(env), *extra],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(pg):
    with pg.admin(pg.db) as conn:
        return {
            "models": conn.execute(
                'SELECT model_id, litellm_params FROM "LiteLLM_ProxyModelTable" ORDER BY 1'
            ).fetchall(),
            "creds": conn.execute('SELECT credential_values FROM "LiteLLM_CredentialsTable"').fetchall(),
            "mcp": conn.execute('SELECT credentials, static_headers FROM "LiteLLM_MCPServerTable"').fetchall(),
            "keys": conn.execute('SELECT token, key_name FROM "LiteLLM_VerificationToken" ORDER BY 1').fetchall(),
        }


def payload(keys):
    return json.dumps({"salt_key": NEW_SALT, "db_password": "new-pass-" + "x" * 20, "keys": keys})


def test_plan_lists_live_keys_and_counts_encrypted_values(db):
    pg, env = db
    proc = run("plan", env)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert {k["key_alias"] for k in plan["keys"]} == {"ci", None}  # the blocked key is not rotated
    assert plan["encrypted"]["LiteLLM_ProxyModelTable.litellm_params"] == 2
    assert plan["encrypted"]["LiteLLM_CredentialsTable.credential_values"] == 1
    assert plan["encrypted"]["LiteLLM_MCPServerTable.credentials"] == 1
    assert plan["encrypted"]["LiteLLM_MCPServerTable.static_headers"] == 1


def test_apply_rotates_everything_in_one_transaction_and_runs_again_as_a_no_op(db):
    pg, env = db
    old_token = hashlib.sha256(b"sk-live-0001").hexdigest()
    new_token = hashlib.sha256(b"sk-new-0001").hexdigest()
    stdin = payload({old_token: {"token": new_token, "key_name": "sk-...0001"}})
    proc = run("apply", env, stdin)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"rotated": 5, "already": 0, "keys": 1, "role": "litellm"}
    assert NEW_SALT not in proc.stdout + proc.stderr and "new-pass" not in proc.stdout + proc.stderr
    after = snapshot(pg)
    params = dict(after["models"])
    assert rotate.decrypt(params["m1"]["api_key"], NEW_SALT) == "upstream-key-123"
    assert rotate.decrypt(params["m2"]["api_key"], NEW_SALT) == "upstream-key-123"
    assert params["m2"]["api_key"].startswith("v2:gcm:") and params["m1"]["model"] == "openai/stub"
    assert rotate.plaintexts(after["creds"][0][0], NEW_SALT) == ["upstream-key-123"]
    assert after["creds"][0][0]["api_base"] == "http://127.0.0.1:9"
    assert rotate.plaintexts(list(after["mcp"][0]), NEW_SALT) == [
        "upstream-key-123",
        '{"Authorization":"Bearer mcp-secret"}',
    ]
    assert new_token in {t for t, _ in after["keys"]} and old_token not in {t for t, _ in after["keys"]}
    # the role's password is the new one; the old one is refused
    new_url = rotate.with_password(pg.url, "new-pass-" + "x" * 20)
    with psycopg.connect(new_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("litellm",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.url, connect_timeout=10)
    # run again with the same input (a run killed after the commit, before the env file was rendered): the
    # env file's old password is refused, the staged one connects; nothing is rotated twice
    again = run("apply", env, payload({}))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rotated"] == 0 and json.loads(again.stdout)["already"] == 5
    assert snapshot(pg) == after


def test_a_failure_leaves_the_old_salt_keys_and_password(db):
    pg, env = db
    before = snapshot(pg)
    with pg.admin(pg.db) as holder:  # another session holds one model row: apply waits, then gives up
        with holder.transaction():
            holder.execute('SELECT 1 FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s FOR UPDATE', ("m2",))
            token = hashlib.sha256(b"sk-live-0001").hexdigest()
            stdin = payload({token: {"token": "f" * 64, "key_name": "sk-...ffff"}})
            proc = run("apply", env, stdin, "--lock-timeout", "1")
    assert proc.returncode == 3 and "rolled back" in proc.stderr
    assert NEW_SALT not in proc.stderr and "new-pass" not in proc.stderr and pg.password not in proc.stderr
    assert snapshot(pg) == before
    with psycopg.connect(pg.url, connect_timeout=10) as conn:  # the old password still works
        conn.execute("SELECT 1")


@pytest.mark.parametrize(
    "stdin, message",
    [
        ("not json", "expected one JSON document"),
        (json.dumps({"salt_key": NEW_SALT}), "db_password: expected a non-empty string"),
        (json.dumps({"salt_key": "a\nb", "db_password": "p"}), "salt_key: expected a non-empty string"),
    ],
)
def test_bad_input_is_refused_before_the_database(db, stdin, message):
    pg, env = db
    before = snapshot(pg)
    proc = run("apply", env, stdin)
    assert proc.returncode == 2 and message in proc.stderr
    assert snapshot(pg) == before


class Proxy(http.server.BaseHTTPRequestHandler):
    """/v1/models as the proxy answers it: 200 and the models LISTED for the key NEW, 401 for any other."""

    listed: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        ok = self.headers.get("Authorization") == "Bearer sk-new-master"
        body = json.dumps({"data": [{"id": m} for m in self.listed]} if ok else {"error": "401"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    "listed, code, message",
    [
        (["stub", "stub-gcm", "config-model"], 0, ""),
        (["stub", "config-model"], 5, "stored models not served: stub-gcm"),
    ],
)
def test_verify_asks_the_proxy_with_both_keys_and_for_every_stored_model(db, monkeypatch, listed, code, message):
    pg, env = db
    monkeypatch.setattr(Proxy, "listed", listed)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        keys = json.dumps({"old_master_key": "sk-old-master", "new_master_key": "sk-new-master"})
        url = f"http://127.0.0.1:{server.server_address[1]}"
        proc = run("verify", env, keys, "--url", url, "--settle", "1")
    finally:
        server.shutdown()
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "sk-new-master" not in proc.stdout + proc.stderr
    if code == 0:
        assert json.loads(proc.stdout) == {
            "new_master_key": 200,
            "old_master_key": 401,
            "models": 3,
            "stored_models": 2,
        }


def test_the_runners_quarantined_model_rows_are_rotated_too(db):
    """db-06 (litellm-dbctl) keeps whole model rows aside as jsonb: they stay decryptable after a rotation."""
    pg, env = db
    with pg.connect() as conn:
        conn.execute(
            "CREATE TABLE litellm_runner_quarantined_models (model_id text NOT NULL, model_name text, "
            "row jsonb NOT NULL, reason text NOT NULL, quarantined_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO litellm_runner_quarantined_models (model_id, model_name, row, reason) "
            'SELECT model_id, model_name, to_jsonb(m), %s FROM "LiteLLM_ProxyModelTable" m',
            ("db-06",),
        )
    try:
        proc = run("apply", env, payload({}))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["rotated"] == 7  # the 5 values of the fixture, and 2 quarantined api_keys
        with pg.admin(pg.db) as conn:
            rows = [r for (r,) in conn.execute("SELECT row FROM litellm_runner_quarantined_models")]
        assert rotate.plaintexts(rows, NEW_SALT) == ["upstream-key-123", "upstream-key-123"]
        assert rotate.plaintexts(rows, SALT) == []
    finally:
        with pg.admin(pg.db) as conn:
            conn.execute("DROP TABLE litellm_runner_quarantined_models")
