"""The settings spec: its defaults are the repository's group_data defaults."""

from litellm_runner.settings import DEFAULTS
from tests.unit.group_data import defaults


def test_defaults_are_group_data_all():
    assert DEFAULTS == defaults()
