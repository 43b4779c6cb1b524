"""Root's compiled host tools (``bin/__pycache__``), through the exact commands the runner sends.

``compile_tools`` (the converge) writes the checked compiled form of each tool module; ``tools_bytecode`` (the
snapshot) reads the folder as data. Each row plants something in the folder and checks what a person would:
the snapshot names it, the converge keeps it as evidence and writes a clean folder, and the account's
interpreter (``nobody`` plays the account) then loads root's compiled modules, never a stale one.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import py_compile
import shlex
import shutil
import subprocess
import tempfile

import pytest

from litellm_runner import layout
from litellm_runner.pyinfra_ext.facts import hostside_args
from tests.unit.test_hostside import run

MODULES = ["tool_a.py", "tool_b.py"]
TAG = subprocess.run(
    ["/usr/bin/python3", "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True, text=True
).stdout.strip()


@pytest.fixture
def tools():
    """A root-owned tools folder (0755 along the path, so the account reads it) with two modules."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="tools-", dir="/tmp"))
    folder.chmod(0o755)
    (folder / "tool_a.py").write_text("VALUE = 'a'\n")
    (folder / "tool_b.py").write_text("import tool_a\nVALUE = tool_a.VALUE + 'b'\n")
    yield folder
    shutil.rmtree(folder)


def found(folder) -> dict | None:
    code, out = run("tools_bytecode", folder=str(folder), modules=MODULES)
    assert code == 0, out
    return out


def compiled(folder) -> dict:
    code, out = run("compile_tools", folder=str(folder), modules=MODULES)
    assert code == 0, out
    return out


