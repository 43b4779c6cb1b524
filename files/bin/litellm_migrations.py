"""LiteLLM's migrations as desired state: what they create, what the database has, and the plan between.

Shipped next to litellm-dbctl (its ``schema`` scope) and run on the host in its venv. The pinned
litellm-proxy-extras' ``migrations/<name>/migration.sql`` folders, in name order (Prisma's order), are the
list. The database is compared with it on two levels:

- the record, ``_prisma_migrations``, kept exactly as Prisma's schema engine keeps it (prisma-engines
  ``sql_migration_persistence.rs``, ``apply_migrations.rs``, ``checksum.rs``): one row per attempt;
  ``checksum`` the sha256 hex of migration.sql; a migration counts as applied when a row of its name has
  ``finished_at`` set and ``rolled_back_at`` empty; a row with neither is a migration that failed halfway
  (Prisma's P3009 refuses to go on);
- the objects: every table, column (with its type), index and enum value the applied migrations leave
  behind, found by replaying their DDL (``replay``) and read back from the catalog (``live``).

``plan`` turns the two into actions, each with the item the drift report shows. Everything here but
``live``, ``apply`` and their helpers is pure (data in, data out) and tested as data.

Nothing here drops a table, a column or data, pushes a schema or resets a database: a repair adds what
is missing; what cannot be repaired without losing data is refused, naming the object and why.
"""

from __future__ import annotations

import hashlib
import os
import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import pathlib

# plain classes, not dataclasses, and uuid and contextlib imported by apply only, folders read with os, not pathlib:
# every check plans the schema, and those imports alone (dataclasses brings inspect, pathlib urllib.parse and
# ipaddress) cost that plan about 12 ms of the host's CPU


class _pattern:  # noqa: N801 - used as re.compile is
    """``re.compile(PATTERN, FLAGS)``, compiled when first used: only the replay and apply use the DDL patterns,
    and compiling all of them at import cost every check's plan (which has the replay root kept) about 4 ms."""

    def __init__(self, pattern: str, flags: int = 0):
        self.pattern, self.flags, self.compiled = pattern, flags, None

    def __getattr__(self, name: str):
        if self.compiled is None:
            self.compiled = re.compile(self.pattern, self.flags)
        return getattr(self.compiled, name)


ADVISORY_LOCK = 72707369  # Prisma's schema engine takes this lock (pg_advisory_lock) for migrate deploy
LOCK_WAIT = 80  # seconds dbctl waits for that lock: another host of the fleet migrating the same database
PRISMA_TABLE = "_prisma_migrations"
PRISMA_TABLE_DDL = (  # Prisma's own definition (sql-schema-connector, flavour/postgres.rs)
    'CREATE TABLE IF NOT EXISTS "_prisma_migrations" (\n'
    "    id                      VARCHAR(36) PRIMARY KEY NOT NULL,\n"
    "    checksum                VARCHAR(64) NOT NULL,\n"
    "    finished_at             TIMESTAMPTZ,\n"
    "    migration_name          VARCHAR(255) NOT NULL,\n"
    "    logs                    TEXT,\n"
    "    rolled_back_at          TIMESTAMPTZ,\n"
    "    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    applied_steps_count     INTEGER NOT NULL DEFAULT 0\n"
    ")"
)
# errors that mean "what this statement creates is already there" (a re-run after a failure, a baseline)
ALREADY = ("42P07", "42701", "42710", "42P06", "42723", "42P16")  # table, column, object, schema, function, ...


# -- the migrations folder ----------------------------------------------------------------------------
class Migration:
    """One migration folder: its name, migration.sql's text, its checksum and its statements (``split_sql``)."""

    def __init__(self, name: str, script: str, checksum: str, statements: list[str] | None = None):
        self.name, self.script, self.checksum = name, script, checksum
        self.statements = statements if statements is not None else []

    @property
    def concurrent(self) -> bool:
        """Whether some statement must run outside a transaction (CREATE/DROP INDEX CONCURRENTLY)."""
        return any(CONCURRENTLY.search(s) for s in self.statements)


# DDL the release still running before the proxy's restart may not read through: a table or column dropped or
# renamed, a column's type changed, a column made NOT NULL, a NOT NULL column added without a default
# (comments taken out first; a statement inside a DO block counts as well)
NOT_BACKWARD_COMPATIBLE = _pattern(
    r"\bDROP\s+(?:TABLE|COLUMN)\b|\bRENAME\b|\bALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b"
    r"|\bSET\s+NOT\s+NULL\b|\bADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+[^,;]*?\bNOT\s+NULL\b(?![^,;]*\bDEFAULT\b)",
    re.I,
)


def not_backward_compatible(m: Migration) -> str | None:
    """The first statement of M that the running release may not read through (``NOT_BACKWARD_COMPATIBLE``),
    whitespace collapsed and cut at 160 characters; None when M only adds (tables, nullable or defaulted
    columns, indexes, enum values, constraints)."""
    for statement in m.statements:
        text = " ".join(re.sub(r"--[^\n]*", "", statement).split())
        if NOT_BACKWARD_COMPATIBLE.search(text):
            return text if len(text) <= 160 else text[:157] + "..."
    return None


CONCURRENTLY = _pattern(r"^\s*(?:CREATE\s+(?:UNIQUE\s+)?|DROP\s+)INDEX\s+CONCURRENTLY\b", re.I)


