"""LiteLLM's migrations as desired state, as data (files/bin/litellm_migrations.py): what a list of
migrations leaves behind, where each stands in _prisma_migrations, and the plan from the record and the
catalog to the migrations. The database side runs against real PostgreSQL in test_dbctl.py and on the
sandbox in tests/integration/test_migrations.py."""

import hashlib
import json
import sys

import pytest

from tests.support.localpg import migrations_dir
from tests.support.services import BIN

sys.path.insert(0, str(BIN))
import litellm_migrations as lm  # noqa: E402 (files/bin/ on sys.path first, as dbctl runs it)

SCRIPTS = {
    "20240101000000_init": (
        "-- CreateTable\n"
        'CREATE TABLE "A" (\n    "id" TEXT NOT NULL,\n    "n" INTEGER,\n    "d" DECIMAL(65,30) DEFAULT 0,\n'
        '    CONSTRAINT "A_pkey" PRIMARY KEY ("id")\n);\n'
        "CREATE TYPE \"E\" AS ENUM ('x', 'y');\n"
    ),
    "20240102000000_col": (
        "/* a warning Prisma writes: `old` is dropped; */\n"
        'ALTER TABLE "A" ADD COLUMN "c" TEXT NOT NULL,\nADD COLUMN IF NOT EXISTS "old" TEXT;\n'
        'CREATE INDEX "A_n_idx" ON "A"("n");\n'
    ),
    "20240103000000_data": 'UPDATE "A" SET "n" = 0 WHERE "n" IS NULL;\n',
    "20240104000000_conc": (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "A_c_idx" ON "A"("c");\n'
        "DO $$\nBEGIN\n    IF EXISTS (SELECT 1) THEN\n"
        '        ALTER TABLE "A" RENAME COLUMN "old" TO "new";\n    END IF;\nEND $$;\n'
    ),
}
MIGRATIONS = [
    lm.Migration(name, text, hashlib.sha256(text.encode()).hexdigest(), lm.split_sql(text))
    for name, text in SCRIPTS.items()
]
RAWS = {name: text.encode() for name, text in SCRIPTS.items()}
M1, M2, M3, M4 = SCRIPTS


TEXT, INTEGER, NUMERIC = 25, 23, 1700  # type oids, as read_live reads columns' and declared types


def converged() -> lm.Live:
    """The catalog of a database the four migrations built, and their record."""
    return lm.Live(
        records=[record(name) for name in SCRIPTS],
        tables={"A"},
        columns={
            ("A", c): {"type": t, "values": False}
            for c, t in {"id": TEXT, "n": INTEGER, "d": NUMERIC, "c": TEXT, "new": TEXT}.items()
        },
        indexes={"A_pkey": True, "A_n_idx": True, "A_c_idx": True},
        enums={"E": ["x", "y"]},
        types={"TEXT": TEXT, "INTEGER": INTEGER, "DECIMAL(65,30)": NUMERIC},
        rows={},
        names={TEXT: "text", INTEGER: "integer", NUMERIC: "numeric"},
    )


def record(name, **changes) -> dict:
    return {
        "id": f"id-{name}",
        "migration_name": name,
        "checksum": hashlib.sha256(RAWS[name]).hexdigest(),
        "finished_at": "2026-01-01",
        "rolled_back_at": None,
        **changes,
    }


def test_replay_tracks_what_the_migrations_leave():
    s = lm.replay(MIGRATIONS)
    assert set(s.objects()) == {
        "table A",
        "column A.id",
        "column A.n",
        "column A.d",
        "column A.c",
        "column A.new",  # renamed inside LiteLLM's DO block; "old" is gone
        "index A_n_idx",
        "index A_c_idx",
        "enum E",
        "enum value E.x",
        "enum value E.y",
    }
    assert s.objects()["column A.new"][0] == M4  # the last migration that made it as it is
    assert s.columns[("A", "d")]["type"] == "DECIMAL(65,30)"
    assert [m.name for m in MIGRATIONS if m.concurrent] == [M4]


def test_replay_of_the_pinned_release_follows_drops_renames_and_type_changes():
    s = lm.replay(lm.load(migrations_dir()))
    objects = s.objects()
    assert "column LiteLLM_MCPServerTable.spec_version" not in objects  # dropped in a /* */-commented file
    assert {"column LiteLLM_MCPServerTable.server_name", "column LiteLLM_MCPServerTable.alias"} <= set(objects)
    assert s.columns[("LiteLLM_DailyTagSpend", "prompt_tokens")]["type"] == "BIGINT"  # SET DATA TYPE
    assert objects["enum value JobStatus.INACTIVE"][1] == ("enum value", "JobStatus", "INACTIVE")


