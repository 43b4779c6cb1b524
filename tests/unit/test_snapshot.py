"""One fact answers the deploy's questions: HostSnapshot, a typed Snapshot read through accessors."""

import json
import subprocess
from types import SimpleNamespace

import pytest
from pyinfra.context import ctx_host

from litellm_runner import layout
from litellm_runner.pyinfra_ext import snapshot
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot, NotAsked
from litellm_runner.render import render_units
from litellm_runner.resources import host_tools
from tests.unit.fakehost import FakeHost, snap
from tests.unit.group_data import defaults


def test_snapshot_command_runs_and_parses_on_this_machine(tmp_path):
    """The real command in a local shell: a directory, a file with its sha256, a missing path."""
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "f").write_text("hello\n")
    paths = [str(tmp_path / "d"), str(tmp_path / "f"), str(tmp_path / "missing")]
    data = SimpleNamespace(**{**defaults(), "litellm_user": "nobody", "litellm_group": "nogroup"})
    asked = {**snapshot.question(data), "paths": paths, "venv": str(tmp_path / "venv"), "dirs": [str(tmp_path)]}
    out = subprocess.run(
        ["sh", "-c", HostSnapshot().command(**asked, code=True)], capture_output=True, text=True, timeout=60
    )
    found = HostSnapshot().process(out.stdout.splitlines())
    lean = subprocess.run(["sh", "-c", HostSnapshot().command(**asked)], capture_output=True, text=True, timeout=60)
    assert lean.stdout == out.stdout  # sent without its code: root's code kept by the first, the same answer
    assert found.path(paths[0])["type"] == "directory" and found.path(paths[0])["mode"] == "0750"
    assert found.path(paths[1])["sha256"] == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    assert found.path(paths[2]) is None
    assert found.linger is False and found.venv["packages"] is None and found.leftovers == []
    assert found.account["user"]["uid"] == 65534 and found.account["created"] is False
    assert found.python["version"] and found.plants == []


def test_the_question_reads_every_path_the_tasks_write():
    """The managed paths are declared once (snapshot.managed): the tasks write them, the question reads them."""
    data = SimpleNamespace(**defaults())
    paths = snapshot.managed(data)
    asked = snapshot.question(data)
    assert asked["paths"] == paths.paths() and len(set(asked["paths"])) == len(asked["paths"])
    assert paths.tools == {f"{layout.BIN}/{name}": name for name in host_tools()}
    assert set(paths.units.values()) == set(render_units(data)) and set(asked["units"]) >= set(paths.units.values())
    wanted = [layout.CONFIG_FILE, layout.ENV_FILE, f"{layout.BIN}/litellm-dbctl", layout.RESTART_HELD]
    assert set(wanted) <= set(asked["paths"])
    assert f"{data.litellm_root}/venv" in asked["paths"]  # the account's old copy: quarantined when found
    assert asked["dirs"] == paths.write_dirs() and asked["python"] == data.litellm_python
    assert asked["debs"] == list(data.litellm_system_packages)


FOUND = snap(
    paths={layout.CONFIG_FILE: {"type": "file", "sha256": "ab"}, layout.ENV_FILE: None},
    units={"litellm.service": {"active": True}},
    venv={"packages": {"urllib3": "2.7.0"}},
    venv_link={"type": "symlink", "user": "root", "target": "venvs/0123456789abcdef"},
    debs={"python3-venv": "3.11.2-1+b1", "postgresql-client": None},
    leftovers=["/r/state/c.yaml.tmp-litellm-runner"],
    systemd="systemd 257 (257.9-1~deb13u1)",
    asked={
        "user": "litellm",
        "units": ["litellm.service", "litellm-metrics.service"],
        "venv": layout.VENV,
        "venv_link": layout.VENV,
        "python": "/usr/bin/python3",
        "debs": ["python3-venv", "postgresql-client"],
        "dirs": ["/r/state"],
    },
)
# (id, what is asked, the answer; NotAsked: the snapshot did not read it, and says so rather than guess)
ACCESSORS = [
    ("path", lambda s: s.path(layout.CONFIG_FILE)["sha256"], "ab"),
    ("path-missing", lambda s: s.path(layout.ENV_FILE), None),
    ("path-not-managed", lambda s: s.path("/etc/not-managed"), NotAsked),
    ("unit", lambda s: s.unit("litellm.service"), {"active": True}),
    ("unit-unknown-to-its-manager", lambda s: s.unit("litellm-metrics.service"), {}),
    ("unit-not-managed", lambda s: s.unit("sshd.service"), NotAsked),
    ("account", lambda s: s.for_user("litellm").linger, True),
    ("another-account", lambda s: s.for_user("postgres"), NotAsked),
    ("venv", lambda s: s.venv_at(layout.VENV)["packages"], {"urllib3": "2.7.0"}),
    ("another-venv", lambda s: s.venv_at("/opt/venv"), NotAsked),
    ("venv-link", lambda s: s.link_at(layout.VENV)["target"], "venvs/0123456789abcdef"),
    ("another-venv-link", lambda s: s.link_at("/opt/venv"), NotAsked),
    ("python", lambda s: s.python_at("/usr/bin/python3"), {"version": "3.11", "refused": None}),
    ("another-python", lambda s: s.python_at("/opt/python3.12/bin/python3"), NotAsked),
    ("packages", lambda s: s.packages(["python3-venv"]), {"python3-venv": "3.11.2-1+b1"}),
    ("another-package", lambda s: s.packages(["nginx"]), NotAsked),
    ("leftovers", lambda s: s.leftovers_in(["/r/state"]), ["/r/state/c.yaml.tmp-litellm-runner"]),
    ("leftovers-elsewhere", lambda s: s.leftovers_in(["/tmp"]), NotAsked),
    ("systemd", lambda s: s.systemd, "systemd 257 (257.9-1~deb13u1)"),
]


