"""The LiteLLM host runner: a packaged pyinfra deploy and its tools.

    from litellm_runner import deploy_litellm   # in a pyinfra project's deploy.py

The deploy is imported on first use: ``import litellm_runner`` alone loads nothing of pyinfra
(the sandbox manager and the unit tests import the package).

The tasks have one name, ``litellm_runner.tasks``: an installed wheel has them inside the package
(the build copies the top-level ``tasks/`` in), and in a clone this module loads the top-level
``tasks/`` under that name (``resources.DATA``: where the shipped folders are).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Any

from litellm_runner import resources

if resources.DATA != resources.PACKAGE:  # a clone: tasks/ sits beside the package
    _spec = importlib.util.spec_from_file_location(
        f"{__name__}.tasks",
        resources.DATA / "tasks" / "__init__.py",
        submodule_search_locations=[str(resources.DATA / "tasks")],
    )
    assert _spec and _spec.loader
    tasks = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # the attribute an import sets
    _spec.loader.exec_module(tasks)

if TYPE_CHECKING:
    from litellm_runner.deploy import deploy_litellm

__all__ = ["deploy_litellm"]


def __getattr__(name: str) -> Any:
    if name == "deploy_litellm":
        from litellm_runner.deploy import deploy_litellm

        return deploy_litellm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
