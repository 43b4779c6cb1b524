"""LiteLLM's migrations as desired state on the session sandbox (db-02, docs/migrations.md).

The converged sandbox's schema is broken by hand in each way the drift check must see (a column, an
index, an enum value and a table gone; a migration's record deleted, its checksum corrupted, its
finished_at emptied): the check exits 2 naming each, one converge repairs them all, the next changes
nothing. A database set up by hand (no _prisma_migrations, rows in its tables) is baselined without
losing a row. A column of another type holding values is refused, naming it and why, while the rest
converges and the proxy's restart is held until a run converges the schema. Every break is repaired
before the file ends, so the files after it find the sandbox converged.
"""

import hashlib
import shlex

import pytest

from tests.support.hosts import drift_check, pyinfra
from tests.support.localpg import migrations_dir

SCHEMA = "LiteLLM schema as its migrations make it | db-02"
SETTINGS = "LiteLLM_Config settings rows | db-01"
PROXY = "Unit litellm.service enabled and running | svc-01"
HELD = "/var/lib/litellm-runner/restart-held"  # litellm_runner.layout.RESTART_HELD
CTL = "systemctl --user --machine=litellm@.host"
MIGRATIONS = {p.parent.name: p.read_bytes() for p in migrations_dir().glob("*/migration.sql")}

# what each test breaks: (LiteLLM's own objects and records, from the pinned migrations)
COLUMN = ("LiteLLM_ToolTable", "user_agent")  # 20260303000000_update_tool_table_policies, nullable TEXT
INDEX = "LiteLLM_HealthCheckTable_model_id_model_name_checked_at_idx"  # made CONCURRENTLY
ENUM = ("JobStatus", "ACTIVE")  # not INACTIVE: a column default holds that one's OID
TABLE = "LiteLLM_SkillsTable"
DELETED = "20250326171002_add_daily_user_table"
CORRUPTED = "20250329084805_new_cron_job_table"
HALFWAY = "20250331215456_track_success_and_failed_requests_daily_agg_table"


def sql(host, query: str) -> str:
    """QUERY as PostgreSQL's superuser on the sandbox (what an operator's hand does)."""
    return host.out(f"runuser -u postgres -- psql -p 5434 -d litellm -AtX -v ON_ERROR_STOP=1 -c {shlex.quote(query)}")


def schema_items(report, host) -> dict[str, tuple]:
    """The schema item's drift: {object or migration: (before, after)}."""
    found = {}
    for item in report["hosts"][host.name]["items"]:
        if item["id"] == SCHEMA and item["status"] == "drift":
            found.update({k: (v, item["after"][k]) for k, v in item["before"].items()})
    return found


def proxy(host) -> str:
    return host.out(f"{CTL} show -P MainPID litellm.service")


def records(host) -> dict[str, list[str]]:
    """_prisma_migrations as {name: [checksum|finished|rolled_back|steps|logs, ...]}."""
    rows = sql(
        host,
        "SELECT migration_name, checksum, finished_at IS NOT NULL, rolled_back_at IS NOT NULL, "
        "applied_steps_count, coalesce(logs, 'NULL') FROM _prisma_migrations ORDER BY started_at",
    )
    found: dict[str, list[str]] = {}
    for row in rows.splitlines():
        name, *rest = row.split("|")
        found.setdefault(name, []).append("|".join(rest))
    return found


def test_converged_record_is_prismas(converged, host):
    """Every migration of the pinned release is recorded once, finished, with its file's sha256 (Prisma's
    checksum: what `prisma migrate deploy` compares), so LiteLLM's own migrate has nothing to apply; the
    proxy is told not to migrate at its start."""
    found = records(host)
    assert sorted(found) == sorted(MIGRATIONS)
    for name, rows in found.items():
        assert len(rows) == 1, (name, rows)
        checksum, finished, rolled_back, steps, logs = rows[0].split("|")
        assert checksum == hashlib.sha256(MIGRATIONS[name]).hexdigest()
        assert (finished, rolled_back) == ("t", "f")
        assert (steps, logs) in (("1", "NULL"), ("0", "")), (name, rows)  # applied / baselined, as Prisma does
    config = host.out("cat /etc/litellm/config.generated.yaml")
    assert "disable_prisma_schema_update: true" in config