def checksum(script: bytes) -> str:
    """Prisma's checksum of a migration script: the sha256 of its bytes, 64 lowercase hex digits."""
    return hashlib.sha256(script).hexdigest()


def matches(script: bytes, recorded: str) -> bool:
    """Whether RECORDED is SCRIPT's checksum as Prisma compares them (``script_matches_checksum``): line
    endings as written, LF or CRLF; a checksum shorter than 64 digits in the old unpadded form."""
    variants = {script, script.replace(b"\r\n", b"\n"), script.replace(b"\n", b"\r\n")}
    for variant in variants:
        digest = hashlib.sha256(variant).digest()
        rendered = digest.hex() if len(recorded) == 64 or not recorded else "".join(f"{b:x}" for b in digest)
        if rendered == recorded:
            return True
    return False


def load(folder: str | pathlib.Path) -> list[Migration]:
    """The migrations of FOLDER in Prisma's order: every subfolder holding a migration.sql, by name."""
    found = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name, "migration.sql")
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                raw = handle.read()
            script = raw.decode("utf-8")
            found.append(Migration(name, script, checksum(raw), split_sql(script)))
    return found


class Scripts(dict):
    """``{migration name: migration.sql's bytes}`` of FOLDER, each file read when it is first asked for: a plan
    from the kept replay (``from_kept``) reads none while every recorded checksum is its file's exact one."""

    def __init__(self, folder: str | pathlib.Path):
        super().__init__()
        self.folder = folder

    def __missing__(self, name: str) -> bytes:
        with open(os.path.join(self.folder, name, "migration.sql"), "rb") as handle:
            self[name] = handle.read()
        return self[name]


KEPT_FORMAT = 1  # the form of ``kept``'s document; another form is not read


def kept(migrations: list[Migration], expected: Schema) -> dict:
    """What a plan needs of MIGRATIONS and their replay EXPECTED, as a JSON document: their names and checksums,
    and the schema (statements are apply's, not kept). Root keeps it per venv (a venv's migrations never
    change), so a check's plan neither reads the migration files nor replays them (``from_kept``)."""
    return {
        "format": KEPT_FORMAT,
        "migrations": [[m.name, m.checksum] for m in migrations],
        "tables": expected.tables,
        "columns": [[table, column, c] for (table, column), c in expected.columns.items()],
        "indexes": expected.indexes,
        "enums": expected.enums,
        "ddl": expected.ddl,
    }


