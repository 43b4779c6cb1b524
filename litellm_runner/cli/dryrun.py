"""pyinfra's command line for the drift check and the report: the run's records, on one channel.

    python -m litellm_runner.cli.dryrun inventory.py deploy.py --dry --json [pyinfra args...]

Runs pyinfra's own CLI unchanged (same arguments, same exit code) and writes what the run found to its
standard output, one JSON object a line, in the order it happens. This is the only thing the check
reads from its dry run. pyinfra's own standard output goes to /dev/null (its ``--json`` keeps it
non-interactive: no failure prompt, no spinner), and its log (stderr) is shown only when the check
cannot run.

    {"event": "hosts", "names": [...]}                          the hosts it is about to connect to
    {"event": "connected", "host": NAME}
    {"event": "unreachable", "host": NAME, "reason": "..."}     after pyinfra's connect retries
    {"event": "checked", "host": NAME, "changes": [op names], "conditional": [op names], "in_sync": [op names],
     "records": [drift records], "report": {report parts}}      a deploy file ran for it: change detection done
                                                                 ("report" only when report_facts.py ran)
    {"event": "end", "complete": true|false, "failed": [names]}  pyinfra is exiting

``checked`` comes once per deploy file and host, each time with everything known of the host so far:
the last one is the host's. ``end.complete``: every host still active ran every deploy file (pyinfra
reached the end of its change detection); ``failed``: the hosts pyinfra counts failed (its exit 1).
The drift records and the report's parts are the run's (``litellm_runner.run.state.Run``, already
redacted and escaped where they were recorded); the plan, the hosts and the failures are pyinfra's
(``litellm_runner.run.compat``). paramiko's own logger is silenced (unless ``--debug-all``): it prints
tracebacks of connections it lost, and a host that cannot be reached is already named by pyinfra's line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from typing import IO, Any


class Channel:
    """The records of one dry run, written to a stream as JSON lines, each flushed at once."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, event: str, **fields) -> None:
        """One record; nothing when the reader is gone (the check was interrupted or timed out)."""
        try:
            self.stream.write(json.dumps({"event": event, **fields}) + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: already closed
            pass


def connect_records(channel: Channel):
    """A pyinfra state callback handler writing each host's connect result to CHANNEL."""
    from pyinfra.api.state import BaseStateCallback

    class ConnectRecords(BaseStateCallback):
        @staticmethod
        def host_connect(state, host) -> None:
            channel.write("connected", host=host.name)

        @staticmethod
        def host_connect_error(state, host, error) -> None:
            channel.write("unreachable", host=host.name, reason=str(error.args[0] if error.args else error))

    return ConnectRecords()


def host_record() -> dict:
    """The current host's change detection so far: its plan (as pyinfra's ``--json`` names the operations),
    its drift records and, when report_facts.py ran, its report parts."""
    from pyinfra import host, state

    from litellm_runner.cli import report_facts
    from litellm_runner.pyinfra_ext import drift
    from litellm_runner.run import compat

    changes, conditional, in_sync = compat.planned_changes(state, host)
    found: dict[str, Any] = {
        "host": host.name,
        "changes": changes,
        "conditional": conditional,
        "in_sync": in_sync,
        "records": drift.records(state).get(host.name, []),
    }
    parts = report_facts.collected(state).get(host.name)
    if parts is not None:
        found["report"] = parts
    return found


class Recorder:
    """What one dry run writes to its channel: hooked into pyinfra's CLI (its connect step, its deploy-file
    loader), and the end record when pyinfra exits."""

    def __init__(self, channel: Channel, deploy_files: int) -> None:
        self.channel, self.deploy_files = channel, deploy_files
        self.state: Any = None
        self.ran: dict[str, int] = {}  # host name -> deploy files run for it

    def install(self) -> None:
        from litellm_runner.run import compat

        compat.before_cli_connect(self.connecting, "check records")
        compat.after_deploy_file(self.checked)

    def connecting(self, state) -> None:
        self.state = state
        state.add_callback_handler(connect_records(self.channel))
        self.channel.write("hosts", names=[h.name for h in state.inventory if state.is_host_in_limit(h)])

    def checked(self) -> None:
        record = host_record()
        self.ran[record["host"]] = self.ran.get(record["host"], 0) + 1
        self.channel.write("checked", **record)

    def end(self) -> None:
        from litellm_runner.run import compat

        if self.state is None:  # pyinfra stopped before connecting (bad arguments, inventory or desired state)
            self.channel.write("end", complete=False, failed=[])
            return
        active = [h.name for h in self.state.inventory.get_active_hosts()]
        complete = all(self.ran.get(name, 0) >= self.deploy_files for name in active)
        self.channel.write("end", complete=complete, failed=compat.failed_host_names(self.state))


def main() -> None:
    """pyinfra's CLI with the run's records written to this process's standard output (pyinfra's to /dev/null)."""
    from pyinfra_cli.main import main as pyinfra_main  # loads its CLI, which Recorder.install() hooks into

    from litellm_runner.run import compat

    argv = sys.argv[1:]
    params = compat.pyinfra_cli_params(argv) or {}
    if "--debug-all" not in argv:
        paramiko = logging.getLogger("paramiko")
        paramiko.addHandler(logging.NullHandler())
        paramiko.propagate = False
    sys.stdout.flush()
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # whatever pyinfra or a deploy prints cannot mix with the records
    os.close(devnull)
    recorder = Recorder(Channel(channel), len(params.get("operations") or ()))
    recorder.install()
    sys.argv = ["pyinfra", *argv]
    try:
        pyinfra_main()
    finally:
        recorder.end()
        with contextlib.suppress(OSError):  # the reader is gone: nothing to tell it
            channel.close()


if __name__ == "__main__":
    main()
