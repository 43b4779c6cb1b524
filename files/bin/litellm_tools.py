"""Shared helpers of the host tools in <root>/bin/ (imported, not run).

Settings come from the process environment (the user units load
env.litellm with EnvironmentFile=) and, for what is missing there, from the
env file itself (--env-file). No helper prints a secret: errors name the
database as host:port/database only.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import subprocess
import tempfile
import urllib.request
from urllib.parse import unquote, urlsplit

import litellm_envfile as envfile  # bin/litellm_envfile.py, next to this file (sys.path[0])

DEFAULT_ROOT = "/home/litellm/litellm"


def root_from(args_root: str | None) -> pathlib.Path:
    return pathlib.Path(args_root or os.environ.get("LITELLM_ROOT", DEFAULT_ROOT))


def load_env(env_file: str | os.PathLike | None) -> dict[str, str]:
    """The env file's KEY=value pairs as systemd reads them (litellm_envfile), overridden by the process
    environment; litellm_envfile.EnvFileError (file:line, never a value) for a line systemd would misread."""
    values = envfile.read(env_file) if env_file and pathlib.Path(env_file).exists() else {}
    values.update(
        {k: v for k, v in os.environ.items() if k in values or k in ("DATABASE_URL", "REDIS_HOST", "REDIS_PORT")}
    )
    return values


URL_FORM = "DATABASE_URL: expected postgresql://USER:PASSWORD@HOST:PORT/DB (the value is not shown)"


class BadUrl(ValueError):
    """DATABASE_URL does not parse the same way here and in libpq; the message never holds the value."""

    def __init__(self):
        super().__init__(URL_FORM)


def parse_url(url: str):
    """urlsplit() of a postgresql:// URL that libpq reads the same way, or BadUrl.

    Refused: another scheme, no host or database, a port that is not 1-65535,
    a second '@' (libpq splits at the first, urlsplit at the last, so a piece of
    the password would become the host name in libpq's error), a '%' that is
    not followed by two hex digits (libpq's error quotes the token)."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        raise BadUrl() from None
    if (
        parts.scheme not in ("postgres", "postgresql")
        or not parts.hostname
        or len(parts.path) < 2
        or parts.netloc.count("@") > 1
        or port == 0
        or re.search(r"%(?![0-9A-Fa-f]{2})", url)
    ):
        raise BadUrl()
    return parts


def where(url: str) -> str:
    """host:port/database of a URL, without user or password; never raises."""
    try:
        parts = parse_url(url)
    except BadUrl:
        return "(unparsable URL)"
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def connect(
    url: str,
    timeout: int = 5,
    *,
    statement_timeout: float | None = None,
    lock_timeout: float | None = None,
    application_name: str | None = None,
    autocommit: bool = True,
):
    """A psycopg connection; a URL that does not parse raises BadUrl before libpq sees it.

    statement_timeout / lock_timeout (seconds) are session settings given at connect (libpq options)."""
    import psycopg

    parse_url(url)
    options = " ".join(
        f"-c {name}={int(seconds * 1000)}"
        for name, seconds in (("statement_timeout", statement_timeout), ("lock_timeout", lock_timeout))
        if seconds
    )
    extra = {k: v for k, v in (("options", options), ("application_name", application_name)) if v}
    return psycopg.connect(url, connect_timeout=timeout, autocommit=autocommit, **extra)


def secrets_of(url: str) -> set[str]:
    """The URL and its password however a parser splits the user-info (first or last '@'), raw and
    decoded, and the password's pieces of 3+ characters: what masking replaces in an error text."""
    rest = (url or "").split("://", 1)[-1].split("/", 1)[0]
    userinfos = {rest.rpartition("@")[0], rest.partition("@")[0]} if "@" in rest else set()
    passwords = {info.partition(":")[2] for info in userinfos}
    found = {url} | passwords | {unquote(p) for p in passwords}
    for password in list(found - {url}):
        found |= {piece for piece in re.split(r"[@:/%?#]", password) if len(piece) >= 3}
    return {s for s in found if s}


def mask(url: str, text: str) -> str:
    """TEXT with every piece of URL's user-info replaced by ***."""
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def db_error(url: str, exc: Exception) -> str:
    """A one-line reason for a database failure, without the password."""
    if isinstance(exc, BadUrl):
        return URL_FORM
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__
    return mask(url, text) if url else text


def redis_ping(host: str, port: int, timeout: float = 2.0) -> bool:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def read_json(path: pathlib.Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json_atomic(path: pathlib.Path, doc, mode: int = 0o640) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle, indent=2, default=str)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def backups_dir(root: pathlib.Path) -> pathlib.Path:
    return root / "state" / "archive" / "backups"


def last_backup(root: pathlib.Path):
    """The record litellm-backup writes after each run, or None."""
    return read_json(backups_dir(root) / "last-backup.json")


def unit_active(unit: str, timeout: float = 10) -> bool:
    try:
        proc = subprocess.run(
            ["systemctl", "--user", "is-active", unit], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.stdout.strip() == "active"
