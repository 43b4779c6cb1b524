"""litellm-dbctl against a real PostgreSQL with LiteLLM's real schema, run as a
subprocess exactly as the deploy runs it on the host."""

import base64
import datetime
import hashlib
import json
import shutil
import subprocess
import sys
import time

import psycopg
import pytest

from litellm_runner.pyinfra_ext.database import deliver_key, new_key
from tests.support.localpg import LocalPostgres, migrations_dir
from tests.support.services import BIN

DBCTL = str(BIN / "litellm-dbctl")
MIGRATIONS = migrations_dir()
HOSTILE = '\'; DROP TABLE "LiteLLM_VerificationToken"; --'
DESIRED = {
    "settings": {
        "general_settings": {
            "database_connection_pool_limit": 25,
            "store_prompts_in_spend_logs": False,
            "disable_error_logs": False,
        },
        "litellm_settings": {"request_timeout": 120},
    },
    "block_expired": True,
    "terminate_idle": True,
    "idle_minutes": 5,
    "rotations": [{"alias": "ops-team", "min_days_left": 14, "valid_days": 90, "grace_hours": 24}],
}


@pytest.fixture(scope="module")
def pg():
    with LocalPostgres() as pg:
        pg.apply_litellm_schema(skip={"LiteLLM_SkillsTable"})
        yield pg


@pytest.fixture
def db(pg, tmp_path):
    """The incident's database state, planted fresh for each test."""
    with pg.connect() as conn:
        conn.execute('DELETE FROM "LiteLLM_Config"')
        conn.execute('DELETE FROM "LiteLLM_VerificationToken"')
        conn.execute('DROP TABLE IF EXISTS "LiteLLM_SkillsTable"')
        conn.execute(
            'INSERT INTO "LiteLLM_Config" VALUES (%s, %s)',
            (
                "general_settings",
                json.dumps(
                    {
                        "database_connection_pool_limit": 10,
                        "store_prompts_in_spend_logs": True,
                        "disable_error_logs": True,
                        "ui_theme": "kept",
                    }
                ),
            ),
        )
        for raw, alias, expires, blocked in [
            ("sk-a-0001", "old-ci", "now() - interval '9 days'", None),
            ("sk-b-0002", "old-batch", "now() - interval '1 day'", False),
            ("sk-c-0003", "reporting", "now() + interval '300 days'", None),
            ("sk-d-0004", "ops-team", "now() + interval '5 days'", None),
        ]:
            conn.execute(
                f'INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, expires, blocked, models) '
                f"VALUES (%s, %s, %s, {expires}, %s, %s)",
                (hashlib.sha256(raw.encode()).hexdigest(), f"sk-...{raw[-4:]}", alias, blocked, ["m1"]),
            )
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL={pg.url}\n")
    env.chmod(0o600)
    return pg, env


