"""The venv in the host snapshot: cheap by default (its path and dist-info), the RECORD check on demand (issue #22).

Each test builds a small root-owned venv (a distribution ``x`` whose RECORD is right) and runs the
snapshot through the exact command the runner sends (``facts.hostside``), as a host would.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys

import pytest

from litellm_runner.gates.cve import locked_versions
from litellm_runner.pyinfra_ext import snapshot
from litellm_runner.pyinfra_ext.operations import venv_requirements
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot
from tests.unit.fakehost import run_op, snap
from tests.unit.test_hostside import GID, UID, run

SITE = "lib/python3.11/site-packages"


def record_line(rel: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{len(data)}"


@pytest.fixture
def venv(tmp_path):
    """A root-owned venv holding ``x 1.0`` (x/__init__.py), its RECORD right, bin/python a link to /usr/bin/python3."""
    top = tmp_path / "venv"
    site = top / SITE
    (site / "x").mkdir(parents=True)
    (site / "x" / "__init__.py").write_bytes(b"a = 1\n")
    dist = site / "x-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: x\nVersion: 1.0\n\n")
    lines = [record_line("x/__init__.py", b"a = 1\n"), "x-1.0.dist-info/RECORD,,"]
    (dist / "RECORD").write_text("\n".join(lines) + "\n")
    (top / "bin").mkdir()
    os.symlink("/usr/bin/python3", top / "bin" / "python")
    (top / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n")
    for path in (tmp_path, top, top / "bin", top / "lib", top / "lib" / "python3.11", site):
        path.chmod(0o755)
    return top


def state(venv, integrity: bool = False) -> dict:
    code, doc = run("snapshot", paths=[], user="root", units=[], venv=str(venv), venv_integrity=integrity)
    assert code == 0, doc
    return doc["venv"]


def test_a_sound_venv_is_read_without_the_walk_and_checked_with_it(venv):
    cheap = state(venv)
    assert cheap["packages"] == {"x": "1.0"} and cheap["python"] == "/usr/bin/python3" and cheap["exists"]
    assert (cheap["broken"], cheap["foreign_count"], cheap["writable_count"], cheap["integrity"]) == ({}, 0, 0, None)
    full = state(venv, integrity=True)
    assert (full["broken"], full["foreign_count"], full["writable_count"]) == ({}, 0, 0)
    assert full["integrity"]["files"] == 1 and full["integrity"]["bytes"] == 6
    assert full["integrity"]["cpu_s"] >= 0 and full["integrity"]["wall_s"] >= 0


def test_a_file_edited_in_place_is_found_only_by_the_record_check(venv):
    (venv / SITE / "x" / "__init__.py").write_bytes(b"a = 2\n")  # same size: only its sha256 tells
    assert state(venv)["broken"] == {}
    assert state(venv, integrity=True)["broken"] == {
        "x": f"{SITE}/x/__init__.py: sha256 is not the one its RECORD says"
    }


def test_a_dist_info_without_record_is_half_installed_in_the_cheap_form_too(venv):
    (venv / SITE / "x-1.0.dist-info" / "RECORD").unlink()
    assert state(venv)["broken"] == {"x": f"{SITE}/x-1.0.dist-info: no METADATA or RECORD"}


def test_what_the_kernels_protection_rests_on_is_checked_cheaply_then_given_back(venv):
    (venv / SITE).chmod(0o775)  # where a .pth file would run in every interpreter
    os.chown(venv / "bin", UID, GID)  # the account could put its own python there
    (venv / SITE / "x" / "__init__.py").chmod(0o666)  # below: only the RECORD check walks that far
    cheap = state(venv)
    assert cheap["writable"] == [f"{venv}/{SITE}"] and cheap["foreign"] == [f"{venv}/bin"]
    full = state(venv, integrity=True)
    assert f"{venv}/{SITE}/x/__init__.py" in full["writable"] and full["writable_count"] == 2

    code, out = run("adopt", path=str(venv), user="root", group="root")
    assert code == 0 and out["adopted"] == 3, out
    after = state(venv, integrity=True)
    assert (after["foreign_count"], after["writable_count"], after["broken"]) == (0, 0, {})
    assert (venv / SITE / "x" / "__init__.py").stat().st_mode & 0o777 == 0o644


def test_a_parent_of_the_venv_anyone_may_write_is_named(venv):
    venv.parent.chmod(0o777)  # not sticky: the account could rename the venv away and put its own in place
    try:
        assert state(venv)["writable"] == [str(venv.parent)]
    finally:
        venv.parent.chmod(0o755)


LOCK = "x==1.0 --hash=sha256:" + "0" * 64 + "\n"
SOUND = {
    "packages": {"x": "1.0", "pip": "24.0"},
    "python": "/usr/bin/python3",
    "exists": True,
    "home": "/usr/bin",
    "version": "3.11.2",
    "foreign": [],
    "foreign_count": 0,
    "writable": [],
    "writable_count": 0,
    "broken": {},
}


def noop_of(found: dict) -> list[str]:
    commands, noops = run_op(
        venv_requirements,
        {HostSnapshot: snap(venv=found)},
        venv="/v",
        locked=locked_versions(LOCK),
        lock_path="/r/lock.txt",
        python="/usr/bin/python3",
        user="root",
        python_version="3.11",
    )
    assert commands == []
    return noops


def test_the_noop_says_what_the_record_check_cost_or_that_it_did_not_run():
    cost = {"files": 40123, "bytes": 731_000_000, "cpu_s": 2.41, "wall_s": 3.0}
    assert noop_of({**SOUND, "integrity": cost}) == [
        "/v: equals its lock; 40123 files (731 MB) match their RECORD hashes (2.41 s of the host's CPU)"
    ]
    assert noop_of({**SOUND, "integrity": None}) == [
        "/v: equals its lock (RECORD hashes not compared: litellm_venv_integrity)"
    ]


class Data:
    def __init__(self, mode):
        self.litellm_venv_integrity = mode


@pytest.mark.parametrize(
    "mode, dry, integrity",
    [
        ("converge", False, True),
        ("converge", True, False),
        ("always", True, True),
        ("off", False, False),
    ],
)
def test_the_record_check_runs_when_the_setting_says(monkeypatch, mode, dry, integrity):
    monkeypatch.setattr(sys, "argv", ["pyinfra", "inventory.py", "deploy.py", *(["--dry"] if dry else [])])
    assert snapshot.venv_integrity(Data(mode)) is integrity