@pytest.mark.parametrize(
    ("script", "recorded", "match"),
    [
        (b"a\nb\n", hashlib.sha256(b"a\nb\n").hexdigest(), True),
        (b"a\nb\n", hashlib.sha256(b"a\r\nb\r\n").hexdigest(), True),  # checked out with CRLF
        (b"a\r\nb\r\n", hashlib.sha256(b"a\nb\n").hexdigest(), True),
        (b"a\nb\n", "".join(f"{x:x}" for x in hashlib.sha256(b"a\nb\n").digest()), True),  # old unpadded form
        (b"a\nb\n", hashlib.sha256(b"a\nb").hexdigest(), False),
        (b"a\nb\n", "0" * 64, False),
    ],
)
def test_checksum_matches_as_prisma_compares(script, recorded, match):
    assert lm.matches(script, recorded) is match


def test_checksum_is_sha256_hex_of_the_file():
    assert lm.checksum(b"hello") == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # Prisma's test


def without(live, **drop):
    """LIVE with tables, columns, indexes or enum values taken away (or changed)."""
    for table in drop.get("tables", []):
        live.tables.discard(table)
        live.columns = {k: v for k, v in live.columns.items() if k[0] != table}
        live.indexes = {k: v for k, v in live.indexes.items() if not k.startswith(f"{table}_")}
    for column in drop.get("columns", []):
        del live.columns[column]
    for index in drop.get("indexes", []):
        del live.indexes[index]
    for enum, value in drop.get("values", []):
        live.enums[enum].remove(value)
    return live


def case_records(**changes):
    live = converged()
    for name, change in changes.items():
        live.records = [r for r in live.records if r["migration_name"] != name]
        if change is not None:
            live.records += [record(name, **c) for c in change]
    return live


def empty() -> lm.Live:
    return lm.Live(None, set(), {}, {}, {}, converged().types, {})


def retyped(values: bool) -> lm.Live:
    live = converged()
    live.columns[("A", "n")] = {"type": TEXT, "values": values}
    return live


def rows_in_a(live: lm.Live) -> lm.Live:
    live.rows["A"] = True
    return live