def dbctl(env, action, scope, desired=DESIRED, **extra):
    b64 = base64.b64encode(json.dumps(desired).encode()).decode()
    proc = subprocess.run(
        [
            sys.executable,
            DBCTL,
            action,
            "--scope",
            scope,
            "--env-file",
            str(env),
            "--desired-b64",
            b64,
            *sum((["--" + k.replace("_", "-"), v] for k, v in extra.items()), []),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc


def items(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["items"]


def test_settings_plan_apply_then_nothing(db):
    pg, env = db
    planned = items(dbctl(env, "plan", "settings"))
    assert {(i["id"], str(i["before"]), str(i["after"])) for i in planned} == {
        ("general_settings.database_connection_pool_limit", "10", "25"),
        ("general_settings.store_prompts_in_spend_logs", "True", "False"),
        ("general_settings.disable_error_logs", "True", "False"),
        ("litellm_settings.request_timeout", "(unset)", "120"),
    }
    assert items(dbctl(env, "apply", "settings")) == planned
    with pg.connect() as conn:
        live = int(conn.execute("SHOW max_connections").fetchone()[0])
    assert json.loads(dbctl(env, "plan", "settings").stdout)["max_connections"] == live > 0
    assert items(dbctl(env, "plan", "settings")) == []
    with pg.connect() as conn:
        rows = dict(conn.execute('SELECT param_name, param_value FROM "LiteLLM_Config"').fetchall())
    assert rows["general_settings"]["ui_theme"] == "kept"  # not managed: left as it was
    assert rows["general_settings"]["database_connection_pool_limit"] == 25
    assert rows["litellm_settings"] == {"request_timeout": 120}


def test_schema_baseline_records_what_is_there_and_applies_the_rest(db):
    """The incident's database (built by hand, no _prisma_migrations, one table missing) is baselined:
    the migration that makes the missing table is applied, every other one recorded as applied."""
    pg, env = db
    planned = {i["id"]: i["after"] for i in items(dbctl(env, "plan", "schema"))}
    assert len(planned) == len(list(MIGRATIONS.glob("*/migration.sql")))
    assert planned.pop("migration 20251220144550_schema_update").startswith("applied")
    assert {after.split(":")[0] for after in planned.values()} == {"recorded as applied"}
    assert items(dbctl(env, "apply", "schema"))
    assert items(dbctl(env, "plan", "schema")) == []
    with pg.connect() as conn:
        steps = dict(conn.execute("SELECT migration_name, applied_steps_count FROM _prisma_migrations").fetchall())
        assert conn.execute('SELECT count(*) FROM "LiteLLM_VerificationToken"').fetchone()[0] == 4  # no data lost
    assert steps.pop("20251220144550_schema_update") == 1 and set(steps.values()) == {0}
    with pg.connect() as conn:
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'LiteLLM_SkillsTable'"
            ).fetchall()
        }
    assert {"skill_id", "display_title", "instructions", "file_content", "created_at"} <= cols


def test_expired_keys_blocked_and_named_without_token(db):
    pg, env = db
    proc = dbctl(env, "apply", "keys")
    assert [i["id"] for i in items(proc)] == ["key old-batch (sk-...0002)", "key old-ci (sk-...0001)"]
    assert hashlib.sha256(b"sk-a-0001").hexdigest() not in proc.stdout
    assert items(dbctl(env, "plan", "keys")) == []
    with pg.connect() as conn:
        assert conn.execute(
            'SELECT key_alias, blocked FROM "LiteLLM_VerificationToken" WHERE expires > now() ORDER BY key_alias'
        ).fetchall() == [("ops-team", None), ("reporting", None)]


def test_rotation_creates_one_key_and_is_then_idempotent(db, tmp_path):
    pg, env = db
    assert [i["id"] for i in items(dbctl(env, "plan", "rotation"))] == ["rotate ops-team"]
    raw, token, key_name = new_key()
    path = deliver_key("host-1", "ops-team", raw, base=tmp_path / "keys")
    desired = {**DESIRED, "rotations": [{**DESIRED["rotations"][0], "new_token": token, "new_key_name": key_name}]}
    proc = dbctl(env, "apply", "rotation", desired)
    assert raw not in proc.stdout + proc.stderr
    assert items(dbctl(env, "plan", "rotation")) == []
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    with pg.connect() as conn:
        rows = conn.execute(
            "SELECT token, key_name, models, expires > now() + interval '89 days', "
            "expires < now() + interval '25 hours' FROM \"LiteLLM_VerificationToken\" "
            "WHERE key_alias = 'ops-team' ORDER BY expires DESC"
        ).fetchall()
    assert len(rows) == 2
    new, old = rows
    assert new[0] == hashlib.sha256(path.read_text().strip().encode()).hexdigest()
    assert new[1] == key_name and new[2] == ["m1"] and new[3] is True
    assert old[4] is True  # the old key now expires within the grace period


SHADOWS = [  # (model_id, model_name, served after the converge?)
    ("own-1", "team-model", True),  # a name of its own: the operator's, left alone
    ("beside-1", "local-vllm", False),  # the config's name: would take a share of its traffic
    ("by-id-1", "renamed", False),  # the config's explicit id: would replace its deployment
    ("\x1b[2Jx", "local-vllm", False),  # a hostile id: named, escaped
]


def test_database_models_that_take_a_config_models_name_or_id_are_moved_not_deleted(db):
    pg, env = db
    with pg.connect() as conn:
        conn.execute('DELETE FROM "LiteLLM_ProxyModelTable"')
        conn.execute("DROP TABLE IF EXISTS litellm_runner_quarantined_models")
        for model_id, name, _ in SHADOWS:
            conn.execute(
                'INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, created_by, '
                "updated_by) VALUES (%s, %s, %s, 'ui', 'ui')",
                (model_id, name, json.dumps({"model": "ciphertext", "api_key": "ciphertext-key"})),
            )
    desired = {**DESIRED, "config_models": [{"model_name": "local-vllm", "id": "by-id-1"}]}
    planned = items(dbctl(env, "plan", "models", desired))
    assert [i["id"] for i in planned] == [
        "database model local-vllm (??2Jx)",
        "database model local-vllm (beside-1)",
        "database model renamed (by-id-1)",
    ]
    assert [i["before"].split(" ")[0] for i in planned] == ["served", "served", "replaces"]
    assert items(dbctl(env, "apply", "models", desired)) == planned
    assert items(dbctl(env, "plan", "models", desired)) == []
    with pg.connect() as conn:
        left = conn.execute('SELECT model_id FROM "LiteLLM_ProxyModelTable"').fetchall()
        moved = conn.execute(
            "SELECT model_id, row->>'model_name', row->'litellm_params'->>'api_key' FROM "
            "litellm_runner_quarantined_models ORDER BY model_id"
        ).fetchall()
    assert left == [(m,) for m, _, served in SHADOWS if served]
    assert moved == sorted((m, n, "ciphertext-key") for m, n, served in SHADOWS if not served)


def test_no_config_models_means_no_database_model_is_drift(db):
    pg, env = db
    assert items(dbctl(env, "plan", "models", {**DESIRED, "config_models": []})) == []


def test_idle_connections_terminated(db):
    pg, env = db
    with pg.connect() as idle_conn:
        idle_conn.execute("SELECT 1")
        desired = {**DESIRED, "idle_minutes": 0}
        planned = items(dbctl(env, "plan", "idle", desired))
        assert planned and planned[0]["id"] == "idle connections"
        dbctl(env, "apply", "idle", desired)
        with pytest.raises(psycopg.OperationalError):
            idle_conn.execute("SELECT 1")
        assert items(dbctl(env, "plan", "idle", desired)) == []


@pytest.mark.parametrize("value", [HOSTILE, "a'b", 'x; DELETE FROM "LiteLLM_Config"', "$$; SELECT 1; $$"])
def test_hostile_values_are_stored_literally(db, value):
    pg, env = db
    desired = {
        **DESIRED,
        "settings": {"general_settings": {"alerting_note": value}},
        "rotations": [{"alias": value, "min_days_left": 14}],
    }
    items(dbctl(env, "apply", "settings", desired))
    with pg.connect() as conn:
        stored = conn.execute(
            "SELECT param_value->>'alerting_note' FROM \"LiteLLM_Config\" WHERE param_name = 'general_settings'"
        ).fetchone()[0]
        assert stored == value
        assert conn.execute('SELECT count(*) FROM "LiteLLM_VerificationToken"').fetchone()[0] == 4
    proc = dbctl(env, "plan", "rotation", desired)
    assert proc.returncode == 2 and "no unblocked key with alias" in proc.stderr
    with pg.connect() as conn:
        assert conn.execute("SELECT to_regclass('\"LiteLLM_VerificationToken\"')").fetchone()[0]


def test_unreachable_database_is_named_without_password(tmp_path):
    canary = "pw-canary-5e1f"
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL=postgresql://litellm:{canary}@127.0.0.1:1/litellm\n")
    proc = dbctl(env, "plan", "settings")
    assert proc.returncode == 3
    assert proc.stderr.startswith("litellm-dbctl: database 127.0.0.1:1/litellm unreachable")
    assert canary not in proc.stdout + proc.stderr


def test_wrong_password_is_named_without_password(db, tmp_path):
    pg, _ = db
    canary = "pw-canary-9a8b"
    env = tmp_path / "bad.env"
    env.write_text(f"DATABASE_URL={pg.url.replace(pg.password, canary)}\n")
    proc = dbctl(env, "plan", "settings")
    assert proc.returncode == 3 and f"127.0.0.1:{pg.port}/litellm unreachable" in proc.stderr
    assert canary not in proc.stdout + proc.stderr


def test_bad_input(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            DBCTL,
            "plan",
            "--scope",
            "settings",
            "--env-file",
            str(tmp_path / "x"),
            "--desired-b64",
            "!!!",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "--desired-b64: expected base64 of a JSON object" in proc.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://litellm:pw-canary-p0rt@127.0.0.1:abc/litellm",
        "litellm:pw-canary-p0rt@127.0.0.1",
        "host=127.0.0.1 port=1 password=pw-canary-p0rt dbname=litellm",
        "postgresql://litellm:pw-canary-p0rt@127.0.0.1:5434",
    ],
)
def test_malformed_database_url_is_refused_without_showing_it(tmp_path, url):
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL={url}\n")
    proc = dbctl(env, "plan", "settings")
    assert proc.returncode == 2
    assert "DATABASE_URL: expected postgresql://USER:PASSWORD@HOST:PORT/DB" in proc.stderr
    assert "pw-canary-p0rt" not in proc.stdout + proc.stderr


