"""The settings spec is the one source: its defaults pass its checks, and the constants of the
gates and the lock agree with it."""

import json
import re

import pytest

from litellm_runner import render
from litellm_runner.gates import capacity, lint
from litellm_runner.pyinfra_ext import lock
from litellm_runner.schema import validate
from litellm_runner.settings import BY_NAME, DEFAULTS, REMOVED, SPEC, UNSET
from tests.unit.group_data import defaults


def test_defaults_are_valid():
    assert validate(DEFAULTS) == []


@pytest.mark.parametrize("setting", [s for s in SPEC if s.check and s.default is not UNSET], ids=lambda s: s.name)
def test_each_default_passes_its_own_check(setting):
    assert setting.check(setting.default) is True


def _with(name, value) -> dict:
    """The defaults with NAME (a setting, or section.key) set to VALUE."""
    data = defaults()
    if "." in name:
        section, key = name.split(".", 1)
        data[section] = {**data[section], key: value}
    else:
        data[name] = value
    return data


class Odd:
    """A value no setting accepts."""

    def __repr__(self):
        return "Odd()"


@pytest.mark.parametrize("setting", SPEC, ids=lambda s: s.name)
def test_every_setting_is_checked(setting):
    errors = validate(_with(setting.name, Odd()))
    named = setting.name.replace(".", "\\.")
    assert any(re.search(rf"{named}(\[[^]]*\])?(\.\S+)? = ", e) for e in errors), errors


@pytest.mark.parametrize("name", sorted(REMOVED))
def test_removed_settings_are_refused_by_name(name):
    assert validate(defaults(**{name: "x"})) == [f"group_data/all.py: {name} = 'x': expected {REMOVED[name]}"]
    assert name not in DEFAULTS and name not in BY_NAME


@pytest.mark.parametrize(
    "constant, setting",
    [
        (capacity.OTHER_CLIENTS, "litellm_db_other_clients"),
        (capacity.RESERVE, "litellm_db_reserve_connections"),
        (lock.DEFAULT_WAIT, "litellm_lock_wait"),
        (lock.DEFAULT_STALE_AFTER, "litellm_lock_stale_after"),
        (list(lint.PLACEHOLDERS), "litellm_env_placeholders"),
    ],
)
def test_constants_are_the_spec_defaults(constant, setting):
    assert constant == BY_NAME[setting].default


@pytest.mark.parametrize("value", lint.PLACEHOLDERS)
def test_lint_and_env_file_refuse_the_same_placeholders(value):
    """A value the env file writes empty is one the lint calls a placeholder (one list, two uses)."""
    from litellm_runner.secrets import is_placeholder

    assert is_placeholder(value, DEFAULTS["litellm_env_placeholders"])
    assert [f.id for f in lint.lint_config({}, {"VLLM_API_KEY": value})] == ["LINT-01"]


def test_the_proxy_port_is_litellm_port_only():
    data = defaults(litellm_port=4100)
    assert "port" not in data["litellm_services"]["litellm"]
    assert "--port 4100" in render.render_units(data)["litellm.service"]
    assert 4100 in json.loads(render.render_compliance(data))["ports"]
    assert "http://127.0.0.1:4100" in render.render_units(data)["litellm-model-inventory.service"]


def test_control_ids_and_descriptions():
    for s in SPEC:
        assert re.fullmatch(r"[a-z]+-\d\d|sandbox", s.control), s
        assert s.description and s.expected, s
