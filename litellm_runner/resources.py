"""Where the runner finds what it ships and where it keeps the operator's project state.

Shipped data (``files/``, ``templates/``, ``tasks/``) is read through importlib.resources,
so the same code works from a clone (where ``litellm_runner/files`` and friends are links to
the top-level folders) and from an installed wheel (where the build copies them into the package).
"""

import importlib.resources
import os
import pathlib


def shipped(*parts: str) -> pathlib.Path:
    """The path of a file or folder shipped in the package, e.g. ``shipped("files", "bin")``."""
    return pathlib.Path(str(importlib.resources.files("litellm_runner").joinpath(*parts)))


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