def test_settings_that_cannot_fit_max_connections_are_not_applied(db):
    """The backstop for a host never converged: apply refuses with the arithmetic, nothing written."""
    pg, env = db
    with pg.connect() as conn:
        live = int(conn.execute("SHOW max_connections").fetchone()[0])
    too_big = {**DESIRED, "capacity": {"workers": 4, "pool": live, "other_clients": 5, "reserve": 10}}
    proc = dbctl(env, "apply", "settings", too_big)
    assert proc.returncode == 2, proc.stderr
    assert (
        f"capacity: 4 workers x {live} pool = {4 * live} + 5 other clients + 10 reserve = {4 * live + 15}"
        f" > max_connections {live}: settings not applied"
    ) in proc.stderr
    assert len(items(dbctl(env, "plan", "settings"))) == 4  # nothing applied
    fits = {**DESIRED, "capacity": {"workers": 1, "pool": 1, "other_clients": 0, "reserve": 0}}
    assert len(items(dbctl(env, "apply", "settings", fits))) == 4


def test_one_plan_covers_several_scopes_and_changes_nothing(db):
    pg, env = db
    proc = dbctl(env, "plan", "settings,keys,idle")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert sorted(doc["scopes"]) == ["idle", "keys", "settings"] and "items" not in doc
    assert doc["scopes"]["settings"] == items(dbctl(env, "plan", "settings"))
    assert {i["id"] for i in doc["scopes"]["keys"]} == {i["id"] for i in items(dbctl(env, "plan", "keys"))} != set()
    assert doc["max_connections"] >= 20
    again = dbctl(env, "plan", "settings")
    assert items(again) == doc["scopes"]["settings"]  # planning wrote nothing


