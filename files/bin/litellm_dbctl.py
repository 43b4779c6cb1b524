"""Converge the LiteLLM database to its desired state: plan, or apply.

    litellm-dbctl plan|apply --scope SCOPE[,SCOPE...] --env-file <root>/env.litellm --desired-b64 B64
                  [--connect-timeout 5] [--lock-timeout 5] [--statement-timeout 30] [--backup-root ROOT]

Runs ON THE HOST, in the host's venv, because the database listens only on the
host's loopback (127.0.0.1:5434): the deploy reaches it through the same SSH
connection as everything else, with no tunnel to keep open. plan (every check
runs it) talks to the database through litellm_pq.py, next to this file: the
same libpq without psycopg's import (about 135 ms of the host's CPU); apply
uses psycopg. Every check calls ``plan()`` in a child of root's host snapshot
that dropped to the account (root's interpreter, these modules from root's
bin/, the venv's migrations folder and libpq given as paths). The
database URL, with its password, is read from the env file (0600), so it is
never on a command line. The desired state holds no secret, so it travels as a
base64 argument (pyinfra commands get no stdin); a rotated key travels only as
its sha256 hash, which is what LiteLLM stores.

Scopes (one pyinfra operation each):
  settings  LiteLLM_Config rows: each managed key inside param_value, key by key;
            keys that are not managed are kept as they are
  schema    LiteLLM's pinned migrations as desired state (litellm_migrations.py);
            on a database that holds applied ones (an upgrade): a migration the
            running release may not read through is refused unless the desired
            state says maintenance_window; with --backup-root, migrations run
            only after litellm-backup made a verified backup set under ROOT
            (a failed backup applies nothing)
  keys      expired virtual keys that are not blocked get blocked = true
  idle      (opt-in) terminate this role's connections idle longer than N minutes
  rotation  for each listed alias, a key valid for at least N more days
  models    a database model that takes a config model's name or id (LiteLLM would serve it beside
            the config's deployment, or instead of it) is moved, whole, into the table
            litellm_runner_quarantined_models: kept as evidence, never deleted, no longer served

Prints {"items": [{"id", "kind", "before", "after"}, ...], "max_connections": N}:
empty items means the database already matches; max_connections is the
server's live setting (SHOW max_connections), which the deploy's capacity check
compares with workers x pool + other clients + reserve before it changes anything. Keys are named
by key_alias and key_name (sk-...abcd), never by token. apply runs in one transaction per scope; on any
error nothing of that scope is applied. Every statement is parameterized;
identifiers go through psycopg.sql.Identifier (plan: libpq's PQescapeIdentifier). Exit codes: 0 ok, 2 bad
input, 3 database unreachable or failed.

Bounded: the session runs with lock_timeout and statement_timeout (seconds,
--lock-timeout 5, --statement-timeout 30, set at connect), so a row another
session holds makes apply fail with one line instead of waiting. plan runs in a
READ ONLY transaction and takes no row lock (FOR UPDATE is apply's only), so a
dry run never blocks the proxy's writes nor waits for them.
"""

import base64
import json
import os
import re
import sys
from types import SimpleNamespace

import litellm_pq
import litellm_tools as tools

BACKUP_TIMEOUT = 900  # seconds litellm-backup may take before a migration: desired's backup_timeout, else this (the
# default of litellm_migrations_backup_timeout; tests/unit/test_dbctl.py checks they agree)
BACKUP_STOP_GRACE = 15  # seconds a timed-out litellm-backup has after SIGTERM to drop its scratch database
REFUSED = 4  # exit code: the schema has drift that cannot be repaired without losing data (the rest applied)


class Fail(Exception):
    def __init__(self, message, code=3):
        super().__init__(message)
        self.code = code


# -- input ---------------------------------------------------------------------------
def read_env(path):
    """The env file's KEY=value pairs as systemd reads them (bin/litellm_envfile.py, next to this script)."""
    import litellm_envfile

    return litellm_envfile.read(path)


