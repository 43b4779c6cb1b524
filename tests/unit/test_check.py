"""The drift report built from the dry run's one channel (litellm_runner.cli.dryrun): its records in, the
report, the exit code and the terminal's lines out."""

import contextlib
import io
import json
import os
import pathlib
import re
import select
import signal
import xml.etree.ElementTree as ET

import pytest

from litellm_runner import exitcodes
from litellm_runner.cli import dryrun
from litellm_runner.cli.check import Progress, build_report, human, junit, plan_of, read_records, report_of, run_dry
from litellm_runner.cli.check import verdict as check_verdict

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAN = [
    {"name": "Directory /r/state 0750 | fs-01", "hosts_with_change": ["a"], "hosts_with_conditional_change": []},
    {
        "name": "Env file /r/env.litellm content | sec-01",
        "hosts_with_change": ["a"],
        "hosts_with_conditional_change": [],
    },
    {
        "name": "Unit litellm.service enabled and running | svc-01",
        "hosts_with_change": ["a"],
        "hosts_with_conditional_change": [],
    },
    {"name": "Linger for litellm | users-02", "hosts_with_change": [], "hosts_with_conditional_change": []},
]
DETAILS = {
    "a": [
        {
            "id": "Directory /r/state 0750 | fs-01",
            "kind": "directory",
            "before": {"mode": "0777", "owner": "litellm:litellm"},
            "after": {"mode": "0750", "owner": "litellm:litellm"},
        },
        {
            "id": "Env file /r/env.litellm content | sec-01",
            "kind": "secret-file",
            "before": {"VLLM_API_KEY": "sha256:1a2b3c4d"},
            "after": {"VLLM_API_KEY": "(empty)"},
        },
        {
            "id": "Unit litellm.service enabled and running | svc-01",
            "kind": "restart",
            "before": None,
            "after": "restart",
        },
    ]
}
CHANGES = [op["name"] for op in PLAN[:3]]
IN_SYNC = [PLAN[3]["name"]]


def checked(name="a", changes=CHANGES, records=None, **more) -> dict:
    """A ``checked`` record of host NAME (cli.dryrun)."""
    found = {"event": "checked", "host": name, "changes": list(changes), "conditional": [], "in_sync": IN_SYNC}
    return {**found, "records": DETAILS.get(name, []) if records is None else records, **more}


CHECKED = {"a": checked("a"), "b": checked("b", changes=[])}
verdict = check_verdict


def test_report_counts_drift_and_not_its_consequences():
    report = build_report(CHECKED, ["a", "b"])
    assert report["status"] == "drift"
    assert report["hosts"]["b"] == {"status": "ok", "items": []}
    assert [(i["id"], i["status"]) for i in report["hosts"]["a"]["items"]] == [
        ("Directory /r/state 0750 | fs-01", "drift"),
        ("Env file /r/env.litellm content | sec-01", "drift"),
        ("Unit litellm.service enabled and running | svc-01", "follows"),
    ]
    assert report["totals"] == {"hosts": 2, "drifted_hosts": 1, "unreachable_hosts": 0, "items": 2}


def test_clean_report():
    report = build_report({"a": checked("a", changes=[], records=[])}, ["a"])
    assert report["status"] == "ok" and report["totals"]["items"] == 0


def test_human_output_shows_before_and_after():
    text = human(build_report(CHECKED, ["a"]))
    assert (
        "  ~ Directory /r/state 0750 | fs-01\n"
        "      mode=0777, owner=litellm:litellm -> mode=0750, owner=litellm:litellm" in text
    )
    assert "VLLM_API_KEY=sha256:1a2b3c4d -> VLLM_API_KEY=(empty)" in text
    assert text.endswith("1 of 1 hosts drifted, 2 items")


def test_junit_has_one_failure_per_drifted_item():
    suite = ET.fromstring(junit(build_report(CHECKED, ["a", "b"])))  # noqa: S314 (the check's own output)
    assert suite.get("failures") == "2"
    assert [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None] == [
        "Directory /r/state 0750 | fs-01",
        "Env file /r/env.litellm content | sec-01",
    ]


GONE = "Could not connect ([Errno None] Unable to connect to port 9 on 127.0.0.1)"


def test_an_unreachable_host_is_marked_counted_and_named_in_one_line():
    report = build_report(CHECKED, ["a", "gone"], unreachable={"gone": GONE})
    assert report["status"] == "error"
    assert report["hosts"]["gone"] == {"status": "unreachable", "reason": GONE, "items": []}
    assert report["totals"] == {"hosts": 2, "drifted_hosts": 1, "unreachable_hosts": 1, "items": 2}
    lines = human(report).splitlines()
    assert [line for line in lines if line.startswith("gone")] == [f"gone: unreachable: {GONE}"]
    assert lines[-1] == "1 of 2 hosts drifted, 2 items, 1 unreachable"
    suite = ET.fromstring(junit(report))  # noqa: S314 (the check's own output)
    errors = [(c.get("classname"), c.find("error").get("message")) for c in suite if c.find("error") is not None]
    assert errors == [("gone", f"unreachable: {GONE}")]


