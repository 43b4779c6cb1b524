"""litellm-backup against a real PostgreSQL: a verified dump, an atomic set,
retention by simulated dates, and a failure that says so."""

import datetime
import importlib.machinery
import importlib.util
import json
import os
import signal
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from tests.support.localpg import LocalPostgres
from tests.support.services import BIN

BACKUP = str(BIN / "litellm-backup")


def load_backup_module():
    sys.path.insert(0, str(BIN))
    loader = importlib.machinery.SourceFileLoader("litellm_backup", BACKUP)
    spec = importlib.util.spec_from_loader("litellm_backup", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pg():
    with LocalPostgres() as pg:
        pg.apply_litellm_schema()
        with pg.admin() as conn:
            conn.execute("ALTER ROLE litellm CREATEDB")
        with pg.connect() as conn:
            conn.execute('INSERT INTO "LiteLLM_Config" VALUES (%s, %s)', ("general_settings", '{"a": 1}'))
        yield pg


def root_for(tmp_path, url):
    (tmp_path / "state" / "archive" / "backups").mkdir(parents=True)
    (tmp_path / "state" / "config.generated.yaml").write_text("general_settings: {}\n")
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL={url}\nLITELLM_MASTER_KEY=sk-canary-b4ckup\n")
    env.chmod(0o600)
    return env


def run(tmp_path, env, *args):
    return subprocess.run(
        [sys.executable, BACKUP, "--root", str(tmp_path), "--env-file", str(env), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "LITELLM_CONFIG_DIR": str(tmp_path / "state"),  # root's /etc/litellm on a host
        },
    )


def test_backup_is_verified_and_complete(pg, tmp_path):
    env = root_for(tmp_path, pg.url)
    proc = run(tmp_path, env, "--now", "2026-11-23T02:00:00+00:00")
    assert proc.returncode == 0, proc.stderr
    assert pg.password not in proc.stdout + proc.stderr and "sk-canary-b4ckup" not in proc.stdout + proc.stderr
    folder = tmp_path / "state" / "archive" / "backups" / "20261123T020000Z"
    assert sorted(p.name for p in folder.iterdir()) == ["config.generated.yaml", "env.litellm", "litellm.dump"]
    assert (folder / "env.litellm").stat().st_mode & 0o777 == 0o600
    assert (folder / "litellm.dump").read_bytes()[:5] == b"PGDMP"  # pg_dump custom format
    record = json.loads((folder.parent / "last-backup.json").read_text())
    assert record["verified"] is True and record["tables"] > 50 and record["error"] is None
    with pg.admin() as conn:  # the scratch database is gone
        assert (
            conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'litellm_restore_check%'").fetchone()[0]
            == 0
        )
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".incomplete-")]


def test_failed_backup_exits_1_and_is_recorded(tmp_path):
    env = root_for(tmp_path, "postgresql://litellm:pw-canary-31@127.0.0.1:1/litellm")
    proc = run(tmp_path, env)
    assert proc.returncode == 1 and "backup: FAILED" in proc.stderr
    assert "pw-canary-31" not in proc.stdout + proc.stderr
    record = json.loads((tmp_path / "state" / "archive" / "backups" / "last-backup.json").read_text())
    assert record["verified"] is False and record["error"]
    assert "pw-canary-31" not in json.dumps(record)


