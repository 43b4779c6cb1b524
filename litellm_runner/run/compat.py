"""pyinfra's internals in one room: every patch of pyinfra, and every use of a name it does not document.

The rest of the package calls the small functions below and never touches a private or undocumented
name of pyinfra itself (``tests/unit/test_compat.py`` scans the source tree for them). Each function
here has a test that fails on a pyinfra that changed what it relies on, and those tests pin the
version they were written for (``PYINFRA_VERSION``): an upgrade of pyinfra is a review of this file.

Importing this module checks the installed pyinfra against ``SUPPORTED`` and refuses any other with
one ``PyinfraVersionError`` naming both versions and this file. requirements.txt and pyproject.toml
pin ``PYINFRA_VERSION``, inside that range, so the check never fires in a normal install.

What each piece relies on, and where pyinfra could take a fix that would let us delete it:

- ``install_speedups``: replaces ``pyinfra.api.operation.get_operation_order_from_stack`` (it reads
  the source line of every frame from disk, through ``inspect.stack()``: about a quarter of a no-op
  check's control-machine time) and caches ``pyinfra.api.arguments.all_global_arguments`` (it
  evaluates ``AllArguments``' type hints again for every operation and fact). Upstream:
  ``get_operation_order_from_stack`` walking ``frame.f_back`` with ``f_lineno`` (no ``inspect``), and
  ``all_global_arguments`` behind ``functools.cache``.
- ``count_remote_calls`` (the benchmark's command counter): every remote command, upload and
  download goes through ``Host.run_shell_command``, ``put_file`` and ``get_file``. Upstream: a
  state callback per command.
- ``own_sudo_askpass``: replaces ``pyinfra.connectors.util._ensure_askpass_set_for_host`` for the
  sudo helper, keeping its cache key in ``host.connector_data`` (removed at disconnect), so that a
  password is written into a private script over stdin, never on a command line. Upstream: a sudo
  password passed to the askpass helper over stdin.
- ``before_cli_connect`` and ``after_deploy_file``: wrap ``pyinfra_cli.cli.connect_all`` (``_main``
  calls it by that module-level name) and ``pyinfra_cli.util.exec_file`` (``load_deploy_file`` calls
  it once per host, in that host's context). Upstream: state callbacks before connecting and after a
  host's deploy code ran (change detection done).
- ``planned_changes``: a host's operations in its own order (``host.op_hash_order``), their
  ``operation_meta.will_change`` and ``pyinfra_cli.prints.pretty_op_name``: what ``--json`` would
  print, read per host as soon as its change detection is done. ``failed_host_names``: ``state.failed_hosts``
  read (pyinfra's exit 1). Upstream: a per-host plan and the failed hosts in the API's results.
- ``drop_deploy_name``: ``host.current_deploy_name``, the prefix ``@deploy`` gives every operation
  name. Upstream: a ``@deploy`` that does not prefix its operations' names.
- ``pyinfra_cli_params`` and ``pyinfra_usage_problem``: pyinfra's argv parsed again through its click
  command (``make_context``), to tell a dry run from a converge and to refuse bad arguments before
  running. Upstream: ``state.is_dry`` (pyinfra has no public "will this run execute").
- ``connector_arguments`` and ``op_connector_arguments``: the connection arguments (sudo, user...)
  of a host (``pop_global_arguments``) and of the operation running now
  (``host.current_op_global_arguments``), for commands a ``FunctionCommand`` runs itself. Upstream:
  ``FunctionCommand`` passing its operation's connector arguments to the function.
- ``current_state``, ``current_host`` and ``in_context``: ``pyinfra.context``'s greenlet-local ``ctx_host``,
  ``ctx_state`` (and ``deploy_config``: ``ctx_config``), for greenlets spawned by this code.
- ``mark_host_failed``: adds to ``state.failed_hosts``, so that pyinfra exits 1 for an item that
  failed alone while the host's other operations still ran (``_ignore_errors`` runs them, but does
  not count the failure). Upstream: an ``_ignore_errors`` mode that still counts the host failed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import re
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

PYINFRA_VERSION = "3.10.0"  # written and tested for this release (requirements.txt and pyproject.toml pin it)
SUPPORTED = ((3, 10), (3, 11))  # [from, to) as (major, minor): the releases whose internals this file assumes


class PyinfraVersionError(RuntimeError):
    """The installed pyinfra is not one this file was written for."""


def check_version(found: str | None = None) -> None:
    """Refuse a pyinfra outside ``SUPPORTED`` (FOUND: its version; default the installed one)."""
    found = found or importlib.metadata.version("pyinfra")
    parsed = re.match(r"(\d+)\.(\d+)", found)
    low, high = SUPPORTED
    if parsed is None or not low <= (int(parsed[1]), int(parsed[2])) < high:
        raise PyinfraVersionError(
            f"pyinfra {found} is installed; litellm-runner supports pyinfra >={low[0]}.{low[1]},<{high[0]}.{high[1]} "
            f"(tested with {PYINFRA_VERSION}, pinned in requirements.txt): install that one, or review "
            f"{__file__} and tests/unit/test_compat.py for the new release"
        )


check_version()


# -- speedups ------------------------------------------------------------------------------------------------


def _frames(start: FrameType | None) -> list[FrameType]:
    """The stack from the outermost frame to START."""
    frames = []
    while start is not None:
        frames.append(start)
        start = start.f_back
    frames.reverse()
    return frames


def order_from_stack(state, _frame: FrameType | None = None) -> list[int]:
    """What ``pyinfra.api.util.get_operation_order_from_stack(state)`` returns, called from the same place,
    from the frames alone (same frames, same filter, same line numbers; no source file read)."""
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


@functools.cache
def install_speedups() -> None:
    """pyinfra's operation order from ``order_from_stack``, and its global arguments' type hints evaluated
    once (they are fixed when pyinfra is imported); the same answers, once per process."""
    # the module, not the ``operation`` decorator that pyinfra.api exports under the same name
    module = importlib.import_module("pyinfra.api.operation")
    module.get_operation_order_from_stack = order_from_stack  # type: ignore[attr-defined]
    arguments = importlib.import_module("pyinfra.api.arguments")
    hints = functools.lru_cache(maxsize=1)(arguments.all_global_arguments)
    arguments.all_global_arguments = lambda: list(hints())  # type: ignore[attr-defined]  # a new list each call


def count_remote_calls(count: Callable[[str, str], None]) -> None:
    """Call COUNT(host name, kind) for every shell command ("commands"), upload ("uploads") and download
    ("downloads") pyinfra sends to a host, before it is sent."""
    from pyinfra.api.host import Host

    def counting(method, kind):
        def wrapper(self, *args, **kwargs):
            count(self.name, kind)
            return method(self, *args, **kwargs)

        return wrapper

    for method, kind in (("run_shell_command", "commands"), ("put_file", "uploads"), ("get_file", "downloads")):
        setattr(Host, method, counting(getattr(Host, method), kind))


# -- sudo's askpass helper ---------------------------------------------------------------------------------------


def own_sudo_askpass(make: Callable[[Any], str | None]) -> None:
    """Let MAKE(host) create the sudo askpass helper pyinfra runs ``sudo -A`` with, on each connection: it
    returns the helper's path, or None for pyinfra's own helper. The path is kept for the connection as
    pyinfra keeps its own (and removed when it disconnects). Once per process."""
    from pyinfra.connectors import util

    original = util._ensure_askpass_set_for_host
    if getattr(original, "private", False):
        return

    def ensure(host, key, env_var, temp_dir=None):
        if key != "sudo_askpass_path":
            return original(host, key, env_var, temp_dir=temp_dir)
        cache_key = f"{key}__{temp_dir or host.get_temp_dir_config()}"  # pyinfra's key: removed at disconnect
        if not host.connector_data.get(cache_key):
            path = make(host)
            if path is None:
                return original(host, key, env_var, temp_dir=temp_dir)
            host.connector_data[cache_key] = path
        return host.connector_data[cache_key]

    ensure.private = True  # type: ignore[attr-defined]
    util._ensure_askpass_set_for_host = ensure


# -- pyinfra's command line ------------------------------------------------------------------------------------


def before_cli_connect(hook: Callable[[Any], None], key: str) -> bool:
    """In pyinfra's CLI (its ``pyinfra_cli.cli`` module loaded), run HOOK(state) when it is about to connect
    to the hosts, before the hooks added earlier. Once per KEY. False outside pyinfra's CLI (the API, another
    tool that loads an inventory)."""
    cli = sys.modules.get("pyinfra_cli.cli")
    if cli is None:
        return False
    connect_all = cli.connect_all
    hooks = getattr(connect_all, "hooks", ())
    if key in hooks:
        return True

    def connect(state) -> None:
        hook(state)
        connect_all(state)

    connect.hooks = (key, *hooks)  # type: ignore[attr-defined]
    cli.connect_all = connect  # type: ignore[attr-defined]  # _main calls it by this module-level name
    return True


def after_deploy_file(hook: Callable[[], None]) -> None:
    """Run HOOK() each time pyinfra's CLI has run the deploy file for a host (its change detection done), in
    that host's context (``pyinfra.host``, ``pyinfra.state`` are its)."""
    from pyinfra_cli import util

    exec_file = util.exec_file

    def exec_and_tell(filename, *args, **kwargs):
        result = exec_file(filename, *args, **kwargs)
        hook()
        return result

    util.exec_file = exec_and_tell


