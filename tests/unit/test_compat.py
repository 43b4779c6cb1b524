"""pyinfra's internals that litellm_runner/run/compat.py relies on are still there, in the shape it expects.

Every test here was written against pyinfra ``compat.PYINFRA_VERSION``; the first test fails on any other
version, so that an upgrade reviews each piece of compat.py (and these tests) before it lands. The last test
keeps compat.py the only module that touches pyinfra's internals.
"""

import ast
import importlib
import importlib.metadata
import inspect
import pathlib
import sys
from types import SimpleNamespace

import pyinfra
import pytest
from pyinfra import host
from pyinfra.api import Config, Inventory, State, operation
from pyinfra.api.host import Host
from pyinfra.api.operation import add_op
from pyinfra.api.util import get_operation_order_from_stack
from pyinfra.operations import server
from pyinfra_cli.prints import pretty_op_name

from litellm_runner.run import compat
from litellm_runner.run.compat import order_from_stack

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_written_for_the_installed_pyinfra():
    """An upgrade of pyinfra fails here first: review compat.py and this file, then raise PYINFRA_VERSION."""
    assert importlib.metadata.version("pyinfra") == pyinfra.__version__ == compat.PYINFRA_VERSION
    assert f"pyinfra=={compat.PYINFRA_VERSION} " in (ROOT / "requirements.txt").read_text()
    compat.check_version()  # the pinned release is inside the supported range: the guard never fires in use


@pytest.mark.parametrize("version", ["3.10.0", "3.10.7", "3.10.1.dev2"])
def test_the_guard_lets_the_supported_releases_in(version):
    compat.check_version(version)


@pytest.mark.parametrize("version", ["3.11.0", "4.0.0", "3.9.2", "2.9", "unknown"])
def test_the_guard_refuses_any_other_release_naming_both_and_the_file(version):
    with pytest.raises(compat.PyinfraVersionError) as refused:
        compat.check_version(version)
    message = str(refused.value)
    assert f"pyinfra {version} is installed" in message
    assert ">=3.10,<3.11" in message and compat.PYINFRA_VERSION in message
    assert "litellm_runner/run/compat.py" in message


# -- the names compat calls, with the parameters it passes --------------------------------------------------


def _target(dotted: str):
    module, _, name = dotted.rpartition(":")
    found = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


@pytest.mark.parametrize(
    "dotted, parameters",
    [
        ("pyinfra.api.util:get_operation_order_from_stack", ["state"]),
        ("pyinfra.api.arguments:all_global_arguments", []),
        ("pyinfra.api.arguments:pop_global_arguments", ["state", "host", "kwargs"]),
        ("pyinfra.connectors.util:_ensure_askpass_set_for_host", ["host", "key", "env_var", "temp_dir"]),
        ("pyinfra_cli.cli:connect_all", ["state"]),
        ("pyinfra_cli.util:exec_file", ["filename", "return_locals", "is_deploy_code"]),
        ("pyinfra_cli.prints:pretty_op_name", ["op_meta"]),
        # wrapped: every command, upload and download goes through these (they pass all on to the connector)
        ("pyinfra.api.host:Host.run_shell_command", ["self", "args", "kwargs"]),
        ("pyinfra.api.host:Host.put_file", ["self", "args", "kwargs"]),
        ("pyinfra.api.host:Host.get_file", ["self", "args", "kwargs"]),
        ("pyinfra.api.host:Host.get_temp_dir_config", ["self"]),
        ("pyinfra.api.state:State.get_op_data_for_host", ["self", "host", "op_hash"]),
    ],
)
def test_a_function_compat_calls_or_replaces_takes_what_compat_passes(dotted, parameters):
    found = list(inspect.signature(_target(dotted)).parameters)
    assert found[: len(parameters)] == parameters, f"{dotted}{found}: review compat.py"


@pytest.mark.parametrize(
    "caller, call",
    [
        # replaced by a module-level name: the caller must look it up there, at each call
        ("pyinfra.api.operation", "get_operation_order_from_stack(state)"),
        ("pyinfra.api.arguments:pop_global_arguments", "all_global_arguments()"),
        (
            "pyinfra.connectors.util:_ensure_sudo_askpass_set_for_host",
            '_ensure_askpass_set_for_host(\n        host, "sudo_askpass_path"',
        ),
        ("pyinfra.connectors.util:_ensure_askpass_set_for_host", 'cache_key = f"{key}__{effective_temp_dir}"'),
        ("pyinfra.connectors.util:_ensure_askpass_set_for_host", "host.connector_data.get(cache_key)"),
        ("pyinfra_cli.cli:_main", "connect_all(state)"),
        ("pyinfra_cli.util:load_deploy_file", "exec_file(filename)"),
        # the deploy name: set on entering a deploy, restored on leaving it (drop_deploy_name's change with it)
        ("pyinfra.api.host:Host.deploy", 'name = f"{self.current_deploy_name} | {name}"'),
        ("pyinfra.api.host:Host.deploy", "self.current_deploy_name = old_deploy_name"),
    ],
)
def test_pyinfra_still_calls_what_compat_replaces_by_that_name(caller, call):
    source = inspect.getsource(_target(caller) if ":" in caller else importlib.import_module(caller))
    assert call in source, f"{caller} no longer contains {call!r}: review compat.py"


