"""Checks that run before the first command reaches any host (called by deploy.py)."""

from __future__ import annotations

import sys

from .schema import SchemaError, validate

_done = False


def _source(inventory, host, key) -> str:
    if key in (inventory.get_host_data(host.name) or {}):
        return f"inventory (host {host.name})"
    for group in host.groups:
        if key in (inventory.get_group_data(group) or {}):
            return f"group_data/{group}.py"
    return "group_data/all.py"


def check_inventory(state) -> None:
    """Validate the desired state of every host of the inventory, once per run.

    On any problem, print them all (file, key, value, expected form) and exit 1
    before any operation or fact runs on any host.
    """
    global _done
    if _done:
        return
    _done = True
    problems = []
    for host in state.inventory:
        data = host.data.dict()
        problems += [f"host {host.name}: {p}" for p in
                     validate(data, lambda key, h=host: _source(state.inventory, h, key))]
    if problems:
        print("refusing to touch any host, the desired state is invalid:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        sys.exit(1)


__all__ = ["check_inventory", "SchemaError"]
