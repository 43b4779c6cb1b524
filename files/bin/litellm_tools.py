"""Shared helpers of the host tools in <root>/bin/ (imported, not run).

Settings come from the process environment (the user units load
env.litellm with EnvironmentFile=) and, for what is missing there, from the
env file itself (--env-file). No helper prints a secret: errors name the
database as host:port/database only.
"""

from __future__ import annotations

import json
import os
import re

import litellm_envfile as envfile  # bin/litellm_envfile.py, next to this file (sys.path[0])

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (about 3 ms of every check)
if TYPE_CHECKING:
    import pathlib
    import urllib.request

# pathlib, socket, subprocess, tempfile and urllib are imported by the helpers that use them: litellm-dbctl
# imports this module in every check, and those imports alone cost about 25 ms of CPU there (pathlib with
# urllib.parse and ipaddress about 4 ms: a plain DATABASE_URL is split here, see split_url)


def _path(*parts) -> pathlib.Path:
    import pathlib

    return pathlib.Path(*parts)


DEFAULT_ROOT = "/home/litellm/litellm"  # the account's state (LITELLM_ROOT in every unit)
DEFAULT_CONFIG_DIR = "/etc/litellm"  # root's config and env file (LITELLM_CONFIG_DIR; litellm_runner/layout.py)


def root_from(args_root: str | None) -> pathlib.Path:
    return _path(args_root or os.environ.get("LITELLM_ROOT", DEFAULT_ROOT))


def config_dir() -> pathlib.Path:
    """Root's folder of the rendered config, the env file and the compliance desired state (read only here)."""
    return _path(os.environ.get("LITELLM_CONFIG_DIR", DEFAULT_CONFIG_DIR))


def env_path() -> pathlib.Path:
    """The env file the units read (EnvironmentFile=): the default of every tool's --env-file."""
    return config_dir() / "env.litellm"


def load_env(env_file: str | os.PathLike | None) -> dict[str, str]:
    """The env file's KEY=value pairs as systemd reads them (litellm_envfile), overridden by the process
    environment; litellm_envfile.EnvFileError (file:line, never a value) for a line systemd would misread."""
    values = envfile.read(env_file) if env_file and os.path.exists(env_file) else {}
    values.update(
        {k: v for k, v in os.environ.items() if k in values or k in ("DATABASE_URL", "REDIS_HOST", "REDIS_PORT")}
    )
    return values


URL_FORM = "DATABASE_URL: expected postgresql://USER:PASSWORD@HOST:PORT/DB (the value is not shown)"


class BadUrl(ValueError):
    """DATABASE_URL does not parse the same way here and in libpq; the message never holds the value."""

    def __init__(self):
        super().__init__(URL_FORM)


# a URL in the plain form a DATABASE_URL has: printable ASCII (``split_url`` checks that first), the scheme in
# lowercase, at most one '@' and no brackets in the user-info, a host name or IPv4 address, a port of 1-5 digits,
# a path, and a query; urlsplit() reads such a URL as these groups say
PLAIN_URL = re.compile(
    r"(postgres|postgresql)://(?:[^\x00-\x20\x7f/?#@\[\]]*@)?([A-Za-z0-9._-]+)(?::([0-9]{1,5}))?"
    r"(/[^\x00-\x20\x7f?#]*)(?:\?([^\x00-\x20\x7f#]*))?"
)


class SplitUrl:
    """What urlsplit() gives for a URL of PLAIN_URL's form: scheme, netloc, path, query, fragment, hostname, port."""

    def __init__(self, url: str, m: re.Match):
        self.scheme, host, port, self.path, query = m.groups()
        self.netloc, self.query, self.fragment = url[len(self.scheme) + 3 : m.start(4)], query or "", ""
        self.hostname, self.port = host.lower(), int(port) if port else None


