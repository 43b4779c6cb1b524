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
import socket
import subprocess
import tempfile
import urllib.request
from urllib.parse import urlsplit

DEFAULT_ROOT = "/home/litellm/litellm"


def root_from(args_root: str | None) -> pathlib.Path:
    return pathlib.Path(args_root or os.environ.get("LITELLM_ROOT", DEFAULT_ROOT))


def load_env(env_file: str | os.PathLike | None) -> dict[str, str]:
    """The env file's KEY=value pairs, overridden by the process environment."""
    values = {}
    if env_file and pathlib.Path(env_file).exists():
        for line in pathlib.Path(env_file).read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    values.update({k: v for k, v in os.environ.items() if k in values or k in ("DATABASE_URL", "REDIS_HOST", "REDIS_PORT")})
    return values


def where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def connect(url: str, timeout: int = 5):
    import psycopg

    return psycopg.connect(url, connect_timeout=timeout, autocommit=True)


def db_error(url: str, exc: Exception) -> str:
    """A one-line reason for a database failure, without the password."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__
    password = urlsplit(url).password if url else None
    return text.replace(password, "***") if password else text


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
        proc = subprocess.run(["systemctl", "--user", "is-active", unit], capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.stdout.strip() == "active"