def from_kept(doc: dict) -> tuple[list[Migration], Schema]:
    """``kept``'s document back: the migrations (name and checksum only) and their schema; ValueError when DOC
    is not such a document."""
    if not isinstance(doc, dict) or doc.get("format") != KEPT_FORMAT:
        raise ValueError("not a kept replay of this form")
    try:
        migrations = [Migration(name, "", checksum) for name, checksum in doc["migrations"]]
        s = Schema()
        s.tables, s.indexes, s.enums, s.ddl = doc["tables"], doc["indexes"], doc["enums"], doc["ddl"]
        s.columns = {(table, column): c for table, column, c in doc["columns"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a kept replay: {exc}") from None
    return migrations, s


def split_sql(text: str) -> list[str]:
    """Statements of a migration file, comments (-- and /* */) left out: ';' ends one outside quotes and
    $$ bodies. Scanned from token to token (``SQL_TOKEN``), not character by character: every check reads
    the 213 files, and a loop per character cost it about 40 ms of CPU (now about 1 ms)."""
    statements, buf, i, n = [], [], 0, len(text)

    def end_statement() -> None:
        statement = "".join(buf).strip()
        if statement:
            statements.append(statement)
        buf.clear()

    while i < n:
        m = SQL_TOKEN.search(text, i)
        if m is None:
            buf.append(text[i:])
            break
        j, mark = m.start(), m.group()
        buf.append(text[i:j])
        if mark == ";":
            end_statement()
            i = j + 1
        elif mark in ("--", "/*"):  # a comment, left out up to its end (a line comment's newline included)
            k = text.find("\n" if mark == "--" else "*/", j + 2)
            i = n if k < 0 else k + (1 if mark == "--" else 2)
        else:  # a quoted string or a $$ body, kept whole up to its closing mark (or the end of the text)
            k = text.find(mark, j + len(mark))
            i = n if k < 0 else k + len(mark)
            buf.append(text[j:i])
    end_statement()
    return statements


SQL_TOKEN = _pattern(r"--|/\*|\$\$|'|;")


# -- what the migrations create -------------------------------------------------------------------------
Q = r'"([^"]+)"'
TYPE = (  # a declared column type: DOUBLE PRECISION, TIMESTAMP(3), "JobStatus", VARCHAR(255), TEXT[] ...
    r'((?:DOUBLE\s+PRECISION|TIMESTAMP(?:\(\d+\))?(?:\s+WITH(?:OUT)?\s+TIME\s+ZONE)?|"[^"]+"'
    r"|[A-Za-z_][\w]*(?:\s*\(\s*\d+(?:\s*,\s*\d+)?\s*\))?)(?:\[\])*)"
)
CREATE_TABLE = _pattern(rf"^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{Q}\s*\((.*)\)\s*$", re.I | re.S)
ALTER_TABLE = _pattern(rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{Q}\s+(.*)$", re.I | re.S)
ADD_COLUMN = _pattern(rf"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?{Q}\s+(.*)$", re.I | re.S)
DROP_COLUMN = _pattern(rf"^DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?{Q}", re.I)
SET_TYPE = _pattern(rf"^ALTER\s+(?:COLUMN\s+)?{Q}\s+(?:SET\s+DATA\s+)?TYPE\s+{TYPE}", re.I)
RENAME_COLUMN = _pattern(rf"^RENAME\s+(?:COLUMN\s+)?{Q}\s+TO\s+{Q}", re.I)
RENAME_TABLE = _pattern(rf"^RENAME\s+TO\s+{Q}", re.I)
CREATE_INDEX = _pattern(
    rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?{Q}\s+ON\s+(?:ONLY\s+)?{Q}", re.I
)
DROP_INDEX = _pattern(r"^DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?(.*)$", re.I | re.S)
RENAME_INDEX = _pattern(rf"^ALTER\s+INDEX\s+(?:IF\s+EXISTS\s+)?{Q}\s+RENAME\s+TO\s+{Q}", re.I)
DROP_TABLE = _pattern(r"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(.*)$", re.I | re.S)
CREATE_ENUM = _pattern(rf"^CREATE\s+TYPE\s+{Q}\s+AS\s+ENUM\s*\((.*)\)\s*$", re.I | re.S)
ADD_VALUE = _pattern(rf"^ALTER\s+TYPE\s+{Q}\s+ADD\s+VALUE\s+(?:IF\s+NOT\s+EXISTS\s+)?'((?:[^']|'')*)'", re.I)
RENAME_VALUE = _pattern(rf"^ALTER\s+TYPE\s+{Q}\s+RENAME\s+VALUE\s+'((?:[^']|'')*)'\s+TO\s+'((?:[^']|'')*)'", re.I)
DROP_TYPE = _pattern(r"^DROP\s+TYPE\s+(?:IF\s+EXISTS\s+)?(.*)$", re.I | re.S)
DO_BLOCK = _pattern(r"^DO\s+\$\$(.*)\$\$\s*$", re.I | re.S)
INNER_ALTER = _pattern(rf"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{Q}\s+([^;]*);", re.I | re.S)
NAMES = _pattern(Q)
LITERALS = _pattern(r"'((?:[^']|'')*)'")


def top_level(text: str) -> list[str]:
    """TEXT split at commas outside parentheses and quotes, each part stripped (read from mark to mark)."""
    parts, depth, quote, start = [], 0, False, 0
    for m in TOP_LEVEL_MARK.finditer(text):
        mark = m.group()
        if mark == "'":
            quote = not quote
        elif quote:
            continue
        elif mark == "(":
            depth += 1
        elif mark == ")":
            depth -= 1
        elif depth == 0:
            parts.append(text[start : m.start()].strip())
            start = m.end()
    if text[start:].strip():
        parts.append(text[start:].strip())
    return parts


TOP_LEVEL_MARK = _pattern(r"[(),']")


def column_type(definition: str) -> str:
    """The declared type at the start of a column definition (``TIMESTAMP(3)``, ``TEXT[]``, ``"JobStatus"``)."""
    m = re.match(TYPE, definition.strip(), re.I)
    return re.sub(r"\s+", " ", m.group(1)) if m else definition.split()[0]


class Schema:
    """What a list of migrations leaves behind, each object with the migration that made it last."""

    def __init__(self):
        self.tables: dict[str, str] = {}  # table -> migration
        self.columns: dict[tuple[str, str], dict] = {}  # (table, column) -> type, definition, by
        self.indexes: dict[str, dict] = {}  # index -> table, statement, by
        self.enums: dict[str, dict] = {}  # enum -> statement, by, values {value: by}
        self.ddl: dict[str, list[str]] = {}  # table -> statements that build it, in order

    def objects(self) -> dict[str, tuple[str, tuple]]:
        """``{label: (migration, key)}`` of every object, labelled as the drift report names it."""
        found: dict[str, tuple[str, tuple]] = {}
        for table, by in self.tables.items():
            found[f"table {table}"] = (by, ("table", table))
        for (table, column), c in self.columns.items():
            found[f"column {table}.{column}"] = (c["by"], ("column", table, column))
        for index, i in self.indexes.items():
            found[f"index {index}"] = (i["by"], ("index", index))
        for enum, e in self.enums.items():
            found[f"enum {enum}"] = (e["by"], ("enum", enum))
            for value, by in e["values"].items():
                found[f"enum value {enum}.{value}"] = (by, ("enum value", enum, value))
        return found


def replay(migrations: list[Migration]) -> Schema:
    """The schema MIGRATIONS leave behind when applied in order (their DDL read, nothing run)."""
    s = Schema()
    for m in migrations:
        for statement in m.statements:
            _replay(s, m.name, statement)
    return s


def _replay(s: Schema, by: str, statement: str) -> None:  # noqa: C901 (one branch per kind of DDL)
    if m := CREATE_TABLE.match(statement):
        table = m.group(1)
        if table in s.tables and re.search(r"IF\s+NOT\s+EXISTS", statement[:40], re.I):
            return  # CREATE TABLE IF NOT EXISTS of a table already there changes nothing
        _drop_table(s, table)
        s.tables[table] = by
        s.ddl[table] = [statement]
        for part in top_level(m.group(2)):
            if col := re.match(rf"^{Q}\s+(.*)$", part, re.S):
                s.columns[(table, col.group(1))] = {
                    "type": column_type(col.group(2)),
                    "definition": col.group(2).strip(),
                    "by": by,
                }
    elif m := ALTER_TABLE.match(statement):
        table = m.group(1)
        if table in s.ddl:
            s.ddl[table].append(statement)
        for action in top_level(m.group(2)):
            _alter(s, by, table, action)
    elif m := CREATE_INDEX.match(statement):
        index, table = m.group(1), m.group(2)
        if index in s.indexes and re.search(r"IF\s+NOT\s+EXISTS", statement, re.I):
            return
        s.indexes[index] = {"table": table, "statement": statement, "by": by}
        s.ddl.setdefault(table, []).append(statement)
    elif m := DROP_INDEX.match(statement):
        for index in NAMES.findall(m.group(1)):
            s.indexes.pop(index, None)
    elif m := RENAME_INDEX.match(statement):
        if m.group(1) in s.indexes:
            s.indexes[m.group(2)] = {**s.indexes.pop(m.group(1)), "by": by}
    elif m := DROP_TABLE.match(statement):
        for table in NAMES.findall(m.group(1)):
            _drop_table(s, table)
    elif m := CREATE_ENUM.match(statement):
        values = [v.replace("''", "'") for v in LITERALS.findall(m.group(2))]
        s.enums[m.group(1)] = {"statement": statement, "by": by, "values": dict.fromkeys(values, by)}
    elif m := ADD_VALUE.match(statement):
        if m.group(1) in s.enums:
            s.enums[m.group(1)]["values"].setdefault(m.group(2).replace("''", "'"), by)
    elif m := RENAME_VALUE.match(statement):
        values = s.enums.get(m.group(1), {}).get("values", {})
        if values.pop(m.group(2).replace("''", "'"), None):
            values[m.group(3).replace("''", "'")] = by
    elif m := DROP_TYPE.match(statement):
        for enum in NAMES.findall(m.group(1)):
            s.enums.pop(enum, None)
    elif m := DO_BLOCK.match(statement):  # LiteLLM's conditional DDL: renames and constraints
        for inner in INNER_ALTER.finditer(m.group(1)):
            table = inner.group(1)
            for action in top_level(inner.group(2)):
                if RENAME_COLUMN.match(action) or RENAME_TABLE.match(action):
                    _alter(s, by, table, action)
            if table in s.ddl:
                s.ddl[table].append(statement)


def _alter(s: Schema, by: str, table: str, action: str) -> None:
    if re.match(r"^(ADD|DROP)\s+CONSTRAINT\b", action, re.I):
        return
    if m := ADD_COLUMN.match(action):
        key = (table, m.group(1))
        if key in s.columns and re.search(r"IF\s+NOT\s+EXISTS", action[:40], re.I):
            return
        s.columns[key] = {"type": column_type(m.group(2)), "definition": m.group(2).strip(), "by": by}
    elif m := DROP_COLUMN.match(action):
        s.columns.pop((table, m.group(1)), None)
    elif m := SET_TYPE.match(action):
        key = (table, m.group(1))
        if key in s.columns:
            old = s.columns[key]
            definition = re.sub(r"^" + TYPE, re.sub(r"\s+", " ", m.group(2)), old["definition"], count=1, flags=re.I)
            s.columns[key] = {**old, "type": re.sub(r"\s+", " ", m.group(2)), "definition": definition, "by": by}
    elif m := RENAME_COLUMN.match(action):
        old_key = (table, m.group(1))
        if old_key in s.columns:
            s.columns[(table, m.group(2))] = {**s.columns.pop(old_key), "by": by}
    elif m := RENAME_TABLE.match(action):
        new = m.group(1)
        if table in s.tables:
            s.tables[new] = by
            del s.tables[table]
            for key in [k for k in s.columns if k[0] == table]:
                s.columns[(new, key[1])] = s.columns.pop(key)
            for index in s.indexes.values():
                if index["table"] == table:
                    index["table"] = new
            s.ddl[new] = s.ddl.pop(table, [])


def _drop_table(s: Schema, table: str) -> None:
    s.tables.pop(table, None)
    s.ddl.pop(table, None)
    for key in [k for k in s.columns if k[0] == table]:
        del s.columns[key]
    for index in [i for i, v in s.indexes.items() if v["table"] == table]:
        del s.indexes[index]


# -- the plan -------------------------------------------------------------------------------------------
class Live:
    """The database as read (``read_live``): the record and the catalog."""

    def __init__(
        self,
        records: list[dict] | None,  # rows of _prisma_migrations; None when the table does not exist
        tables: set[str],
        columns: dict[tuple[str, str], dict],  # (table, column) -> {"type": type oid, "values": bool}
        indexes: dict[str, bool],  # index -> valid
        enums: dict[str, list[str]],
        types: dict[str, int | str | None],  # a declared type -> its type oid (None: not a known type)
        rows: dict[str, bool],  # table -> holds rows
        names: dict | None = None,  # a type oid -> its regtype text, for the types a drift item names
    ):
        self.records, self.tables, self.columns, self.indexes = records, tables, columns, indexes
        self.enums, self.types, self.rows = enums, types, rows
        self.names = {} if names is None else names

    def type_name(self, oid) -> str:
        """The regtype text of the type OID (OID itself when it is not known: a type given as text)."""
        return self.names.get(oid, oid)


def status(m: Migration, raws, records: list[dict]) -> tuple[str, list[dict]]:
    """Where migration M stands in the record: (state, rows of it) with state one of ``applied``,
    ``checksum`` (applied, recorded with another file's checksum), ``failed`` (a row with neither
    finished_at nor rolled_back_at: Prisma's P3009), ``rolled back`` (only rolled-back rows) or
    ``missing`` (no row)."""
    rows = [r for r in records if r["migration_name"] == m.name]
    failed = [r for r in rows if r["finished_at"] is None and r["rolled_back_at"] is None]
    done = [r for r in rows if r["finished_at"] is not None and r["rolled_back_at"] is None]
    if failed:
        return "failed", rows
    if done:
        # the exact checksum first; the file itself (RAWS[M.name]) is read only for another form of it
        same = any(r["checksum"] == m.checksum or matches(raws[m.name], r["checksum"] or "") for r in done)
        return ("applied" if same else "checksum"), rows
    if rows:
        return "rolled back", rows
    return "missing", rows


def present(key: tuple, expected: Schema, live: Live) -> str | None:
    """None when the object KEY is in the database as the migrations made it; else what is wrong."""
    kind = key[0]
    if kind == "table":
        return None if key[1] in live.tables else "missing"
    if kind == "column":
        have = live.columns.get((key[1], key[2]))
        if have is None:
            return "missing"
        declared = expected.columns[(key[1], key[2])]["type"]
        want = live.types.get(declared)
        if want is not None and have["type"] != want:
            return f"type {live.type_name(have['type'])}, the migrations make it {live.type_name(want)}"
        return None
    if kind == "index":
        valid = live.indexes.get(key[1])
        return "missing" if valid is None else (None if valid else "invalid (a CONCURRENTLY build that failed)")
    if kind == "enum":
        return None if key[1] in live.enums else "missing"
    if kind == "enum value":
        return None if key[2] in live.enums.get(key[1], []) else "missing"
    raise ValueError(kind)


def plan(migrations: list[Migration], raws: dict[str, bytes], live: Live, expected: Schema | None = None) -> list[dict]:
    """The actions that bring the database to MIGRATIONS, in the order they run, each ``{"action", "id",
    "before", "after", ...}``: ``id``/``before``/``after`` is the drift item the report shows.

    Actions: ``record`` (baseline: a migration whose objects are all there is recorded as applied, as
    ``prisma migrate resolve --applied`` records it), ``apply`` (run it, record it), ``resolve`` (a failed
    row marked rolled back, as Prisma's resolve does, before the migration is recorded or applied),
    ``checksum`` (an applied migration's row gets its file's checksum), ``repair`` (an object an applied
    migration made and the database lacks is made again from the migrations' DDL) and ``refuse`` (an object
    that cannot be made right without losing data: named with the reason, left as it is).
    """
    records = live.records or []
    if expected is None:  # the caller may pass replay(MIGRATIONS) when it has it already
        expected = replay(migrations)
    objects = expected.objects()
    by_name: dict[str, list[dict]] = {}  # the record's rows of each migration, in the record's order
    for r in records:
        by_name.setdefault(r["migration_name"], []).append(r)
    states = {m.name: status(m, raws, by_name.get(m.name, [])) for m in migrations}
    if all(state in ("applied", "checksum") for state, _ in states.values()):
        decisions: dict[str, tuple[str, list[str]]] = {}  # none to make (a converged database: every check)
    else:
        decisions = _decisions(migrations, objects, expected, live, bool(records))
    actions: list[dict] = []
    applied: set[str] = set()  # migrations applied or recorded before this run
    for m in migrations:
        state, rows = states[m.name]
        if state in ("applied", "checksum"):
            applied.add(m.name)
            if state == "checksum":
                done = [r for r in rows if r["finished_at"] is not None and r["rolled_back_at"] is None]
                actions.append(
                    {
                        "action": "checksum",
                        "migration": m.name,
                        "ids": [r["id"] for r in done],
                        "id": f"migration {m.name}",
                        "before": f"recorded with checksum {(done[-1]['checksum'] or '')[:12]}...",
                        "after": f"checksum of its migration.sql {m.checksum[:12]}...",
                    }
                )
            continue
        decision, lacking = decisions[m.name]
        if state == "failed":
            failed = [r["id"] for r in rows if r["finished_at"] is None and r["rolled_back_at"] is None]
            before = "failed halfway (finished_at empty)"
            actions.append({"action": "resolve", "migration": m.name, "ids": failed})
        elif state == "rolled back":
            before = "rolled back (rolled_back_at set), not applied"
        else:
            before = "not recorded" if live.records is not None else "not recorded (no _prisma_migrations)"
        if decision == "record":
            after = "recorded as applied: every object it makes is there (baseline)"
        else:
            after = "applied" + (
                f" (lacking {', '.join(lacking[:3])}{', ...' if len(lacking) > 3 else ''})"
                if lacking and state != "missing"
                else ""
            )
        actions.append(
            {"action": decision, "migration": m.name, "id": f"migration {m.name}", "before": before, "after": after}
        )
    actions.extend(_object_actions(expected, objects, applied, live))
    return actions


def _decisions(
    migrations: list[Migration], objects: dict, expected: Schema, live: Live, recorded: bool
) -> dict[str, tuple[str, list[str]]]:
    """``{migration: (action, labels lacking)}``: a migration not applied is recorded when every object it leaves is
    there, applied otherwise; one that leaves nothing to compare (data fixes, NOT NULL changes, constraints)
    follows the next migration that does on a database set up by hand (no record), and is applied, as Prisma
    applies it, on a database that holds a record (RECORDED: a new release's migration, even one dated before
    migrations already applied)."""
    by_migration: dict[str, list[str]] = {}
    for label, (by, _) in objects.items():
        by_migration.setdefault(by, []).append(label)
    decisions: dict[str, tuple[str, list[str]]] = {}
    follow = "apply"
    for m in reversed(migrations):
        labels = sorted(by_migration.get(m.name, []))
        lacking = [label for label in labels if present(objects[label][1], expected, live) is not None]
        decisions[m.name] = ("apply" if lacking else "record", lacking) if labels else (follow, [])
        follow = decisions[m.name][0]
        if recorded and not labels:
            decisions[m.name] = ("apply", [])
    return decisions


def _object_actions(expected: Schema, objects: dict, applied: set[str], live: Live) -> list[dict]:
    """Repairs (or refusals) of the objects applied migrations made and the database lacks."""
    actions = []
    missing_tables = {
        key[1] for _, (by, key) in objects.items() if key[0] == "table" and by in applied and key[1] not in live.tables
    }
    found = []
    for label, (by, key) in objects.items():
        if by not in applied:
            continue
        if (
            key[0] in ("column", "index")
            and (key[1] if key[0] == "column" else expected.indexes[key[1]]["table"]) in missing_tables
        ):
            continue  # made again with its table
        if key[0] == "enum value" and key[1] not in live.enums:
            continue  # made again with its enum
        wrong = present(key, expected, live)
        if wrong is not None:
            found.append((label, by, key, wrong))
    for label, by, key, wrong in sorted(found, key=lambda f: f[0]):  # by label: only what is wrong is sorted
        action = {"action": "repair", "key": key, "id": label, "before": wrong, "after": f"as migration {by} makes it"}
        if key[0] == "table":
            action["statements"] = expected.ddl.get(key[1], [])
        elif key[0] == "column":
            table, column = key[1], key[2]
            definition = expected.columns[(table, column)]["definition"]
            if wrong != "missing":
                if live.columns[(table, column)]["values"]:
                    action.update(
                        action="refuse", after=f"refused: it holds values, converting them could lose data ({wrong})"
                    )
                else:
                    action["type"] = expected.columns[(table, column)]["type"]
            elif _needs_values(definition) and live.rows.get(table):
                action.update(
                    action="refuse",
                    after="refused: NOT NULL without a default, and the table holds rows that would need a value",
                )
            action["definition"] = definition
        elif key[0] == "index":
            action["statement"] = expected.indexes[key[1]]["statement"]
        elif key[0] == "enum":
            action["statement"] = expected.enums[key[1]]["statement"]
        actions.append(action)
    return actions


def _needs_values(definition: str) -> bool:
    return bool(re.search(r"\bNOT\s+NULL\b", definition, re.I)) and not re.search(r"\bDEFAULT\b", definition, re.I)


def items(actions: list[dict]) -> list[dict]:
    """The drift items of ACTIONS (a resolve shows as its migration's item)."""
    return [
        {
            "id": a["id"],
            "kind": "refused" if a["action"] == "refuse" else "schema",
            "before": a["before"],
            "after": a["after"],
        }
        for a in actions
        if "id" in a
    ]


# -- the database side ------------------------------------------------------------------------------------
def read_live(conn, expected: Schema) -> Live:
    """The record and the catalog of the current schema: one read-only query that PostgreSQL answers with one
    JSON document (the catalog's thousands of rows are not sent and converted one by one), and one more for
    the record when ``_prisma_migrations`` exists. Column types are compared as type oids; the names of the
    types a drift item shows are read only then (``TYPE_NAME``)."""
    declared = sorted({c["type"] for c in expected.columns.values()})
    doc = conn.execute(CATALOG, (PRISMA_TABLE, declared)).fetchone()[0]
    records = None
    if doc["record"]:
        records = [
            dict(zip(("id", "migration_name", "checksum", "finished_at", "rolled_back_at"), r, strict=True))
            for r in conn.execute(RECORD).fetchone()[0]
        ]
    tables = set(doc["tables"])
    columns = {
        (t, c): {"type": oid, "values": False} for t, found in doc["tables"].items() for c, oid in (found or {}).items()
    }
    enums: dict[str, list[str]] = {}
    for name, label in doc["enums"]:
        enums.setdefault(name, []).append(label)
    types = {t: oid for t, (oid, _) in doc["types"].items()}
    names = {oid: name for oid, name in doc["types"].values() if oid is not None}
    live = Live(records, tables, columns, doc["indexes"], enums, types, {}, names)
    # a column of another type: does it hold values? a table with missing NOT NULL columns: rows?
    for (table, column), c in expected.columns.items():
        have = columns.get((table, column))
        if have is not None and types.get(c["type"]) not in (None, have["type"]):
            if have["type"] not in names:
                names[have["type"]] = conn.execute(TYPE_NAME, (have["type"],)).fetchone()[0]
            have["values"] = conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {_quoted(conn, table)} "  # noqa: S608 (identifiers quoted by libpq)
                f"WHERE {_quoted(conn, column)} IS NOT NULL)"
            ).fetchone()[0]
        elif have is None and table in tables and table not in live.rows:
            live.rows[table] = conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {_quoted(conn, table)})"  # noqa: S608 (identifier quoted by libpq)
            ).fetchone()[0]
    return live


