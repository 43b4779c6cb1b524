"""Unit hardening gate: the real systemd-analyze security --offline --user over the rendered units."""

import os
import shutil
import subprocess

import pytest

from litellm_runner.gates import GateError
from litellm_runner.gates.units import check_host, check_units, exposure, parse_host
from litellm_runner.pyinfra_ext.facts import HostExposure
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
    with pytest.raises(GateError) as err:
        check_units({"bare.service": bare, **render_units(defaults())}, THRESHOLD)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"unit hardening gate: exposure above {THRESHOLD}")
    assert len(lines) == 2 and lines[1].startswith("  bare.service: ")
    assert float(lines[1].split(": ")[1]) > THRESHOLD


# --- scored on the host, by the host's own systemd (HostExposure's script, run here by a real sh) ---


def _host_lines(units, path=None) -> list[str]:
    env = {**os.environ, **({"PATH": path} if path else {})}
    proc = subprocess.run(
        ["sh", "-c", HostExposure().command(units)], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _local_systemd() -> int:
    out = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True, timeout=30).stdout
    return int(out.split()[1])


def test_host_script_scores_as_the_host_systemd_does():
    """The script's scores are systemd-analyze's on the machine it runs on, and it names that systemd."""
    units = render_units(defaults())
    lines = _host_lines(units)
    assert parse_host(sorted(n for n in units if n.endswith(".service")), lines) == (_local_systemd(), exposure(units))
    assert check_host("h1", lines, units, THRESHOLD) == exposure(units)


def test_host_refusal_names_the_host_and_its_systemd():
    bare = {"bare.service": "[Unit]\nDescription=bare\n\n[Service]\nExecStart=/bin/true\n"}
    with pytest.raises(GateError) as err:
        check_host("h1", _host_lines(bare), bare, THRESHOLD)
    first, second = str(err.value).splitlines()
    assert first == (
        f"unit hardening gate: exposure above {THRESHOLD} "
        f"(host h1, systemd {_local_systemd()}: systemd-analyze security --offline --user):"
    )
    assert second.startswith("  bare.service: ") and float(second.split(": ")[1]) > THRESHOLD


def test_host_without_systemd_analyze_is_refused_not_guessed(tmp_path):
    """A host whose systemd-analyze is missing: every unit unscored, the refusal says so (no score invented)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "mktemp", "mkdir", "base64", "head", "timeout", "rm"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    units = render_units(defaults())
    with pytest.raises(GateError) as err:
        check_host("h1", _host_lines(units, path=str(bin_dir)), units, THRESHOLD)
    assert str(err.value).startswith(
        "host h1: systemd-analyze security (systemd unknown, exit 127) scored no exposure for litellm-backup.service"
    )


def test_unit_text_never_reaches_the_host_shell(tmp_path):
    """Unit texts with quotes, $(...), backquotes and heredoc markers are data: scored, nothing executed."""
    marker = tmp_path / "ran"
    text = (
        f"[Unit]\nDescription=$(touch {marker}) `touch {marker}` '\"; touch {marker}\nEOF\n"
        "[Service]\nExecStart=/bin/true\n"
    )
    scores = check_host("h1", _host_lines({"odd.service": text}), {"odd.service": text}, 10.0)
    assert list(scores) == ["odd.service"] and not marker.exists()
