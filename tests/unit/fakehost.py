"""Run an operation's generator against given facts, without a host.

    commands, noops = run_op(linger, facts={HostSnapshot: snap(linger=True)}, user="litellm")

Facts are looked up by class (or by (class, frozenset(kwargs.items())) for
facts asked with different arguments); the host snapshot (``HostSnapshot``) is the
run's ``Snapshot`` (``snap`` makes one); the commands come back as strings.
"""

import json
from types import SimpleNamespace

from pyinfra.api import FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.context import ctx_host

from litellm_runner.layout import SYSTEM_PYTHON
from litellm_runner.pyinfra_ext.facts import hostside_args
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot, Snapshot
from litellm_runner.run import state as run_state


def snap(**parts) -> Snapshot:
    """A host snapshot as the deploy would read it: PARTS (``paths``, ``units``, ``venv``, ``linger``...)
    over a converged host's defaults. It answers about any unit, account, venv and interpreter (no question
    recorded); a path only when PARTS' ``paths`` has it (None: missing)."""
    found = {
        "paths": {},
        "units": {},
        "venv": {},
        "venv_link": None,
        "account": {"user": None, "group": False, "created": False},
        "linger": True,
        "manager": True,
        "run_lock": None,
        "leftovers": [],
        "plants": [],
        "python": {"version": "3.11", "refused": None},
        "debs": None,
        "systemd": None,
    }
    return Snapshot(**{**found, **parts})


class FakeState:
    """Stands in for pyinfra's State: a new one per operation run, so each has a Run of its own."""

    is_executing = False

    def __init__(self):
        self.op_meta = {}


class FakeHost:
    name = "fake-host"
    current_op_hash = None

    def __init__(self, facts, data=None):
        self.facts, self.noops = facts, []
        self.data = SimpleNamespace(**(data or {}))
        self.state = FakeState()
        if HostSnapshot in facts:  # the run's snapshot, as the deploy's first question left it
            run_state.of(self.state).snapshots[self.name] = facts[HostSnapshot]

    def get_fact(self, cls, **kwargs):
        hashable = {
            k: tuple(v) if isinstance(v, list) else json.dumps(v, sort_keys=True) if isinstance(v, dict) else v
            for k, v in kwargs.items()
        }
        key = (cls, frozenset(hashable.items()))
        return self.facts[key] if key in self.facts else self.facts[cls]

    def noop(self, message):
        self.noops.append(message)


def as_text(command):
    """A command as a short readable line: host-side actions as ``hostside ACTION {args}``,
    staged writes as ``write DEST MODE owner (backups N)``."""
    if isinstance(command, FileUploadCommand):
        return f"UPLOAD -> {command.dest}"
    if isinstance(command, FunctionCommand) and command.function.__name__ == "_write_staged":
        dest, _content, user, group, mode, keep = command.args
        return f"write {dest} {mode} {user}:{group}" + (f" (backups {keep})" if keep else "")
    if isinstance(command, FunctionCommand) and command.function.__name__ == "_install_engine":
        _bundle, sha, dest = command.args
        return f"install query engine {dest} sha256:{sha[:12]}"
    if isinstance(command, FunctionCommand) and command.function.__name__ == "_dbctl_apply":
        return command.args[0]  # litellm-dbctl apply, run at execution (a failure fails only that item)
    if isinstance(command, FunctionCommand) and command.function.__name__ == "_dbctl_failed":
        return f"FAIL {command.args[0]}"
    text = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
    if text.startswith(f"{SYSTEM_PYTHON} -I -S -c "):
        action, blob = text.split()[-2:]
        return f"hostside {action} {json.dumps(hostside_args(blob), sort_keys=True)}"
    return text


def run_op(op, facts, data=None, **kwargs):
    """(commands, noop messages); drift items recorded land in ``last_drift``."""
    from litellm_runner.pyinfra_ext import drift

    fake = FakeHost(facts, data)  # a new state: a new Run, no drift recorded yet
    with ctx_host.use(fake):
        commands = [as_text(c) for c in op._inner(**kwargs)]
    global last_drift
    last_drift = drift.records(fake.state).get(FakeHost.name, [])
    return commands, fake.noops


class Meta:
    """Stands in for an earlier operation's OperationMeta."""

    def __init__(self, changed):
        self.changed = changed

    def is_complete(self):
        return True

    def did_change(self):
        return self.changed


last_drift: list = []
