"""First-start half of the incident: the LiteLLM database as the incident found it.

Runs inside the sandbox as the postgres user (peer auth over the unix socket),
once; sandbox.py guards it with a marker file. Reads {"db_password": ...} as
JSON on stdin so the password never appears on a command line.

State planted here (see README, "The sandbox"):
- role litellm with CREATEDB (the backup tool restores into a scratch database);
- the real schema from the pinned litellm-proxy-extras migrations, applied in
  sorted order, each file in autocommit mode (some use CREATE INDEX CONCURRENTLY);
- LiteLLM_SkillsTable dropped (the incident's missing table);
- LiteLLM_Config rows with the incident's settings, plus unmanaged keys that an
  admin set from the UI (the runner must keep them);
- virtual keys: two expired and not blocked, one valid, one close to expiry.
"""

import hashlib
import json
import pathlib
import sys

import psycopg
from psycopg import sql

MIGRATIONS = pathlib.Path("/opt/sandbox/migrations")
DB = "litellm"
ROLE = "litellm"

GENERAL = {
    "database_connection_pool_limit": 10,
    "store_prompts_in_spend_logs": True,
    "disable_error_logs": True,
    "store_model_in_db": True,
    "maximum_spend_logs_retention_period": "30d",  # unmanaged, set from the UI
}
LITELLM = {"request_timeout": 600, "drop_params": True}  # drop_params: unmanaged

KEYS = [  # (raw key, alias, expires SQL, blocked, models)
    ("sk-sandbox-expired-0001", "old-ci", "now() - interval '200 days'", None, ["local-vllm"]),
    ("sk-sandbox-expired-0002", "old-batch", "now() - interval '3 days'", False, ["local-vllm"]),
    ("sk-sandbox-valid-0003", "reporting", "now() + interval '300 days'", None, ["local-vllm"]),
    ("sk-sandbox-rotate-0004", "ops-team", "now() + interval '5 days'", None, ["local-vllm"]),
]


def main() -> None:
    password = json.load(sys.stdin)["db_password"]
    with psycopg.connect("dbname=postgres port=5434", autocommit=True, connect_timeout=10) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(ROLE)))
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(password)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DB), sql.Identifier(ROLE)))
    with psycopg.connect(f"dbname={DB} port=5434", autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT to_regclass('\"LiteLLM_VerificationToken\"')").fetchone()[0]:
            return  # already seeded
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(ROLE)))
        for folder in sorted(p for p in MIGRATIONS.iterdir() if p.is_dir()):
            conn.execute((folder / "migration.sql").read_text())
        conn.execute('DROP TABLE "LiteLLM_SkillsTable"')
        for name, value in (("general_settings", GENERAL), ("litellm_settings", LITELLM)):
            conn.execute(
                'INSERT INTO "LiteLLM_Config" (param_name, param_value) VALUES (%s, %s)',
                (name, json.dumps(value)),
            )
        for raw, alias, expires, blocked, models in KEYS:
            conn.execute(
                sql.SQL(
                    'INSERT INTO "LiteLLM_VerificationToken" '
                    "(token, key_name, key_alias, expires, blocked, models) "
                    "VALUES (%s, %s, %s, {}, %s, %s)"
                ).format(sql.SQL(expires)),  # expires: constants above, never input
                (hashlib.sha256(raw.encode()).hexdigest(), f"sk-...{raw[-4:]}", alias, blocked, models),
            )


if __name__ == "__main__":
    main()