ERROR_ITEM = [{"id": PLAN[0]["name"], "kind": "error", "before": "database unreachable", "after": None}]

# (id, checked records, unreachable, exit code)
VERDICTS = [
    ("clean", {"a": checked("a", changes=[], records=[])}, {}, exitcodes.OK),
    ("drift", CHECKED, {}, exitcodes.FINDINGS),
    ("drift-and-unreachable", CHECKED, {"gone": GONE}, exitcodes.FAILED),
    ("item-not-checked", {"a": checked("a", changes=CHANGES[:1], records=ERROR_ITEM)}, {}, exitcodes.FAILED),
    ("host-not-checked", {}, {}, exitcodes.FAILED),
]


@pytest.mark.parametrize("found, unreachable, code", [v[1:] for v in VERDICTS], ids=[v[0] for v in VERDICTS])
def test_exit_code_of_a_report(found, unreachable, code):
    assert verdict(build_report(found, ["a", *unreachable], unreachable)) == code


def record(name, **fields):
    return json.dumps({"event": name, **fields}) + "\n"


def test_a_plan_of_the_run_from_each_hosts_records_as_pyinfras_plan_has_it():
    assert plan_of(CHECKED) == [
        {"name": n, "hosts_with_change": ["a"], "hosts_with_conditional_change": []} for n in CHANGES
    ] + [{"name": IN_SYNC[0], "hosts_with_change": [], "hosts_with_conditional_change": []}]


CHANNEL = [
    record("hosts", names=["a", "gone"]),
    record("unreachable", host="gone", reason=GONE),
    record("connected", host="a"),
    record("checked", **{k: v for k, v in checked("a").items() if k != "event"}),
    record("end", complete=True, failed=["gone"]),
]


def test_the_channel_is_read_record_by_record_in_order():
    seen = []
    dry = read_records(io.StringIO("".join(CHANNEL)), seen.append)
    assert [e["event"] for e in seen] == ["hosts", "unreachable", "connected", "checked", "end"]
    assert (dry.hosts, dry.unreachable, dry.connected) == (["a", "gone"], {"gone": GONE}, ["a"])
    assert dry.checked == {"a": checked("a")} and dry.end == {"event": "end", "complete": True, "failed": ["gone"]}


def test_a_hosts_last_checked_record_is_its_own():
    later = record("checked", **{k: v for k, v in checked("a", report={"sbom": {}}).items() if k != "event"})
    dry = read_records(io.StringIO(CHANNEL[3] + later))
    assert dry.checked["a"]["report"] == {"sbom": {}}


END_OK = record("end", complete=True, failed=[])
# (id, pyinfra's exit code, the channel's records, hosts in the report or None: "could not run")
DRY_RUNS = [
    ("all-reached", 0, [record("hosts", names=["a"]), CHANNEL[2], CHANNEL[3], END_OK], ["a"]),
    ("one-unreachable", 1, CHANNEL, ["a", "gone"]),
    ("failed-otherwise", 1, [CHANNEL[0], CHANNEL[2], CHANNEL[3], END_OK], None),
    ("a-reached-host-failed", 1, [*CHANNEL[:4], record("end", complete=True, failed=["a", "gone"])], None),
    ("stopped-before-the-end", 1, [*CHANNEL[:4], record("end", complete=False, failed=["gone"])], None),
    ("no-end-record", 0, [record("hosts", names=["a"]), CHANNEL[2], CHANNEL[3]], None),
    ("nothing", 1, [record("end", complete=False, failed=[])], None),
    (
        "none-reachable",
        1,
        [record("hosts", names=["gone"]), CHANNEL[1], record("end", complete=True, failed=["gone"])],
        ["gone"],
    ),
]


@pytest.mark.parametrize("code, records, hosts", [d[1:] for d in DRY_RUNS], ids=[d[0] for d in DRY_RUNS])
def test_report_of_a_dry_run(code, records, hosts):
    dry = read_records(io.StringIO("".join(records)))
    dry.returncode = code
    report = report_of(dry)
    assert (report and sorted(report["hosts"])) == hosts
    if report and "gone" in report["hosts"] and code:
        assert report["hosts"]["gone"]["status"] == "unreachable"


def terminal_output(quiet=False) -> list[str]:
    """What Progress shows on a real terminal (a pty) for CHANNEL's records: its lines, escapes removed."""
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as out, Progress(out, quiet) as progress:
        for line in [*CHANNEL, CHANNEL[3]]:  # a host's second checked record (a second deploy file): no new line
            progress.event(json.loads(line))
    chunks = []
    while select.select([master], [], [], 0)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed and everything was read
            break
        chunks.append(chunk)
    os.close(master)
    text = b"".join(chunks).decode().replace("\033[K", "")
    return [line for line in re.split(r"[\r\n]+", text) if line]


