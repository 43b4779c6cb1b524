"""libpq through ctypes: the read-only session of ``litellm-dbctl plan``, without importing psycopg.

Shipped next to litellm-dbctl. Every check plans the database, and ``import psycopg`` alone cost that
plan about 135 ms of the host's CPU (its package imports its adapters, pools' helpers, logging and
importlib.metadata before anything connects); the plan needs only a connection, a few parameterized
SELECTs and their rows. This module gives it that, through the libpq that psycopg itself uses (the
``psycopg_binary.libs`` copy of the venv's psycopg-binary wheel, else the system's ``libpq.so.5``), with
the subset of psycopg's connection interface dbctl's plan code calls: ``execute(query, params)`` with
``%s`` placeholders sent as real parameters (PQexecParams: never formatted into the SQL), ``fetchone``,
``fetchall``, iteration, ``rollback``, ``commit``, ``read_only`` and ``close``. apply keeps psycopg.

Values are converted from libpq's text format by type, as psycopg converts them for these types: bool,
integers and oid, json and jsonb (parsed), timestamptz and timestamp (datetime), text-like types (str).
A column of another type is refused (``Error``), never passed on in a form psycopg would not give.
"""

from __future__ import annotations

import ctypes
import json
import re
import sys

import litellm_tools  # next to this file: the URL split as urllib.parse splits it (split_url, query_keys)

# datetime and pathlib are imported where they are needed: a check's plan reads no timestamp when nothing drifted,
# and is given its libpq's path (each import cost it about 1 ms of the host's CPU)

OK, TUPLES_OK = 1, 2  # PGRES_COMMAND_OK, PGRES_TUPLES_OK
IDLE = 0  # PQTRANS_IDLE
SQLSTATE, MESSAGE_PRIMARY = ord("C"), ord("M")  # PG_DIAG_SQLSTATE, PG_DIAG_MESSAGE_PRIMARY
TEXT_TYPES = {18, 19, 25, 1042, 1043, 2205, 2206}  # char, name, text, bpchar, varchar, regclass, regtype (psycopg: str)
INT_TYPES = {20, 21, 23, 26}  # int8, int2, int4, oid
JSON_TYPES = {114, 3802}  # json, jsonb
TIME_TYPES = {1114, 1184}  # timestamp, timestamptz
# psycopg's class names of the SQLSTATEs whose cause dbctl words itself; others are named on failure
# through psycopg.errors.lookup (imported then only)
NAMES = {"55P03": "LockNotAvailable", "57014": "QueryCanceled"}


class Diag:
    def __init__(self, message_primary: str | None):
        self.message_primary = message_primary


class Error(Exception):
    """A failed connection or statement: ``sqlstate`` and ``diag.message_primary`` as psycopg's errors have
    them; ``name`` is psycopg's class name for that SQLSTATE (``OperationalError`` for a connection)."""

    def __init__(self, message: str, sqlstate: str | None = None, primary: str | None = None):
        super().__init__(message)
        self.sqlstate, self.diag = sqlstate, Diag(primary)

    @property
    def name(self) -> str:
        if not self.sqlstate:
            return "OperationalError"
        if self.sqlstate not in NAMES:
            try:
                import psycopg.errors
            except ImportError:  # root's snapshot plans without the venv's packages (litellm_dbctl.plan)
                return f"DatabaseError (SQLSTATE {self.sqlstate})"

            return psycopg.errors.lookup(self.sqlstate).__name__
        return NAMES[self.sqlstate]