def planned_changes(state, host) -> tuple[list[str], list[str], list[str]]:
    """(changes, conditional, in_sync): the names of HOST's operations, as pyinfra's ``--json`` plan names them,
    in the host's own order: those that will change it without and with an ``_if`` condition, and the others."""
    from pyinfra_cli.prints import pretty_op_name

    changes: list[str] = []
    conditional: list[str] = []
    in_sync: list[str] = []
    for op_hash in host.op_hash_order:  # this host's own order: state.get_op_order() sorts every host's, each time
        if op_hash not in state.ops[host]:
            continue
        data = state.get_op_data_for_host(host, op_hash)
        name = pretty_op_name(state.op_meta[op_hash])
        if not data.operation_meta.will_change:
            in_sync.append(name)
        else:
            (conditional if data.global_arguments["_if"] else changes).append(name)
    return changes, conditional, in_sync


def failed_host_names(state) -> list[str]:
    """The names of the hosts pyinfra counts failed (it exits 1): unreachable, a failed fact or operation."""
    return sorted(host.name for host in state.failed_hosts)


def in_pyinfra_cli() -> bool:
    """Is this process pyinfra's command line (not the API)?"""
    import pyinfra

    return bool(getattr(pyinfra, "is_cli", False))


def pyinfra_cli_params(argv: list[str]) -> dict | None:
    """pyinfra's CLI options for ARGV (``dry``, ``yes``, ``json_output``, ...), parsed as its click command
    parses them, or None when they cannot be parsed."""
    from pyinfra_cli.cli import cli

    try:
        return cli.make_context("pyinfra", list(argv), resilient_parsing=True).params
    except Exception:  # noqa: BLE001 - cannot tell
        return None