@pytest.mark.parametrize("case, read, expected", ACCESSORS, ids=[r[0] for r in ACCESSORS])
def test_accessors_answer_what_was_asked_and_refuse_the_rest(case, read, expected):
    if expected is NotAsked:
        with pytest.raises(NotAsked, match="is not in the host snapshot"):
            read(FOUND)
    else:
        assert read(FOUND) == expected


class SnapHost(FakeHost):
    def __init__(self, data, found):
        super().__init__({}, data)
        self.asked, self.found = [], found

    def get_fact(self, cls, **kwargs):
        self.asked.append((cls, kwargs))
        return self.found


def test_the_snapshot_is_asked_once_per_run_with_the_question_of_the_hosts_data():
    data = defaults()
    host = SnapHost(data, snap(paths={layout.CONFIG_FILE: None}))
    with ctx_host.use(host):
        first = snapshot.current()
        assert snapshot.current() is first  # kept in the run's Run: one command per host and run
    [(cls, kwargs)] = host.asked
    asked = snapshot.question(SimpleNamespace(**data))
    assert cls is HostSnapshot and kwargs == {**asked, "_timeout": snapshot.SNAPSHOT_TIMEOUT}
    assert first.asked == asked  # what the accessors check against


class KeptCodeHost(FakeHost):
    """A host whose root's cache lacks the host-side code: a snapshot sent without it answers None."""

    def __init__(self):
        super().__init__({})
        self.asked = []

    def get_fact(self, cls, **kwargs):
        self.asked.append(kwargs)
        return {"answer": 1} if kwargs.get("code") else None


def test_a_snapshot_the_host_could_not_run_without_its_code_is_asked_again_with_it():
    fake = KeptCodeHost()
    with ctx_host.use(fake):
        snapshot.prefetch([("first", HostSnapshot, {"n": 1})])
        assert snapshot.answer("first", HostSnapshot, n=1) == {"answer": 1}
        assert snapshot.answer("other", HostSnapshot, n=2) == {"answer": 1}  # not prefetched: asked now
    assert fake.asked == [{"n": 1}, {"n": 1, "code": True}, {"n": 2}, {"n": 2, "code": True}]


class SlowHost(FakeHost):
    """A host whose facts take a while (gevent.sleep, as paramiko waits) and record when they start and end."""

    def __init__(self):
        super().__init__({})
        self.events = []

    def get_fact(self, cls, **kwargs):
        import gevent

        self.events.append(("start", kwargs.get("n")))
        gevent.sleep(0.05)
        self.events.append(("end", kwargs.get("n")))
        if kwargs.get("fail"):
            raise OSError("connection lost")
        return {"n": kwargs.get("n")}


def test_prefetch_asks_every_question_at_once_and_answer_hands_each_out_once_by_its_key():
    fake = SlowHost()
    with ctx_host.use(fake):
        snapshot.prefetch([("first", HostSnapshot, {"n": 1}), (("plan", "abc"), HostSnapshot, {"n": 2})])
        starts = [i for i, (what, _) in enumerate(fake.events) if what == "start"]
        ends = [i for i, (what, _) in enumerate(fake.events) if what == "end"]
        assert max(starts) < min(ends)  # the second was asked before the first had its answer
        asked = len(fake.events)
        assert snapshot.answer(("plan", "abc"), HostSnapshot, n=2) == {"n": 2}
        assert snapshot.answer("first", HostSnapshot, n=1) == {"n": 1}
        assert len(fake.events) == asked  # both answered from the prefetch, no command
        assert snapshot.answer("first", HostSnapshot, n=1) == {"n": 1}
        assert len(fake.events) == asked + 2  # asked again: a prefetched answer is handed out once
        snapshot.answer(("plan", "other"), HostSnapshot, n=3)  # another key: another question, asked now
        assert fake.events[-1] == ("end", 3)


def test_an_error_of_a_prefetched_question_is_raised_where_it_is_asked():
    fake = SlowHost()
    with ctx_host.use(fake):
        snapshot.prefetch([("plan", HostSnapshot, {"n": 1, "fail": True})])  # does not raise here
        with pytest.raises(OSError, match="connection lost"):
            snapshot.answer("plan", HostSnapshot, n=1, fail=True)


def test_the_snapshot_parses_the_host_sides_document():
    """HostSnapshot's answer from the JSON document hostside.snapshot prints (systemctl show lines for units)."""
    doc = {
        "paths": {"/etc/litellm/env.litellm": {"type": "file", "env": {"A": "sha256:1a2b3c4d"}}},
        "linger": True,
        "account": {"user": {"uid": 999}, "group": True, "created": True},
        "leftovers": [],
        "manager": True,
        "run_lock": {"text": "run=1", "mtime": 10, "now": 20},
        "units": ["Id=litellm.service", "ActiveState=active", "", "Id=litellm.service", 'X-Sources=["/x"]'],
        "venv": {"packages": {}},
        "plants": None,
        "python": None,
        "debs": None,
        "systemd": None,
    }
    found = HostSnapshot().process([json.dumps(doc)])
    assert found.path("/etc/litellm/env.litellm")["env"] == {"A": "sha256:1a2b3c4d"}
    assert found.unit("litellm.service")["active"] is True and found.unit("litellm.service")["sources"] == ["/x"]
    assert found.run_lock == doc["run_lock"] and found.plants == [] and found.account["created"] is True