def split_url(url: str):
    """urlsplit(URL): a ``SplitUrl`` for a URL of PLAIN_URL's form with a port of at most 65535, else urllib.parse's
    own answer (imported then only: urllib.parse with ipaddress cost every check's plan about 2.5 ms)."""
    m = PLAIN_URL.fullmatch(url) if url.isascii() else None
    if m and (m.group(3) is None or int(m.group(3)) <= 65535):
        return SplitUrl(url, m)
    from urllib.parse import urlsplit

    return urlsplit(url)


def query_keys(query: str) -> set[str]:
    """The names of a URL's query parameters as ``urllib.parse.parse_qsl(QUERY, keep_blank_values=True)`` reads
    them (split at '&'; with '+' or '%' in QUERY, urllib.parse's own answer)."""
    if "+" in query or "%" in query:
        from urllib.parse import parse_qsl

        return {k for k, _ in parse_qsl(query, keep_blank_values=True)}
    return {field.split("=", 1)[0] for field in query.split("&") if field}


def parse_url(url: str):
    """urlsplit() of a postgresql:// URL that libpq reads the same way (``split_url``), or BadUrl.

    Refused: another scheme, no host or database, a port that is not 1-65535,
    a second '@' (libpq splits at the first, urlsplit at the last, so a piece of
    the password would become the host name in libpq's error), a '%' that is
    not followed by two hex digits (libpq's error quotes the token)."""
    try:
        parts = split_url(url or "")
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
    options = session_options(statement_timeout, lock_timeout)
    extra = {k: v for k, v in (("options", options), ("application_name", application_name)) if v}
    return psycopg.connect(url, connect_timeout=timeout, autocommit=autocommit, **extra)


def session_options(statement_timeout: float | None = None, lock_timeout: float | None = None) -> str:
    """libpq's ``options`` that set the session's statement and lock timeouts (seconds; None: the server's)."""
    return " ".join(
        f"-c {name}={int(seconds * 1000)}"
        for name, seconds in (("statement_timeout", statement_timeout), ("lock_timeout", lock_timeout))
        if seconds
    )


def secrets_of(url: str) -> set[str]:
    """The URL and its password however a parser splits the user-info (first or last '@'), raw and
    decoded, and the password's pieces of 3+ characters: what masking replaces in an error text."""
    from urllib.parse import unquote

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
    # the server's own message (not its DETAIL, which may hold row values, nor its CONTEXT); else the last line
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    text = primary or (str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__)
    return mask(url, text) if url else text