def test_retention_7_daily_4_weekly_3_monthly(tmp_path):
    backups = tmp_path / "state" / "archive" / "backups"
    backups.mkdir(parents=True)
    start = datetime.datetime(2026, 11, 23, 2, 0)
    planted = [(start - datetime.timedelta(days=d)).strftime("%Y%m%dT%H%M%SZ") for d in range(0, 120)]
    for name in planted:
        (backups / name).mkdir()
    (backups / "notes").mkdir()  # not a backup set: left alone
    proc = subprocess.run(
        [sys.executable, BACKUP, "--root", str(tmp_path), "--prune-only", "--now", "2026-11-23T03:00:00"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    kept = sorted((p.name for p in backups.iterdir() if p.name != "notes"), reverse=True)
    # 7 daily: Nov 23 (a Monday) .. Nov 17; 4 weekly, newest per ISO week: Nov 23, Nov 22 (Sunday),
    # Nov 15, Nov 8; 3 monthly, newest per month: Nov 23, Oct 31, Sep 30
    assert kept == [
        "20261123T020000Z",
        "20261122T020000Z",
        "20261121T020000Z",
        "20261120T020000Z",
        "20261119T020000Z",
        "20261118T020000Z",
        "20261117T020000Z",
        "20261115T020000Z",
        "20261108T020000Z",
        "20261031T020000Z",
        "20260930T020000Z",
    ]
    assert (backups / "notes").exists()


@pytest.mark.parametrize(
    "sets, daily, weekly, monthly, expected",
    [
        ([], 7, 4, 3, set()),
        (["20261123T020000Z", "20261123T010000Z"], 7, 4, 3, {"20261123T020000Z"}),  # newest of the day
        (
            ["20261123T020000Z", "20261001T020000Z", "20260801T020000Z"],
            1,
            0,
            2,
            {"20261123T020000Z", "20261001T020000Z"},
        ),
    ],
)
def test_keep_table(sets, daily, weekly, monthly, expected):
    assert load_backup_module().keep(sets, daily, weekly, monthly) == expected


def _scratch_databases(pg):
    with pg.admin() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, 'litellm_restore_check_')")
        return sorted(r[0] for r in rows)


def _dead_pid():
    child = subprocess.Popen(["true"])  # noqa: S607
    child.wait()
    return child.pid


def test_scratch_databases_a_killed_backup_of_this_machine_left_are_dropped(pg, tmp_path):
    """A backup killed mid-restore (SIGKILL: no finally) leaves its scratch database; the next backup drops it
    when it was this machine's and its process is gone, and keeps another machine's or a running backup's."""
    backup = load_backup_module()
    dead, alive = _dead_pid(), os.getpid()
    planted = {
        f"litellm_restore_check_{dead}": backup.owner(dead),  # this machine, process gone: dropped
        f"litellm_restore_check_{alive}": backup.owner(alive),  # this machine, still running: kept
        "litellm_restore_check_7": "litellm-backup 0123456789abcdef0123456789abcdef some-boot 7",  # another machine
        "litellm_restore_check_8": None,  # no comment: not the runner's, kept
        "litellm_restore_check_9": backup.owner(dead),  # this machine's, but another role's: named, kept
        "litellm_restore_check_10": backup.owner(10**30),  # no pid the kernel can have: not a backup's, kept
        "litellm_restore_check_\x1b[2J": backup.owner(dead),  # another role's, a name with an escape: shown escaped
    }
    with pg.admin() as conn:
        for name, comment in planted.items():
            owner = "postgres" if name.endswith(("_9", "J")) else "litellm"
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
            if comment:
                conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))
    try:
        env = root_for(tmp_path, pg.url)
        proc = run(tmp_path, env)
        assert proc.returncode == 0, proc.stderr
        assert _scratch_databases(pg) == sorted(
            [f"litellm_restore_check_{alive}", *(f"litellm_restore_check_{n}" for n in (7, 8, 9, 10, "\x1b[2J"))]
        )
        assert "\x1b" not in proc.stderr and "litellm_restore_check_\\x1b[2J of an earlier backup" in proc.stderr
        assert "scratch database litellm_restore_check_9 of an earlier backup not dropped: must be owner" in (
            proc.stderr
        )
    finally:
        with pg.admin() as conn:
            for name in planted:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def test_rows_written_while_the_dump_runs_do_not_fail_the_restore_check(pg, tmp_path):
    """The row counts come from the dump's own snapshot: a row the proxy writes while pg_dump runs is in
    neither, so the restore check passes (counted after the dump, as before, it failed on a busy proxy)."""
    with pg.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS it_busy (n int)")
    env = root_for(tmp_path, pg.url)
    holder = psycopg.connect(pg.url)
    try:
        holder.execute('LOCK TABLE "LiteLLM_Config" IN ACCESS EXCLUSIVE MODE')  # pg_dump waits for it
        proc = subprocess.Popen(
            [sys.executable, BACKUP, "--root", str(tmp_path), "--env-file", str(env)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LITELLM_CONFIG_DIR": str(tmp_path / "state")},
        )
        pg.until("pg_dump", "wait_event_type = 'Lock'")  # it waits for the table
        with pg.connect() as conn:
            conn.execute("INSERT INTO it_busy SELECT generate_series(1, 5)")  # after the dump's snapshot
        holder.rollback()
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        record = json.loads((tmp_path / "state" / "archive" / "backups" / "last-backup.json").read_text())
        assert record["verified"] is True and record["error"] is None
    finally:
        holder.close()
        with pg.connect() as conn:
            conn.execute("DROP TABLE IF EXISTS it_busy")


def test_sigterm_ends_a_backup_with_no_set_and_no_scratch_database_left(pg, tmp_path):
    """What a timeout sends (litellm-dbctl, litellm_migrations_backup_timeout): the backup stops at once,
    removes its unfinished set, and leaves no scratch database and no pg_dump behind."""
    env = root_for(tmp_path, pg.url)
    holder = psycopg.connect(pg.url)
    try:
        holder.execute('LOCK TABLE "LiteLLM_Config" IN ACCESS EXCLUSIVE MODE')
        proc = subprocess.Popen(
            [sys.executable, BACKUP, "--root", str(tmp_path), "--env-file", str(env)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "LITELLM_CONFIG_DIR": str(tmp_path / "state")},
        )
        pg.until("pg_dump", "wait_event_type = 'Lock'")  # it waits for the table
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 128 + signal.SIGTERM, stderr
        assert "Traceback" not in stderr
        backups = tmp_path / "state" / "archive" / "backups"
        assert [p.name for p in backups.iterdir()] == []  # no set, finished or not
        assert _scratch_databases(pg) == []
        holder.rollback()  # a backend waiting for a lock notices its client gone once it has the lock
        pg.until("pg_dump", present=False)
    finally:
        holder.close()
