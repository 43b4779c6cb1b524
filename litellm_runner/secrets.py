"""The operator's secret source on the control machine, and the env file built from it.

Values are looked up by name, first in the environment of the control
machine, then in the secrets file named by ``LITELLM_SECRETS_FILE`` (or the
host's ``litellm_secrets_file`` data, which the sandbox inventory sets):
``KEY=value`` lines, ``#`` comments. Keep that file out of git (it is in
.gitignore) and at mode 0600.

No function here prints or raises with a secret value: errors name the key
and the source, never the value.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import stat

from pyinfra import host
from pyinfra.api import operation

from pyinfra.facts.files import FileContents

from . import drift, snapshot
from .facts import PathState
from .operations import atomic_write_commands, sha256_text


class SecretError(ValueError):
    pass


def read_secrets_file(path: str | os.PathLike) -> dict[str, str]:
    """Parse a KEY=value secrets file; refuse one readable by group or others."""
    path = pathlib.Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SecretError(f"{path}: secrets file not found (set LITELLM_SECRETS_FILE or the variables themselves)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{path}: mode {stat.S_IMODE(mode):04o} lets others read secrets; expected 0600")
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SecretError(f"{path}:{number}: expected KEY=value (the line is not shown: it may hold a secret)")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def load(names: list[str], secrets_file: str | None = None) -> dict[str, str]:
    """Values of NAMES from the environment, then the secrets file."""
    path = os.environ.get("LITELLM_SECRETS_FILE") or secrets_file
    from_file = read_secrets_file(path) if path else {}
    values, missing = {}, []
    for name in names:
        if name in os.environ:
            values[name] = os.environ[name]
        elif name in from_file:
            values[name] = from_file[name]
        else:
            missing.append(name)
    if missing:
        where = f"the environment or {path}" if path else "the environment (no LITELLM_SECRETS_FILE set)"
        raise SecretError(f"secret(s) {', '.join(missing)} not found in {where}")
    return values


def fingerprint(value: str) -> str:
    """A short, non-reversible tag of a secret value for reports: ``sha256:1a2b3c4d``."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:8] if value else "(empty)"


def masked_env(lines) -> dict[str, str]:
    """KEY -> fingerprint of its value, for showing env file drift without values."""
    out = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            out[key.strip()] = fingerprint(value.strip())
    return out


def is_placeholder(value: str, placeholders: list[str]) -> bool:
    return value.strip().lower() in {p.lower() for p in placeholders}


def render_env(secrets: dict[str, str], plain: dict[str, str], placeholders: list[str]) -> tuple[str, list[str]]:
    """The env file's text, and the names whose placeholder value was blanked."""
    blanked, lines = [], ["# Managed by litellm-runner. Secrets come from the operator's secret source."]
    for name, value in secrets.items():
        if is_placeholder(value, placeholders):
            blanked.append(name)
            value = ""
        if "\n" in value:
            raise SecretError(f"secret {name}: contains a newline; expected a single-line value")
        lines.append(f"{name}={value}")
    for name, value in plain.items():
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n", blanked


def env_file_content(data) -> tuple[str, list[str]]:
    """The env file for a host's data (values from the secret source)."""
    secrets = load(list(data.litellm_env_secrets), getattr(data, "litellm_secrets_file", None))
    return render_env(secrets, dict(data.litellm_env), list(data.litellm_env_placeholders))


@operation()
def env_file(dest: str, user: str, group: str):
    """Ensure DEST holds the host's secrets (from the operator's secret source), mode 0600.

    + dest: path of the env file on the host
    + user, group: owner

    Compared by sha256, written atomically at 0600 from creation, never shown
    as a diff: values are not printed anywhere, placeholders (``dummy``...) are
    written empty. Mode and owner drift is fixed by ``file_attrs``.
    """
    content, _blanked = env_file_content(host.data)
    current = snapshot.fact(PathState, path=dest)
    if current and current["sha256"] == sha256_text(content):
        host.noop(f"{dest} holds the current secrets")
        return
    if not host.state.is_executing:
        old = host.get_fact(FileContents, path=dest) if current else None
        before, after = masked_env(old or []), masked_env(content.splitlines())
        drift.record("secret-file", {k: v for k, v in before.items() if after.get(k) != v},
                     {k: v for k, v in after.items() if before.get(k) != v})
    yield from atomic_write_commands(dest, content, user, group, "0600")