def redis_ping(host: str, port: int, timeout: float = 2.0) -> bool:
    import socket

    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def open_http(request: str | urllib.request.Request, timeout: float):
    """urlopen() of an http:// or https:// URL only (ValueError for file: and other schemes)."""
    import urllib.request
    from urllib.parse import urlsplit

    url = request.full_url if isinstance(request, urllib.request.Request) else request
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("only http:// and https:// URLs are opened")
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked above)


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    import urllib.error

    try:
        with open_http(url, timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def read_json(path: pathlib.Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json_atomic(path: pathlib.Path, doc, mode: int = 0o640) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle, indent=2, default=str)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _path(tmp).unlink(missing_ok=True)
        raise


def backups_dir(root: pathlib.Path) -> pathlib.Path:
    return root / "state" / "archive" / "backups"


def last_backup(root: pathlib.Path):
    """The record litellm-backup writes after each run, or None."""
    return read_json(backups_dir(root) / "last-backup.json")


def unit_active(unit: str, timeout: float = 10) -> bool:
    import subprocess

    try:
        proc = subprocess.run(
            ["systemctl", "--user", "is-active", unit], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.stdout.strip() == "active"


# --- Models: what the proxy serves against what the config asks for (model-inventory, probes, status, metrics) ---

PROXY_URL = "http://127.0.0.1:4000"
PROXY_TIMEOUT = 10.0  # seconds, every request to the proxy
ERROR_CHARS = 200  # an error text kept in a state file is cut to this length


class ProxyError(Exception):
    """The proxy did not answer as expected; the message names the path and status, never the key."""


def config_path(root: pathlib.Path | None = None) -> pathlib.Path:
    """The rendered config (root's, in config_dir(); ROOT, the account's state, is not where it lives)."""
    return config_dir() / "config.generated.yaml"


def desired_models(config: dict | None) -> dict[str, str]:
    """model_name -> mode ('chat' unless model_info.mode says otherwise) of a parsed config's model_list,
    in the config's order; entries without a model_name are skipped."""
    found: dict[str, str] = {}
    for entry in (config or {}).get("model_list") or []:
        if isinstance(entry, dict) and isinstance(entry.get("model_name"), str) and entry["model_name"]:
            info = entry.get("model_info")
            mode = info.get("mode") if isinstance(info, dict) else None
            found.setdefault(entry["model_name"], str(mode or "chat"))
    return found


def read_desired(root: pathlib.Path) -> dict[str, str]:
    """desired_models() of the rendered config (config_path()); OSError/YAMLError when unreadable."""
    import yaml

    return desired_models(yaml.safe_load(config_path(root).read_text()))


def served_ids(payload) -> list[str]:
    """The model ids of an OpenAI-style /v1/models answer ({"data": [{"id": ...}, ...]}), sorted, unique."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ProxyError("/v1/models: no 'data' list in the answer")
    return sorted({m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)})


def compare_models(desired, served) -> dict:
    """{desired, served, missing (desired, not served), unexpected (served, not desired)}, each sorted."""
    want, have = set(desired), set(served)
    return {
        "desired": sorted(want),
        "served": sorted(have),
        "missing": sorted(want - have),
        "unexpected": sorted(have - want),
    }


def short_error(text: str, *secrets: str) -> str:
    """TEXT on one line, every SECRET replaced by ***, cut to ERROR_CHARS."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(text.split())[:ERROR_CHARS]


def proxy_call(base: str, path: str, key: str, body: dict | None = None, timeout: float = PROXY_TIMEOUT):
    """(HTTP status, parsed JSON or None) of one request to the proxy with KEY as the bearer token.

    GET without BODY, POST with it; no retry; OSError (refused, timeout) propagates. The key travels in a
    header only."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 (open_http() opens http:// and https:// only)
        base.rstrip("/") + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    try:
        with open_http(request, timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def error_of(doc) -> str:
    """The message of an OpenAI-style error answer ({"error": {"message": ...}}), or ''."""
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "")
    return str(error or (doc.get("detail") if isinstance(doc, dict) else "") or "")


def served_models(base: str, key: str, timeout: float = PROXY_TIMEOUT) -> list[str]:
    """The model names the proxy at BASE serves (GET /v1/models with KEY); ProxyError or OSError otherwise."""
    status, doc = proxy_call(base, "/v1/models", key, timeout=timeout)
    if status != 200:
        raise ProxyError(f"/v1/models: HTTP {status} {short_error(error_of(doc), key)}".rstrip())
    return served_ids(doc)


def model_inventory(root: pathlib.Path, base: str, key: str, timeout: float = PROXY_TIMEOUT) -> dict:
    """compare_models() of the rendered config's model_list and what the proxy serves now."""
    if not key:
        raise ProxyError("LITELLM_MASTER_KEY is not set")
    return compare_models(read_desired(root), served_models(base, key, timeout))


def inventory_path(root: pathlib.Path) -> pathlib.Path:
    return root / "state" / "model-inventory.json"


def capabilities_path(root: pathlib.Path) -> pathlib.Path:
    return root / "state" / "capabilities.json"


def probe_counts(models: dict) -> dict:
    """{ok, failed, skipped} of probe results ({name: {"ok": True | False | None, ...}})."""
    results = [r.get("ok") if isinstance(r, dict) else False for r in models.values()]
    return {
        "ok": sum(r is True for r in results),
        "failed": sum(r is False for r in results),
        "skipped": sum(r is None for r in results),
    }