def database_url(env_file):
    try:
        url = read_env(env_file).get("DATABASE_URL", "")
    except OSError as exc:
        raise Fail(f"{env_file}: cannot read the env file ({exc.strerror})", 2) from None
    except ValueError as exc:  # litellm_envfile.EnvFileError: names file:line and key, never a value
        raise Fail(str(exc), 2) from None
    if not url:
        raise Fail(f"{env_file}: DATABASE_URL is not set", 2)
    try:
        tools.parse_url(url)  # postgresql://USER:PASSWORD@HOST:PORT/DB, read by libpq as it is read here
    except tools.BadUrl:
        raise Fail(f"{env_file}: {tools.URL_FORM}", 2) from None
    return url


def where(url):
    """host:port/database of a URL, without user or password."""
    return tools.where(url)


def errors(args):
    """The database errors of ACTION's session: plan's comes from litellm_pq (libpq without psycopg, whose
    import alone cost each check about 135 ms of the host's CPU), apply's from psycopg."""
    if args.action == "plan":
        return litellm_pq.Error
    import psycopg

    return psycopg.Error


def connect(url, args):
    """One session with the command line's connect, lock and statement timeouts; plan's is read-only, and
    litellm_pq's (the same libpq, parameters sent apart from the SQL as psycopg sends them)."""
    timeouts = {"statement_timeout": args.statement_timeout, "lock_timeout": args.lock_timeout}
    try:
        if args.action == "plan":
            tools.parse_url(url)
            conn = litellm_pq.connect(
                url,
                litellm_pq.defaults(url),  # no GSSAPI probe; on loopback no TLS handshake, unless the URL asks
                library=getattr(args, "libpq", None),
                connect_timeout=args.connect_timeout,
                options=tools.session_options(**timeouts),
                application_name="litellm-dbctl",
            )
        else:
            conn = tools.connect(
                url, args.connect_timeout, **timeouts, application_name="litellm-dbctl", autocommit=False
            )
    except tools.BadUrl:
        raise Fail(f"{args.env_file}: {tools.URL_FORM}", 2) from None
    except errors(args) as exc:
        raise Fail(f"database {where(url)} unreachable: {tools.db_error(url, exc)}") from None
    conn.read_only = args.action == "plan"
    return conn


def failure(url, scope, exc, args):
    """One line: where, what, why; a lock or statement timeout says which and how long."""
    return Fail(f"database {where(url)}: {scope} failed, nothing applied: {cause_of(url, exc, args)}")


def cause_of(url, exc, args):
    """Why a statement failed: psycopg's class and its message (no password), or which timeout and how long."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == "55P03":  # LockNotAvailable
        cause = f"another session holds a row or table lock longer than the lock timeout ({args.lock_timeout:g} s)"
    elif sqlstate == "57014":  # QueryCanceled
        cause = f"a statement ran longer than the statement timeout ({args.statement_timeout:g} s)"
    else:
        cause = tools.db_error(url, exc)
    name = exc.name if isinstance(exc, litellm_pq.Error) else exc.__class__.__name__  # psycopg's class name
    return f"{name}: {cause}"


def locking(apply):
    """The row-lock clause of a SELECT: FOR UPDATE in apply's transaction, none in plan."""
    return " FOR UPDATE" if apply else ""


# -- settings ------------------------------------------------------------------------------
def capacity(conn, desired):
    """Refuse settings whose pools cannot fit max_connections (same arithmetic as litellm_runner/capacity.py)."""
    c = desired.get("capacity")
    if not c:
        return
    max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
    total = c["workers"] * c["pool"] + c["other_clients"] + c["reserve"]
    if total > max_connections:
        raise Fail(
            f"capacity: {c['workers']} workers x {c['pool']} pool = {c['workers'] * c['pool']} + "
            f"{c['other_clients']} other clients + {c['reserve']} reserve = {total} > max_connections "
            f"{max_connections}: settings not applied",
            2,
        )


