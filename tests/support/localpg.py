"""A throwaway real PostgreSQL 15 cluster with LiteLLM's real schema, for tests
that need a database but not a whole sandbox host.

    with LocalPostgres() as pg:
        pg.url            # postgresql://litellm:<pw>@127.0.0.1:<port>/litellm
        pg.admin()        # psycopg connection as superuser (unix socket)
        pg.apply_litellm_schema(skip={"LiteLLM_SkillsTable"})

The cluster runs as the `postgres` OS user (initdb refuses root), listens on
127.0.0.1 on a free port, authenticates TCP clients with scram-sha-256, and is
removed on exit. The schema comes from the pinned litellm-proxy-extras
migrations (the same pin as the managed host), applied in sorted order, each
file in autocommit mode.
"""

from __future__ import annotations

import os
import pathlib
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg
from psycopg import sql

PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def migrations_dir() -> pathlib.Path:
    import litellm_proxy_extras

    return pathlib.Path(litellm_proxy_extras.__file__).parent / "migrations"


class LocalPostgres:
    def __init__(self, db: str = "litellm", user: str = "litellm", max_connections: int = 100):
        self.db, self.user, self.max_connections = db, user, max_connections
        self.password = secrets.token_hex(16)
        self.port = _free_port()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="localpg-"))
        self.data = self.tmp / "data"
        self.socket_dir = self.tmp / "sock"

    # -- lifecycle ---------------------------------------------------------
    def _as_postgres(self, *cmd, timeout=60):
        prefix = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
        subprocess.run([*prefix, *cmd], check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> LocalPostgres:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            os.chown(self.socket_dir, pw.pw_uid, pw.pw_gid)
        self._as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            timeout=120,
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.tmp / "log"),
            "-o",
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={self.max_connections}",
            "start",
            timeout=90,
        )
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.db), sql.Identifier(self.user))
            )
        return self

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- access --------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.db}"

    def admin(self, db: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname=db, autocommit=True, connect_timeout=10
        )

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def sessions(self, application_name: str, where: str = "true") -> int:
        """How many sessions of APPLICATION_NAME the server has (WHERE: a further condition on pg_stat_activity)."""
        with self.admin() as conn:
            row = conn.execute(
                f"SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND ({where})",  # noqa: S608
                (application_name,),
            ).fetchone()
        return int(row[0]) if row else 0

    def until(self, application_name: str, where: str = "true", present: bool = True, timeout: float = 30) -> None:
        """Wait until a session of APPLICATION_NAME matching WHERE is there (PRESENT) or none is (a killed
        client's backend ends moments later, once it notices); AssertionError after TIMEOUT seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if bool(self.sessions(application_name, where)) == present:
                return
            time.sleep(0.1)
        raise AssertionError(f"{application_name} ({where}): {'never came' if present else 'still there'}")

    def apply_litellm_schema(self, skip: set[str] = frozenset()) -> None:
        """Build LiteLLM's tables from the pinned migrations, then drop `skip` tables."""
        with self.connect() as conn:
            for folder in sorted(p for p in migrations_dir().iterdir() if p.is_dir()):
                conn.execute((folder / "migration.sql").read_text())
            for table in skip:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
