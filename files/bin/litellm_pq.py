"""The read-only session of ``litellm-dbctl plan``, without importing psycopg: PostgreSQL's protocol spoken
here for the runner's own loopback URL (``WireConnection``), libpq through ctypes for any other.

Shipped next to litellm-dbctl. Every check plans the database, and ``import psycopg`` alone cost that
plan about 135 ms of the host's CPU (its package imports its adapters, pools' helpers, logging and
importlib.metadata before anything connects); the plan needs only a connection, a few parameterized
SELECTs and their rows. This module gives it that, for a URL that asks nothing of TLS to a loopback
address with a password (what the runner renders) over a socket of its own (see "The plan's session without
libpq" below), else through the libpq that psycopg itself uses (the ``psycopg_binary.libs`` copy of the
venv's psycopg-binary wheel, else the system's ``libpq.so.5``). Either way it offers the subset of psycopg's
connection interface dbctl's plan code calls: ``execute(query, params)`` with ``%s`` placeholders sent as
real parameters (never formatted into the SQL), ``fetchone``, ``fetchall``, iteration, ``rollback``,
``commit``, ``read_only`` and ``close``. apply keeps psycopg.

Values are converted from PostgreSQL's text format by type, as psycopg converts them for these types: bool,
integers and oid, json and jsonb (parsed), timestamptz and timestamp (datetime), text-like types (str).
A column of another type is refused (``Error``), never passed on in a form psycopg would not give.
"""

from __future__ import annotations

import json
import re
import sys

import litellm_tools  # next to this file: the URL split as urllib.parse splits it (split_url, query_keys)

TYPE_CHECKING = False  # typing's, without importing typing (4 ms of a check's plan)
if TYPE_CHECKING:
    import ctypes

# ctypes (libpq's sessions only), datetime and pathlib are imported where they are needed: a check's plan
# speaks to the runner's own URL itself, reads no timestamp when nothing drifted, and is given its libpq's path
# (each import cost it about 1 ms of the host's CPU)

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
    import ctypes

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


class _Session:
    """What dbctl's plan calls on a session, either way it talks to the server: not autocommit, the first
    statement opens a transaction (READ ONLY when ``read_only``), ``rollback`` or ``commit`` ends it."""

    read_only = False

    def _idle(self) -> bool:
        raise NotImplementedError

    def _run(self, query: str, params=()) -> Result:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def execute(self, query: str, params=()) -> Result:
        """QUERY with PARAMS as real parameters ($1, $2 ... in place of each %s; %% is a %)."""
        if self._idle():
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

    def rollback(self) -> None:
        if not self.closed and not self._idle():
            self._run("ROLLBACK")

    def commit(self) -> None:
        if not self.closed and not self._idle():
            self._run("COMMIT")

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()


class Connection(_Session):
    """One libpq session."""

    def __init__(self, lib: ctypes.CDLL, handle: int):
        self.lib, self.handle = lib, handle

    @property
    def closed(self) -> bool:
        return self.handle is None

    def _idle(self) -> bool:
        return self.lib.PQtransactionStatus(self.handle) == IDLE

    def _run(self, query: str, params=()) -> Result:
        import ctypes

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

    def quote_identifier(self, name: str) -> str:
        """NAME quoted as an SQL identifier by libpq (PQescapeIdentifier, as psycopg.sql.Identifier)."""
        import ctypes

        raw = name.encode()
        out = self.lib.PQescapeIdentifier(self.handle, raw, len(raw))
        if not out:
            raise Error(self.lib.PQerrorMessage(self.handle).decode("utf-8", "replace").strip())
        try:
            return ctypes.string_at(out).decode()
        finally:
            self.lib.PQfreemem(out)

    def close(self) -> None:
        if self.handle is not None:
            self.lib.PQfinish(self.handle)
            self.handle = None


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


# == The plan's session without libpq ===========================================================
# ``import ctypes`` and loading libpq (with the OpenSSL, Kerberos and LDAP libraries it links) cost each
# check's plan about 4.5 ms of the host's CPU before it connected, and libpq's connect another 4.7 ms. The
# runner's own URL (a loopback address, a password, no TLS asked) needs none of what libpq adds, so the plan
# speaks PostgreSQL's protocol 3.0 itself there: the startup packet libpq sends (user, database, options,
# application_name, client_encoding), SCRAM-SHA-256 with the server's signature checked (a server that asks
# for another way to log in gets libpq), and each statement as libpq's PQexecParams sends it: Parse, Bind (the
# parameters as text, apart from the SQL), Describe, Execute, Sync.