def _library(path: str | None = None) -> ctypes.CDLL:
    """The libpq at PATH, else the venv's psycopg-binary libpq (what apply's psycopg uses), else the system's."""
    for entry in [] if path else sys.path:
        import pathlib

        found = sorted(pathlib.Path(entry or ".").glob("psycopg_binary.libs/libpq-*.so*"))
        if found:
            lib = ctypes.CDLL(str(found[0]))
            break
    else:
        lib = ctypes.CDLL(path or "libpq.so.5")
    p, s, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, restype, argtypes in (
        ("PQconnectdbParams", p, [ctypes.POINTER(s), ctypes.POINTER(s), i]),
        ("PQstatus", i, [p]),
        ("PQerrorMessage", s, [p]),
        ("PQfinish", None, [p]),
        ("PQtransactionStatus", i, [p]),
        ("PQexecParams", p, [p, s, i, p, ctypes.POINTER(s), p, p, i]),
        ("PQresultStatus", i, [p]),
        ("PQresultErrorField", s, [p, i]),
        ("PQresultErrorMessage", s, [p]),
        ("PQntuples", i, [p]),
        ("PQnfields", i, [p]),
        ("PQftype", ctypes.c_uint, [p, i]),
        ("PQgetisnull", i, [p, i, i]),
        ("PQgetvalue", s, [p, i, i]),
        ("PQclear", None, [p]),
        ("PQescapeIdentifier", p, [p, s, ctypes.c_size_t]),
        ("PQfreemem", None, [p]),
    ):
        func = getattr(lib, name)
        func.restype, func.argtypes = restype, argtypes
    return lib