@pytest.mark.parametrize("name", ["ctx_host", "ctx_state", "ctx_config"])
def test_the_context_variables_compat_uses(name):
    variable = getattr(importlib.import_module("pyinfra.context"), name)
    assert callable(variable.get) and callable(variable.use)


@pytest.fixture()
def one_host():
    """A real pyinfra state with one (never connected) host, active as after connecting."""
    inventory = Inventory((["somehost"], {}))
    state = State(inventory, Config())
    host = inventory.get_host("somehost")
    state.activate_host(host)
    return state, host


def test_the_host_and_state_attributes_compat_reads_and_writes(one_host):
    state, host = one_host
    assert host.current_deploy_name is None and host.current_op_global_arguments is None
    assert host.op_hash_order == [] and host.connector_data == {}
    assert state.failed_hosts == set() and state.ops[host] == {} and state.op_meta == {}
    assert isinstance(pyinfra.is_cli, bool)


# -- what compat's functions do, on that real state ---------------------------------------------------------


@operation()
def in_sync():
    """An operation that finds nothing to do."""
    host.noop("nothing to do")
    yield from ()


def test_planned_changes_names_operations_as_the_json_plan(one_host):
    state, host = one_host
    add_op(state, server.shell, "echo hi")
    add_op(state, in_sync)
    add_op(state, server.shell, "echo maybe", _if=lambda: True)
    changes, conditional, synced = compat.planned_changes(state, host)
    assert (changes, conditional) == (["server.shell (echo hi)"], ["server.shell (echo maybe)"])
    assert synced == [pretty_op_name(state.op_meta[host.op_hash_order[1]])]  # the one that found nothing to do


def test_failed_host_names_are_the_hosts_pyinfra_counts_failed(one_host):
    state, host = one_host
    assert compat.failed_host_names(state) == []
    compat.mark_host_failed(state, host)
    assert compat.failed_host_names(state) == ["somehost"]


def test_mark_host_failed_counts_the_host_failed_without_deactivating_it(one_host):
    state, host = one_host
    compat.mark_host_failed(state, host)
    assert state.failed_hosts == {host}
    assert host in state.activated_hosts and host in state.inventory.get_active_hosts()


@pytest.mark.parametrize(
    "current, expected",
    [("LiteLLM host", None), ("Outer | LiteLLM host", "Outer"), (None, None), ("Other", "Other")],
)
def test_drop_deploy_name(one_host, current, expected):
    _, host = one_host
    host.current_deploy_name = current
    compat.drop_deploy_name(host, "LiteLLM host")
    assert host.current_deploy_name == expected


def test_connection_arguments(one_host):
    from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS

    state, host = one_host
    found = compat.connector_arguments(state, host)
    assert found["_sudo"] is False and set(found) <= set(CONNECTOR_ARGUMENT_KEYS)
    assert compat.op_connector_arguments(host) == {}  # no operation runs
    host.current_op_global_arguments = {"_sudo": True, "_if": [], "name": "x"}
    assert compat.op_connector_arguments(host) == {"_sudo": True}


def test_in_context_gives_greenlets_the_state_and_host(one_host):
    from pyinfra import host as host_proxy
    from pyinfra import state as state_proxy

    state, host = one_host
    with compat.in_context(state, host):
        assert compat.current_host() is host and host_proxy.name == "somehost" and state_proxy.inventory is not None
    with compat.in_context(state):
        assert state_proxy.inventory is state.inventory
    assert compat.deploy_config() is None  # no deploy file is being prepared


@pytest.mark.parametrize(
    "argv, dry, yes",
    [(["i.py", "d.py", "--dry"], True, False), (["i.py", "d.py", "-y"], False, True), (["i.py", "d.py"], False, False)],
)
def test_pyinfra_cli_params(argv, dry, yes):
    params = compat.pyinfra_cli_params(argv)
    assert params is not None and params["dry"] is dry and params["yes"] is yes and "json_output" in params