@pytest.mark.parametrize("action, scope", [("apply", "settings,keys"), ("plan", "settings,nope"), ("plan", "")])
def test_scope_list_is_refused_when_it_cannot_be_honoured(db, action, scope):
    pg, env = db
    proc = dbctl(env, action, scope)
    assert proc.returncode == 2 and "--scope" in proc.stderr


@pytest.fixture
def held_lock(pg):
    """A second session, as the proxy's, holding a row lock (SELECT ... FOR UPDATE) until the test ends."""
    conn = psycopg.connect(pg.url, autocommit=False, connect_timeout=10)

    def hold(statement):
        conn.execute(statement)
        return conn

    yield hold
    conn.rollback()
    conn.close()


LOCK_CONFIG = """SELECT 1 FROM "LiteLLM_Config" WHERE param_name = 'general_settings' FOR UPDATE"""
LOCK_KEY = """SELECT 1 FROM "LiteLLM_VerificationToken" WHERE key_alias = 'old-batch' FOR UPDATE"""
LOCK_ROTATED = """SELECT 1 FROM "LiteLLM_VerificationToken" WHERE key_alias = 'ops-team' FOR UPDATE"""


@pytest.mark.parametrize("lock", [LOCK_CONFIG, LOCK_KEY, LOCK_ROTATED])
def test_plan_takes_no_row_lock(db, held_lock, lock):
    """A dry run neither waits for a row the proxy holds nor would block the proxy: no FOR UPDATE in plan
    (before, plan waited for the lock, with no timeout, while the deploy held its run lock)."""
    pg, env = db
    held_lock(lock)
    proc = dbctl(env, "plan", "settings,keys,rotation")
    assert proc.returncode == 0, proc.stderr
    scopes = json.loads(proc.stdout)["scopes"]
    assert len(scopes["settings"]) == 4 and len(scopes["keys"]) == 2 and len(scopes["rotation"]) == 1


@pytest.mark.parametrize(
    "scope, lock, flags, cause",
    [
        (
            "settings",
            LOCK_CONFIG,
            {"lock_timeout": "1"},
            "LockNotAvailable: another session holds a row or table lock longer than the lock timeout (1 s)",
        ),
        (
            "keys",
            LOCK_KEY,
            {"lock_timeout": "1"},
            "LockNotAvailable: another session holds a row or table lock longer than the lock timeout (1 s)",
        ),
        (
            "rotation",
            LOCK_ROTATED,
            {"lock_timeout": "1"},
            "LockNotAvailable: another session holds a row or table lock longer than the lock timeout (1 s)",
        ),
        (
            "settings",
            LOCK_CONFIG,
            {},  # the defaults the runner gets
            "LockNotAvailable: another session holds a row or table lock longer than the lock timeout (5 s)",
        ),
        (
            "settings",
            LOCK_CONFIG,
            {"lock_timeout": "60", "statement_timeout": "1"},
            "QueryCanceled: a statement ran longer than the statement timeout (1 s)",
        ),
    ],
)
def test_apply_against_a_held_lock_fails_in_one_line(db, held_lock, scope, lock, flags, cause):
    pg, env = db
    raw, token, key_name = new_key()
    desired = {**DESIRED, "rotations": [{**DESIRED["rotations"][0], "new_token": token, "new_key_name": key_name}]}
    held_lock(lock)
    proc = dbctl(env, "apply", scope, desired, **flags)
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"litellm-dbctl: database 127.0.0.1:{pg.port}/litellm: {scope} failed, nothing applied: {cause}"
    ]
    assert pg.password not in proc.stderr
    assert items(dbctl(env, "plan", scope))  # nothing of the scope was applied


