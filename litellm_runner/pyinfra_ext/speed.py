"""Two of pyinfra's costs per operation, removed without changing what it computes.

**Operation order.**

pyinfra orders operations by the line numbers of the call stack that created
them (``pyinfra.api.util.get_operation_order_from_stack``). It builds that list
with ``inspect.stack()`` and ``inspect.getframeinfo``, which read the source
line of every frame from disk: for this deploy's ~110 operations per host that
is ~2,500 source lookups and about a quarter of a no-op check's control-machine
time. ``order_from_stack`` computes the same list (same frames, same filter,
same line numbers) from the frames alone; ``install`` puts it in pyinfra's
place. ``tests/unit/test_speed.py`` compares the two on real stacks.

**Global arguments.** ``pop_global_arguments`` runs for every operation and every fact, and each
time it asks ``all_global_arguments()``, which evaluates the type hints of pyinfra's ``AllArguments``
again (about a third of its time). Those hints are fixed when pyinfra is imported: ``install`` keeps
the first answer.
"""

from __future__ import annotations

import functools
import importlib
import sys
from types import FrameType

_installed = False


def _frames(start: FrameType | None) -> list[FrameType]:
    """The stack from the outermost frame to START."""
    frames = []
    while start is not None:
        frames.append(start)
        start = start.f_back
    frames.reverse()
    return frames


def order_from_stack(state, _frame: FrameType | None = None) -> list[int]:
    """What ``get_operation_order_from_stack(state)`` returns, called from the same place."""
    import pyinfra
    from pyinfra.api.util import PYINFRA_INSTALL_DIR

    # pyinfra's stack ends with its own function's frame (dropped by its filter, but the last
    # index when the deploy file is not on the stack): a stand-in keeps that behaviour
    frames = [(f.f_code.co_filename, f.f_lineno) for f in _frames(_frame or sys._getframe(1))]
    frames.append((f"{PYINFRA_INSTALL_DIR}/api/util.py", 0))
    i = 0
    if state.current_deploy_filename:
        for i, (filename, _) in enumerate(frames):  # noqa: B007 (i is used after the loop, as in pyinfra)
            if filename == state.current_deploy_filename:
                break
    line_numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    line_numbers += [lineno for filename, lineno in frames[i:] if not filename.startswith(PYINFRA_INSTALL_DIR)]
    return line_numbers


def install() -> None:
    """Use ``order_from_stack`` for pyinfra's operation order, and keep its global arguments' hints (once per
    process)."""
    global _installed
    if _installed:
        return
    _installed = True
    # the module, not the ``operation`` decorator that pyinfra.api exports under the same name
    module = importlib.import_module("pyinfra.api.operation")
    setattr(module, "get_operation_order_from_stack", order_from_stack)  # noqa: B010 (mypy: a private name)
    arguments = importlib.import_module("pyinfra.api.arguments")
    hints = functools.lru_cache(maxsize=1)(getattr(arguments, "all_global_arguments"))  # noqa: B009 (as above)
    setattr(arguments, "all_global_arguments", lambda: list(hints()))  # noqa: B010 (a new list each call, as pyinfra's)