WIRE_KEYS = {"connect_timeout", "options", "application_name"}  # the keywords WireConnection sends as libpq does
WIRE_TLS_KEYS = {"sslmode": {"disable", "allow"}, "gssencmode": {"disable"}}  # libpq's modes it may take over
WIRE_READ_TIMEOUT = 600.0  # seconds a reply may take (the session's statement_timeout ends a statement first)
WIRE_MESSAGE_LIMIT = 64 << 20  # bytes of one server message (the plan's largest reply, the catalog: about 60 KB)


class _Unsupported(Exception):
    """What only libpq does (a TLS retry, another way to log in): ``connect`` hands the session to libpq."""


def _unquote(text: str) -> str:
    """TEXT's %XX escapes decoded, as libpq decodes a URL's user, password and database; _Unsupported when a
    '%' has no two hex digits after it or the result is not UTF-8 (libpq's to refuse, in its own words)."""
    if "%" not in text:
        return text
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise _Unsupported()
    try:
        return re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes.fromhex(m.group(1).decode()), text.encode()).decode()
    except UnicodeDecodeError:
        raise _Unsupported() from None


def _wire_target(url: str, defaults: dict[str, str], params: dict) -> tuple | None:
    """``(host, port, user, password, database, params)`` for ``WireConnection`` when URL is
    ``postgresql://USER:PASSWORD@127.x.x.x:PORT/DB`` (or ``localhost``) with no query but libpq's TLS modes it
    may take over, and DEFAULTS and PARAMS ask nothing else; else None (libpq's to do)."""
    parts = litellm_tools.split_url(url)
    if not isinstance(parts, litellm_tools.SplitUrl) or not set(params) <= WIRE_KEYS:
        return None
    host = parts.hostname  # never [::1]: split_url leaves a bracketed host to urllib.parse
    if not LOOPBACK.fullmatch(host):
        return None
    modes = dict(defaults)
    for pair in parts.query.split("&") if parts.query else ():
        key, _, value = pair.partition("=")
        modes[key] = value
    if any(value not in WIRE_TLS_KEYS.get(key, ()) for key, value in modes.items()):
        return None
    userinfo, at, _ = parts.netloc.partition("@")
    user, colon, password = userinfo.partition(":")
    database = parts.path[1:]
    if not (at and colon and user and password and database) or "/" in database:
        return None
    try:
        user, password, database = _unquote(user), _unquote(password), _unquote(database)
    except _Unsupported:
        return None
    if not password.isascii() or "\x00" in user + password + database:  # SASLprep: libpq's to apply
        return None
    return host, parts.port or 5432, user, password, database, {k: str(v) for k, v in params.items()}


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + (len(body) + 4).to_bytes(4, "big") + body


def _cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def _fields(body: bytes) -> dict[str, str]:
    """An ErrorResponse's or NoticeResponse's fields, by their one-letter codes."""
    out = {}
    for field in body.split(b"\x00"):
        if field:
            out[chr(field[0])] = field[1:].decode("utf-8", "replace")
    return out


def _error_text(fields: dict[str, str]) -> str:
    """A server error as libpq words it (``PQerrorMessage``): ``SEVERITY:  message``, then DETAIL and HINT."""
    text = f"{fields.get('V', fields.get('S', 'ERROR'))}:  {fields.get('M', '')}"
    for code, label in (("D", "DETAIL"), ("H", "HINT")):
        if code in fields:
            text += f"\n{label}:  {fields[code]}"
    return text


