"""Where the runner finds what it ships and where it keeps the operator's project state.

The shipped folders ``tasks/``, ``files/`` and ``templates/`` are top-level folders of the
repository; the wheel's build copies them into the package (pyproject.toml, ``force-include``).
``shipped`` finds them in either place, so the same code works from a clone and from an installed
wheel, and the tasks import as ``litellm_runner.tasks`` in both (``litellm_runner/__init__.py``).
"""

import importlib.resources
import os
import pathlib

PACKAGE = pathlib.Path(str(importlib.resources.files("litellm_runner")))
FOLDERS = ("tasks", "files", "templates")  # shipped beside the package in a clone, inside it in a wheel
DATA = PACKAGE if (PACKAGE / "tasks" / "__init__.py").is_file() else PACKAGE.parent


def shipped(*parts: str) -> pathlib.Path:
    """The path of a file or folder shipped with the runner: one of the package (``shipped("envfile.py")``)
    or of its shipped folders (``shipped("files", "bin")``, ``shipped("files/locks")``)."""
    path = pathlib.PurePath(*parts)
    return (DATA if path.parts[:1] and path.parts[0] in FOLDERS else PACKAGE) / path


def host_tools() -> dict[str, pathlib.Path]:
    """The host tools the deploy ships to <root>/bin, name -> source: every file of files/bin, and this
    package's env-file codec as ``litellm_envfile.py`` (the tools import it from beside them)."""
    tools = {p.name: p for p in shipped("files", "bin").iterdir() if p.is_file() and not p.name.startswith(".")}
    return dict(sorted({**tools, "litellm_envfile.py": shipped("envfile.py")}.items()))


def project(*parts: str) -> pathlib.Path:
    """A path in the operator's pyinfra project: ``LITELLM_PROJECT`` or the working directory
    (pyinfra is run from the folder holding the inventory and group_data/)."""
    return pathlib.Path(os.environ.get("LITELLM_PROJECT") or os.getcwd()).joinpath(*parts)


def locate(path: str) -> pathlib.Path:
    """A data file named by a setting (e.g. ``litellm_venv_requirements``): absolute as given,
    else the project's own copy when it has one, else the shipped one."""
    p = pathlib.Path(path)
    if p.is_absolute():
        return p
    return project(path) if project(path).exists() else shipped(path)
