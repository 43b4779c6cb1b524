"""Unit hardening gate: the real systemd-analyze security --offline --user over the rendered units."""

import pytest

from litellm_runner.gates.units import UnitGateError, check_units
from litellm_runner.render import render_units
from tests.unit.group_data import defaults

THRESHOLD = 6.6  # what every shipped service scores today (systemd 252); lower it as hardening improves


def test_shipped_threshold_is_the_checked_one():
    """group_data's litellm_unit_exposure_max (what the deploy enforces) is the threshold tested here."""
    assert defaults()["litellm_unit_exposure_max"] == THRESHOLD


def test_shipped_units_meet_the_threshold():
    units = render_units(defaults())
    scores = check_units(units, THRESHOLD)
    assert set(scores) == {n for n in units if n.endswith(".service")}
    assert all(0 < s <= THRESHOLD for s in scores.values()), scores


def test_unhardened_unit_is_refused_with_its_score():
    bare = "[Unit]\nDescription=bare\n\n[Service]\nExecStart=/bin/true\n"
    with pytest.raises(UnitGateError) as err:
        check_units({"bare.service": bare, **render_units(defaults())}, THRESHOLD)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"unit hardening gate: exposure above {THRESHOLD}")
    assert len(lines) == 2 and lines[1].startswith("  bare.service: ")
    assert float(lines[1].split(": ")[1]) > THRESHOLD