@pytest.mark.parametrize(
    "flag, value",
    [("lock_timeout", "0"), ("statement_timeout", "-1"), ("lock_timeout", "abc"), ("statement_timeout", "1e9")],
)
def test_timeouts_must_be_positive_seconds(db, flag, value):
    pg, env = db
    proc = dbctl(env, "plan", "settings", **{flag: value})
    assert proc.returncode == 2 and f"--{flag.replace('_', '-')}: invalid seconds value" in proc.stderr


CANARY = "pw-canary-c4n4ry"


@pytest.mark.parametrize(
    "url, code",
    [
        (f"postgresql://litellm:{CANARY}:x@127.0.0.1:1/litellm", 3),  # a ':' in the password: parses, unreachable
        (f"postgresql://litellm:{CANARY}@x@127.0.0.1:1/litellm", 2),  # a raw '@': libpq would take 'x@127...' as host
        (f"postgresql://litellm:{CANARY}%ZZ@127.0.0.1:1/litellm", 2),  # libpq's error quotes a bad %-token
        (f"postgresql://litellm:{CANARY}@127.0.0.1:99999/litellm", 2),
        (f"postgresql://litellm:{CANARY}@[::1/litellm", 2),
    ],
)
def test_no_piece_of_the_password_in_any_error(tmp_path, url, code):
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL={url}\n")
    proc = dbctl(env, "plan", "settings")
    assert proc.returncode == code and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for piece in (CANARY, "c4n4ry", "canary"):
        assert piece not in proc.stdout + proc.stderr


def test_failing_migration_is_named_with_the_database_error_and_the_next_run_resumes(db, tmp_path):
    """A migration that fails stops the run naming it and PostgreSQL's error; the migrations before it stay
    applied and recorded; once its file is right, the next run applies it and nothing else."""
    pg, env = db
    items(dbctl(env, "apply", "schema"))  # the pinned release converged (the fixture dropped a table)
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    broken = folder / "29990101000000_broken" / "migration.sql"
    broken.parent.mkdir()
    broken.write_text('ALTER TABLE "LiteLLM_NoSuchTable" ADD COLUMN "x" TEXT;\n')
    proc = dbctl(env, "apply", "schema", migrations=str(folder))
    assert proc.returncode == 3
    assert (
        "schema: migration 29990101000000_broken failed, it and what follows not applied: UndefinedTable: "
        'relation "LiteLLM_NoSuchTable" does not exist'  # the server's message, not its context or caret line
    ) in proc.stderr
    assert pg.password not in proc.stderr
    assert [i["id"] for i in items(dbctl(env, "plan", "schema", migrations=str(folder)))] == [
        "migration 29990101000000_broken"
    ]
    broken.write_text('ALTER TABLE "LiteLLM_SkillsTable" ADD COLUMN IF NOT EXISTS "x" TEXT;\n')
    assert [i["id"] for i in items(dbctl(env, "apply", "schema", migrations=str(folder)))] == [
        "migration 29990101000000_broken"
    ]
    assert items(dbctl(env, "plan", "schema", migrations=str(folder))) == []
    with pg.connect() as conn:
        conn.execute('ALTER TABLE "LiteLLM_SkillsTable" DROP COLUMN "x"')
        conn.execute("DELETE FROM _prisma_migrations WHERE migration_name = '29990101000000_broken'")