def test_pyinfra_usage_problem():
    assert compat.pyinfra_usage_problem(["i.py", "d.py", "--dry"]) is None
    assert "--no-such-option" in (compat.pyinfra_usage_problem(["i.py", "d.py", "--no-such-option"]) or "")


def test_before_cli_connect_runs_the_latest_hook_first_once_per_key(monkeypatch):
    import pyinfra_cli.cli as cli

    calls = []
    monkeypatch.setattr(cli, "connect_all", lambda state: calls.append(("connect", state)))
    assert compat.before_cli_connect(lambda state: calls.append(("first", state)), "first")
    assert compat.before_cli_connect(lambda state: calls.append(("second", state)), "second")
    assert compat.before_cli_connect(lambda state: calls.append(("again", state)), "first")
    cli.connect_all("S")
    assert calls == [("second", "S"), ("first", "S"), ("connect", "S")]


def test_before_cli_connect_outside_pyinfras_cli(monkeypatch):
    monkeypatch.delitem(sys.modules, "pyinfra_cli.cli", raising=False)
    assert compat.before_cli_connect(lambda state: None, "x") is False


def test_after_deploy_file(monkeypatch):
    from pyinfra_cli import util

    calls = []
    monkeypatch.setattr(util, "exec_file", lambda filename, **kwargs: calls.append(filename) or "ran")
    compat.after_deploy_file(lambda: calls.append("hook"))
    assert util.exec_file("deploy.py") == "ran"
    assert calls == ["deploy.py", "hook"]


def test_count_remote_calls(monkeypatch, one_host):
    _, host = one_host
    for name in ("run_shell_command", "put_file", "get_file"):
        monkeypatch.setattr(Host, name, lambda self, *args, _name=name, **kwargs: (_name, args))
    counted = []
    compat.count_remote_calls(lambda name, kind: counted.append((name, kind)))
    assert host.run_shell_command("true") == ("run_shell_command", ("true",))
    host.put_file("a", "b")
    host.get_file("b", "a")
    assert counted == [("somehost", "commands"), ("somehost", "uploads"), ("somehost", "downloads")]


def test_own_sudo_askpass(monkeypatch, one_host):
    from pyinfra.connectors import util

    _, host = one_host
    theirs = []
    monkeypatch.setattr(util, "_ensure_askpass_set_for_host", lambda *args, **kwargs: theirs.append(args) or "THEIRS")
    made = []
    compat.own_sudo_askpass(lambda h: made.append(h.name) or "/tmp/ours")
    compat.own_sudo_askpass(lambda h: "/tmp/not-installed-twice")
    ensure = util._ensure_askpass_set_for_host
    assert ensure(host, "sudo_askpass_path", "SUDO_ASKPASS") == "/tmp/ours"
    assert ensure(host, "sudo_askpass_path", "SUDO_ASKPASS") == "/tmp/ours" and made == ["somehost"]  # kept
    assert host.connector_data[f"sudo_askpass_path__{host.get_temp_dir_config()}"] == "/tmp/ours"
    assert ensure(host, "su_askpass_path", "SU_ASKPASS") == "THEIRS"  # su: pyinfra's own


# -- the speedups --------------------------------------------------------------------------------------------


def nested(depth, state):
    """Both orders, computed DEPTH calls deep."""
    if depth:
        return nested(depth - 1, state)
    return get_operation_order_from_stack(state), order_from_stack(state)


@pytest.mark.parametrize("cli", [False, True])
@pytest.mark.parametrize(
    "deploy_file",
    [None, __file__, "/nonexistent/deploy.py"],
    ids=["no deploy file", "this file as the deploy file", "a deploy file not on the stack"],
)
@pytest.mark.parametrize("depth", [0, 3])
def test_the_same_line_numbers_as_pyinfra(cli, deploy_file, depth, monkeypatch):
    monkeypatch.setattr(pyinfra, "is_cli", cli)
    state = SimpleNamespace(current_deploy_filename=deploy_file, current_op_file_number=7)
    theirs, ours = nested(depth, state)
    assert ours == theirs
    if deploy_file != "/nonexistent/deploy.py":
        assert len(ours) > depth  # the test's own frames are in it


def test_install_speedups_replaces_the_functions_pyinfra_calls():
    module = importlib.import_module("pyinfra.api.operation")
    arguments = importlib.import_module("pyinfra.api.arguments")
    original, hints = module.get_operation_order_from_stack, arguments.all_global_arguments
    expected = hints()
    try:
        compat.install_speedups.cache_clear()
        compat.install_speedups()
        assert module.get_operation_order_from_stack is order_from_stack
        assert arguments.all_global_arguments is not hints  # pop_global_arguments looks it up here
        first = arguments.all_global_arguments()
        assert first == expected and len(first) > 10  # pyinfra's global arguments, their types
        first.clear()  # a caller's list is its own
        assert arguments.all_global_arguments() == expected
    finally:
        module.get_operation_order_from_stack, arguments.all_global_arguments = original, hints
        compat.install_speedups.cache_clear()