def test_progress_on_a_terminal_names_each_host_as_it_finishes():
    assert terminal_output() == [f"gone: unreachable: {GONE}", "a: drift (2 items)"]


def test_progress_is_quiet_when_asked_or_not_on_a_terminal(tmp_path):
    assert terminal_output(quiet=True) == []
    with (tmp_path / "out").open("w") as out, Progress(out) as progress:
        progress.event({"event": "unreachable", "host": "gone", "reason": GONE})
    assert (tmp_path / "out").read_text() == ""


# -- the channel end to end: pyinfra's own CLI, on this machine (@local) and on a port nobody answers ----------

INVENTORY = 'hosts = ["@local", ("gone", {"ssh_hostname": "127.0.0.1", "ssh_port": 9})]\n'
DEPLOYS = {
    "changes": 'from pyinfra.operations import server\nserver.shell(name="Say hi | t-01", commands=["true"])\n'
    # what a deploy prints goes to pyinfra's stdout, which is not the channel: this line is not read as a record
    'print(\'{"event": "end", "complete": false, "failed": []}\')\n',
    "refuses": "from pyinfra.api.exceptions import DeployError\nraise DeployError('no')\n",
}


@pytest.fixture()
def a_project(tmp_path, monkeypatch):
    """A pyinfra project of two hosts, this machine and one nobody answers; its deploy.py written by the test."""
    (tmp_path / "inventory.py").write_text(INVENTORY)
    monkeypatch.setenv("LITELLM_PROJECT", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return tmp_path


def test_a_real_dry_run_writes_its_records_on_the_channel_as_they_happen(a_project):
    (a_project / "deploy.py").write_text(DEPLOYS["changes"])
    seen = []
    dry = run_dry([], 120, seen.append)
    kinds = [e["event"] for e in seen]
    assert kinds[0] == "hosts" and kinds[-1] == "end" and sorted(kinds[1:-1]) == ["checked", "connected", "unreachable"]
    assert kinds.index("checked") > kinds.index("connected")
    assert dry.returncode == 1 and dry.end == {"event": "end", "complete": True, "failed": ["gone"]}
    assert dry.checked["@local"]["changes"] == ["Say hi | t-01"] and dry.checked["@local"]["records"] == []
    report = report_of(dry)
    assert report["hosts"]["@local"]["items"] == [
        {"id": "Say hi | t-01", "kind": "operation", "before": None, "after": None, "status": "drift"}
    ]
    assert report["hosts"]["gone"]["status"] == "unreachable" and check_verdict(report) == exitcodes.FAILED
    assert any("Could not connect" in line or "gone" in line for line in dry.log)  # pyinfra's log, kept aside


def test_a_dry_run_that_stops_before_the_end_of_change_detection_cannot_be_reported(a_project):
    (a_project / "deploy.py").write_text(DEPLOYS["refuses"])
    dry = run_dry([], 120)
    assert dry.returncode == 1 and dry.end is not None and dry.end["complete"] is False
    assert report_of(dry) is None


def test_a_record_for_a_reader_that_is_gone_is_dropped_quietly():
    """The check was interrupted or timed out: pyinfra's exit still writes its end record, and must not fail."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, "w")
    channel = dryrun.Channel(stream)
    channel.write("end", complete=True, failed=[])
    with contextlib.suppress(OSError):
        stream.close()
    channel.write("end", complete=True, failed=[])  # closed already


ENDS_ITSELF = """
import os, signal, sys, time
def ended(*_):
    time.sleep(0.5)  # what the gate does on Ctrl-C takes a moment: it stops pip-audit, removes its files
    open(sys.argv[1], "w").write("ended itself")
    os._exit(130)
signal.signal(signal.SIGINT, ended)
print('{"event": "hosts", "names": ["h"]}', flush=True)
time.sleep(60)
"""


def test_ctrl_c_gives_the_dry_run_time_to_end_itself(tmp_path, monkeypatch):
    """Ctrl-C while the records are read: the dry run (which the terminal sent the same SIGINT) ends itself, its
    gate's pip-audit and files with it, and is not killed first; the KeyboardInterrupt goes on."""
    marker = tmp_path / "ended"
    monkeypatch.setenv("LITELLM_PROJECT", str(tmp_path))
    pids = []

    def interrupted(event):  # Ctrl-C at the first record: to the dry run, and here
        pids.extend(int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).endswith(str(marker)))
        os.kill(pids[0], signal.SIGINT)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_dry([], 120, interrupted, command=("-c", ENDS_ITSELF, str(marker)))
    assert marker.read_text() == "ended itself"
    assert not pathlib.Path(f"/proc/{pids[0]}").exists()  # and reaped


def _cmdline(pid: str) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