def settings(conn, desired, apply):
    if apply:
        capacity(conn, desired)
    items = []
    sections = sorted(desired["settings"])
    stored = {  # every section's row in one statement
        name: value
        for name, value in conn.execute(
            'SELECT param_name, param_value FROM "LiteLLM_Config" '  # noqa: S608 (constant)
            "WHERE param_name = ANY(%s)" + locking(apply),
            (sections,),
        ).fetchall()
    }
    for section, wanted in sorted(desired["settings"].items()):
        current = dict(stored[section] or {}) if section in stored else None
        merged = dict(current or {})
        for key, value in sorted(wanted.items()):
            before = (current or {}).get(key, None)
            if current is None or key not in current or before != value:
                items.append(
                    {
                        "id": f"{section}.{key}",
                        "kind": "setting",
                        "before": before if current is not None and key in current else "(unset)",
                        "after": value,
                    }
                )
                merged[key] = value
        if apply and merged != current:
            from psycopg.types.json import Jsonb

            if current is None:
                conn.execute(
                    'INSERT INTO "LiteLLM_Config" (param_name, param_value) VALUES (%s, %s)', (section, Jsonb(merged))
                )
            else:
                conn.execute(
                    'UPDATE "LiteLLM_Config" SET param_value = %s WHERE param_name = %s', (Jsonb(merged), section)
                )
    return items


# -- schema ----------------------------------------------------------------------------------
def migrations_dir(override):
    if override:
        return override
    import litellm_proxy_extras

    return os.path.join(os.path.dirname(litellm_proxy_extras.__file__), "migrations")


def schema(conn, desired, apply, folder, url, args):
    """LiteLLM's migrations as desired state (bin/litellm_migrations.py): plan, or carry the plan out.

    Apply commits each migration (and each repair) on its own: a failure names the migration or object
    and the database's error; what came before it stays applied and recorded, the next run resumes."""
    import litellm_migrations as lm

    migrations = expected = None
    if not apply and getattr(args, "kept", None):  # a check's plan: the replay root kept for this venv
        try:
            migrations, expected = lm.from_kept(json.loads(args.kept))
        except ValueError:
            migrations = None
    if migrations is None or expected is None:
        migrations = lm.load(folder)
        expected = lm.replay(migrations)
        if not apply and hasattr(args, "kept"):
            args.fresh = json.dumps(lm.kept(migrations, expected), separators=(",", ":"))
    scripts = lm.Scripts(folder)  # each file read only when its recorded checksum is not the exact one
    actions = lm.plan(migrations, scripts, lm.read_live(conn, expected), expected)
    if apply and actions:
        try:
            with lm.locked(conn, args.migrate_lock_wait or lm.LOCK_WAIT):
                # planned again under Prisma's lock: another host sharing this database (or a prisma migrate
                # deploy) may have applied what the first plan found missing; then there is nothing left to do
                actions = lm.plan(migrations, scripts, lm.read_live(conn, expected), expected)
                conn.rollback()  # the reads' transaction; apply runs each migration in its own
                if upgrade(actions, conn):
                    if not desired.get("maintenance_window"):
                        stop_before_incompatible(migrations, actions, url, lm)
                    if args.backup_root:
                        backup_first(args, url, int(desired.get("backup_timeout", BACKUP_TIMEOUT)))
                if actions:
                    lm.apply(conn, migrations, actions, expected)
        except lm.Busy as exc:
            raise Fail(f"database {where(url)}: schema: {exc}: nothing applied") from None
        except lm.Refused as exc:
            raise Fail(f"schema: refused, left as it is: {exc}", REFUSED) from None
        except lm.Failed as exc:
            raise Fail(
                f"database {where(url)}: schema: {exc.what} failed, it and what follows not applied: "
                f"{cause_of(url, exc.error, args)}"
            ) from None
    return lm.items(actions)