class WireConnection(_Session):
    """A session spoken over a socket by this module (see above), with ``Connection``'s interface. A server
    that wants what only libpq does (another way to log in, TLS) raises _Unsupported before anything is sent
    but the startup packet; its other refusals and an unreachable server are Error, worded as libpq words them
    (``connection to server at "HOST", port PORT failed: ...``)."""

    def __init__(self, host: str, port: int, user: str, password: str, database: str, params: dict):
        import _socket

        self.sock, self.status, self.buffer = None, b"I", b""
        timeout = float(params.get("connect_timeout") or 0) or WIRE_READ_TIMEOUT
        try:
            addresses = _socket.getaddrinfo(host.encode(), port, 0, _socket.SOCK_STREAM)  # bytes: no idna codec
        except OSError as exc:
            raise _Unsupported() from exc  # libpq names a name it cannot resolve
        failures = []
        for family, kind, proto, _, address in addresses:
            shown = f'"{host}"' if host == address[0] else f'"{host}" ({address[0]})'
            where = f"connection to server at {shown}, port {port} failed"
            sock = _socket.socket(family, kind, proto)
            sock.settimeout(timeout)
            try:
                sock.connect(address)
            except TimeoutError:
                sock.close()
                raise Error(f"connection failed: {where}: timeout expired") from None
            except OSError as exc:
                sock.close()
                failures.append(exc)
                continue
            self.sock = sock
            break
        if self.sock is None:
            raise _Unsupported() from (failures[0] if failures else None)  # refused: libpq says it its way
        try:
            self._start(user, password, database, params, where)
        except TimeoutError:
            self.close()
            raise Error(f"connection failed: {where}: timeout expired") from None
        except OSError as exc:
            self.close()
            raise Error(f"connection failed: {where}: server closed the connection unexpectedly ({exc})") from None
        except BaseException:
            self.close()
            raise
        self.sock.settimeout(WIRE_READ_TIMEOUT)

    def _start(self, user: str, password: str, database: str, params: dict, where: str) -> None:
        startup = {"user": user, "database": database, "client_encoding": "UTF8", **params}
        startup.pop("connect_timeout", None)
        body = (196608).to_bytes(4, "big") + b"".join(_cstr(k) + _cstr(v) for k, v in startup.items()) + b"\x00"
        self.sock.sendall((len(body) + 4).to_bytes(4, "big") + body)
        scram = None
        while True:
            kind, body = self._read()
            if kind == b"E":
                fields = _fields(body)
                if fields.get("C") == "28000":  # no pg_hba.conf line for a connection without TLS: libpq's retry
                    raise _Unsupported()
                raise Error(f"connection failed: {where}: {_error_text(fields)}")
            if kind == b"R":
                code = int.from_bytes(body[:4], "big")
                if code == 0:
                    if scram is not None and not scram.verified:
                        raise Error(f"connection failed: {where}: the server did not prove it knows the password")
                    continue
                if code == 10 and b"SCRAM-SHA-256" in body[4:].split(b"\x00"):
                    scram = _Scram(password)
                    first = scram.first.encode()
                    self.sock.sendall(_message(b"p", _cstr("SCRAM-SHA-256") + len(first).to_bytes(4, "big") + first))
                elif code == 11 and scram is not None:
                    self.sock.sendall(_message(b"p", scram.final(body[4:].decode()).encode()))
                elif code == 12 and scram is not None:
                    scram.verify(body[4:].decode())
                else:
                    raise _Unsupported()
            elif kind == b"Z":
                self.status = body[:1]
                return
            # ParameterStatus, BackendKeyData, NoticeResponse: nothing the plan reads

    def _read(self) -> tuple[bytes, bytes]:
        """The next server message: its type byte and body."""
        while len(self.buffer) < 5:
            self._fill()
        kind, size = self.buffer[:1], int.from_bytes(self.buffer[1:5], "big")
        if size < 4 or size > WIRE_MESSAGE_LIMIT:
            raise Error(f"litellm_pq: a server message of {size} bytes")
        while len(self.buffer) < 1 + size:
            self._fill()
        body, self.buffer = self.buffer[5 : 1 + size], self.buffer[1 + size :]
        return kind, body

    def _fill(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise Error("server closed the connection unexpectedly")
        self.buffer += data

    @property
    def closed(self) -> bool:
        return self.sock is None

    def _idle(self) -> bool:
        return self.status == b"I"

    def _run(self, query: str, params=()) -> Result:
        if self.sock is None:
            raise Error("the connection is closed")
        values = [_param(v) for v in params]
        bind = b"\x00\x00\x00\x00" + len(values).to_bytes(2, "big")  # unnamed portal and statement, text parameters
        for value in values:
            bind += b"\xff\xff\xff\xff" if value is None else len(value).to_bytes(4, "big") + value
        bind += b"\x00\x01\x00\x00"  # every column as text
        self.sock.sendall(
            _message(b"P", b"\x00" + _cstr(query) + b"\x00\x00")
            + _message(b"B", bind)
            + _message(b"D", b"P\x00")
            + _message(b"E", b"\x00\x00\x00\x00\x00")
            + _message(b"S", b"")
        )
        types: list[int] = []
        rows: list[tuple] = []
        error = None
        while True:
            kind, body = self._read()
            if kind == b"T":
                types, at = [], 2
                for _ in range(int.from_bytes(body[:2], "big")):
                    at = body.index(b"\x00", at) + 1
                    types.append(int.from_bytes(body[at + 6 : at + 10], "big"))
                    at += 18
            elif kind == b"D" and error is None:
                row, at = [], 2
                for column in range(int.from_bytes(body[:2], "big")):
                    size = int.from_bytes(body[at : at + 4], "big", signed=True)
                    at += 4
                    if size < 0:
                        row.append(None)
                        continue
                    try:
                        row.append(_value(types[column], body[at : at + size]))
                    except Error as exc:  # the statement's answer is this error, once the server is ready again
                        error = exc
                    at += size
                rows.append(tuple(row))
            elif kind == b"E":
                fields = _fields(body)
                error = Error(_error_text(fields), fields.get("C"), fields.get("M"))
            elif kind == b"Z":
                self.status = body[:1]
                if error is not None:
                    raise error
                return Result(rows)

    def quote_identifier(self, name: str) -> str:
        """NAME quoted as an SQL identifier, as libpq's PQescapeIdentifier quotes it (a NUL: refused)."""
        if "\x00" in name:
            raise Error("litellm_pq: an identifier with a NUL byte")
        return '"' + name.replace('"', '""') + '"'

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.sendall(_message(b"X", b""))
            except OSError:
                pass
            self.sock.close()
            self.sock = None


class _Scram:
    """SCRAM-SHA-256 (RFC 5802, RFC 7677) as libpq's client does it, without channel binding (no TLS): the
    password is given raw (an ASCII password is its own SASLprep), the user name is the startup packet's."""

    def __init__(self, password: str):
        import base64
        import os

        self.password, self.verified = password.encode(), False
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first = f"n,,n=,r={self.nonce}"
        self.server_key = self.message = b""

    def final(self, server_first: str) -> str:
        import base64
        import hashlib
        import hmac

        attrs = dict(part.split("=", 1) for part in server_first.split(",") if "=" in part)
        if not attrs.get("r", "").startswith(self.nonce) or "s" not in attrs or not attrs.get("i", "").isdigit():
            raise Error("the server's SCRAM challenge is malformed")
        salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        without_proof = f"c=biws,r={attrs['r']}"
        self.message = f"{self.first[3:]},{server_first},{without_proof}".encode()
        signature = hmac.digest(hashlib.sha256(client_key).digest(), self.message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.server_key = hmac.digest(salted, b"Server Key", "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify(self, server_final: str) -> None:
        import base64
        import hmac

        expected = base64.b64encode(hmac.digest(self.server_key, self.message, "sha256")).decode()
        if not hmac.compare_digest(server_final.strip(), f"v={expected}"):
            raise Error("the server's SCRAM signature is wrong")
        self.verified = True


def connect(
    url: str, defaults: dict[str, str] | None = None, library: str | None = None, wire: bool = True, **params: str
) -> _Session:
    """A session to URL (the password never leaves this process) with PARAMS as libpq connection keywords
    (connect_timeout, options, application_name), and DEFAULTS as keywords the URL overrides when it sets them
    (``defaults``); Error names the cause as psycopg does ("connection failed: ...").

    A URL of the form ``postgresql://USER:PASSWORD@LOOPBACK:PORT/DB`` that asks for neither TLS nor GSSAPI (what
    the runner renders) gets a ``WireConnection`` (WIRE False: never); anything else, and a server that wants
    what only libpq does, goes through the libpq at LIBRARY (``_library``)."""
    if wire:
        target = _wire_target(url, {**(defaults or {})}, params)
        if target is not None:
            try:
                return WireConnection(*target)
            except _Unsupported:  # what only libpq does (a TLS retry, another way to log in): libpq does it all
                pass
    import ctypes

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
