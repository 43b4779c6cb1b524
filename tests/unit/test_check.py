"""The drift report built from pyinfra's plan and the recorded items."""

import xml.etree.ElementTree as ET

from litellm_runner.cli.check import build_report, human, junit

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
    report = build_report(PLAN, DETAILS, ["a", "b"], failed=[])
    assert report["status"] == "drift"
    assert report["hosts"]["b"] == {"status": "ok", "items": []}
    assert [(i["id"], i["status"]) for i in report["hosts"]["a"]["items"]] == [
        ("Directory /r/state 0750 | fs-01", "drift"),
        ("Env file /r/env.litellm content | sec-01", "drift"),
        ("Unit litellm.service enabled and running | svc-01", "follows"),
    ]
    assert report["totals"] == {"hosts": 2, "drifted_hosts": 1, "items": 2}


def test_clean_report():
    clean = [{**op, "hosts_with_change": []} for op in PLAN]
    report = build_report(clean, {}, ["a"], failed=[])
    assert report["status"] == "ok" and report["totals"]["items"] == 0


def test_human_output_shows_before_and_after():
    text = human(build_report(PLAN, DETAILS, ["a"], failed=[]))
    assert (
        "  ~ Directory /r/state 0750 | fs-01\n      mode=0777, owner=litellm:litellm -> mode=0750, owner=litellm:litellm"
        in text
    )
    assert "VLLM_API_KEY=sha256:1a2b3c4d -> VLLM_API_KEY=(empty)" in text
    assert text.endswith("1 of 1 hosts drifted, 2 items")


def test_junit_has_one_failure_per_drifted_item():
    suite = ET.fromstring(junit(build_report(PLAN, DETAILS, ["a", "b"], failed=[])))
    assert suite.get("failures") == "2"
    assert [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None] == [
        "Directory /r/state 0750 | fs-01",
        "Env file /r/env.litellm content | sec-01",
    ]
