"""The fast operation order equals pyinfra's own, on real call stacks."""

from types import SimpleNamespace

import pyinfra
import pytest
from pyinfra.api.util import get_operation_order_from_stack

from litellm_runner.pyinfra_ext.speed import order_from_stack


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


def test_install_replaces_the_function_pyinfra_calls():
    import importlib

    from litellm_runner.pyinfra_ext import speed

    module = importlib.import_module("pyinfra.api.operation")
    arguments = importlib.import_module("pyinfra.api.arguments")
    original, hints = module.get_operation_order_from_stack, arguments.all_global_arguments
    expected = hints()
    try:
        speed.install()
        assert module.get_operation_order_from_stack is order_from_stack
        assert arguments.all_global_arguments is not hints  # pop_global_arguments looks it up here
        first = arguments.all_global_arguments()
        assert first == expected and len(first) > 10  # pyinfra's global arguments, their types
        first.clear()  # a caller's list is its own
        assert arguments.all_global_arguments() == expected
    finally:
        module.get_operation_order_from_stack, arguments.all_global_arguments = original, hints
        speed._installed = False