def test_interrupted_concurrent_index_migration_is_run_again_safely(db):
    """CREATE INDEX CONCURRENTLY interrupted: its row unfinished, its index INVALID. The next run resolves the
    row, drops the invalid index and builds it again, outside a transaction."""
    pg, env = db
    items(dbctl(env, "apply", "schema"))
    name, index = (
        "20260415120000_health_check_latest_per_model_index",
        "LiteLLM_HealthCheckTable_model_id_model_name_checked_at_idx",
    )
    with pg.admin("litellm") as conn:
        conn.execute("UPDATE _prisma_migrations SET finished_at = NULL WHERE migration_name = %s", (name,))
        conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)", (f'"{index}"',))
    assert {i["id"]: i["before"] for i in items(dbctl(env, "plan", "schema"))} == {
        f"migration {name}": "failed halfway (finished_at empty)"
    }
    items(dbctl(env, "apply", "schema"))
    assert items(dbctl(env, "plan", "schema")) == []
    with pg.connect() as conn:
        assert conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (f'"{index}"',)
        ).fetchone() == (True,)
        rows = conn.execute(
            "SELECT finished_at IS NOT NULL, rolled_back_at IS NOT NULL, applied_steps_count FROM _prisma_migrations "
            "WHERE migration_name = %s ORDER BY started_at",
            (name,),
        ).fetchall()
    assert rows == [(False, True, 0), (True, False, 1)] or rows[-2:] == [(False, True, 1), (True, False, 1)]


@pytest.fixture
def upgrade(db, tmp_path):
    """The pinned release converged, a new release's migration beside its migrations (an upgrade), and a
    --backup-root: (pg, env, migrations folder, backup root). Afterwards the migration is undone."""
    pg, env = db
    items(dbctl(env, "apply", "schema"))  # the pinned release converged (the fixture dropped a table)
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    new = folder / "29990101000000_upgrade" / "migration.sql"
    new.parent.mkdir()
    new.write_text('ALTER TABLE "LiteLLM_SkillsTable" ADD COLUMN IF NOT EXISTS "upgraded" TEXT;\n')
    root = tmp_path / "root"
    (root / "state" / "archive" / "backups").mkdir(parents=True)
    try:
        yield pg, env, folder, root
    finally:
        with pg.admin() as conn:
            conn.execute("ALTER ROLE litellm NOCREATEDB")
        with pg.connect() as conn:
            conn.execute('ALTER TABLE "LiteLLM_SkillsTable" DROP COLUMN IF EXISTS "upgraded"')
            conn.execute("DELETE FROM _prisma_migrations WHERE migration_name = '29990101000000_upgrade'")


def test_upgrade_migrates_only_after_a_verified_backup(upgrade):
    """A new release's migration on a database that holds applied ones (an upgrade) runs only after
    litellm-backup made a verified backup set under --backup-root; a backup that fails applies nothing."""
    pg, env, folder, root = upgrade
    with pg.admin() as conn:  # the restore check needs CREATEDB: without it the backup fails
        conn.execute("ALTER ROLE litellm NOCREATEDB")
    proc = dbctl(env, "apply", "schema", migrations=str(folder), backup_root=str(root))
    assert proc.returncode == 3, proc.stderr
    assert "schema: backup before migrating failed" in proc.stderr
    assert proc.stderr.rstrip().endswith("no migration applied")
    assert pg.password not in proc.stderr
    assert [i["id"] for i in items(dbctl(env, "plan", "schema", migrations=str(folder)))] == [
        "migration 29990101000000_upgrade"
    ]

    with pg.admin() as conn:
        conn.execute("ALTER ROLE litellm CREATEDB")
    applied = items(dbctl(env, "apply", "schema", migrations=str(folder), backup_root=str(root)))
    assert [i["id"] for i in applied] == ["migration 29990101000000_upgrade"]
    record = json.loads((root / "state" / "archive" / "backups" / "last-backup.json").read_text())
    assert record["verified"] is True and record["error"] is None
    with pg.connect() as conn:
        started = conn.execute(
            "SELECT started_at FROM _prisma_migrations WHERE migration_name = '29990101000000_upgrade'"
        ).fetchone()[0]
    assert datetime.datetime.fromisoformat(record["time"]) < started.replace(tzinfo=datetime.UTC)

    # nothing to migrate: no backup (the set above stays the only one)
    assert items(dbctl(env, "apply", "schema", migrations=str(folder), backup_root=str(root))) == []
    assert len([p for p in (root / "state" / "archive" / "backups").iterdir() if p.is_dir()]) == 1