def _quoted(conn, name: str) -> str:
    """NAME as an SQL identifier, quoted by CONN's libpq: dbctl plan's litellm_pq session
    (``quote_identifier``) or a psycopg one (``psycopg.sql.Identifier``)."""
    quote = getattr(conn, "quote_identifier", None)
    if quote is not None:
        return quote(name)
    from psycopg import sql

    return sql.Identifier(name).as_string(conn)


# read_live's query: the catalog of the current schema as one JSON document; ``record`` whether Prisma's table
# exists; ``tables`` {table: {column: type oid}} (each table's columns read through pg_attribute's index on its
# table: a join scanned the whole of pg_attribute, and each column's type as regtype text cost the backend of
# every check about 3 ms more); ``indexes`` {index: valid}; ``enums`` [[enum, value]] in order; ``types`` each
# declared column type (parameter 2) as [its oid, its regtype text], both null when it is not a known type
CATALOG = """SELECT json_build_object(
  'record', to_regclass(%s) IS NOT NULL,
  'tables', (SELECT coalesce(json_object_agg(c.relname, (SELECT json_object_agg(a.attname, a.atttypid::int8)
      FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)), '{}')
    FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')),
  'indexes', (SELECT coalesce(json_object_agg(c.relname, i.indisvalid), '{}')
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = current_schema()::regnamespace),
  'enums', (SELECT coalesce(json_agg(json_build_array(t.typname, e.enumlabel) ORDER BY t.typname, e.enumsortorder),
    '[]') FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typnamespace = current_schema()::regnamespace),
  'types', (SELECT coalesce(json_object_agg(t, json_build_array(to_regtype(t)::oid::int8, to_regtype(t)::text)), '{}')
    FROM unnest(%s::text[]) AS t)
)"""
# the regtype text of a type oid (parameter 1), as a drift item names a column's type
TYPE_NAME = "SELECT %s::int8::oid::regtype::text"
# the record, in Prisma's order (timestamps as JSON text: the plan only asks whether they are set)
RECORD = """SELECT coalesce(json_agg(json_build_array(id, migration_name, checksum, finished_at, rolled_back_at)
  ORDER BY started_at, id), '[]') FROM _prisma_migrations"""


