"""The LiteLLM host runner: a packaged pyinfra deploy and its tools.

    from litellm_runner import deploy_litellm   # in a pyinfra project's deploy.py

The deploy is imported on first use: ``import litellm_runner`` alone loads nothing of pyinfra
(the sandbox manager and the unit tests import the package).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litellm_runner.deploy import deploy_litellm

__all__ = ["deploy_litellm"]


def __getattr__(name: str) -> Any:
    if name == "deploy_litellm":
        from litellm_runner.deploy import deploy_litellm

        return deploy_litellm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
