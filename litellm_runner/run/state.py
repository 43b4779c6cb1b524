"""The Run: everything one pyinfra run of the deploy keeps between operations, hosts and callbacks.

One ``Run`` belongs to one pyinfra ``State``; ``of(state)`` finds it (making it on first use). The
modules that used to keep this in module globals keyed by ``id(state)`` (the host snapshot, the
database plans, the rollout status, the drift records, the report's facts, the run lock) read and
write their part of it here, so two runs in one process (the unit tests, an embedding program)
never see each other's state, and a run's state goes away with its ``State``.

    from litellm_runner.run.state import of
    of(host.state).snapshots[host.name] = snap

A ``Run`` is found through a ``weakref.WeakKeyDictionary`` keyed by the ``State`` object itself:
nothing is set on pyinfra's objects and no pyinfra internal is used, and the entry is dropped when
pyinfra's state is collected. Each field is owned by one module (named in its comment), which alone
reads and writes it; the others ask that module.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any


@dataclasses.dataclass(eq=False)
class Run:
    """One pyinfra run's state (module docstring). Fields by owner; host names are the keys within a run."""

    # pyinfra_ext/snapshot.py: host name -> its Snapshot (the one answer to the deploy's questions)
    snapshots: dict[str, Any] = dataclasses.field(default_factory=dict)
    # pyinfra_ext/snapshot.py: (host name, the question's key) -> (ok, answer or exception), handed out once
    prefetched: dict[tuple, tuple[bool, Any]] = dataclasses.field(default_factory=dict)
    # pyinfra_ext/database.py: (host name, the plan question's key) -> the database plan (the snapshot's or HostPlan's)
    plans: dict[tuple[str, str], Any] = dataclasses.field(default_factory=dict)
    # pyinfra_ext/operations.py: the first host whose unit failed its readiness gate (stops the rollout)
    rollout_failed: str | None = None
    # pyinfra_ext/drift.py: host name -> the drifted items its change detection recorded
    drift: dict[str, list[dict]] = dataclasses.field(default_factory=dict)
    # pyinfra_ext/drift.py: host name -> its secret values (secrets.known), read once (never in the repr)
    known_secrets: dict[str, list[str]] = dataclasses.field(default_factory=dict, repr=False)
    # inventory.py: host name -> its sudo password, read while pyinfra loads the inventory (never in the repr)
    sudo_passwords: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)
    # cli/report_facts.py: host name -> the report's parts read from it (redacted)
    report_facts: dict[str, dict] = dataclasses.field(default_factory=dict)
    # validate.py: the inventory's verdict (True: valid), None until checked
    valid: bool | None = None
    # pyinfra_ext/lock.py: the run locks this run holds (its ``Held``), made there on first use
    lock: Any = None
    # pyinfra_ext/lock.py: (operations prepared, state.get_op_order()) sorted once per set of operations
    op_order: tuple[int, list] = (-1, [])


# A State -> its Run. The one module-level registry of runs: weak, so that it holds no run past its State.
_runs: weakref.WeakKeyDictionary[Any, Run] = weakref.WeakKeyDictionary()


def of(state) -> Run:
    """STATE's Run (pyinfra's ``State``, or any object standing in for one), made on first use."""
    run = _runs.get(state)
    if run is None:
        run = _runs[state] = Run()
    return run