def test_each_kind_of_schema_drift_is_named_then_repaired(converged, host, tmp_path):
    sql(host, f'ALTER TABLE "{COLUMN[0]}" DROP COLUMN "{COLUMN[1]}"')
    sql(host, f'DROP INDEX "{INDEX}"')
    sql(host, f"DELETE FROM pg_enum WHERE enumtypid = '\"{ENUM[0]}\"'::regtype AND enumlabel = '{ENUM[1]}'")
    sql(host, f'DROP TABLE "{TABLE}"')
    sql(host, f"DELETE FROM _prisma_migrations WHERE migration_name = '{DELETED}'")
    sql(host, f"UPDATE _prisma_migrations SET checksum = repeat('0', 64) WHERE migration_name = '{CORRUPTED}'")
    sql(host, f"UPDATE _prisma_migrations SET finished_at = NULL WHERE migration_name = '{HALFWAY}'")

    proc, report = drift_check(host, tmp_path)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    drift = schema_items(report, host)
    assert drift[f"column {COLUMN[0]}.{COLUMN[1]}"][0] == "missing"
    assert drift[f"index {INDEX}"][0] == "missing"
    assert drift[f"enum value {ENUM[0]}.{ENUM[1]}"][0] == "missing"
    assert drift[f"table {TABLE}"][0] == "missing"
    assert drift[f"migration {DELETED}"] == (
        "not recorded",
        "recorded as applied: every object it makes is there (baseline)",
    )
    assert drift[f"migration {CORRUPTED}"][0] == "recorded with checksum 000000000000..."
    assert drift[f"migration {HALFWAY}"][0] == "failed halfway (finished_at empty)"
    assert len(drift) == 7, drift
    pid = proxy(host)

    run = pyinfra([host.name], "-y")
    assert run.returncode == 0, run.why
    assert SCHEMA in run.changed(host.name)
    assert proxy(host) == pid  # the schema is repaired under the running proxy
    found = records(host)
    assert found[DELETED] == [f"{hashlib.sha256(MIGRATIONS[DELETED]).hexdigest()}|t|f|0|"]
    assert found[CORRUPTED][0].startswith(hashlib.sha256(MIGRATIONS[CORRUPTED]).hexdigest())
    assert [r.split("|")[1:3] for r in found[HALFWAY]] == [["f", "t"], ["t", "f"]]  # resolved, then recorded
    assert sql(host, f"SELECT to_regclass('\"{TABLE}\"') IS NOT NULL, to_regclass('\"{INDEX}\"') IS NOT NULL") == "t|t"
    assert sql(host, f"SELECT '{ENUM[1]}' = ANY(enum_range(NULL::\"{ENUM[0]}\")::text[])") == "t"

    assert pyinfra([host.name], "-y").changed(host.name) == []
    proc, report = drift_check(host, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_hand_made_database_is_baselined_without_losing_a_row(converged, host, tmp_path):
    """No _prisma_migrations, LiteLLM's tables holding rows, one table missing: the migrations whose objects
    are all there are recorded, the one that makes the missing table is applied, no row is lost."""
    counts = 'SELECT (SELECT count(*) FROM "LiteLLM_Config"), (SELECT count(*) FROM "LiteLLM_VerificationToken")'
    before = sql(host, counts)
    assert before.split("|") != ["0", "0"]
    sql(host, "DROP TABLE _prisma_migrations")
    sql(host, f'DROP TABLE "{TABLE}"')
    proc, report = drift_check(host, tmp_path)
    assert proc.returncode == 2
    drift = schema_items(report, host)
    assert len(drift) == len(MIGRATIONS)
    assert {b for b, _ in drift.values()} == {"not recorded (no _prisma_migrations)"}
    assert drift["migration 20251220144550_schema_update"][1].startswith("applied")

    run = pyinfra([host.name], "-y")
    assert run.returncode == 0, run.why
    assert sql(host, counts) == before
    found = records(host)
    assert sorted(found) == sorted(MIGRATIONS)
    assert found["20251220144550_schema_update"][0].endswith("|t|f|1|NULL")
    assert pyinfra([host.name], "-y").changed(host.name) == []


@pytest.fixture
def retyped(host):
    """A column of another type holding a value (a hand's ALTER ... TYPE), undone at the end."""
    sql(host, f"INSERT INTO \"{TABLE}\" (skill_id, display_title) VALUES ('it-migrations', 'kept')")
    sql(host, f'ALTER TABLE "{TABLE}" ALTER COLUMN display_title TYPE varchar(200)')
    yield f"column {TABLE}.display_title"
    sql(host, f'ALTER TABLE "{TABLE}" ALTER COLUMN display_title TYPE text')
    sql(host, f"DELETE FROM \"{TABLE}\" WHERE skill_id = 'it-migrations'")
    sql(
        host,
        "UPDATE \"LiteLLM_Config\" SET param_value = param_value - 'request_timeout' "
        "WHERE param_name = 'litellm_settings' AND param_value->>'request_timeout' = '601'",
    )


def test_data_losing_repair_is_refused_and_holds_the_restart(converged, host, tmp_path, retyped):
    sql(
        host,
        'UPDATE "LiteLLM_Config" SET param_value = param_value || \'{"request_timeout": 601}\' '
        "WHERE param_name = 'litellm_settings'",
    )
    proc, report = drift_check(host, tmp_path)
    assert proc.returncode == 2
    before, after = schema_items(report, host)[retyped]
    assert before == "type character varying, the migrations make it text"
    assert after.startswith("refused: it holds values")
    pid = proxy(host)

    run = pyinfra([host.name], "-y")
    assert run.returncode == 1
    assert f"database schema: schema: refused, left as it is: {retyped}: refused: it holds values" in run.stderr
    assert SETTINGS in run.changed(host.name)  # the rest of the host converged
    assert proxy(host) == pid  # restart held: the old proxy keeps serving
    host.ssh(f"test -e {HELD}")
    assert sql(host, f"SELECT display_title FROM \"{TABLE}\" WHERE skill_id = 'it-migrations'") == "kept"

    sql(host, f'ALTER TABLE "{TABLE}" ALTER COLUMN display_title TYPE text')  # the operator's fix
    run = pyinfra([host.name], "-y")
    assert run.returncode == 0, run.why
    assert PROXY in run.changed(host.name)  # the owed restart, now the schema converges
    assert proxy(host) != pid
    assert host.ssh(f"test -e {HELD}", check=False).returncode != 0
    assert pyinfra([host.name], "-y").changed(host.name) == []
