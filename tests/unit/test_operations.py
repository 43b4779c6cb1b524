"""Data-driven tests of the custom operations: facts in, commands or noop out."""

import pytest

from litellm_runner.facts import InstalledPackages, Linger, PathState, UserUnits
from litellm_runner.operations import (
    directory, file_attrs, linger, managed_file, sha256_text,
    user_unit, venv_requirements,
)
from pyinfra.facts.files import FileContents

from tests.unit import fakehost
from tests.unit.fakehost import Meta, run_op

DIR = {"type": "directory", "mode": "0750", "user": "litellm", "group": "litellm", "sha256": None}


@pytest.mark.parametrize("present, fact, expected", [
    (True, True, []),
    (True, False, ["loginctl enable-linger litellm"]),
    (False, True, ["loginctl disable-linger litellm"]),
    (False, False, []),
])
def test_linger(present, fact, expected):
    commands, noops = run_op(linger, {Linger: fact}, user="litellm", present=present)
    assert [c.split(" && ")[0] for c in commands] == expected
    assert bool(noops) == (not expected)


@pytest.mark.parametrize("fact, expected", [
    (DIR, []),
    ({**DIR, "mode": "0777"}, ["chmod 0750 /r/state"]),
    ({**DIR, "mode": "0775", "user": "root"}, ["chown litellm:litellm /r/state", "chmod 0750 /r/state"]),
    (None, ["(umask 077 && mkdir /r/state) && chown litellm:litellm /r/state && chmod 0750 /r/state"]),
])
def test_directory(fact, expected):
    commands, noops = run_op(directory, {PathState: fact}, path="/r/state", user="litellm",
                             group="litellm", mode="0750")
    assert commands == expected
    assert noops == ([] if expected else ["/r/state is a directory, 0750, litellm:litellm"])
    if fact and expected:  # the drift report says what differs, before -> after
        assert fakehost.last_drift == [{"id": "unknown operation", "kind": "directory",
                                        "before": {"mode": fact["mode"], "owner": f"{fact['user']}:litellm"},
                                        "after": {"mode": "0750", "owner": "litellm:litellm"}}]


def test_directory_refuses_a_file_in_the_way():
    with pytest.raises(ValueError, match="/r/state exists and is a file"):
        run_op(directory, {PathState: {**DIR, "type": "file"}}, path="/r/state", user="litellm",
               group="litellm", mode="0750")


FILE = {"type": "file", "mode": "0640", "user": "litellm", "group": "litellm", "sha256": sha256_text("a: 1\n")}


@pytest.mark.parametrize("fact, expected", [
    (FILE, []),
    ({**FILE, "mode": "0644"}, []),  # mode drift is file_attrs' business
    (None, ["install -m 0640 -o litellm -g litellm /dev/null /r/c.yaml.tmp-litellm-runner",
            "UPLOAD -> /r/c.yaml.tmp-litellm-runner", "mv -f /r/c.yaml.tmp-litellm-runner /r/c.yaml"]),
])
def test_managed_file(fact, expected):
    commands, _ = run_op(managed_file, {PathState: fact}, dest="/r/c.yaml", content="a: 1\n",
                         user="litellm", group="litellm", mode="0640")
    assert commands == expected


@pytest.mark.parametrize("fact, expected", [
    (FILE, []),
    ({**FILE, "mode": "0644"}, ["chmod 0640 /r/c.yaml"]),
    ({**FILE, "user": "root"}, ["chown litellm:litellm /r/c.yaml"]),
    (None, []),  # created with its mode by managed_file
])
def test_file_attrs(fact, expected):
    commands, noops = run_op(file_attrs, {PathState: fact}, path="/r/c.yaml", user="litellm",
                             group="litellm", mode="0640")
    assert commands == expected
    assert bool(noops) == (not expected)


def test_managed_file_changed_content_is_validated_backed_up_then_renamed():
    commands, _ = run_op(managed_file, {PathState: {**FILE, "sha256": "0" * 64}, FileContents: ["a: 1"]}, dest="/r/c.yaml",
                         content="a: 2\n", user="litellm", group="litellm", mode="0640",
                         validate="check {path}", backups_keep=3)
    assert commands[0].startswith("install -m 0640")  # mode set at creation
    assert commands[2] == "check /r/c.yaml.tmp-litellm-runner"  # before it replaces the live file
    assert "tail -n +4" in commands[3]  # keeps 3 backups
    assert commands[-1] == "mv -f /r/c.yaml.tmp-litellm-runner /r/c.yaml"
    # the drift report shows what differs as a unified diff
    assert fakehost.last_drift[0]["diff"][-2:] == ["-a: 1", "+a: 2"]


LOCK = "".join(f"{name}=={version} \\\n    --hash=sha256:{'ab' * 32}\n    # via litellm\n"
               for name, version in {"litellm": "1.102.4", "urllib3": "2.8.0"}.items())
