"""litellm-backup against a real PostgreSQL: a verified dump, an atomic set,
retention by simulated dates, and a failure that says so."""

import datetime
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys

import pytest

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
