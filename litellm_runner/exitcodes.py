"""Exit codes of every ``litellm-runner`` command: one meaning each, whatever the subcommand.

The exit-code table of docs/command-line.md is this TABLE (a unit test compares them). Usage errors get
their own code (BSD sysexits' EX_USAGE), so argparse's default 2 never collides with FINDINGS:
every command parses its arguments with ``ArgumentParser`` below.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

OK = 0
FAILED = 1
FINDINGS = 2
USAGE = 64
INTERRUPTED = 130

# (code, name, meaning): the documented table, row by row
TABLE = [
    (
        OK,
        "OK",
        "Ran to the end and found nothing: no drift (`check`), a clean config (`lint`), no known "
        "vulnerability (`cve-gate`), the sandbox action done (`sandbox`).",
    ),
    (
        FAILED,
        "FAILED",
        "Refused, or could not run to the end: a critical lint finding, a vulnerable or unlocked pin, "
        "unreadable input, an unreachable host (named on stderr), an item that could not be checked, "
        "a sandbox that did not start.",
    ),
    (
        FINDINGS,
        "FINDINGS",
        "Ran to the end and found something to act on that refuses nothing: drift (`check`), warnings only (`lint`).",
    ),
    (USAGE, "USAGE", "The command line is wrong (unknown subcommand or option, missing argument): nothing ran."),
    (INTERRUPTED, "INTERRUPTED", "Stopped by Ctrl-C (SIGINT)."),
]


def markdown() -> str:
    """TABLE as the Markdown table of docs/command-line.md."""
    rows = ["| Code | Name | Meaning |", "|---|---|---|"]
    rows += [f"| {code} | `{name}` | {meaning} |" for code, name, meaning in TABLE]
    return "\n".join(rows)


def epilog() -> str:
    """TABLE for ``--help``: one line per code."""
    return "exit codes:\n" + "\n".join(f"  {code:<4}{name}" for code, name, _ in TABLE)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error exiting USAGE (64) instead of argparse's 2, and the codes in ``--help``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("epilog", epilog())
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")