def _param(value) -> bytes | None:
    """VALUE in PostgreSQL's text input form (a list: an array literal, its elements quoted)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, (list, tuple)):
        items = ("NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
        text = "{" + ",".join(items) + "}"
    elif isinstance(value, (int, str)):
        text = str(value)
    else:
        raise TypeError(f"litellm_pq: no parameter form for {type(value).__name__}")
    if "\x00" in text:  # a C string would end there: refused, as psycopg refuses it
        raise Error("PostgreSQL text fields cannot contain NUL (0x00) bytes", "22021", "NUL byte in a parameter")
    return text.encode()


def _value(oid: int, text: bytes):
    raw = text.decode()
    if oid in TEXT_TYPES:
        return raw
    if oid in INT_TYPES:
        return int(raw)
    if oid == 16:
        return raw == "t"
    if oid in JSON_TYPES:
        return json.loads(raw)
    if oid in TIME_TYPES:
        import datetime

        try:
            return datetime.datetime.fromisoformat(raw)
        except ValueError:  # infinity, or a year psycopg cannot give either
            raise Error(f"timestamp {raw!r} is out of Python's range", "22008", "timestamp out of range") from None
    raise Error(f"litellm_pq: no conversion for the type oid {oid}", "0A000", f"type oid {oid} not read here")


class Result:
    """The rows of one statement, converted (``fetchone``, ``fetchall``, iteration)."""

    def __init__(self, rows: list[tuple]):
        self.rows = rows

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple]:
        return list(self.rows)

    def __iter__(self):
        return iter(self.rows)


class Connection:
    """One libpq session; not autocommit: the first statement opens a transaction (READ ONLY when
    ``read_only``), ``rollback`` or ``commit`` ends it."""

    def __init__(self, lib: ctypes.CDLL, handle: int):
        self.lib, self.handle, self.read_only = lib, handle, False

    @property
    def closed(self) -> bool:
        return self.handle is None

    def _run(self, query: str, params=()) -> Result:
        values = [_param(v) for v in params]
        array = (ctypes.c_char_p * len(values))(*values) if values else None
        res = self.lib.PQexecParams(self.handle, query.encode(), len(values), None, array, None, None, 0)
        if not res:
            raise Error(self.lib.PQerrorMessage(self.handle).decode("utf-8", "replace").strip())
        try:
            status = self.lib.PQresultStatus(res)
            if status not in (OK, TUPLES_OK):
                field = self.lib.PQresultErrorField
                sqlstate, primary = field(res, SQLSTATE), field(res, MESSAGE_PRIMARY)
                raise Error(
                    self.lib.PQresultErrorMessage(res).decode("utf-8", "replace").strip(),
                    sqlstate.decode() if sqlstate else None,
                    primary.decode("utf-8", "replace") if primary else None,
                )
            cols = self.lib.PQnfields(res)
            types = [self.lib.PQftype(res, c) for c in range(cols)]
            return Result(
                [
                    tuple(
                        None if self.lib.PQgetisnull(res, r, c) else _value(types[c], self.lib.PQgetvalue(res, r, c))
                        for c in range(cols)
                    )
                    for r in range(self.lib.PQntuples(res))
                ]
            )
        finally:
            self.lib.PQclear(res)

    def execute(self, query: str, params=()) -> Result:
        """QUERY with PARAMS as libpq parameters ($1, $2 ... in place of each %s; %% is a %)."""
        if self.lib.PQtransactionStatus(self.handle) == IDLE:
            self._run("BEGIN READ ONLY" if self.read_only else "BEGIN")
        pieces = query.split("%%")
        count = 0
        for n, piece in enumerate(pieces):
            parts = piece.split("%s")
            for k in range(1, len(parts)):
                count += 1
                parts[k] = f"${count}{parts[k]}"
            pieces[n] = "".join(parts)
        return self._run("%".join(pieces), params)

    def quote_identifier(self, name: str) -> str:
        """NAME quoted as an SQL identifier by libpq (PQescapeIdentifier, as psycopg.sql.Identifier)."""
        raw = name.encode()
        out = self.lib.PQescapeIdentifier(self.handle, raw, len(raw))
        if not out:
            raise Error(self.lib.PQerrorMessage(self.handle).decode("utf-8", "replace").strip())
        try:
            return ctypes.string_at(out).decode()
        finally:
            self.lib.PQfreemem(out)

    def rollback(self) -> None:
        if self.handle is not None and self.lib.PQtransactionStatus(self.handle) != IDLE:
            self._run("ROLLBACK")

    def commit(self) -> None:
        if self.handle is not None and self.lib.PQtransactionStatus(self.handle) != IDLE:
            self._run("COMMIT")

    def close(self) -> None:
        if self.handle is not None:
            self.lib.PQfinish(self.handle)
            self.handle = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()


LOOPBACK = re.compile(r"localhost|127(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}|::1")


def defaults(url: str) -> dict[str, str]:
    """The libpq keywords a plan's session takes unless URL sets them itself (``connect`` puts them before the
    URL, which overrides them): ``gssencmode=disable`` (libpq's default, ``prefer``, first looks for Kerberos
    credentials to encrypt with GSSAPI), and for a loopback host ``sslmode=allow`` (libpq's default, ``prefer``,
    makes a TLS handshake first; ``allow`` connects without TLS and makes one only when the server refuses
    that, as a ``hostssl``-only pg_hba.conf does). Neither default checks the server's certificate, so over
    loopback TLS kept out only a reader of the loopback interface, that is root, who reads the env file anyway.
    A URL with ``host=`` or ``hostaddr=`` in its query gets no sslmode here: its host is not the URL's."""
    parts = litellm_tools.split_url(url)
    found = litellm_tools.query_keys(parts.query)
    out = {}
    if "gssencmode" not in found:
        out["gssencmode"] = "disable"
    loopback = LOOPBACK.fullmatch(parts.hostname or "") and not found & {"host", "hostaddr"}
    if loopback and not found & {"sslmode", "requiressl", "ssl"}:  # ssl=true: libpq's form of sslmode=require
        out["sslmode"] = "allow"
    return out


def connect(url: str, defaults: dict[str, str] | None = None, library: str | None = None, **params: str) -> Connection:
    """A session to URL (libpq expands it: the password never leaves this process) with PARAMS as libpq
    connection keywords (connect_timeout, options, application_name), and DEFAULTS as keywords the URL
    overrides when it sets them (``defaults``), through the libpq at LIBRARY (``_library``); Error names the
    cause as psycopg does ("connection failed: ...")."""
    lib = _library(library)
    keys = [*(defaults or {}), "dbname", "client_encoding", *params]
    values = [*(defaults or {}).values(), url, "UTF8", *(str(v) for v in params.values())]
    k = (ctypes.c_char_p * (len(keys) + 1))(*(x.encode() for x in keys), None)
    v = (ctypes.c_char_p * (len(values) + 1))(*(x.encode() for x in values), None)
    handle = lib.PQconnectdbParams(k, v, 1)
    if not handle:
        raise Error("connection failed: out of memory")
    if lib.PQstatus(handle) != 0:  # CONNECTION_OK
        message = lib.PQerrorMessage(handle).decode("utf-8", "replace").strip()
        lib.PQfinish(handle)
        raise Error(f"connection failed: {message}")
    return Connection(lib, handle)