class Refused(Exception):
    """Some objects could not be repaired without losing data; everything else was applied."""


class Failed(Exception):
    """A migration or a repair failed in the database: ``what`` names it, ``error`` is psycopg's."""

    def __init__(self, what: str, error: Exception):
        super().__init__(what)
        self.what, self.error = what, error


class Busy(Exception):
    """Prisma's advisory lock was held by another session (another host, a ``prisma migrate deploy``) longer
    than the wait."""


def locked(conn, wait: float = LOCK_WAIT):
    """Prisma's advisory lock held by CONN's session (autocommit off) for the block; waited for at most WAIT s
    (raises Busy). The runner and a ``prisma migrate deploy``, and two hosts of a fleet that share one database,
    never migrate it at once; what one of them planned before it held the lock must be planned again inside."""
    import contextlib

    return contextlib.contextmanager(_locked)(conn, wait)


def _locked(conn, wait: float):
    """``locked``'s generator: the lock taken, the block run (yield), the lock given back."""
    import psycopg

    conn.rollback()
    try:  # only this statement waits that long: the session's own lock and statement timeouts stay as they are
        conn.execute(
            "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
            (f"{int(wait * 1000)}ms", f"{int(wait * 1000) + 10000}ms"),
        )
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK,))
    except psycopg.errors.LockNotAvailable:
        conn.rollback()
        raise Busy(
            f"Prisma's advisory lock ({ADVISORY_LOCK}) held by another session for more than {wait:g} s (another "
            "host migrating the same database, or a prisma migrate deploy)"
        ) from None
    conn.commit()
    try:
        yield
    finally:
        if not conn.closed:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK,))
            conn.commit()