# -- nothing else touches pyinfra's internals ----------------------------------------------------------------

# undocumented names of pyinfra's objects and modules, wherever they appear (attribute or imported name)
INTERNALS = {
    "failed_hosts",  # written: mark_host_failed
    "current_deploy_name",
    "current_op_global_arguments",
    "connector_data",
    "op_hash_order",
    "is_cli",
    "connect_all",
    "exec_file",
    "make_context",  # pyinfra's click command, parsed again
    "get_operation_order_from_stack",
    "all_global_arguments",
    "pop_global_arguments",
    "pretty_op_name",
}
DYNAMIC = {"import_module", "get", "__import__"}  # importlib.import_module("pyinfra..."), sys.modules.get(...)


def _pyinfra_names(tree: ast.AST) -> set[str]:
    """The names a module binds to pyinfra's modules and objects by importing them."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("pyinfra")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyinfra"):
            names |= {a.asname or a.name for a in node.names}
    return names


def internals_used(source: str) -> list[str]:
    """``line: what`` for each use of a pyinfra internal in SOURCE (a module's text)."""
    tree = ast.parse(source)
    bound = _pyinfra_names(tree)
    found = []

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if a.name.startswith("pyinfra.context")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyinfra"):
            if node.module.startswith("pyinfra.context"):
                found.append(f"{line}: from {node.module} import ...")
            found += [
                f"{line}: from {node.module} import {a.name}"
                for a in node.names
                if private(a.name) or a.name in INTERNALS
            ]
        elif isinstance(node, ast.Attribute):
            if node.attr in INTERNALS:
                found.append(f"{line}: .{node.attr}")
            elif private(node.attr) and isinstance(node.value, ast.Name) and node.value.id in bound:
                found.append(f"{line}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            first = node.args[0] if node.args else None
            if name in DYNAMIC and isinstance(first, ast.Constant) and str(first.value).startswith("pyinfra"):
                found.append(f"{line}: {name}({first.value!r})")
            if name == "setattr" and isinstance(first, ast.Name) and first.id in bound:
                found.append(f"{line}: setattr({first.id}, ...)")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [
                f"{line}: {t.value.id}.{t.attr} = ..."
                for t in targets
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in bound
            ]
    return sorted(set(found), key=lambda item: int(item.split(":")[0]))


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from pyinfra.connectors import util\nutil._ensure_askpass_set_for_host = f", 2),
        ("from pyinfra.context import ctx_host\n", 1),
        ("import pyinfra.context\n", 1),
        ("from pyinfra.api.arguments import pop_global_arguments\n", 1),
        ("state.failed_hosts.add(host)\n", 1),
        ("host.current_deploy_name = None\n", 1),
        ("import importlib\nimportlib.import_module('pyinfra.api.operation')\n", 1),
        ("import sys\nsys.modules.get('pyinfra_cli.cli')\n", 1),
        ("from pyinfra.api.host import Host\nsetattr(Host, 'run_shell_command', f)\n", 1),
        ("import pyinfra\npyinfra.is_cli\n", 1),
        ("from pyinfra import host\nhost.name = 'x'\n", 1),
        # public: operations, facts, global arguments as keywords, exceptions, callbacks
        ("from pyinfra.operations import files\nfiles.put(src='a', dest='b', _sudo=True)\n", 0),
        ("from pyinfra.api.state import BaseStateCallback\nfrom pyinfra.api.exceptions import DeployError\n", 0),
        ("from pyinfra import host\nhost.data.get('x')\nsetattr(host.data, 'x', 1)\n", 0),
        ("import sys\nsys._getframe(1)\n", 0),
    ],
)
def test_the_scan_finds_internals_and_only_them(source, expected):
    assert len(internals_used(source)) == expected, internals_used(source)


def test_only_compat_touches_pyinfras_internals():
    files = {p.resolve() for folder in ("litellm_runner", "tasks") for p in (ROOT / folder).rglob("*.py")}
    files |= {ROOT / "deploy.py", ROOT / "inventory.py"}
    compat_file = (ROOT / "litellm_runner" / "run" / "compat.py").resolve()
    assert compat_file in files and len(files) > 50
    found = {
        str(path.relative_to(ROOT)): used
        for path in sorted(files - {compat_file})
        if (used := internals_used(path.read_text()))
    }
    assert found == {}, "use litellm_runner.run.compat (add a function there, with its test here)"
    assert internals_used(compat_file.read_text())  # the scan sees compat's own uses