CASES = {
    "converged: nothing": (converged(), []),
    "built by hand, no record: every migration recorded (the data fix follows the next)": (
        lm.Live(None, *list(vars(converged()).values())[1:]),
        [("record", f"migration {m}", "not recorded (no _prisma_migrations)") for m in SCRIPTS],
    ),
    "empty database: every migration applied": (
        empty(),
        [("apply", f"migration {m}", "not recorded (no _prisma_migrations)") for m in SCRIPTS],
    ),
    "built by hand, the last index missing: the rest recorded, the data fix and the index applied": (
        without(lm.Live(None, *list(vars(converged()).values())[1:]), indexes=["A_c_idx"]),
        [
            ("record", f"migration {M1}", "not recorded (no _prisma_migrations)"),
            ("record", f"migration {M2}", "not recorded (no _prisma_migrations)"),
            ("apply", f"migration {M3}", "not recorded (no _prisma_migrations)"),
            ("apply", f"migration {M4}", "not recorded (no _prisma_migrations)"),
        ],
    ),
    "a record deleted: recorded again": (case_records(**{M2: None}), [("record", f"migration {M2}", "not recorded")]),
    "a data fix not recorded on a database with a record (a new release's): applied, as Prisma does": (
        case_records(**{M3: None}),
        [("apply", f"migration {M3}", "not recorded")],
    ),
    "a checksum corrupted: the file's": (
        case_records(**{M2: [{"checksum": "0" * 64}]}),
        [("checksum", f"migration {M2}", "recorded with checksum 000000000000...")],
    ),
    "failed halfway, its objects there: resolved and recorded": (
        case_records(**{M2: [{"finished_at": None}]}),
        [("resolve", None, None), ("record", f"migration {M2}", "failed halfway (finished_at empty)")],
    ),
    "rolled back only: recorded again": (
        case_records(**{M2: [{"rolled_back_at": "2026-01-02"}]}),
        [("record", f"migration {M2}", "rolled back (rolled_back_at set), not applied")],
    ),
    "failed halfway, its index missing: resolved and applied again": (
        without(case_records(**{M4: [{"finished_at": None}]}), indexes=["A_c_idx"]),
        [("resolve", None, None), ("apply", f"migration {M4}", "failed halfway (finished_at empty)")],
    ),
    "a column dropped: added again": (
        without(converged(), columns=[("A", "n")]),
        [("repair", "column A.n", "missing")],
    ),
    "a NOT NULL column without default dropped from a table with rows: refused": (
        rows_in_a(without(converged(), columns=[("A", "c")])),
        [("refuse", "column A.c", "missing")],
    ),
    "an index dropped: made again": (
        without(converged(), indexes=["A_n_idx"]),
        [("repair", "index A_n_idx", "missing")],
    ),
    "an index left invalid: made again": (
        lm.Live(**{**vars(converged()), "indexes": {**converged().indexes, "A_c_idx": False}}),
        [("repair", "index A_c_idx", "invalid (a CONCURRENTLY build that failed)")],
    ),
    "an enum value gone: added again": (
        without(converged(), values=[("E", "y")]),
        [("repair", "enum value E.y", "missing")],
    ),
    "a table dropped: made again with its columns and indexes (one item)": (
        without(converged(), tables=["A"]),
        [("repair", "table A", "missing")],
    ),
    "a column of another type holding values: refused": (
        retyped(values=True),
        [("refuse", "column A.n", "type text, the migrations make it integer")],
    ),
    "a column of another type holding no value: converted": (
        retyped(values=False),
        [("repair", "column A.n", "type text, the migrations make it integer")],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_plan(name):
    live, expected = CASES[name]
    actions = lm.plan(MIGRATIONS, RAWS, live)
    assert [(a["action"], a.get("id"), a.get("before")) for a in actions] == expected


@pytest.mark.parametrize("name", CASES)
def test_the_kept_replay_plans_as_the_migrations_do(name):
    """A check's plan from the replay root keeps per venv (``kept``, through its JSON text) is the plan from the
    migration files themselves, in every case of the table."""
    live, _ = CASES[name]
    migrations, schema = lm.from_kept(json.loads(json.dumps(lm.kept(MIGRATIONS, lm.replay(MIGRATIONS)))))
    assert lm.plan(migrations, RAWS, live, schema) == lm.plan(MIGRATIONS, RAWS, live)


def test_the_kept_replay_of_the_pinned_release_is_its_replay():
    found = lm.load(migrations_dir())
    replayed = lm.replay(found)
    migrations, schema = lm.from_kept(json.loads(json.dumps(lm.kept(found, replayed))))
    assert [(m.name, m.checksum) for m in migrations] == [(m.name, m.checksum) for m in found]
    assert vars(schema) == vars(replayed)


@pytest.mark.parametrize("doc", [None, [], {}, {"format": 2}, {"format": 1}, {"format": 1, "migrations": [[1]]}])
def test_a_kept_replay_of_another_form_is_refused(doc):
    with pytest.raises(ValueError):
        lm.from_kept(doc)


def test_a_migration_file_is_read_only_for_a_checksum_that_is_not_its_exact_one(tmp_path):
    """``Scripts`` reads a migration.sql when the plan first asks for it: with every recorded checksum the file's
    exact one (a converged database), the plan reads none; a record in another form (CRLF) reads that one."""
    for name, text in SCRIPTS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "migration.sql").write_text(text)
    scripts = lm.Scripts(tmp_path)
    assert lm.plan(MIGRATIONS, scripts, converged()) == [] and dict(scripts) == {}
    crlf = hashlib.sha256(RAWS[M2].replace(b"\n", b"\r\n")).hexdigest()
    live = lm.Live(**{**vars(converged()), "records": [record(M1), record(M2, checksum=crlf), record(M3), record(M4)]})
    assert lm.plan(MIGRATIONS, scripts, live) == [] and dict(scripts) == {M2: RAWS[M2]}


def test_items_name_refusals_and_their_reason():
    actions = lm.plan(MIGRATIONS, RAWS, retyped(values=True))
    assert lm.items(actions) == [
        {
            "id": "column A.n",
            "kind": "refused",
            "before": "type text, the migrations make it integer",
            "after": "refused: it holds values, converting them could lose data "
            "(type text, the migrations make it integer)",
        }
    ]


def test_split_keeps_dollar_bodies_and_drops_comments():
    assert lm.split_sql(SCRIPTS[M4])[1].startswith("DO $$") and lm.split_sql(SCRIPTS[M4])[1].endswith("END $$")
    assert lm.split_sql(SCRIPTS[M2])[0].startswith('ALTER TABLE "A"')


@pytest.mark.parametrize(
    "statement, incompatible",
    [
        ('ALTER TABLE "T" ADD COLUMN IF NOT EXISTS "c" TEXT', False),
        ('ALTER TABLE "T" ADD COLUMN "c" INTEGER NOT NULL DEFAULT 0', False),
        ('CREATE TABLE "N" ("id" TEXT NOT NULL, CONSTRAINT "N_pkey" PRIMARY KEY ("id"))', False),
        ('CREATE INDEX CONCURRENTLY "i" ON "T"("c")', False),
        ("ALTER TYPE \"JobStatus\" ADD VALUE 'PAUSED'", False),
        ('-- rename and drop column in a comment only\nALTER TABLE "T" ALTER COLUMN "c" SET DEFAULT 1', False),
        ('ALTER TABLE "T" ADD COLUMN "c" TEXT NOT NULL', True),
        ('ALTER TABLE "T" DROP COLUMN IF EXISTS "c"', True),
        ('DROP TABLE "T"', True),
        ('ALTER TABLE "T" RENAME COLUMN "a" TO "b"', True),
        ('ALTER TABLE "T" ALTER COLUMN "c" SET DATA TYPE BIGINT', True),
        ('ALTER TABLE "T" ALTER COLUMN "c" TYPE BIGINT', True),
        ('ALTER TABLE "T" ALTER COLUMN "c" SET NOT NULL', True),
        ('DO $$ BEGIN IF true THEN ALTER TABLE "T" RENAME COLUMN "a" TO "b"; END IF; END $$', True),
    ],
)
def test_not_backward_compatible_statements(statement, incompatible):
    m = lm.Migration("29990101000000_x", statement, lm.checksum(statement.encode()), [statement])
    assert (lm.not_backward_compatible(m) is not None) is incompatible
