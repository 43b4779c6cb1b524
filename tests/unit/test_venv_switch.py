"""The venv built beside the running one (docs/venv-switch.md): the link the units name, switched by rename.

The host-side actions run for real on this machine (root's /usr/bin/python3, isolated, the exact command the
runner sends) on a folder laid out as ``layout.CODE``; the operations run as data (facts in, commands or noop
reason out).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from litellm_runner import layout, render
from litellm_runner.gates.cve import locked_versions
from litellm_runner.pyinfra_ext.facts import hostside
from litellm_runner.pyinfra_ext.operations import venv_prune, venv_requirements, venv_switch
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot
from tests.unit import fakehost
from tests.unit.fakehost import Meta, run_op, snap
from tests.unit.group_data import defaults

NOBODY = 65534


def run(action: str, **args):
    proc = subprocess.run(["sh", "-c", hostside(action, args)], capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout) if proc.returncode == 0 else proc.stderr


def venv(code, name: str, version: str) -> None:
    """A venv as the snapshot reads it: one distribution's METADATA and RECORD."""
    info = code / "venvs" / name / "lib" / "python3.11" / "site-packages" / f"litellm-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: litellm\nVersion: {version}\n")
    (info / "RECORD").write_text("")


@pytest.fixture
def code(tmp_path):
    """``layout.CODE`` in small: the venvs beside each other, root's."""
    (tmp_path / "venvs").mkdir()
    venv(tmp_path, "aaaa", "1.101.6")
    venv(tmp_path, "bbbb", "1.102.4")
    return tmp_path


# the host-side snapshot asked about the venv link only (the rest empty)
SNAP_ARGS = {"paths": [], "user": "root", "units": [], "venv": "/nonexistent"}


