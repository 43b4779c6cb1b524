"""KEY=value env files as systemd's ``EnvironmentFile=`` reads them: the one codec.

Stdlib only, Python >= 3.9, no imports from the litellm_runner package: the
same file is shipped to hosts as ``<root>/bin/litellm_envfile.py`` (the host
tools import it from their own directory) and may be inlined elsewhere.

The writing rule (``dumps``), one line per variable, every value quoted:

- a value without ``'`` is written ``KEY='value'``: inside single quotes
  systemd copies every character up to the next ``'`` as it is, with no
  escape at all (state SINGLE_QUOTE_VALUE of parse_env_file_internal);
- a value with ``'`` is written ``KEY="value"`` with a backslash before each
  of ``"``, ``\\``, `````` and ``$`` (systemd's SHELL_NEED_ESCAPE) and before
  nothing else: inside double quotes systemd drops the backslash before those
  four characters and keeps it before any other (DOUBLE_QUOTE_VALUE_ESCAPE).

Both forms need no trailing-blank or ``#`` handling: quoted text keeps its
blanks and a ``#`` after ``=`` is never a comment. A header is written as
``# ...`` comment lines without backslashes (systemd 252 and 254+ disagree on
the line after a comment that ends in ``\\``).

Refused (``check``): a key that is not ``[A-Za-z_][A-Za-z0-9_]*``; a value
with a line break (``\\n``, ``\\r``: systemd ends the line there), a NUL
(C strings end there) or another control character except TAB, or U+2028,
U+2029 (systemd would carry those, but Python's ``str.splitlines`` and other
line-based readers split there); text that is not valid UTF-8 (systemd
refuses the whole file). Errors name the source, the
line and the key, never a value.

The reading rule (``loads``) is systemd's parse_env_file_internal
(src/basic/env-file.c, identical in 252 and 257 except after a comment that
ends in a backslash) ported character by character, so hand-written
``KEY=value`` lines read as systemd reads them: blanks around an unquoted
value dropped, ``\\x`` in it read as ``x``, quotes only special at the start
of the value, the last assignment of a key wins. Where systemd would silently
do something surprising, ``loads`` refuses instead: a line that is not
``KEY=value`` or whose key is not a valid name (systemd drops it), a quote
not closed on its own line, a trailing backslash (systemd joins the next line
into the value), a comment ending in a backslash, a NUL, a control character.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
WHITESPACE = " \t\n\r"  # systemd src/basic/string-util.h
NEWLINE = "\n\r"
COMMENTS = "#;"
NEED_ESCAPE = '"\\`$'  # systemd src/basic/escape.h SHELL_NEED_ESCAPE
CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # all but TAB; what str.splitlines splits at


class EnvFileError(ValueError):
    """A key or value that cannot be written or read exactly; the message never holds a value."""


def _value_problem(value) -> str | None:
    """What makes VALUE unrepresentable, or None."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    bad = CONTROL.search(value)
    if bad:
        char = bad.group()
        what = {"\n": "a line break (\\n)", "\r": "a line break (\\r)", "\x00": "a NUL byte"}.get(
            char, f"a control character or line separator (U+{ord(char):04X})"
        )
        return f"the value contains {what}; expected a single line of printable text"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "the value is not valid UTF-8 text"
    return None


def check(key, value, source: str = "env file") -> None:
    """Refuse KEY/VALUE unless dumps writes them so that systemd and loads read VALUE back exactly."""
    if not isinstance(key, str) or not KEY.match(key):
        raise EnvFileError(f"{source}: key {key!r}: expected a name of letters, digits and _ not starting with a digit")
    problem = _value_problem(value)
    if problem:
        raise EnvFileError(f"{source}: {key}: {problem} (the value is not shown)")


def quote(value: str) -> str:
    """VALUE as systemd's parser reads it back exactly (see the module docstring)."""
    if "'" not in value:
        return f"'{value}'"
    return '"' + "".join("\\" + c if c in NEED_ESCAPE else c for c in value) + '"'