def account_imports(folder) -> str:
    """What the account's interpreter prints (``-v``) importing tool_b (and tool_a) from FOLDER."""
    proc = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/usr/bin/python3", "-v", "-c"]
        + [f"import sys; sys.path.insert(0, {str(folder)!r}); import tool_b; print(tool_b.VALUE)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr


def test_the_account_loads_roots_compiled_modules(tools):
    assert found(tools) is None
    assert compiled(tools) == {"compiled": [f"tool_a.{TAG}.pyc", f"tool_b.{TAG}.pyc"], "displaced": None}
    report = found(tools)
    assert report["problems"] == {} and report["tag"] == TAG
    assert {k: report["dir"][k] for k in ("type", "user", "group", "mode")} == {
        "type": "directory",
        "user": "root",
        "group": "root",
        "mode": "0755",
    }
    printed = account_imports(tools)
    assert f"{tools}/__pycache__/tool_a.{TAG}.pyc matches {tools}/tool_a.py" in printed
    assert f"{tools}/__pycache__/tool_b.{TAG}.pyc matches {tools}/tool_b.py" in printed
    assert "ab" in printed.splitlines()


def _planted(path, mode):
    path.write_bytes(b"x")
    path.chmod(mode)


def _timestamp_pyc(cache, folder):
    py_compile.compile(str(folder / "tool_a.py"), str(cache / f"tool_a.{TAG}.pyc"))


PLANTS = [  # (what is planted in __pycache__ after a compile, the problem the snapshot names)
    (
        lambda c, f: _planted(c / "evil.pyc", 0o755),
        {"evil.pyc": "root:root 0755, 1 links"},
    ),
    (
        lambda c, f: _planted(c / f"evil.{TAG}.pyc", 0o644),
        {f"evil.{TAG}.pyc": "not a compiled module of a tool"},
    ),
    (lambda c, f: (c / f"tool_a.{TAG}.pyc").chmod(0o666), {f"tool_a.{TAG}.pyc": "root:root 0666, 1 links"}),
    (
        lambda c, f: os.chown(c / f"tool_a.{TAG}.pyc", 65534, 65534),
        {f"tool_a.{TAG}.pyc": "nobody:nogroup 0644, 1 links"},
    ),
    (lambda c, f: os.link(c / f"tool_a.{TAG}.pyc", f / "hard"), {f"tool_a.{TAG}.pyc": "root:root 0644, 2 links"}),
    (
        lambda c, f: (c / f"tool_a.{TAG}.pyc").unlink()
        or (c / f"tool_a.{TAG}.pyc").symlink_to(c / f"tool_b.{TAG}.pyc"),
        {f"tool_a.{TAG}.pyc": "a symlink, not a compiled module"},
    ),
    (
        lambda c, f: (c / f"tool_a.{TAG}.pyc").unlink() or (c / f"tool_a.{TAG}.pyc").mkdir(),
        {f"tool_a.{TAG}.pyc": "a directory, not a compiled module"},
    ),
    (
        lambda c, f: _timestamp_pyc(c, f),
        {f"tool_a.{TAG}.pyc": "not checked against its source at import (a timestamp or unchecked pyc)"},
    ),
    (lambda c, f: (f / "tool_a.py").write_text("VALUE = 'A'\n"), {f"tool_a.{TAG}.pyc": "compiled from another source"}),
    (lambda c, f: (c / f"tool_b.{TAG}.pyc").unlink(), {f"tool_b.{TAG}.pyc": "missing"}),
    (
        lambda c, f: _planted(c / "tool_a.cpython-30.pyc", 0o644),
        {"tool_a.cpython-30.pyc": "compiled by another interpreter"},
    ),
]
STALE_ONLY = {"compiled from another source", "missing", "compiled by another interpreter"}


@pytest.mark.parametrize("plant, problems", PLANTS)
def test_anything_but_roots_current_compiled_modules_is_named_and_replaced(tools, plant, problems):
    compiled(tools)
    cache = tools / "__pycache__"
    plant(cache, tools)
    assert found(tools)["problems"] == problems
    out = compiled(tools)
    assert found(tools)["problems"] == {}
    displaced = sorted(p.name for p in tools.iterdir() if ".displaced-" in p.name)
    if set(problems.values()) <= STALE_ONLY:  # root's own stale cache: replaced, nothing kept
        assert out["displaced"] is None and displaced == []
    else:  # anything else is evidence: the old folder kept beside, whole
        assert out["displaced"] == f"{tools}/{displaced[0]}" and len(displaced) == 1
        assert sorted(os.listdir(tools / displaced[0])) == sorted(set(os.listdir(cache)) | set(problems))
    printed = account_imports(tools)
    assert (
        f"{tools}/__pycache__/tool_a.{TAG}.pyc matches {tools}/tool_a.py" in printed
    )  # root's, compiled from the source as it is
    assert ("Ab" if "'A'" in (tools / "tool_a.py").read_text() else "ab") in printed.splitlines()


def test_a_folder_that_is_not_roots_is_named(tools):
    (tools / "__pycache__").mkdir(mode=0o777)
    (tools / "__pycache__").chmod(0o777)
    report = found(tools)
    assert report["dir"]["mode"] == "0777"
    assert report["problems"] == {f"tool_a.{TAG}.pyc": "missing", f"tool_b.{TAG}.pyc": "missing"}


def test_the_snapshot_asks_for_the_tools_modules():
    """The snapshot command reads root's bin/__pycache__ against the modules of files/bin (the tools' imports)."""
    from litellm_runner.pyinfra_ext.snapshot import HostSnapshot, tool_modules

    assert "litellm_migrations.py" in tool_modules() and "litellm_envfile.py" in tool_modules()
    assert "litellm-dbctl" not in tool_modules()
    command = HostSnapshot().command([], "u", "g", [], "/v", "/l", "root", False, [], [], "/usr/bin/python3", [])
    args = hostside_args(shlex.split(command)[-1])
    assert args["bytecode"] == {"folder": layout.BIN, "modules": tool_modules()}


# -- the operation: the snapshot's answer in, a compile or a noop out -------------------------------------------------
BIN = "/b"
SOURCE = "VALUE = 1\n"
ROOTS = {"type": "directory", "user": "root", "group": "root", "mode": "0755"}
SHIPPED = {"type": "file", "sha256": hashlib.sha256(SOURCE.encode()).hexdigest(), "user": "root", "mode": "0755"}
CASES = [  # (id, the snapshot's bytecode, the host's copy of the module, compiled?, drift's "before")
    ("clean", {"dir": ROOTS, "problems": {}}, SHIPPED, False, None),
    ("none yet", None, SHIPPED, True, {f"{BIN}/__pycache__": "missing"}),
    (
        "foreign",
        {"dir": ROOTS, "problems": {"x.pyc": "not a compiled module of a tool"}},
        SHIPPED,
        True,
        {f"{BIN}/__pycache__": ROOTS, "files": {"x.pyc": "not a compiled module of a tool"}},
    ),
    (
        "the folder's mode",
        {"dir": {**ROOTS, "mode": "0777"}, "problems": {}},
        SHIPPED,
        True,
        {f"{BIN}/__pycache__": {**ROOTS, "mode": "0777"}, "files": {}},
    ),
    (
        "a link",
        {"dir": {"type": "symlink", "user": "root", "group": "root", "mode": "0777"}, "problems": {}},
        SHIPPED,
        True,
        {f"{BIN}/__pycache__": {"type": "symlink", "user": "root", "group": "root", "mode": "0777"}, "files": {}},
    ),
    ("this run writes the module", {"dir": ROOTS, "problems": {}}, {**SHIPPED, "sha256": "0" * 64}, True, None),
    ("no module on the host yet", {"dir": ROOTS, "problems": {}}, None, True, None),
]


@pytest.mark.parametrize("bytecode, module, compiles, before", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_operation_compiles_only_what_is_not_roots_current_form(bytecode, module, compiles, before):
    from litellm_runner.pyinfra_ext.operations import tools_bytecode
    from litellm_runner.pyinfra_ext.snapshot import HostSnapshot
    from tests.unit import fakehost

    facts = {HostSnapshot: fakehost.snap(paths={f"{BIN}/m.py": module}, bytecode=bytecode)}
    commands, noops = fakehost.run_op(tools_bytecode, facts, folder=BIN, modules={"m.py": SOURCE})
    assert bool(commands) == compiles and bool(noops) != compiles
    if compiles:
        assert commands == ['hostside compile_tools {"folder": "/b", "modules": ["m.py"]}']  # fakehost's rendering
    else:
        assert noops == [f"{BIN}/__pycache__: root's compiled form of m.py, each checked against its source"]
    assert [d["before"] for d in fakehost.last_drift] == ([before] if before else [])