INSTALL = ("runuser -u litellm -- /v/bin/pip install --no-input --disable-pip-version-check -q --require-hashes "
           "--no-deps --only-binary :all: -r /r/lock.txt")
UNINSTALL = "runuser -u litellm -- /v/bin/pip uninstall --no-input --disable-pip-version-check -y -q"
REBUILD = "runuser -u litellm -- /usr/bin/python3 -m venv --clear /v"
BASE = {"litellm": "1.102.4", "urllib3": "2.8.0", "pip": "23.0.1", "setuptools": "66.1.1"}


@pytest.mark.parametrize("case, installed, expected, drifted", [
    ("equal", BASE, [], []),
    ("other-version", {**BASE, "urllib3": "2.5.0"}, [INSTALL], [("urllib3", "2.5.0", "2.8.0")]),
    ("missing", {k: v for k, v in BASE.items() if k != "urllib3"}, [INSTALL], [("urllib3", None, "2.8.0")]),
    ("extras", {**BASE, "six": "1.17.0", "requests-toolbelt": "1.0"}, [f"{UNINSTALL} requests-toolbelt six"],
     [("requests-toolbelt", "1.0", None), ("six", "1.17.0", None)]),
    ("extra-and-other-version", {**BASE, "six": "1.17.0", "litellm": "1.82.7"}, [f"{UNINSTALL} six", INSTALL],
     [("litellm", "1.82.7", "1.102.4"), ("six", "1.17.0", None)]),
    ("no-venv", None, [REBUILD, INSTALL], [("litellm", None, "1.102.4"), ("urllib3", None, "2.8.0")]),
    ("no-pip", {"litellm": "1.102.4", "urllib3": "2.8.0"}, [REBUILD, INSTALL], []),  # cannot repair in place
    ("odd-name", {**BASE, "x;reboot": "1"}, [REBUILD, INSTALL], [("x;reboot", "1", None)]),
])
def test_venv_requirements(case, installed, expected, drifted):
    commands, noops = run_op(venv_requirements, {InstalledPackages: installed}, venv="/v", lock_text=LOCK,
                             lock_path="/r/lock.txt", python="/usr/bin/python3", user="litellm")
    assert commands == expected
    assert noops == ([] if expected else ["/v: equals its lock"])
    packages = [d for d in fakehost.last_drift if d["kind"] == "package"]
    assert [(d["before"]["name"], d["before"]["version"], d["after"]["version"]) for d in packages] == drifted
    assert any(d["kind"] == "venv" for d in fakehost.last_drift) == (case in ("no-pip", "odd-name"))


CTL = "systemctl --user --machine=litellm@.host"


@pytest.mark.parametrize("state, wanted, inputs_changed, expected", [
    ({"enabled": True, "active": True}, True, False, []),
    ({"enabled": True, "active": True}, True, True, [f"{CTL} restart litellm.service"]),
    ({}, True, True, [f"{CTL} enable litellm.service", f"{CTL} start litellm.service"]),  # no restart after start
    ({"enabled": False, "active": True}, True, False, [f"{CTL} enable litellm.service"]),
    ({"enabled": True, "active": True}, False, True, [f"{CTL} disable litellm.service", f"{CTL} stop litellm.service"]),
    ({"enabled": False, "active": False}, False, False, []),
])
def test_user_unit(state, wanted, inputs_changed, expected):
    commands, noops = run_op(user_unit, {UserUnits: {"litellm.service": state} if state else {}},
                             user="litellm", unit="litellm.service", enabled=wanted, running=wanted,
                             restart_when=[Meta(False), Meta(inputs_changed)])
    assert commands == expected
    assert bool(noops) == (not expected)


def test_user_units_fact_parses_systemctl_show():
    out = ["Id=litellm.service", "LoadState=loaded", "UnitFileState=enabled", "ActiveState=active",
           "NextElapseUSecRealtime=", "", "Id=litellm-backup.timer", "LoadState=loaded",
           "UnitFileState=disabled", "ActiveState=inactive", "NextElapseUSecRealtime=Tue 2026-11-24 02:07:00 UTC"]
    units = UserUnits().process(out)
    assert units["litellm.service"] == {"enabled": True, "active": True, "load": "loaded", "next_elapse": ""}
    assert units["litellm-backup.timer"]["enabled"] is False
    assert units["litellm-backup.timer"]["next_elapse"].startswith("Tue 2026-11-24")


def test_path_state_fact():
    assert PathState().process(["missing"]) is None
    assert PathState().process(["directory|777|litellm|litellm"]) == {
        "type": "directory", "mode": "0777", "user": "litellm", "group": "litellm", "sha256": None}
    assert PathState().process(["regular file|600|litellm|litellm", "ab" * 32])["sha256"] == "ab" * 32
