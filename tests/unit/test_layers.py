"""Nothing imports or uses a private name (``_name``) of another of the project's modules.

A name with a leading underscore is its module's own business: another module that needs it gets a public
name with a docstring, or the code moves. The import layers themselves are import-linter's contracts in
pyproject.toml (``make lint`` runs ``lint-imports``); this scan covers what import-linter cannot see.
"""

from __future__ import annotations

import ast
import os
import pathlib

from tests.unit.group_data import REPO

PROJECT = ("litellm_runner", "tasks", "deploy", "inventory")  # the project's own top-level modules and packages
LINKS = {"tasks", "files", "templates"}  # litellm_runner/<link> -> the top-level folder (scanned there, once)


def sources() -> list[pathlib.Path]:
    """Every Python file of litellm_runner/ (not through its links), tasks/, deploy.py and inventory.py."""
    found = [REPO / "deploy.py", REPO / "inventory.py"]
    for top in ("litellm_runner", "tasks"):
        for folder, dirs, files in os.walk(REPO / top):  # does not follow the links
            dirs[:] = [d for d in dirs if not (top == "litellm_runner" and d in LINKS) and d != "__pycache__"]
            found += [pathlib.Path(folder) / f for f in files if f.endswith(".py")]
    return sorted(found)


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def ours(module: str) -> bool:
    return module.split(".")[0] in PROJECT


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def is_module(name: str) -> bool:
    """Whether the dotted NAME is one of the project's modules or packages (a file or folder here)."""
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def violations(path: pathlib.Path, text: str | None = None) -> list[str]:
    """``file:line: what`` for each import or use of another project module's private name in PATH (or TEXT)."""
    here = module_name(path)
    tree = ast.parse(path.read_text() if text is None else text, str(path))
    modules: dict[str, str] = {}  # local name -> the project module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if ours(alias.name) and alias.asname:  # ``import a.b`` binds ``a``: its uses are not followed
                    modules[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and ours(node.module):
            for alias in node.names:
                if private(alias.name):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: imports {node.module}.{alias.name}")
                if is_module(f"{node.module}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and modules[node.value.id] != here
            and private(node.attr)
        ):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: uses {modules[node.value.id]}.{node.attr}")
    return found


def test_the_scan_sees_every_module():
    names = {module_name(p) for p in sources()}
    assert {"deploy", "inventory", "tasks.units", "litellm_runner.gates.units", "litellm_runner.cli.main"} <= names
    assert not any(n.startswith(("litellm_runner.tasks", "litellm_runner.files")) for n in names)


def test_the_scan_finds_a_private_import_and_a_private_use():
    text = (
        "from litellm_runner.pyinfra_ext.operations import _run\n"
        "from litellm_runner.pyinfra_ext import database\n"
        "database._plans\n"
        "import litellm_runner.gates.preflight as pre\n"
        "pre._lint\n"
    )
    assert [v.split(": ", 1)[1] for v in violations(REPO / "tasks" / "users.py", text)] == [
        "imports litellm_runner.pyinfra_ext.operations._run",
        "uses litellm_runner.pyinfra_ext.database._plans",
        "uses litellm_runner.gates.preflight._lint",
    ]


def test_no_module_imports_or_uses_another_modules_private_name():
    found = [v for path in sources() for v in violations(path)]
    assert found == [], "make the name public (with a docstring) or move the code:\n  " + "\n  ".join(found)


# the two places that stand in pyinfra's command line before any host is contacted (docs/architecture.md)
EXITS_ALLOWED = {"inventory.py", "litellm_runner/validate.py"}


def exits(path: pathlib.Path) -> list[str]:
    """``file:line`` of each ``sys.exit(...)`` or ``raise SystemExit`` in PATH outside its ``__main__`` block."""
    tree = ast.parse(path.read_text(), str(path))
    main_blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test)
    ]
    inside = {id(n) for block in main_blocks for n in ast.walk(block)}
    found = []
    for node in ast.walk(tree):
        call = node.func if isinstance(node, ast.Call) else None
        exiting = (isinstance(call, ast.Attribute) and ast.unparse(call) == "sys.exit") or (
            isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc)
        )
        if exiting and id(node) not in inside:
            found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_only_the_command_line_exits():
    """Below cli/, code refuses with GateError, DeployError or OperationError; a program's entry point exits."""
    found = [
        e
        for path in sources()
        if not module_name(path).startswith("litellm_runner.cli")
        and path.name != "__main__.py"  # a package's entry point
        and str(path.relative_to(REPO)) not in EXITS_ALLOWED
        for e in exits(path)
    ]
    assert found == [], "raise GateError, DeployError or OperationError instead:\n  " + "\n  ".join(found)