def upgrade(actions, conn):
    """ACTIONS run a migration's SQL on a database that already holds applied migrations (a new release's
    migrations, or a repair of a broken record): then a verified backup comes first. A database with no
    record (a first install, a baseline) has nothing of LiteLLM's to lose yet, or is only recorded."""
    if not any(a["action"] == "apply" for a in actions):
        return False
    found = (
        conn.execute("SELECT to_regclass('_prisma_migrations') IS NOT NULL").fetchone()[0]
        and conn.execute(
            "SELECT EXISTS (SELECT 1 FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL)"
        ).fetchone()[0]
    )
    conn.rollback()
    return bool(found)


def stop_before_incompatible(migrations, actions, url, lm):
    """Fail, applying nothing, when a migration to apply is not backward compatible with the release still
    running until the restart (litellm_migrations.not_backward_compatible): the operator decides (a run with
    litellm_migrations_maintenance_window = True applies it; requests may fail until the restart)."""
    by_name = {m.name: m for m in migrations}
    for a in actions:
        what = a["action"] == "apply" and lm.not_backward_compatible(by_name[a["migration"]])
        if what:
            raise Fail(
                f"database {where(url)}: schema: migration {a['migration']} is not backward compatible with the "
                f"running release ({what}): nothing applied; apply it in a maintenance window "
                "(litellm_migrations_maintenance_window = True)"
            )


def backup_first(args, url, timeout=BACKUP_TIMEOUT):
    """litellm-backup (next to this file): a dump restored into a scratch database and compared table by table,
    kept as a backup set under --backup-root; any failure raises Fail and no migration runs. Past TIMEOUT
    seconds it is stopped with SIGTERM (it drops its scratch database and unfinished set), its process group
    killed BACKUP_STOP_GRACE s later."""
    import signal
    import subprocess

    tool = os.path.join(os.path.dirname(os.path.realpath(__file__)), "litellm-backup")
    argv = [sys.executable, tool, "--root", args.backup_root, "--env-file", args.env_file]
    proc = subprocess.Popen(  # noqa: S603 (root's tool beside this file, with root's interpreter)
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=BACKUP_STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=BACKUP_STOP_GRACE)  # its pipes are not read again: a process outside the group keeps them
        raise Fail(
            f"database {where(url)}: schema: backup before migrating not done within {timeout} s "
            "(litellm_migrations_backup_timeout), no migration applied"
        ) from None
    finally:
        if proc.poll() is None:  # an interrupt while waiting: the backup goes with it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        lines = stderr.strip().splitlines()  # litellm-backup's own line: its error, the password masked
        why = next((ln for ln in lines if ln.startswith("backup: FAILED")), f"litellm-backup exited {proc.returncode}")
        why = why.replace("backup: FAILED", "backup before migrating failed")
        raise Fail(f"database {where(url)}: schema: {why}, no migration applied")


# -- keys ------------------------------------------------------------------------------------------
def label(alias, key_name):
    return f"{alias or '(no alias)'} ({key_name or 'sk-...?'})"


def expired_keys(conn, desired, apply):
    if not desired.get("block_expired", True):
        return []
    rows = conn.execute(
        'SELECT token, key_alias, key_name, expires FROM "LiteLLM_VerificationToken" '  # noqa: S608 (constant)
        "WHERE expires < now() AND blocked IS NOT TRUE ORDER BY key_alias, key_name" + locking(apply)
    ).fetchall()
    if apply and rows:
        conn.execute(
            'UPDATE "LiteLLM_VerificationToken" SET blocked = true WHERE token = ANY(%s)', ([r[0] for r in rows],)
        )
    return [
        {
            "id": f"key {label(r[1], r[2])}",
            "kind": "expired-key",
            "before": f"expired {r[3]:%Y-%m-%d}, not blocked",
            "after": "blocked",
        }
        for r in rows
    ]


def idle(conn, desired, apply):
    if not desired.get("terminate_idle"):
        return []
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE usename = current_user AND state = 'idle' "
        "AND state_change < now() - make_interval(mins => %s) AND pid <> pg_backend_pid()",
        (int(desired.get("idle_minutes", 5)),),
    ).fetchall()
    if apply:
        for (pid,) in rows:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    if not rows:
        return []
    return [
        {
            "id": "idle connections",
            "kind": "idle-connections",
            "before": f"{len(rows)} idle > {desired.get('idle_minutes', 5)} min",
            "after": "terminated",
        }
    ]


