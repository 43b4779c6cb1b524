"""One host snapshot answers the deploy's questions (HostSnapshot, snapshot.fact)."""

import subprocess
from types import SimpleNamespace

import pytest
from pyinfra.context import ctx_host

from litellm_runner import layout, render
from litellm_runner.pyinfra_ext import snapshot
from litellm_runner.pyinfra_ext.facts import (
    HostSnapshot,
    InstalledPackages,
    Linger,
    PathState,
    SystemdVersion,
    SystemPackages,
    SystemPython,
    UserUnits,
    VenvLink,
)
from tests.unit.fakehost import FakeHost
from tests.unit.group_data import defaults


def test_snapshot_command_runs_and_parses_on_this_machine(tmp_path):
    """The real command in a local shell: a directory, a file with its sha256, a missing path."""
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "f").write_text("hello\n")
    paths = [str(tmp_path / "d"), str(tmp_path / "f"), str(tmp_path / "missing")]
    command = HostSnapshot().command(paths, "nobody", ["litellm.service"], str(tmp_path / "venv"))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30).stdout
    snap = HostSnapshot().process(out.splitlines())
    assert snap["paths"][paths[0]]["type"] == "directory" and snap["paths"][paths[0]]["mode"] == "0750"
    assert snap["paths"][paths[1]]["sha256"] == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    assert snap["paths"][paths[2]] is None
    assert snap["linger"] is False and snap["venv"]["packages"] is None
    assert snap["account"]["user"]["uid"] == 65534 and snap["account"]["created"] is False


class SnapHost(FakeHost):
    def __init__(self, data, snap):
        super().__init__({}, data)
        self.asked = []
        self.snap = snap

    def get_fact(self, cls, **kwargs):
        self.asked.append(cls.__name__)
        return self.snap if cls is HostSnapshot else "asked separately"


def test_fact_is_answered_from_one_snapshot_and_falls_through_for_the_rest():
    data = defaults()
    wanted = snapshot.spec(SimpleNamespace(**data))
    config = layout.CONFIG_FILE
    assert config in wanted["paths"] and f"{layout.BIN}/litellm-dbctl" in wanted["paths"]
    assert f"{data['litellm_root']}/venv" in wanted["paths"]  # the account's old copy: quarantined when found
    snap = {
        "paths": {config: {"type": "file", "sha256": "ab"}},
        "linger": True,
        "units": {"litellm.service": {"active": True}},
        "venv": {"packages": {"urllib3": "2.7.0"}},
        "venv_link": {"type": "symlink", "user": "root", "target": "venvs/x"},
    }
    host = SnapHost(data, snap)
    with ctx_host.use(host):
        assert snapshot.fact(PathState, path=config)["sha256"] == "ab"
        assert snapshot.fact(PathState, path=layout.ENV_FILE) is None  # managed, missing
        assert snapshot.fact(Linger, user="litellm") is True
        assert snapshot.fact(UserUnits, user="litellm", units=["litellm.service"]) == {
            "litellm.service": {"active": True}
        }
        # the versioned venv this run's lock wants, and the link the units name, from the same snapshot
        assert wanted["venv"] == render.venv_target(SimpleNamespace(**data)) and wanted["venv_link"] == layout.VENV
        assert wanted["venv"].startswith(f"{layout.VENVS}/")
        assert snapshot.fact(InstalledPackages, venv=wanted["venv"]) == {"urllib3": "2.7.0"}
        assert snapshot.fact(VenvLink, path=layout.VENV)["target"] == "venvs/x"
        assert snapshot.fact(PathState, path="/etc/not-managed") == "asked separately"
    assert host.asked == ["HostSnapshot", "PathState"]


SNAP = {
    "python": {"version": "3.11", "refused": None},
    "debs": {"python3-venv": "3.11.2-1+b1", "postgresql-client": None, "iproute2": "6.1.0-3", "curl": "7.88.1"},
    "systemd": "systemd 257 (257.9-1~deb13u1)",
}
# (id, fact, its arguments, the answer; "asked separately" when the snapshot does not cover the question)
QUESTIONS = [
    ("systemd-version", SystemdVersion, {}, "systemd 257 (257.9-1~deb13u1)"),
    ("system-python", SystemPython, {"python": "/usr/bin/python3"}, {"version": "3.11", "refused": None}),
    ("another-python", SystemPython, {"python": "/opt/python3.12/bin/python3"}, "asked separately"),
    (
        "system-packages",
        SystemPackages,
        {"packages": ["python3-venv", "postgresql-client"]},
        {"python3-venv": "3.11.2-1+b1", "postgresql-client": None},
    ),
    ("another-package", SystemPackages, {"packages": ["nginx"]}, "asked separately"),
]


@pytest.mark.parametrize("case, fact, kwargs, answer", QUESTIONS, ids=[r[0] for r in QUESTIONS])
def test_the_system_python_and_packages_come_from_the_snapshot(case, fact, kwargs, answer):
    """The deploy's no-op costs no command for them: both are in the one snapshot (issue #17 item 2)."""
    data = defaults()
    wanted = snapshot.spec(SimpleNamespace(**data))
    assert wanted["python"] == data["litellm_python"] and wanted["debs"] == list(data["litellm_system_packages"])
    host = SnapHost(data, SNAP)
    with ctx_host.use(host):
        assert snapshot.fact(fact, **kwargs) == answer
    assert host.asked == ["HostSnapshot"] + ([fact.__name__] if answer == "asked separately" else [])


class SlowHost(FakeHost):
    """A host whose facts take a while (gevent.sleep, as paramiko waits) and record when they start and end."""

    def __init__(self):
        super().__init__({})
        self.events = []

    def get_fact(self, cls, **kwargs):
        import gevent

        self.events.append(("start", cls.__name__))
        gevent.sleep(0.05)
        self.events.append(("end", cls.__name__))
        if kwargs.get("fail"):
            raise OSError("connection lost")
        return {"asked": cls.__name__, **kwargs}


def test_prefetch_asks_every_question_at_once_and_answer_hands_each_out_once():
    fake = SlowHost()
    questions = [(HostSnapshot, {"user": "litellm", "_timeout": 120}), (Linger, {"user": "litellm"})]
    with ctx_host.use(fake):
        snapshot.prefetch(questions)
        starts = [i for i, (what, _) in enumerate(fake.events) if what == "start"]
        ends = [i for i, (what, _) in enumerate(fake.events) if what == "end"]
        assert max(starts) < min(ends)  # the second was asked before the first had its answer
        asked = len(fake.events)
        assert snapshot.answer(Linger, user="litellm") == {"asked": "Linger", "user": "litellm"}
        assert snapshot.answer(HostSnapshot, user="litellm", _timeout=120)["asked"] == "HostSnapshot"
        assert len(fake.events) == asked  # both answered from the prefetch, no command
        assert snapshot.answer(Linger, user="litellm") == {"asked": "Linger", "user": "litellm"}
        assert len(fake.events) == asked + 2  # asked again: a prefetched answer is handed out once
        snapshot.answer(Linger, user="other")  # other arguments: another question, asked now
        assert fake.events[-1] == ("end", "Linger")


def test_an_error_of_a_prefetched_question_is_raised_where_it_is_asked():
    fake = SlowHost()
    with ctx_host.use(fake):
        snapshot.prefetch([(Linger, {"user": "litellm", "fail": True})])  # does not raise here
        with pytest.raises(OSError, match="connection lost"):
            snapshot.answer(Linger, user="litellm", fail=True)
