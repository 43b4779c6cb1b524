"""Rotation after a compromise, the control machine's part: new secret values, the staged secrets file, the
operator's file of new virtual keys (docs/rotation.md).

No function here prints or raises with a secret value: errors name the file and the key, never a value.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import re
import secrets
import urllib.parse

from litellm_runner import envfile
from litellm_runner.secrets import SecretError, read_secrets_file

MASTER, SALT, DATABASE = "LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "DATABASE_URL"
NAMES = (MASTER, SALT, DATABASE)  # what a rotation replaces in the secrets file
STAGED_SUFFIX = ".rotating"


class RotationError(ValueError):
    """A rotation that cannot start or go on: names the file and the key, never a value."""


def staged_path(secrets_file: pathlib.Path) -> pathlib.Path:
    """The staged secrets file of a rotation in progress: next to the secrets file, same folder, 0600."""
    return secrets_file.with_name(secrets_file.name + STAGED_SUFFIX)


def environment_sources(environ=os.environ) -> list[str]:
    """The names of NAMES set in the control machine's environment (which wins over the secrets file)."""
    return [name for name in NAMES if name in environ]


def instructions(names: list[str], secrets_file: str | None) -> str:
    """What the operator must do when NAMES come from the environment: the exact steps, no value."""
    where = secrets_file or "a file of your choice (then export LITELLM_SECRETS_FILE=<that file>)"
    return (
        f"{', '.join(names)} come from the environment, which wins over the secrets file; a rotation writes its "
        f"new values only into the secrets file. Do this, then run the rotation again:\n"
        f"  1. put the current values of {', '.join(names)} into {where} as KEY=value lines, mode 0600;\n"
        f"  2. unset {' '.join(names)} in this shell and wherever your automation sets them;\n"
        f"  3. litellm-runner rotate (it replaces them in that file, and nowhere else)."
    )


def new_values(old: dict[str, str]) -> dict[str, str]:
    """New values of NAMES for the current values OLD: a new master key, salt key, and database password
    (the rest of DATABASE_URL is kept). Generated here, on the control machine, with ``secrets``."""
    for name in NAMES:
        if not old.get(name):
            raise RotationError(f"{name}: not set in the secrets file (a rotation replaces it)")
    url = urllib.parse.urlsplit(old[DATABASE])
    if not url.username or url.password is None or not url.hostname:
        raise RotationError(f"{DATABASE}: expected postgresql://USER:PASSWORD@HOST:PORT/DB (the value is not shown)")
    password = secrets.token_hex(24)  # hex: nothing to quote in a URL, an env file or a libpq string
    netloc = f"{url.netloc.rpartition('@')[0].partition(':')[0]}:{password}@{url.netloc.rpartition('@')[2]}"
    return {
        MASTER: "sk-" + secrets.token_urlsafe(32),
        SALT: "sk-" + secrets.token_urlsafe(32),
        DATABASE: urllib.parse.urlunsplit((url.scheme, netloc, url.path, url.query, url.fragment)),
    }


def replace_values(text: str, values: dict[str, str], source: str) -> str:
    """TEXT (a secrets file) with the assignment line of each key of VALUES replaced, every other line kept;
    read back as systemd reads it, the result has exactly VALUES for those keys and the rest unchanged."""
    before = envfile.loads(text, source)
    lines = text.splitlines(keepends=True)
    for key, value in values.items():
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        hits = [i for i, line in enumerate(lines) if pattern.match(line)]
        if not hits:
            raise RotationError(f"{source}: {key}: no KEY=value line to replace")
        for i in hits:
            lines[i] = f"{key}={envfile.quote(value)}\n"
    result = "".join(lines)
    after = envfile.loads(result, source)
    if after != {**before, **values}:
        raise RotationError(f"{source}: the new values could not be written as single KEY=value lines")
    return result


def write_private(path: pathlib.Path, text: str) -> None:
    """TEXT into a new file PATH at 0600 (refused when PATH exists), flushed to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def stage(secrets_file: pathlib.Path) -> tuple[pathlib.Path, bool]:
    """The staged secrets file of this rotation, and whether it was made now (False: a rotation that was
    interrupted is resumed with the values it staged). A new one holds the whole secrets file with NAMES
    replaced by new values (``new_values``)."""
    staged = staged_path(secrets_file)
    if staged.exists():
        read_secrets_file(staged, named_by=f"{secrets_file} (a staged rotation)")  # 0600 and readable
        return staged, False
    old = read_secrets_file(secrets_file)
    text = replace_values(secrets_file.read_text(), new_values(old), str(secrets_file))
    write_private(staged, text)
    return staged, True


def values(path: pathlib.Path) -> dict[str, str]:
    """NAMES as PATH (a secrets file or a staged one) holds them."""
    try:
        found = read_secrets_file(path, named_by=str(path))
    except SecretError as exc:
        raise RotationError(str(exc)) from None
    missing = [name for name in NAMES if not found.get(name)]
    if missing:
        raise RotationError(f"{path}: {', '.join(missing)} not set (a rotation replaces them)")
    return {name: found[name] for name in NAMES}


def complete(secrets_file: pathlib.Path) -> None:
    """Make the staged file the secrets file (one rename, same folder: atomic), and flush the folder."""
    os.replace(staged_path(secrets_file), secrets_file)
    fd = os.open(secrets_file.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def keys_file(base: pathlib.Path, host_name: str) -> pathlib.Path:
    """Where the new virtual keys of HOST_NAME go: BASE/<host>/rotation-<UTC time>.keys (folder 0700)."""
    folder = base / host_name
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return folder / f"rotation-{stamp}.keys"


def write_keys(path: pathlib.Path, rows: list[dict]) -> pathlib.Path:
    """ROWS (``{"alias", "key_name", "raw"}``) into PATH + ``.pending`` at 0600, one ``alias key_name raw``
    line each; ``publish_keys`` renames it to PATH once the database holds them."""
    pending = path.with_name(path.name + ".pending")
    lines = ["# new virtual keys: alias (or -), LiteLLM's key_name, the key. Give each to its owner; delete this."]
    lines += [f"{row['alias'] or '-'} {row['key_name']} {row['raw']}" for row in rows]
    write_private(pending, "\n".join(lines) + "\n")
    return pending


def publish_keys(pending: pathlib.Path) -> pathlib.Path:
    final = pending.with_name(pending.name.removesuffix(".pending"))
    os.replace(pending, final)
    return final


def selected(keys: list[dict], selection: str) -> list[dict]:
    """The keys of a plan that SELECTION names: ``all``, ``none``, or aliases separated by commas."""
    if selection == "all":
        return list(keys)
    if selection == "none":
        return []
    aliases = {a.strip() for a in selection.split(",") if a.strip()}
    return [k for k in keys if k.get("key_alias") in aliases]