def apply(conn, migrations: list[Migration], actions: list[dict], expected: Schema) -> None:
    """Carry out ACTIONS (``plan``'s) on CONN (autocommit off), each migration in its own transaction.

    The caller holds Prisma's advisory lock (``locked``) and made ACTIONS under it, so the runner, a ``prisma
    migrate deploy`` and other hosts sharing the database never interleave nor apply a migration twice.
    A migration with a statement that cannot run in a transaction (``CONCURRENTLY``) is recorded started
    first, its statements run one by one outside a transaction, each skipped when what it makes is already
    there, and the row finished last: interrupted, it is a failed row, and the next run resolves and runs it
    again safely. Raises Refused (after everything else is done) naming the refused objects.
    """
    import psycopg

    by_name = {m.name: m for m in migrations}
    conn.execute(PRISMA_TABLE_DDL)
    conn.commit()
    refused = []
    try:
        for a in actions:
            try:
                _carry_out(conn, a, by_name, refused)
            except psycopg.Error as exc:
                raise Failed(a.get("id") or f"migration {a['migration']}", exc) from None
            conn.commit()
    finally:
        if not conn.closed:
            conn.rollback()
    if refused:
        raise Refused("; ".join(refused))


def _carry_out(conn, a: dict, by_name: dict[str, Migration], refused: list[str]) -> None:
    """One action of ``plan`` (its transaction committed by the caller)."""
    kind = a["action"]
    if kind == "resolve":
        conn.execute("UPDATE _prisma_migrations SET rolled_back_at = now() WHERE id = ANY(%s)", (a["ids"],))
    elif kind == "checksum":
        conn.execute(
            "UPDATE _prisma_migrations SET checksum = %s WHERE id = ANY(%s)",
            (by_name[a["migration"]].checksum, a["ids"]),
        )
    elif kind == "record":
        conn.execute(  # as `prisma migrate resolve --applied` records it (mark_migration_applied)
            "INSERT INTO _prisma_migrations (id, checksum, logs, started_at, finished_at, migration_name) "
            "VALUES (%s, %s, '', now(), now(), %s)",
            (_new_id(), by_name[a["migration"]].checksum, a["migration"]),
        )
    elif kind == "apply":
        _apply_migration(conn, by_name[a["migration"]])
    elif kind == "repair":
        _repair(conn, a)
    elif kind == "refuse":
        refused.append(f"{a['id']}: {a['after']}")