def test_a_backup_past_its_timeout_is_stopped_and_nothing_is_applied(upgrade):
    """litellm_migrations_backup_timeout (desired backup_timeout): a pre-migration backup still running then
    (here pg_dump waits for a table another session holds) is stopped; it leaves no set, no scratch database and
    no pg_dump session, the schema item fails in one line naming the setting, and no migration is applied."""
    pg, env, folder, root = upgrade
    with pg.admin() as conn:
        conn.execute("ALTER ROLE litellm CREATEDB")
    with psycopg.connect(pg.url) as holder:
        holder.execute('LOCK TABLE "LiteLLM_Config" IN ACCESS EXCLUSIVE MODE')  # pg_dump waits for it
        proc = dbctl(
            env, "apply", "schema", {**DESIRED, "backup_timeout": 3}, migrations=str(folder), backup_root=str(root)
        )
        holder.rollback()
    assert proc.returncode == 3, proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "schema: backup before migrating not done within 3 s (litellm_migrations_backup_timeout), "
            "no migration applied"
        )
    ), proc.stderr
    assert list((root / "state" / "archive" / "backups").iterdir()) == []
    with pg.admin() as conn:
        scratch = "SELECT count(*) FROM pg_database WHERE starts_with(datname, 'litellm_restore_check_')"
        assert conn.execute(scratch).fetchone()[0] == 0
    pg.until("pg_dump", present=False)
    assert [i["id"] for i in items(dbctl(env, "plan", "schema", migrations=str(folder)))] == [
        "migration 29990101000000_upgrade"
    ]


def test_upgrade_stops_before_a_migration_the_running_release_cannot_read(db, tmp_path):
    """A new release's migration that drops a column (the running proxy may still read it) is refused, nothing
    applied, naming it and the statement; with maintenance_window in the desired state it is applied."""
    pg, env = db
    items(dbctl(env, "apply", "schema"))  # the pinned release converged (the fixture dropped a table)
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    for name, text in [
        ("29990101000000_adds", 'ALTER TABLE "LiteLLM_SkillsTable" ADD COLUMN IF NOT EXISTS "x" TEXT;\n'),
        ("29990102000000_drops", 'ALTER TABLE "LiteLLM_SkillsTable" DROP COLUMN IF EXISTS "x";\n'),
    ]:
        (folder / name).mkdir()
        (folder / name / "migration.sql").write_text(text)
    try:
        proc = dbctl(env, "apply", "schema", migrations=str(folder))
        assert proc.returncode == 3
        assert (
            "schema: migration 29990102000000_drops is not backward compatible with the running release "
            '(ALTER TABLE "LiteLLM_SkillsTable" DROP COLUMN IF EXISTS "x"): nothing applied; apply it in a '
            "maintenance window (litellm_migrations_maintenance_window = True)"
        ) in proc.stderr
        assert [i["id"] for i in items(dbctl(env, "plan", "schema", migrations=str(folder)))] == [
            "migration 29990101000000_adds",
            "migration 29990102000000_drops",
        ]
        window = {**DESIRED, "maintenance_window": True}
        applied = items(dbctl(env, "apply", "schema", desired=window, migrations=str(folder)))
        assert [i["id"] for i in applied] == ["migration 29990101000000_adds", "migration 29990102000000_drops"]
        assert items(dbctl(env, "plan", "schema", migrations=str(folder))) == []
    finally:
        with pg.connect() as conn:
            conn.execute('ALTER TABLE "LiteLLM_SkillsTable" DROP COLUMN IF EXISTS "x"')
            conn.execute("DELETE FROM _prisma_migrations WHERE migration_name LIKE '2999010%'")


def test_a_table_filled_with_shadowing_models_is_counted_and_moved_whole(db):
    """db-06 names at most 100 rows one by one and counts the rest in one item; the move takes every row."""
    pg, env = db
    with pg.connect() as conn:
        conn.execute('DELETE FROM "LiteLLM_ProxyModelTable"')
        conn.execute("DROP TABLE IF EXISTS litellm_runner_quarantined_models")
        conn.execute(
            'INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, created_by, updated_by) '
            "SELECT 'flood-' || i, 'local-vllm', '{}'::jsonb, 'ui', 'ui' FROM generate_series(1, 150) i"
        )
    desired = {**DESIRED, "config_models": [{"model_name": "local-vllm", "id": None}]}
    planned = items(dbctl(env, "plan", "models", desired))
    assert len(planned) == 101 and planned[-1]["before"] == "50 more take a config model's name or id"
    assert items(dbctl(env, "apply", "models", desired)) == planned
    assert items(dbctl(env, "plan", "models", desired)) == []
    with pg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM litellm_runner_quarantined_models").fetchone()[0] == 150


