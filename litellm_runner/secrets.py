"""The operator's secret source on the control machine, and the env file's text built from it.

The operation that writes the env file on a host is ``pyinfra_ext/env_file.py``; this module imports no
pyinfra, so the pre-flight gates and the command-line tools read the secret source with it.

Values are looked up by name, first in the environment of the control
machine, then in the secrets file named by ``LITELLM_SECRETS_FILE`` (or the
host's ``litellm_secrets_file`` data, which the sandbox inventory sets). That
file is read as systemd reads an env file (litellm_runner.envfile: ``#``
comments, ``KEY=value``, ``KEY='value'``, ``KEY="value"``); keep it out of git
(it is in .gitignore) and at mode 0600. A value that the env file cannot carry
exactly (a line break, a control character) is refused when it is loaded,
before any host is asked anything.

No function here prints or raises with a secret value: errors name the key
and the source, never the value.
"""

from __future__ import annotations

import os
import pathlib
import stat
import urllib.parse

from litellm_runner import envfile
from litellm_runner.envfile import fingerprint  # noqa: F401 (callers still import it from here)

HEADER = "Managed by litellm-runner. Secrets come from the operator's secret source."


class SecretError(ValueError):
    pass


class MissingSecretError(SecretError):
    """A name of litellm_env_secrets with no value in the secret source."""


def read_secrets_file(path: str | os.PathLike, named_by: str = "") -> dict[str, str]:
    """Parse a KEY=value secrets file as systemd would (envfile.read); refuse one readable by group or others.

    NAMED_BY says what named PATH (``LITELLM_SECRETS_FILE``, ``litellm_secrets_file``) for a file not found.
    """
    path = pathlib.Path(path)
    named_by = named_by or secrets_file_setting()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SecretError(
            f"{path}: the secrets file named by {named_by} does not exist: expected an existing KEY=value file "
            "at mode 0600 (or every secret in the environment)"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{path}: mode {stat.S_IMODE(mode):04o} lets others read secrets; expected 0600")
    try:
        return envfile.read(path)
    except envfile.EnvFileError as exc:
        raise SecretError(str(exc)) from None


def secrets_file_setting() -> str:
    """What names the secrets file: the environment's LITELLM_SECRETS_FILE wins over host data."""
    return "LITELLM_SECRETS_FILE" if os.environ.get("LITELLM_SECRETS_FILE") else "litellm_secrets_file"


def load(names: list[str], secrets_file: str | None = None) -> dict[str, str]:
    """Values of NAMES from the environment, then the secrets file; each one the env file can carry exactly."""
    path = os.environ.get("LITELLM_SECRETS_FILE") or secrets_file
    from_file = read_secrets_file(path) if path else {}
    values, missing = {}, []
    for name in names:
        if name in os.environ:
            values[name] = os.environ[name]
            source = "the environment"
        elif name in from_file:
            values[name] = from_file[name]
            source = str(path)
        else:
            missing.append(name)
            continue
        try:
            envfile.check(name, values[name], source)
        except envfile.EnvFileError as exc:
            raise SecretError(str(exc)) from None
    if missing:
        where = f"the environment or {path}" if path else "the environment (no LITELLM_SECRETS_FILE set)"
        raise MissingSecretError(f"secret(s) {', '.join(missing)} not found in {where}")
    return values


def known(data) -> list[str]:
    """Every secret value a host with DATA is given (``litellm_env_secrets``) and the password inside
    each URL among them: what ``litellm_runner.shown.redact`` hides wherever it appears. Empty
    when the secret source cannot be read (the env file operation says why)."""
    names = list(getattr(data, "litellm_env_secrets", None) or [])
    try:
        values = load(names, getattr(data, "litellm_secrets_file", None)) if names else {}
    except (SecretError, OSError):
        return []
    found = []
    for value in values.values():
        found.append(value)
        try:
            password = urllib.parse.urlsplit(value).password
        except ValueError:
            password = None
        if password:
            found += [password, urllib.parse.unquote(password)]
    return [v for v in found if not is_placeholder(v, list(getattr(data, "litellm_env_placeholders", None) or []))]


def masked_env(lines) -> dict[str, str]:
    """KEY -> fingerprint of its value (read as systemd reads it), for showing env file drift without values."""
    text = "".join(f"{line}\n" for line in lines)
    try:
        return {key: fingerprint(value) for key, value in envfile.loads(text, "env file").items()}
    except envfile.EnvFileError:
        return {"(env file not readable as KEY=value lines)": fingerprint(text)}


def is_placeholder(value: str, placeholders: list[str]) -> bool:
    return value.strip().lower() in {p.lower() for p in placeholders}


def render_env(secrets: dict[str, str], plain: dict[str, str], placeholders: list[str]) -> tuple[str, list[str]]:
    """The env file's text (envfile.dumps: every value quoted), and the names whose placeholder value was blanked."""
    blanked, items = [], {}
    for name, value in secrets.items():
        if is_placeholder(value, placeholders):
            blanked.append(name)
            value = ""
        items[name] = value
    for name, value in plain.items():
        items[name] = str(value)
    try:
        return envfile.dumps(items, header=HEADER), blanked
    except envfile.EnvFileError as exc:
        raise SecretError(str(exc)) from None


def fingerprint_diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What ``--diff`` shows of an env file: one line per key that changes, fingerprints only
    (``- KEY=sha256:1a2b3c4d`` / ``+ KEY=sha256:5e6f7a8b``), in the env file's order; never a value."""
    lines = []
    for key in dict.fromkeys([*before, *after]):
        if before.get(key) == after.get(key):
            continue
        if key in before:
            lines.append(f"- {key}={before[key]}")
        if key in after:
            lines.append(f"+ {key}={after[key]}")
    return lines


def env_file_content(data) -> tuple[str, list[str]]:
    """The env file for a host's data (values from the secret source)."""
    secrets = load(list(data.litellm_env_secrets), getattr(data, "litellm_secrets_file", None))
    return render_env(secrets, dict(data.litellm_env), list(data.litellm_env_placeholders))