def _apply_migration(conn, m: Migration) -> None:
    """Run M and record it as Prisma's ``migrate deploy`` does (started, one step, finished; logs NULL)."""
    row = _new_id()
    conn.execute(
        "INSERT INTO _prisma_migrations (id, checksum, started_at, migration_name) VALUES (%s, %s, now(), %s)",
        (row, m.checksum, m.name),
    )
    if m.concurrent:
        conn.commit()  # the started row stays: an interrupted run leaves a failed row to resolve
        conn.autocommit = True
        try:
            for statement in m.statements:
                _run_concurrently(conn, statement) if CONCURRENTLY.search(statement) else _run(conn, statement)
        finally:
            conn.autocommit = False
    else:
        for statement in m.statements:
            _run(conn, statement)
    conn.execute(
        "UPDATE _prisma_migrations SET applied_steps_count = applied_steps_count + 1, "
        "finished_at = clock_timestamp() WHERE id = %s",
        (row,),
    )


def _new_id() -> str:
    """A record's id as Prisma makes it: a random UUID."""
    import uuid

    return str(uuid.uuid4())


def _run(conn, statement: str) -> None:
    """One statement of LiteLLM's own DDL (read from the pinned package, not input); what it makes being
    there already (a re-run, a baseline) is not an error."""
    import psycopg

    in_tx = not conn.autocommit
    if in_tx:
        conn.execute("SAVEPOINT litellm_statement")
    try:
        conn.execute(statement)
    except psycopg.Error as exc:
        if exc.sqlstate not in ALREADY:
            raise
        if in_tx:
            conn.execute("ROLLBACK TO SAVEPOINT litellm_statement")
    if in_tx:
        conn.execute("RELEASE SAVEPOINT litellm_statement")


