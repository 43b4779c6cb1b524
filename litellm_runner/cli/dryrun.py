"""pyinfra's command line for the drift check, telling each host's result the moment it is known.

    python -m litellm_runner.cli.dryrun inventory.py deploy.py --dry --json [pyinfra args...]

Runs pyinfra's own CLI unchanged (same arguments, same JSON on stdout, same exit code) and adds
one stderr line per event, ``litellm-check-event {...}`` (JSON), in the order the events happen:

    {"event": "hosts", "names": [...]}                           the hosts it is about to connect to
    {"event": "connected", "host": NAME}
    {"event": "unreachable", "host": NAME, "reason": "..."}      after pyinfra's connect retries
    {"event": "checked", "host": NAME, "changes": [op names], "conditional": [op names],
     "records": [drift records]}                                  its deploy file ran: change detection done

The events come from pyinfra's state callbacks (connect) and from its deploy-file loader (one call
per host). paramiko's own logger is silenced (unless ``--debug-all``): it prints tracebacks of
connections it lost, and a host that cannot be reached is already named by pyinfra's one line.
"""

from __future__ import annotations

import json
import logging
import sys

EVENT = "litellm-check-event "  # the check imports this module for it: pyinfra is imported only in the dry run


def emit(event: str, **fields) -> None:
    """One event line on stderr, flushed at once."""
    sys.stderr.write(EVENT + json.dumps({"event": event, **fields}) + "\n")
    sys.stderr.flush()


def connect_events():
    """A pyinfra state callback handler telling each host's connect result as an event."""
    from pyinfra.api.state import BaseStateCallback

    class ConnectEvents(BaseStateCallback):
        @staticmethod
        def host_connect(state, host) -> None:
            emit("connected", host=host.name)

        @staticmethod
        def host_connect_error(state, host, error) -> None:
            emit("unreachable", host=host.name, reason=str(error.args[0] if error.args else error))

    return ConnectEvents()


def host_result() -> dict:
    """The current host's change detection: what pyinfra's --json plan will say about it, and its drift records."""
    from pyinfra import host, state

    from litellm_runner.pyinfra_ext import drift
    from litellm_runner.run import compat

    changes, conditional = compat.planned_changes(state, host)
    return {
        "host": host.name,
        "changes": changes,
        "conditional": conditional,
        "records": drift.records(state).get(host.name, []),
    }


def install() -> None:
    """Hook the events into pyinfra's CLI (loaded): its connect step and its deploy-file loader."""
    from litellm_runner.run import compat

    def connect_and_tell(state) -> None:
        state.add_callback_handler(connect_events())
        emit("hosts", names=[h.name for h in state.inventory if state.is_host_in_limit(h)])

    compat.before_cli_connect(connect_and_tell, "check events")
    compat.after_deploy_file(lambda: emit("checked", **host_result()))


def main() -> None:
    """pyinfra's CLI with the events installed."""
    from pyinfra_cli.main import main as pyinfra_main  # loads its CLI, which install() hooks into

    if "--debug-all" not in sys.argv:
        paramiko = logging.getLogger("paramiko")
        paramiko.addHandler(logging.NullHandler())
        paramiko.propagate = False
    install()
    sys.argv[0] = "pyinfra"
    pyinfra_main()


if __name__ == "__main__":
    main()
