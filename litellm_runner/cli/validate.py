"""Validate the desired state of every host without contacting any host.

    litellm-runner validate [--project DIR] [--inventory FILE]
    python -m litellm_runner.cli.validate ...                    # the same

Loads the project's inventory (``inventory.py``: the hosts file named by LITELLM_INVENTORY, or the
sandbox) and group_data/ as pyinfra will, and checks every host's merged data, the secret source,
the models and MCP servers, the config lint and the CVE gate on the pins (litellm_runner.validate;
docs/validate.md lists every check). Every problem is printed at once, each naming the file (and
line), the key, the value (masked if secret) and the expected form. Every pyinfra run (converge,
``--dry``, ``litellm-runner check``) runs the same checks before it connects.

Exit codes (litellm_runner.exitcodes): 0 valid, 1 a problem (or no project), 64 usage, 130 Ctrl-C.
"""

from __future__ import annotations

import os
import pathlib
import sys
import traceback

from litellm_runner import exitcodes


def load_inventory(project: pathlib.Path, inventory: str):
    """The project's pyinfra inventory with its group_data, loaded as pyinfra's CLI loads it (no connection).

    Returns (inventory, problems): problems explain why there is none (the project, the inventory file,
    a group_data file).
    """
    from litellm_runner import validate

    if not project.is_dir():
        return None, [f"{project}: no such project folder: expected --project DIR, a pyinfra project's folder"]
    if not (project / inventory).is_file():
        return None, [
            f"{project / inventory}: no inventory file: run from a pyinfra project's folder (inventory.py, "
            "deploy.py, group_data/) or name it with --project DIR"
        ]
    broken = validate.group_data_problems(project / "group_data")
    if broken:
        return None, broken
    from pyinfra.api import State
    from pyinfra_cli.inventory import make_inventory

    from litellm_runner.run import compat

    try:
        with compat.in_context(State()):  # pyinfra's loader records the file it runs in the state
            return make_inventory(inventory, cwd=str(project)), []
    except SystemExit as exc:  # the inventory file refused, its message already printed
        return None, [f"{project / inventory}: the inventory refused to load (exit {exc.code}; see above)"]
    except Exception as exc:  # noqa: BLE001 (an operator's file: shown as file, line and message)
        cause = exc.__cause__ or exc.__context__ or exc  # pyinfra wraps an error of the user's file
        frames = [f for f in traceback.extract_tb(cause.__traceback__) if f.filename.startswith(str(project))]
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else str(project / inventory)
        return None, [f"{where}: {type(cause).__name__}: {cause}: expected an inventory that loads"]


def validate_project(project: pathlib.Path, inventory: str = "inventory.py") -> tuple[list[str], list[str], int]:
    """(problems, warnings, number of hosts) of the project in PROJECT; nothing is printed."""
    from litellm_runner import validate

    os.environ["LITELLM_PROJECT"] = str(project)  # group_data, locks and caches are the project's
    if project.is_dir():
        os.chdir(project)  # pyinfra's own rule: the inventory's relative paths are the project's
    with validate.interruptible():
        loaded, refused = load_inventory(project, inventory)
        if loaded is None:
            return refused, [], 0
        found, warned = validate.problems(loaded)
    return found, warned, len(loaded)


def main(argv: list[str] | None = None, prog: str = "python -m litellm_runner.cli.validate") -> int:
    """``validate``: exit 0 when every host's desired state is valid, 1 with every problem printed."""
    from litellm_runner import validate

    parser = exitcodes.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--project", type=pathlib.Path, default=None, metavar="DIR", help="the pyinfra project (default: this folder)"
    )
    parser.add_argument(
        "--inventory", default="inventory.py", metavar="FILE", help="inventory file in it (default inventory.py)"
    )
    args = parser.parse_args(argv)
    project = (args.project or pathlib.Path.cwd()).resolve()
    found, warned, count = validate_project(project, args.inventory)
    validate.report(found, warned)
    if found:
        print(f"{prog}: {len(found)} problems: nothing was contacted", file=sys.stderr)
        return exitcodes.FAILED
    print(f"valid: {count} hosts, no host contacted")
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
