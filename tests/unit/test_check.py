"""The drift report built from pyinfra's plan and the recorded items."""

import io
import json
import os
import re
import select
import xml.etree.ElementTree as ET

import pytest

from litellm_runner import exitcodes
from litellm_runner.cli.check import Progress, _read_events, build_report, human, junit, report_of, verdict
from litellm_runner.cli.dryrun import EVENT

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


def test_report_counts_drift_and_not_its_consequences():
    report = build_report(PLAN, DETAILS, ["a", "b"])
    assert report["status"] == "drift"
    assert report["hosts"]["b"] == {"status": "ok", "items": []}
    assert [(i["id"], i["status"]) for i in report["hosts"]["a"]["items"]] == [
        ("Directory /r/state 0750 | fs-01", "drift"),
        ("Env file /r/env.litellm content | sec-01", "drift"),
        ("Unit litellm.service enabled and running | svc-01", "follows"),
    ]
    assert report["totals"] == {"hosts": 2, "drifted_hosts": 1, "unreachable_hosts": 0, "items": 2}


def test_clean_report():
    clean = [{**op, "hosts_with_change": []} for op in PLAN]
    report = build_report(clean, {}, ["a"])
    assert report["status"] == "ok" and report["totals"]["items"] == 0


def test_human_output_shows_before_and_after():
    text = human(build_report(PLAN, DETAILS, ["a"]))
    assert (
        "  ~ Directory /r/state 0750 | fs-01\n"
        "      mode=0777, owner=litellm:litellm -> mode=0750, owner=litellm:litellm" in text
    )
    assert "VLLM_API_KEY=sha256:1a2b3c4d -> VLLM_API_KEY=(empty)" in text
    assert text.endswith("1 of 1 hosts drifted, 2 items")


def test_junit_has_one_failure_per_drifted_item():
    suite = ET.fromstring(junit(build_report(PLAN, DETAILS, ["a", "b"])))  # noqa: S314 (the check's own output)
    assert suite.get("failures") == "2"
    assert [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None] == [
        "Directory /r/state 0750 | fs-01",
        "Env file /r/env.litellm content | sec-01",
    ]


GONE = "Could not connect ([Errno None] Unable to connect to port 9 on 127.0.0.1)"


def test_an_unreachable_host_is_marked_counted_and_named_in_one_line():
    report = build_report(PLAN, DETAILS, ["a", "gone"], unreachable={"gone": GONE})
    assert report["status"] == "error"
    assert report["hosts"]["gone"] == {"status": "unreachable", "reason": GONE, "items": []}
    assert report["totals"] == {"hosts": 2, "drifted_hosts": 1, "unreachable_hosts": 1, "items": 2}
    lines = human(report).splitlines()
    assert [line for line in lines if line.startswith("gone")] == [f"gone: unreachable: {GONE}"]
    assert lines[-1] == "1 of 2 hosts drifted, 2 items, 1 unreachable"
    suite = ET.fromstring(junit(report))  # noqa: S314 (the check's own output)
    errors = [(c.get("classname"), c.find("error").get("message")) for c in suite if c.find("error") is not None]
    assert errors == [("gone", f"unreachable: {GONE}")]


ERROR_ITEM = {"a": [{"id": PLAN[0]["name"], "kind": "error", "before": "database unreachable", "after": None}]}

# (id, plan, details, unreachable, exit code)
VERDICTS = [
    ("clean", [{**op, "hosts_with_change": []} for op in PLAN], {}, {}, exitcodes.OK),
    ("drift", PLAN, DETAILS, {}, exitcodes.FINDINGS),
    ("drift-and-unreachable", PLAN, DETAILS, {"gone": GONE}, exitcodes.FAILED),
    ("item-not-checked", PLAN[:1], ERROR_ITEM, {}, exitcodes.FAILED),
]


@pytest.mark.parametrize("plan, details, unreachable, code", [v[1:] for v in VERDICTS], ids=[v[0] for v in VERDICTS])
def test_exit_code_of_a_report(plan, details, unreachable, code):
    assert verdict(build_report(plan, details, ["a", *unreachable], unreachable)) == code


def event(name, **fields):
    return EVENT + json.dumps({"event": name, **fields}) + "\n"


CHECKED_A = {"host": "a", "changes": [op["name"] for op in PLAN[:3]], "conditional": [], "records": DETAILS["a"]}
STDERR = [
    "--> Connecting to hosts...\n",
    event("hosts", names=["a", "gone"]),
    "    [gone]  Could not connect (...)\n",
    event("unreachable", host="gone", reason=GONE),
    event("connected", host="a"),
    event("checked", **CHECKED_A),
    "--> Disconnecting from hosts...\n",
]


def test_the_dry_runs_stderr_is_split_into_events_in_order_and_its_log():
    seen = []
    dry = _read_events(io.StringIO("".join(STDERR)), seen.append)
    assert [e["event"] for e in seen] == ["hosts", "unreachable", "connected", "checked"]
    assert (dry.hosts, dry.unreachable, dry.connected) == (["a", "gone"], {"gone": GONE}, ["a"])
    assert dry.log == [STDERR[0], STDERR[2], STDERR[6]]


PLAN_JSON = json.dumps({"plan": PLAN, "results": None})

# (id, pyinfra's exit code, its stdout, stderr lines, hosts in the report or None: "could not run")
DRY_RUNS = [
    ("all-reached", 0, PLAN_JSON, [STDERR[1], STDERR[4], STDERR[5]], ["a", "gone"]),
    ("one-unreachable", 1, PLAN_JSON, STDERR, ["a", "gone"]),
    ("failed-otherwise", 1, PLAN_JSON, [STDERR[1], STDERR[4]], None),
    ("no-json", 0, "", [STDERR[1], STDERR[4]], None),
    (
        "none-reachable",
        1,
        "",
        [event("hosts", names=["gone"]), event("unreachable", host="gone", reason=GONE)],
        ["gone"],
    ),
]


@pytest.mark.parametrize("code, stdout, stderr, hosts", [d[1:] for d in DRY_RUNS], ids=[d[0] for d in DRY_RUNS])
def test_report_of_a_dry_run(code, stdout, stderr, hosts):
    dry = _read_events(io.StringIO("".join(stderr)), lambda e: None)
    dry.returncode, dry.stdout = code, stdout
    report = report_of(dry)
    assert (report and sorted(report["hosts"])) == hosts
    if report and "gone" in report["hosts"] and code:
        assert report["hosts"]["gone"]["status"] == "unreachable"


def terminal_output(quiet=False) -> list[str]:
    """What Progress shows on a real terminal (a pty) for STDERR's events: its lines, escapes removed."""
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as out, Progress(out, quiet) as progress:
        for line in STDERR:
            if line.startswith(EVENT):
                progress.event(json.loads(line[len(EVENT) :]))
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