def pyinfra_usage_problem(argv: list[str]) -> str | None:
    """What pyinfra's command line would refuse in ARGV (its own message; checked without running it), or None."""
    import click
    from pyinfra_cli.cli import cli

    try:
        cli.make_context("pyinfra", list(argv))
    except click.exceptions.Exit:
        return None
    except click.UsageError as exc:
        return exc.format_message()
    return None


# -- the run ---------------------------------------------------------------------------------------------------


def drop_deploy_name(host, name: str) -> None:
    """Take the deploy NAME off the prefix pyinfra gives the names of HOST's operations inside a ``@deploy``
    (an enclosing deploy's name stays); the decorator restores the prefix when the deploy returns."""
    current = host.current_deploy_name or ""
    host.current_deploy_name = current.removesuffix(name).removesuffix(" | ") or None


def mark_host_failed(state, host) -> None:
    """Count HOST failed (pyinfra exits 1) and still run its remaining operations (``state.fail_hosts`` would
    stop them): for an item that fails alone, in an operation called with ``_ignore_errors``."""
    state.failed_hosts.add(host)


def connector_arguments(state, host) -> dict:
    """HOST's connection arguments (``_sudo``, ``_su_user``, ``_timeout``...) from its data and the config,
    outside any operation: for commands run before the first operation."""
    from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments

    arguments, _ = pop_global_arguments(state, host, {})
    return {k: v for k, v in arguments.items() if k in CONNECTOR_ARGUMENT_KEYS}


def op_connector_arguments(host) -> dict:
    """The connection arguments of the operation HOST runs now: for commands a ``FunctionCommand`` runs."""
    from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS

    return {k: v for k, v in (host.current_op_global_arguments or {}).items() if k in CONNECTOR_ARGUMENT_KEYS}


def current_state():
    """The State of this greenlet's pyinfra context (the object itself), or None outside one: pyinfra's CLI sets
    it before it loads the inventory."""
    from pyinfra.context import ctx_state

    return ctx_state.get() if ctx_state.isset() else None


def current_host():
    """The host of this greenlet's pyinfra context (the object itself, not the ``pyinfra.host`` proxy)."""
    from pyinfra.context import ctx_host

    return ctx_host.get()


@contextlib.contextmanager
def in_context(state, host=None) -> Iterator[None]:
    """``pyinfra.state`` (and ``pyinfra.host``, given HOST) in this block: for greenlets this code spawns
    (the context is greenlet-local) and for loading an inventory outside pyinfra's CLI."""
    from pyinfra.context import ctx_host, ctx_state

    with ctx_state.use(state):
        if host is None:
            yield
            return
        with ctx_host.use(host):
            yield


def deploy_config():
    """The config of the deploy file being prepared (pyinfra's loader sets a copy per file), else None."""
    from pyinfra.context import ctx_config

    return ctx_config.get()
