"""A host's data when its group data sets nothing: the settings spec's defaults, as a dict."""

import copy
import pathlib

from litellm_runner.settings import DEFAULTS

REPO = pathlib.Path(__file__).resolve().parents[2]


def defaults(**overrides) -> dict:
    data = copy.deepcopy(DEFAULTS)
    data.update(overrides)
    return data