def _waiting_for_prisma_lock(pg) -> int:
    """Sessions waiting for Prisma's advisory lock (pg_locks: not granted)."""
    with pg.admin("litellm") as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted", (72707369,)
        ).fetchone()[0]


def test_two_hosts_sharing_one_database_apply_a_migration_once(db, tmp_path):
    """Two hosts of a fleet on one database plan the same new migration and apply at once: the plan is made
    again under Prisma's advisory lock, so the second finds it applied and records nothing; both succeed. A
    lock held longer than the wait fails the item in one line, nothing applied."""
    pg, env = db
    items(dbctl(env, "apply", "schema"))
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    name = "29990101000000_shared"
    (folder / name).mkdir()
    (folder / name / "migration.sql").write_text('ALTER TABLE "LiteLLM_SkillsTable" ADD COLUMN "shared_x" TEXT;\n')
    b64 = base64.b64encode(json.dumps(DESIRED).encode()).decode()
    argv = [sys.executable, DBCTL, "apply", "--scope", "schema", "--env-file", str(env), "--desired-b64", b64]
    argv += ["--migrations", str(folder)]
    try:
        with psycopg.connect(pg.url, autocommit=True, connect_timeout=10) as holder:  # another host, migrating
            holder.execute("SELECT pg_advisory_lock(%s)", (72707369,))
            busy = subprocess.run([*argv, "--migrate-lock-wait", "1"], capture_output=True, text=True, timeout=60)
            assert busy.returncode == 3, busy.stderr
            assert "schema: Prisma's advisory lock (72707369) held by another session for more than 1 s" in busy.stderr
            assert busy.stderr.rstrip().endswith("nothing applied") and pg.password not in busy.stderr
            hosts = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
            try:
                deadline = time.monotonic() + 45
                while _waiting_for_prisma_lock(pg) < 2:  # both planned the migration and wait for the lock
                    assert time.monotonic() < deadline and all(h.poll() is None for h in hosts)
                    time.sleep(0.2)
            finally:
                holder.execute("SELECT pg_advisory_unlock(%s)", (72707369,))
            done = [h.communicate(timeout=60) for h in hosts]
        assert [h.returncode for h in hosts] == [0, 0], [err for _, err in done]
        applied = sorted(len(json.loads(out)["items"]) for out, _ in done)
        assert applied == [0, 1]  # one applied it, the other found it applied under the lock
        with pg.connect() as conn:
            rows = conn.execute("SELECT count(*) FROM _prisma_migrations WHERE migration_name = %s", (name,))
            assert rows.fetchone()[0] == 1
        assert items(dbctl(env, "plan", "schema", migrations=str(folder))) == []
    finally:
        with pg.connect() as conn:
            conn.execute('ALTER TABLE "LiteLLM_SkillsTable" DROP COLUMN IF EXISTS "shared_x"')
            conn.execute("DELETE FROM _prisma_migrations WHERE migration_name = %s", (name,))


def test_a_checks_plan_takes_the_schema_from_the_replay_root_kept(db):
    """``plan()`` (what root's snapshot runs as the account): with no kept replay it reads and replays the
    migrations and returns the replay's text for root to keep; given that text, it plans the same without
    returning one; and what it plans from is the kept text: a table planted in it is reported missing."""
    if str(BIN) not in sys.path:
        sys.path.insert(0, str(BIN))
    import litellm_dbctl

    pg, env = db
    b64 = base64.b64encode(json.dumps(DESIRED).encode()).decode()

    def plan(kept):
        return litellm_dbctl.plan(["schema"], b64, str(env), migrations=str(migrations_dir()), kept=kept)

    first = plan(None)
    assert isinstance(first.get("kept"), str)
    again = plan(first["kept"])
    assert "kept" not in again and again["scopes"] == first["scopes"] != {"schema": []}
    doc = json.loads(first["kept"])
    doc["tables"]["LiteLLM_Planted"] = doc["migrations"][-1][0]
    assert "table LiteLLM_Planted" in {i["id"] for i in plan(json.dumps(doc))["scopes"]["schema"]}
    assert plan("not json")["scopes"] == first["scopes"]  # an unreadable text: the migrations themselves


def test_dbctls_own_backup_timeout_is_the_settings_default():
    """dbctl's fallback when desired carries no backup_timeout (dbctl run by hand) is the spec's default."""
    from litellm_runner.settings import BY_NAME

    if str(BIN) not in sys.path:
        sys.path.insert(0, str(BIN))
    import litellm_dbctl

    assert litellm_dbctl.BACKUP_TIMEOUT == BY_NAME["litellm_migrations_backup_timeout"].default
