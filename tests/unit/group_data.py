"""The shipped group_data defaults as a dict, as pyinfra would merge them."""

import pathlib
import runpy

REPO = pathlib.Path(__file__).resolve().parents[2]


def defaults(**overrides) -> dict:
    data = {k: v for k, v in runpy.run_path(str(REPO / "group_data" / "all.py")).items() if not k.startswith("__")}
    data.update(overrides)
    return data