def dumps(items: dict, header: str | None = None) -> str:
    """The env file for ITEMS, one ``KEY=quoted value`` line each, after HEADER as ``#`` comment lines."""
    lines = []
    for line in header.split("\n") if header else []:
        if "\\" in line or CONTROL.search(line):
            raise EnvFileError("env file header: expected comment text without backslashes or control characters")
        lines.append(f"# {line}".rstrip())
    for key, value in items.items():
        check(key, value)
        lines.append(f"{key}={quote(value)}")
    return "".join(line + "\n" for line in lines)


class _Reader:
    """systemd's parse_env_file_internal state machine, refusing what it would read surprisingly."""

    def __init__(self, source: str):
        self.source = source
        self.values: dict[str, str] = {}
        self.line = 1  # the line being read
        self.start = 1  # the line where the current assignment began
        self.previous = ""  # the character read before the current one
        self.after_cr = False  # the current line began after a lone \r
        self.state = "PRE_KEY"
        self.key: list[str] = []
        self.value: list[str] = []
        # systemd's last_key_whitespace / last_value_whitespace
        self.key_blank: int | None = None
        self.value_blank: int | None = None

    def fail(self, what: str, key: bool = True) -> EnvFileError:
        name = "".join(self.key).rstrip(WHITESPACE)
        where = f"{self.source}:{self.start}"
        if key and KEY.match(name):
            where += f": {name}"
        return EnvFileError(f"{where}: {what} (the line is not shown: it may hold a secret)")

    def no_equals(self) -> EnvFileError:
        """A line without =; when a lone \\r began it, the \\r is what went wrong (it split a value in two)."""
        if self.after_cr:
            return self.fail(
                "a carriage return (\\r) inside a value: systemd reads it as a line break, so the rest of the "
                "value is read as a line of its own (without =); expected a value without \\r",
                key=False,
            )
        return self.fail("expected KEY=value, found no =", key=False)

    def push(self) -> None:
        key = "".join(self.key[: self.key_blank] if self.key_blank is not None else self.key)
        value = self.value[: self.value_blank] if self.state == "VALUE" and self.value_blank is not None else self.value
        if not KEY.match(key):
            raise self.fail("expected KEY=value with a KEY of letters, digits and _", key=False)
        problem = _value_problem("".join(value))
        if problem:
            raise self.fail(problem)
        self.values[key] = "".join(value)
        self.state, self.key, self.value = "PRE_KEY", [], []

    def feed(self, c: str) -> None:
        getattr(self, "s_" + self.state)(c)
        if c == "\n":
            self.line += 1
        self.previous = c

    def s_PRE_KEY(self, c):
        self.start = self.line
        self.after_cr = self.previous == "\r"  # a lone \r ended the last line (systemd reads it as a line break)
        if c in COMMENTS:
            self.state = "COMMENT"
        elif c not in WHITESPACE:
            self.state, self.key, self.key_blank = "KEY", [c], None

    def s_KEY(self, c):
        if c in NEWLINE:
            raise self.no_equals()
        if c == "=":
            self.state, self.value_blank = "PRE_VALUE", None
            return
        if c not in WHITESPACE:
            self.key_blank = None
        elif self.key_blank is None:
            self.key_blank = len(self.key)
        self.key.append(c)

    def s_PRE_VALUE(self, c):
        if c in NEWLINE:
            self.push()
        elif c == "'":
            self.state = "SINGLE_QUOTE_VALUE"
        elif c == '"':
            self.state = "DOUBLE_QUOTE_VALUE"
        elif c == "\\":
            self.state = "VALUE_ESCAPE"
        elif c not in WHITESPACE:
            self.state = "VALUE"
            self.value.append(c)

    def s_VALUE(self, c):
        if c in NEWLINE:
            self.push()
        elif c == "\\":
            self.state, self.value_blank = "VALUE_ESCAPE", None
        else:
            if c not in WHITESPACE:
                self.value_blank = None
            elif self.value_blank is None:
                self.value_blank = len(self.value)
            self.value.append(c)

    def s_VALUE_ESCAPE(self, c):
        if c in NEWLINE:
            raise self.fail(
                "a backslash ends the line, so systemd would join the next line into the value; "
                "expected the value quoted"
            )
        self.state = "VALUE"
        self.value.append(c)

    def s_SINGLE_QUOTE_VALUE(self, c):
        if c in NEWLINE:
            raise self.fail("a quote is not closed on its line; expected KEY='value' on one line")
        if c == "'":
            self.state = "PRE_VALUE"
        else:
            self.value.append(c)

    def s_DOUBLE_QUOTE_VALUE(self, c):
        if c in NEWLINE:
            raise self.fail('a quote is not closed on its line; expected KEY="value" on one line')
        if c == '"':
            self.state = "PRE_VALUE"
        elif c == "\\":
            self.state = "DOUBLE_QUOTE_VALUE_ESCAPE"
        else:
            self.value.append(c)

    def s_DOUBLE_QUOTE_VALUE_ESCAPE(self, c):
        if c in NEWLINE:
            raise self.fail("a backslash ends the line inside double quotes; expected the value on one line")
        self.state = "DOUBLE_QUOTE_VALUE"
        self.value.extend(c if c in NEED_ESCAPE else ("\\", c))

    def s_COMMENT(self, c):
        if c == "\\":
            self.state = "COMMENT_ESCAPE"
        elif c in NEWLINE:
            self.state = "PRE_KEY"

    def s_COMMENT_ESCAPE(self, c):
        if c in NEWLINE:
            raise self.fail(
                "a comment ends with a backslash (systemd 252 reads the next line as comment, "
                "254 and later as a variable); expected no backslash at the end",
                key=False,
            )
        self.state = "COMMENT"

    def end(self) -> dict:
        if self.state in ("SINGLE_QUOTE_VALUE", "DOUBLE_QUOTE_VALUE", "DOUBLE_QUOTE_VALUE_ESCAPE"):
            raise self.fail("a quote is not closed; expected KEY='value' on one line")
        if self.state == "VALUE_ESCAPE":
            raise self.fail("the file ends with a backslash; expected the value quoted")
        if self.state == "KEY":
            raise self.no_equals()
        if self.state in ("PRE_VALUE", "VALUE"):
            self.push()
        return self.values