def link_state(code):
    return json.loads(
        subprocess.run(
            ["sh", "-c", hostside("snapshot", SNAP_ARGS | {"venv_link": f"{code}/venv"})],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.splitlines()[-1]
    )["venv_link"]


def test_a_real_venv_folder_is_moved_aside_and_the_link_switched_by_rename_keeping_the_previous(code):
    """The layout before versioned venvs: a real folder at the link's path. Its files keep their inodes (a
    running proxy keeps what it has open and mapped), it becomes the previous venv; a rollback switches back."""
    old = code / "venv" / "lib"
    old.mkdir(parents=True)
    (old / "module.py").write_text("running\n")
    inode = (old / "module.py").stat().st_ino
    assert run("switch", link=f"{code}/venv", target="venvs/aaaa")[0] == 0
    moved = os.readlink(code / "venv-previous")
    assert moved.startswith("venvs/unversioned-") and (code / moved / "lib" / "module.py").stat().st_ino == inode
    assert os.readlink(code / "venv") == "venvs/aaaa"
    found = link_state(code)
    assert (found["type"], found["user"], found["target"]) == ("symlink", "root", "venvs/aaaa")
    assert found["venv"] == f"{code}/venvs/aaaa" and found["packages"] == {"litellm": "1.101.6"}

    assert run("switch", link=f"{code}/venv", target="venvs/bbbb")[1] == {"from": "venvs/aaaa", "to": "venvs/bbbb"}
    assert (os.readlink(code / "venv"), os.readlink(code / "venv-previous")) == ("venvs/bbbb", "venvs/aaaa")
    assert run("switch", link=f"{code}/venv")[1] == {"from": "venvs/bbbb", "to": "venvs/aaaa"}  # the rollback
    assert os.readlink(code / "venv") == "venvs/aaaa"
    assert not [n for n in os.listdir(code) if "tmp-litellm-runner" in n]


@pytest.mark.parametrize(
    "plant, target",
    [
        ("account-owned", "venvs/aaaa"),  # the right target, but a link another user owns
        ("elsewhere", "/etc"),  # root's link to something no venv of venvs/
        ("parent", "venvs/../venvs/aaaa"),
    ],
)
def test_a_link_not_roots_or_to_anything_but_a_venv_of_venvs_leads_nowhere(code, plant, target):
    os.symlink(target, code / "venv")
    if plant == "account-owned":
        os.chown(code / "venv", NOBODY, NOBODY, follow_symlinks=False)
    found = link_state(code)
    assert found["type"] == "symlink" and found["target"] == target
    assert found["venv"] is None and found["packages"] is None  # never followed, nothing of it read
    assert (found["user"] == "root") == (plant != "account-owned")


def test_switch_refuses_a_target_that_is_no_folder_of_roots(code):
    os.symlink("venvs/aaaa", code / "venv")
    (code / "venvs" / "planted").symlink_to("/etc")
    for target in ("venvs/planted", "venvs/missing", "/etc", "venvs/../x"):
        code_, err = run("switch", link=f"{code}/venv", target=target)
        assert code_ == 1 and "refused" in err, (target, err)
    assert os.readlink(code / "venv") == "venvs/aaaa"


def test_prune_keeps_the_running_the_previous_the_wanted_and_the_displaced_venvs(code):
    for name in ("cccc", "dddd", "x.displaced-20261205T000000000000000"):
        venv(code, name, "1.0")
    os.symlink("venvs/bbbb", code / "venv")
    os.symlink("venvs/aaaa", code / "venv-previous")
    assert run("prune", link=f"{code}/venv", keep=["cccc"])[1] == {"removed": ["dddd"]}
    assert sorted(os.listdir(code / "venvs")) == ["aaaa", "bbbb", "cccc", "x.displaced-20261205T000000000000000"]


# -- the operations, as data ---------------------------------------------------------------------------
class Step(Meta):
    """An earlier operation's OperationMeta that ran, changed or not, failed or not."""

    def __init__(self, changed=False, error=False):
        super().__init__(changed)
        self.error = error

    def did_error(self):
        return self.error

    def is_complete(self):
        return True


LINK = layout.VENV
NEW = f"{layout.VENVS}/bbbb"
OK = {"type": "symlink", "user": "root", "target": "venvs/bbbb", "venv": NEW, "previous": "venvs/aaaa"}
SWITCH = f'hostside switch {{"link": "{LINK}", "target": "venvs/bbbb"}}'


@pytest.mark.parametrize(
    "found, held, expected",
    [
        (OK, False, []),
        ({**OK, "target": "venvs/aaaa", "venv": f"{layout.VENVS}/aaaa"}, False, [SWITCH]),  # a new lock's venv
        ({**OK, "target": "venvs/aaaa", "venv": f"{layout.VENVS}/aaaa"}, True, []),  # the schema failed: held
        ({**OK, "user": "litellm"}, False, [SWITCH]),  # not root's: never "ok"
        ({**OK, "target": "/home/litellm/venv", "venv": None}, False, [SWITCH]),  # somewhere foreign
        ({"type": "directory", "user": "root", "target": None, "venv": LINK}, False, [SWITCH]),  # the old layout
        (None, False, [SWITCH]),  # a first install
    ],
)
def test_venv_switch(found, held, expected):
    commands, noops = run_op(
        venv_switch, {HostSnapshot: snap(venv_link=found)}, link=LINK, venv=NEW, hold_when=[Step(error=held)]
    )
    assert commands == expected
    drifted = [d for d in fakehost.last_drift if d["kind"] == "venv-link"]
    assert bool(drifted) == (found != OK)
    if held:
        assert noops == [f"{LINK}: switch to {NEW} held, an item it needs failed in this run (see its error above)"]


@pytest.mark.parametrize(
    "entries, switching, expected",
    [
        (["aaaa", "bbbb"], False, []),  # the running and the previous one
        (["aaaa", "bbbb", "cccc"], False, ["cccc"]),
        (["aaaa", "bbbb", "x.displaced-1"], False, []),
        (["aaaa", "bbbb", "eeee"], True, ["aaaa"]),  # after this run's switch to eeee, bbbb is the previous one
    ],
)
def test_venv_prune(entries, switching, expected):
    want = f"{layout.VENVS}/eeee" if switching else NEW
    found = {**OK, "entries": entries}
    commands, _ = run_op(
        venv_prune, {HostSnapshot: snap(venv_link=found)}, link=LINK, venv=want, switch=Step(changed=switching)
    )
    keep = want.rsplit("/", 1)[1]
    assert commands == ([f'hostside prune {{"keep": ["{keep}"], "link": "{LINK}"}}'] if expected else [])
    assert [d["before"] for d in fakehost.last_drift] == ([expected] if expected else [])


def test_a_new_lock_builds_its_venv_beside_the_running_one_and_reports_what_differs_from_it():
    lock = "litellm==1.102.4 --hash=sha256:00\nurllib3==2.8.0 --hash=sha256:00\n"
    commands, _ = run_op(
        venv_requirements,
        {HostSnapshot: snap(venv={"packages": None, "broken": {}, "foreign_count": 0})},
        venv=NEW,
        locked=locked_versions(lock),
        lock_path="/r/lock.txt",
        python="/usr/bin/python3",
        user="root",
        python_version="3.11",
        running={"venv": f"{layout.VENVS}/aaaa", "packages": {"litellm": "1.101.6", "urllib3": "2.8.0", "pip": "1"}},
    )
    assert commands[0].endswith(f"/usr/bin/python3 -m venv --clear {NEW}")
    assert commands[1].endswith("-r /r/lock.txt") and f"{NEW}/bin/pip install" in commands[1]
    assert not any(f"{layout.VENVS}/aaaa" in c for c in commands)  # the running venv is not touched
    packages = [(d["before"]["version"], d["after"]["version"]) for d in fakehost.last_drift if d["kind"] == "package"]
    assert packages == [("1.101.6", "1.102.4")]
    assert {"running": f"{layout.VENVS}/aaaa"} in [d["before"] for d in fakehost.last_drift if d["kind"] == "venv"]


def test_the_venvs_name_changes_with_the_lock_and_the_interpreter_only(tmp_path):
    pins = tmp_path / "reqs.txt"
    pins.write_text("litellm==1\n")
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "reqs.py3.11.txt").write_text("litellm==1 --hash=sha256:00\n")
    data = {**defaults(), "litellm_venv_requirements": str(pins)}
    first = render.venv_target(data)
    assert first.startswith(f"{layout.VENVS}/") and len(first.rsplit("/", 1)[1]) == 16
    assert render.venv_target(data) == first
    assert render.venv_target({**data, "litellm_python": "/usr/bin/python3.13"}) != first
    (tmp_path / "locks" / "reqs.py3.11.txt").write_text("litellm==2 --hash=sha256:00\n")
    render._venv_name.cache_clear()
    assert render.venv_target(data) != first