KEEP_FRESH = {"token", "key_name", "expires", "blocked", "spend", "created_at", "updated_at"}


def rotation(conn, desired, apply):
    items = []
    for entry in desired.get("rotations", []):
        alias, min_days = entry["alias"], int(entry.get("min_days_left", 14))
        valid = conn.execute(
            'SELECT 1 FROM "LiteLLM_VerificationToken" WHERE key_alias = %s AND blocked IS NOT TRUE '
            "AND (expires IS NULL OR expires >= now() + make_interval(days => %s))",
            (alias, min_days),
        ).fetchone()
        if valid:
            continue
        old = conn.execute(
            'SELECT token, key_name, expires FROM "LiteLLM_VerificationToken" WHERE key_alias = %s '  # noqa: S608
            "AND blocked IS NOT TRUE ORDER BY expires DESC NULLS LAST LIMIT 1" + locking(apply),
            (alias,),
        ).fetchone()
        if old is None:
            raise Fail(f"rotation: no unblocked key with alias {alias!r} to rotate", 2)
        days = int(entry.get("valid_days", 90))
        items.append(
            {
                "id": f"rotate {alias}",
                "kind": "key-rotation",
                "before": f"{old[1]} expires {old[2]:%Y-%m-%d}" if old[2] else f"{old[1]}",
                "after": f"new key valid {days} days; old key expires in {entry.get('grace_hours', 24)} h",
            }
        )
        if not apply:
            continue
        token, key_name = entry.get("new_token"), entry.get("new_key_name")
        if not (token and re.fullmatch(r"[0-9a-f]{64}", token) and key_name):
            raise Fail(f"rotation of {alias!r}: apply needs new_token (sha256 hex) and new_key_name", 2)
        from psycopg import sql

        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = 'LiteLLM_VerificationToken' ORDER BY ordinal_position"
            ).fetchall()
        ]
        copied = [c for c in columns if c not in KEEP_FRESH]
        fresh = [
            c for c in ("token", "key_name", "expires", "blocked", "spend", "created_at", "updated_at") if c in columns
        ]
        values = {
            "token": sql.Placeholder("token"),
            "key_name": sql.Placeholder("key_name"),
            "expires": sql.SQL("now() + make_interval(days => {})").format(sql.Placeholder("days")),
            "blocked": sql.SQL("false"),
            "spend": sql.SQL("0"),
            "created_at": sql.SQL("now()"),
            "updated_at": sql.SQL("now()"),
        }
        conn.execute(
            sql.SQL(
                'INSERT INTO "LiteLLM_VerificationToken" ({cols}) SELECT {vals} '
                'FROM "LiteLLM_VerificationToken" WHERE token = {old}'
            ).format(
                cols=sql.SQL(", ").join(sql.Identifier(c) for c in fresh + copied),
                vals=sql.SQL(", ").join([values[c] for c in fresh] + [sql.Identifier(c) for c in copied]),
                old=sql.Placeholder("old"),
            ),
            {"token": token, "key_name": key_name, "days": days, "old": old[0]},
        )
        grace = int(entry.get("grace_hours", 24))
        conn.execute(
            'UPDATE "LiteLLM_VerificationToken" SET expires = '
            "LEAST(COALESCE(expires, 'infinity'), now() + make_interval(hours => %s)) WHERE token = %s",
            (grace, old[0]),
        )
    return items


# -- models ------------------------------------------------------------------------------------
QUARANTINED_MODELS = "litellm_runner_quarantined_models"
SHOWN_MODELS = 100  # rows of db-06 named one by one; more are counted in one item
SHOWN_ID = re.compile(r"[^A-Za-z0-9._:/@+-]")