def loads(text: str, source: str = "env file") -> dict[str, str]:
    """KEY -> value as systemd's EnvironmentFile= reads TEXT; EnvFileError (source:line, no value) if unsure."""
    reader = _Reader(source)
    if "\x00" in text:
        reader.start = text.count("\n", 0, text.index("\x00")) + 1
        raise reader.fail("the file contains a NUL byte (systemd stops reading there)", key=False)
    for c in text:
        reader.feed(c)
    return reader.end()


READ_LIMIT = 1 << 20  # bytes: an env file is a few hundred


def read_bounded(path, source: str, limit: int = READ_LIMIT) -> bytes:
    """The bytes of the regular file PATH: opened without blocking (a FIFO planted there would hang a
    plain open), checked by handle before the first read, at most LIMIT bytes. EnvFileError names SOURCE."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket
            raise EnvFileError(f"{source}: not a regular file: not read") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise EnvFileError(f"{source}: not a regular file: not read")
        if st.st_size > limit:
            raise EnvFileError(f"{source}: {st.st_size} bytes, more than {limit}: not read")
        chunks, size = [], 0
        for chunk in iter(lambda: os.read(fd, 1 << 16), b""):
            size += len(chunk)
            if size > limit:
                raise EnvFileError(f"{source}: more than {limit} bytes: not read")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read(path, source: str | None = None) -> dict[str, str]:
    """loads on the file at PATH, decoded as UTF-8 without newline translation (as systemd reads bytes)."""
    source = source or str(path)
    data = read_bounded(path, source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise EnvFileError(f"{source}:{line}: not valid UTF-8 (the line is not shown: it may hold a secret)") from None
    return loads(text, source)


def fingerprint(value: str) -> str:
    """A short, non-reversible tag of a secret value for reports: ``sha256:1a2b3c4d``, ``(empty)`` for ""."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:8] if value else "(empty)"


__all__ = ["EnvFileError", "check", "quote", "dumps", "loads", "read", "read_bounded", "fingerprint"]
