"""Pre-flight gates: pure checks of the desired state (lint, cve, units, capacity), and the gate cache.

A gate reads no host and imports no pyinfra: the tasks and the command-line tools call it with the data
it checks (a fact's answer included) and decide what its refusal means where they are. Every gate refuses
the same way, with ``GateError``: a deploy-time caller turns it into pyinfra's ``DeployError`` (the run
stops before any operation), a command-line tool prints its message and exits with its ``code``.
"""

from __future__ import annotations

from litellm_runner import exitcodes


class GateError(Exception):
    """A gate refuses. ``message`` is what the operator reads (what was found and what is expected, never
    a secret value); ``code`` is the exit code a command-line tool maps it to (``exitcodes.FAILED``)."""

    def __init__(self, message: str, code: int = exitcodes.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