def shown_id(value):
    """A database value in an item's id: printable ASCII only, at most 64 characters (it is the host's)."""
    text = SHOWN_ID.sub("?", str(value))
    return text if len(text) <= 64 else text[:61] + "..."


def models(conn, desired, apply):
    """The config's models win (db-06): a row of LiteLLM_ProxyModelTable whose model_name is a config model's
    name, or whose model_id is a config model's explicit ``model_info.id``, is drift. LiteLLM 1.102.4 adds such
    a row as one more deployment of that name (a share of its traffic goes where the row says), or, by id,
    replaces the config's deployment. Apply moves each such row, whole (its credentials as LiteLLM encrypted
    them), into QUARANTINED_MODELS in one transaction, and deletes it from the proxy's table."""
    wanted = desired.get("config_models") or []
    names = sorted({m["model_name"] for m in wanted})
    ids = sorted({str(m["id"]) for m in wanted if m.get("id") is not None})
    if not names:
        return []
    shadowing = "WHERE model_name = ANY(%s) OR model_id = ANY(%s)"  # one predicate: the plan's and the move's
    rows = conn.execute(
        'SELECT model_id, model_name FROM "LiteLLM_ProxyModelTable" '  # noqa: S608 (constant)
        f"{shadowing} ORDER BY model_name, model_id LIMIT %s" + locking(apply),
        (names, ids, SHOWN_MODELS + 1),
    ).fetchall()
    items = []
    for model_id, name in rows[:SHOWN_MODELS]:
        how = "replaces the config's deployment of that id" if model_id in ids else "served beside the config's"
        items.append(
            {
                "id": f"database model {shown_id(name)} ({shown_id(model_id)})",
                "kind": "shadow-model",
                "before": f"{how} {shown_id(name)}",
                "after": f"moved to {QUARANTINED_MODELS}",
            }
        )
    if len(rows) > SHOWN_MODELS:  # a table the account filled: counted, not listed row by row
        count = conn.execute(
            f'SELECT count(*) FROM "LiteLLM_ProxyModelTable" {shadowing}',  # noqa: S608 (constant)
            (names, ids),
        ).fetchone()[0]
        items.append(
            {
                "id": f"database models beyond the first {SHOWN_MODELS}",
                "kind": "shadow-model",
                "before": f"{count - SHOWN_MODELS} more take a config model's name or id",
                "after": f"moved to {QUARANTINED_MODELS}",
            }
        )
    if apply and rows:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {QUARANTINED_MODELS} (model_id text NOT NULL, model_name text, "
            "row jsonb NOT NULL, reason text NOT NULL, quarantined_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            f"INSERT INTO {QUARANTINED_MODELS} (model_id, model_name, row, reason) "  # noqa: S608 (constant)
            f'SELECT m.model_id, m.model_name, to_jsonb(m), %s FROM "LiteLLM_ProxyModelTable" m {shadowing}',
            ("db-06: takes a config model's name or id", names, ids),
        )
        conn.execute(f'DELETE FROM "LiteLLM_ProxyModelTable" {shadowing}', (names, ids))  # noqa: S608 (constant)
    return items


def seconds(text):
    """A --*-timeout value: seconds > 0, at most a day."""
    value = float(text)
    if not 0 < value <= 86400:
        raise ValueError(text)
    return value


SCOPES = {"settings": settings, "keys": expired_keys, "idle": idle, "rotation": rotation, "models": models}