def _run_concurrently(conn, statement: str) -> None:
    """A CONCURRENTLY statement, safe to run again: an index already built and valid is skipped; one a failed
    build left INVALID is dropped (CONCURRENTLY, IF EXISTS) and built again."""
    from psycopg import sql

    m = CREATE_INDEX.match(statement)
    if m:
        valid = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
            (m.group(1),),
        ).fetchone()
        if valid and valid[0]:
            return
        if valid:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(m.group(1))))
    _run(conn, statement)


def _repair(conn, a: dict) -> None:
    from psycopg import sql

    key = a["key"]
    if key[0] == "table":
        for statement in a["statements"]:
            _run(conn, CONCURRENTLY_WORD.sub("", statement))  # a new, empty table: no reader to spare
    elif key[0] == "column" and "type" in a:  # another type, holding no values
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING NULL").format(
                sql.Identifier(key[1]),
                sql.Identifier(key[2]),
                sql.SQL(a["type"]),  # LiteLLM's DDL, not input
            )
        )
    elif key[0] == "column":
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                sql.Identifier(key[1]),
                sql.Identifier(key[2]),
                sql.SQL(a["definition"]),  # LiteLLM's DDL
            )
        )
    elif key[0] == "index":
        if CONCURRENTLY.search(a["statement"]):
            conn.commit()
            conn.autocommit = True
            try:
                _run_concurrently(conn, a["statement"])
            finally:
                conn.autocommit = False
        else:
            if a["before"] != "missing":
                conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(key[1])))
            _run(conn, a["statement"])
    elif key[0] == "enum":
        _run(conn, a["statement"])
    elif key[0] == "enum value":
        conn.execute(
            sql.SQL("ALTER TYPE {} ADD VALUE IF NOT EXISTS {}").format(sql.Identifier(key[1]), sql.Literal(key[2]))
        )


CONCURRENTLY_WORD = _pattern(r"\bCONCURRENTLY\s+", re.I)
