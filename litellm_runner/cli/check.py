"""Drift check with detailed exit codes: has any host drifted from group_data?

    python -m litellm_runner.cli.check [--json REPORT.json] [--junit REPORT.xml] [pyinfra args...]

Runs this project's deploy in pyinfra's change detection (``--dry``) against
the inventory and prints, per host, each drifted item and what differs.
Exit codes (like ``terraform plan -detailed-exitcode``):

    0  every host matches its desired state
    2  at least one host has drifted
    1  the check itself could not run (bad input, unreachable host, failed fact), or an item of
       a host could not be checked (its database unreachable: named with ``!``; that host's other
       items are still checked and reported)

``-y``/``--yes`` and ``PYINFRA_YES`` are refused/removed: with them pyinfra
skips change detection and would report no drift at all.

The JSON report (schema ``litellm-runner/drift-report`` version 1)::

    {"schema": "litellm-runner/drift-report", "version": 1,
     "generated_at": "2026-11-23T06:00:00Z", "status": "drift",
     "hosts": {"<host>": {"status": "ok"|"drift"|"error",
                          "items": [{"id": "<operation name with control id>",
                                     "kind": "directory|file|secret-file|package|unit|linger|database|error|...",
                                     "status": "drift"|"follows"|"error", "before": ..., "after": ...,
                                     "diff": [...]}]}},
     "totals": {"hosts": N, "drifted_hosts": N, "items": N}}

Secret-bearing items carry ``sha256:xxxxxxxx`` fingerprints, never values.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from xml.sax.saxutils import escape

from litellm_runner.resources import project

SCHEMA = "litellm-runner/drift-report"


def run_dry(extra: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYINFRA_YES"}
    env["PYINFRA_PROGRESS"] = "off"
    with tempfile.TemporaryDirectory(prefix="litellm-check-") as tmp:
        record = pathlib.Path(tmp) / "drift.json"
        env["LITELLM_DRIFT_RECORD"] = str(record)
        pyinfra = str(pathlib.Path(sys.executable).parent / "pyinfra")
        proc = subprocess.run(
            [pyinfra, "inventory.py", "deploy.py", "--dry", "--json", *extra],
            cwd=project(),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        details = json.loads(record.read_text()) if record.exists() else {}
    return proc, details


def build_report(plan: dict, details: dict, hosts: list[str], failed: list[str]) -> dict:
    report_hosts = {}
    for name in hosts:
        if name in failed:
            report_hosts[name] = {"status": "error", "items": []}
            continue
        items = []
        recorded = {}
        for item in details.get(name, []):
            recorded.setdefault(item["id"], []).append(item)
        for op in plan:
            if name in op["hosts_with_change"] or name in op["hosts_with_conditional_change"]:
                found = recorded.get(op["name"]) or [
                    {"id": op["name"], "kind": "operation", "before": None, "after": None}
                ]
                for item in found:
                    follows = item["kind"] == "restart" or name not in op["hosts_with_change"]
                    status = "error" if item["kind"] == "error" else "follows" if follows else "drift"
                    items.append({**item, "status": status})
        statuses = {i["status"] for i in items}
        report_hosts[name] = {
            "status": "error" if "error" in statuses else "drift" if "drift" in statuses else "ok",
            "items": items,
        }
    drifted = [h for h, r in report_hosts.items() if r["status"] != "ok"]
    errors = [h for h, r in report_hosts.items() if r["status"] == "error"]
    status = "error" if failed or errors else ("drift" if drifted else "ok")
    return {
        "schema": SCHEMA,
        "version": 1,
        "generated_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": status,
        "hosts": report_hosts,
        "totals": {
            "hosts": len(report_hosts),
            "drifted_hosts": len(drifted),
            "items": sum(1 for r in report_hosts.values() for i in r["items"] if i["status"] == "drift"),
        },
    }


def _fmt(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return "absent" if value is None else str(value)


def human(report: dict) -> str:
    lines = []
    for name, result in report["hosts"].items():
        drifted = [i for i in result["items"] if i["status"] == "drift"]
        lines.append(f"{name}: {result['status']}" + (f" ({len(drifted)} items)" if drifted else ""))
        for item in result["items"]:
            if item["status"] == "error":
                lines.append(f"  ! {item['id']}: could not be checked: {item['before']}")
            if item["status"] != "drift":
                continue
            lines.append(f"  ~ {item['id']}")
            if item.get("before") is not None or item.get("after") is not None:
                lines.append(f"      {_fmt(item.get('before'))} -> {_fmt(item.get('after'))}")
            for line in item.get("diff", [])[:200]:
                lines.append(f"      {line}")
        follows = [i["id"] for i in result["items"] if i["status"] == "follows"]
        if follows:
            lines.append(f"  then: {'; '.join(follows)}")
    t = report["totals"]
    lines.append(f"{t['drifted_hosts']} of {t['hosts']} hosts drifted, {t['items']} items")
    return "\n".join(lines)


def junit(report: dict) -> str:
    cases = []
    for name, result in report["hosts"].items():
        if result["status"] == "error" and not result["items"]:
            cases.append(
                f'<testcase classname="{escape(name)}" name="check"><error message="check failed"/></testcase>'
            )
        for item in result["items"]:
            if item["status"] == "error":
                cases.append(
                    f'<testcase classname="{escape(name)}" name="{escape(item["id"])}">'
                    f'<error message="{escape(str(item["before"]), {chr(34): "&quot;"})}"/></testcase>'
                )
            if item["status"] == "drift":
                msg = escape(f"{_fmt(item.get('before'))} -> {_fmt(item.get('after'))}", {'"': "&quot;"})
                cases.append(
                    f'<testcase classname="{escape(name)}" name="{escape(item["id"])}">'
                    f'<failure message="{msg}"/></testcase>'
                )
        if result["status"] == "ok":
            cases.append(f'<testcase classname="{escape(name)}" name="no drift"/>')
    failures = sum(1 for r in report["hosts"].values() for i in r["items"] if i["status"] == "drift")
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="litellm-drift" tests="{len(cases)}" '
        f'failures="{failures}">\n' + "\n".join(cases) + "\n</testsuite>\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litellm_runner.cli.check", description=__doc__.split("\n")[0])
    parser.add_argument("--json", dest="json_path", help="write the JSON report here")
    parser.add_argument("--junit", help="write a JUnit XML report here")
    parser.add_argument("--timeout", type=float, default=1800)
    args, extra = parser.parse_known_args(argv)
    if any(a in ("-y", "--yes") for a in extra):
        print("check: -y/--yes skips change detection, so it cannot be used for a drift check", file=sys.stderr)
        return 1
    try:
        proc, details = run_dry(extra, args.timeout)
    except subprocess.TimeoutExpired:
        print(f"check: pyinfra did not finish within {args.timeout:.0f}s", file=sys.stderr)
        return 1
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        doc = None
    if doc is None or proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        print(f"check: the check could not run (pyinfra exited {proc.returncode})", file=sys.stderr)
        return 1
    hosts = sorted(
        {h for op in doc["plan"] for h in op["hosts_with_change"] + op["hosts_with_conditional_change"]}
        | set(details)
        | set(_inventory_hosts(proc.stderr))
    )
    report = build_report(doc["plan"], details, hosts, failed=[])
    if args.json_path:
        pathlib.Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    if args.junit:
        pathlib.Path(args.junit).write_text(junit(report))
    print(human(report))
    if report["status"] == "error":
        print("check: items that could not be checked (! above): exit 1", file=sys.stderr)
        return 1
    return 2 if report["status"] == "drift" else 0


def _inventory_hosts(stderr: str) -> list[str]:
    """Host names pyinfra connected to, from its log ("[host] Connected")."""
    hosts = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("[") and "] Connected" in line:
            hosts.append(line[1 : line.index("]")])
    return hosts


if __name__ == "__main__":
    sys.exit(main())