def main(argv=None):
    import argparse  # here: plan() (every check's, in root's snapshot) has no command line to parse

    # a fixed help width: argparse's default asks shutil for the terminal's, and shutil's import (with lzma and
    # bz2) cost every check's plan about 5 ms of the host's CPU
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=lambda prog: argparse.HelpFormatter(prog, width=100)
    )
    parser.add_argument("action", choices=["plan", "apply"])
    parser.add_argument(
        "--scope",
        required=True,
        help="settings | schema | keys | idle | rotation | models; plan takes several, comma separated",
    )
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--desired-b64", required=True)
    parser.add_argument("--migrations", help="folder of LiteLLM migrations (default: the installed package's)")
    parser.add_argument("--connect-timeout", type=int, default=5, help="seconds (default 5)")
    parser.add_argument(
        "--lock-timeout",
        type=seconds,
        default=5,
        help="seconds a statement waits for a lock another session holds (default 5)",
    )
    parser.add_argument(
        "--statement-timeout", type=seconds, default=30, help="seconds a statement may run (default 30)"
    )
    parser.add_argument(
        "--migrate-lock-wait",
        type=seconds,
        help="seconds apply --scope schema waits for Prisma's advisory lock, held by another host migrating the "
        "same database or a prisma migrate deploy (default: litellm_migrations.LOCK_WAIT, 80)",
    )
    parser.add_argument(
        "--backup-root",
        help="the account's state folder (litellm_root): before migrations change a database that holds applied "
        "ones, a verified backup set is made under ROOT/state/archive/backups (litellm-backup)",
    )
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except Fail as exc:
        print(f"litellm-dbctl: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(result, default=str))
    return 0


def plan(scopes, desired_b64, env_file, connect_timeout=5, migrations=None, libpq=None, kept=None):
    """What ``litellm-dbctl plan`` prints, for SCOPES, as data: ``{"scopes": {scope: items}, "max_connections": N}``;
    Fail (its ``code`` and one line) as main exits with. MIGRATIONS (the folder of LiteLLM's migrations) and LIBPQ
    (the library's path) are given by the caller, so nothing of the venv's packages is imported: root's snapshot
    runs this in a child of its own, as the account (``hostside.Planning``). KEPT: the JSON text of that folder's
    replay as root kept it (``litellm_migrations.kept``); without it (or unreadable) the migrations are read and
    replayed, and the result carries ``"kept"``, the text for root to keep."""
    args = SimpleNamespace(
        kept=kept,
        action="plan",
        scope=",".join(scopes),
        env_file=env_file,
        desired_b64=desired_b64,
        migrations=migrations,
        libpq=libpq,
        connect_timeout=connect_timeout,
        lock_timeout=5,
        statement_timeout=30,
        migrate_lock_wait=None,
        backup_root=None,
    )
    found = run(args)
    fresh = {"kept": args.fresh} if getattr(args, "fresh", None) else {}
    return {"scopes": found["scopes"], "max_connections": found["max_connections"], **fresh}


def run(args):
    """plan or apply, as the command line ARGS say: the result main prints; Fail on failure."""
    try:
        desired = json.loads(base64.b64decode(args.desired_b64, validate=True))
    except ValueError:
        raise Fail("--desired-b64: expected base64 of a JSON object", 2) from None
    scopes = args.scope.split(",")
    unknown = [s for s in scopes if s not in (*SCOPES, "schema")]
    if unknown or not scopes or (args.action == "apply" and len(scopes) != 1):
        raise Fail(
            f"--scope {args.scope}: expected one of {', '.join([*SCOPES, 'schema'])} "
            "(plan: several, comma separated; apply: one)",
            2,
        )
    url = database_url(args.env_file)
    found, max_connections = {}, None
    with connect(url, args) as conn:
        # apply: one scope, one transaction; plan: every scope read in one READ ONLY transaction, nothing written
        # (a BEGIN and a ROLLBACK per scope were 8 more round trips of every check)
        for scope in scopes:
            try:
                if max_connections is None:  # read once, in the first scope's transaction
                    max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
                if scope == "schema":
                    found[scope] = schema(
                        conn, desired, args.action == "apply", migrations_dir(args.migrations), url, args
                    )
                else:
                    found[scope] = SCOPES[scope](conn, desired, args.action == "apply")
                if args.action == "apply":
                    conn.commit()
            except errors(args) as exc:
                conn.rollback()
                raise failure(url, scope, exc, args) from None
        conn.rollback()
    result = {"scopes": found, "max_connections": max_connections}
    if len(found) == 1:
        result["items"] = next(iter(found.values()))
    return result


if __name__ == "__main__":
    sys.exit(main())
