"""What may be shown of a string that came from a host: control characters escaped, secrets redacted.

Everything a host says is the service account's to choose: file names, database values, unit
names, command output. Printed raw, such a string can clear the operator's screen, set the
terminal's title, hide text, fake a line of the report or carry a secret written by hand into a
managed file. ``safe`` is the one function that makes it fit to show; the drift records
(litellm_runner.pyinfra_ext.drift), ``--diff`` (operations.show_diff) and the check's terminal,
JSON and JUnit output (litellm_runner.cli.check) all pass through it.

- ``escape``: every C0 and C1 control character (but TAB), DEL, and the invisible format
  characters that reorder or hide text (bidi overrides and isolates, zero-width characters,
  line and paragraph separators, the BOM) become ``\\xNN`` / ``\\uNNNN``. Escaping is
  idempotent: escaped text holds none of them.
- ``redact``: each known secret value (``litellm_runner.secrets.known``) becomes
  ``<secret sha256:xxxxxxxx>`` (its fingerprint, as the env-file drift shows it), longest first,
  wherever it appears inside a string.

Stdlib only, no import from the package: the host-side code may use the same rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)
MIN_SECRET = 4  # shorter values would blank ordinary words; no real secret is this short


def _code(match: re.Match) -> str:
    c = ord(match.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape(text: str) -> str:
    """TEXT with control and invisible format characters written as ``\\xNN`` / ``\\uNNNN`` (TAB kept)."""
    return UNSAFE.sub(_code, text)


def mark(value: str) -> str:
    """What a redacted secret VALUE is shown as: its fingerprint, never the value."""
    return f"<secret sha256:{hashlib.sha256(value.encode()).hexdigest()[:8]}>"


def redact(text: str, secrets: Iterable[str]) -> str:
    """TEXT with each of SECRETS (values of at least MIN_SECRET characters) replaced by ``mark``."""
    for value in sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, mark(value))
    return text


def safe(value, secrets: Iterable[str] = ()):
    """VALUE (str, or dicts, lists and tuples of them, keys included) redacted, then escaped."""
    known = tuple(secrets)
    if isinstance(value, str):
        return escape(redact(value, known))
    if isinstance(value, dict):
        return {safe(k, known): safe(v, known) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe(v, known) for v in value]
    return value
