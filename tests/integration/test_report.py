"""The remediation report (issue #27, item 3) of the session sandbox, each of its claims held against the host.

The session converged the sandbox from the incident state (``check_before``: the drift check before,
``converged``: the converge and the second run, both pyinfra ``--json``). Then, as after a compromise:

- the service account leaves a ``nohup``ed process whose command line carries a canary and an escape
  code (the sweep, in ``report`` mode, names it);
- the operator's secret source holds the same canary as the salt key (the env file drifts; the canary
  is a known secret, shown only as its fingerprint).

``litellm-runner report --before --converge --second`` runs once, and the test holds each of its
claims against the host or against pyinfra's own JSON: the drift found and what the converge changed,
every quarantined path, the readiness of a real request, the units' scores by the host's own
systemd-analyze, litellm-status as the account runs it, the second run's 0 changes, and "still open"
against the drift check's own verdict. Neither the canary, the old salt key nor an escape code
appears in any output. The planted process is stopped afterwards (by its PID).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from litellm_runner import sandbox, shown
from litellm_runner.envfile import fingerprint
from litellm_runner.gates import units as unit_gate
from litellm_runner.pyinfra_ext.facts import HostExposure
from litellm_runner.secrets import read_secrets_file
from tests.support.hosts import REPO

CANARY = "canary-report-" + os.urandom(8).hex()  # not sk-...: only the known-secret redaction can hide it
ESC = "\x1b[2J"
SWEEP = ["--data", "litellm_account_sweep=report"]  # the sandbox's account is adopted: the sweep is off by default
OPERATION = "Nothing of litellm's outside the managed services | acct-01"
QUARANTINE = "/var/lib/litellm-runner/quarantine"
CODE = "/usr/local/lib/litellm-runner"
AS_LITELLM = (
    "cd / && runuser -u litellm -- env LITELLM_ROOT=/home/litellm/litellm XDG_RUNTIME_DIR=/run/user/$(id -u litellm) "
    f"{CODE}/venv/bin/python {CODE}/bin/litellm-status"
)
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def cli(host, module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` against HOST, the operator's secret source holding the canary as the salt key."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "LITELLM_SANDBOXES": host.name, "LITELLM_SALT_KEY": CANARY},
    )


@pytest.fixture(scope="module")
def reported(host, check_before, converged, tmp_path_factory):
    """The planted process, the report with every input, and the drift check with the same data; the
    process is stopped afterwards."""
    tmp = tmp_path_factory.mktemp("report")
    first, second = converged
    (tmp / "before.json").write_text(json.dumps(check_before[1]))
    (tmp / "converge.json").write_text(first.stdout)
    (tmp / "second.json").write_text(second.stdout)
    tag = shlex.quote(f"{CANARY}{ESC}")
    host.ssh(
        "cd / && runuser -u litellm -- setsid -f nohup python3 -c 'import time;time.sleep(3600)' "
        f"{tag} </dev/null >/dev/null 2>&1"
    )
    pid = int(host.wait_for(f"pgrep -u litellm -f -- 'time.sleep.3600. {CANARY}'", timeout=30))
    try:
        files = {"json": tmp / "report.json", "markdown": tmp / "report.md"}
        proc = cli(
            host,
            "litellm_runner.cli.main",
            "report",
            *("--before", str(tmp / "before.json"), "--converge", str(tmp / "converge.json")),
            *("--second", str(tmp / "second.json"), "--json", str(files["json"]), "--markdown", str(files["markdown"])),
            *SWEEP,
        )
        check = cli(host, "litellm_runner.cli.check", "--json", str(tmp / "drift.json"), *SWEEP)
        yield {
            "proc": proc,
            "report": json.loads(files["json"].read_text()) if files["json"].exists() else None,
            "markdown": files["markdown"].read_text() if files["markdown"].exists() else "",
            "check": (check, json.loads((tmp / "drift.json").read_text())),
            "pid": pid,
            "first": first,
            "second": second,
            "before": check_before[1],
        }
    finally:
        host.ssh(f"kill {pid}", check=False)


@pytest.fixture(scope="module")
def mine(reported, host):
    assert reported["report"] is not None, reported["proc"].stderr[-3000:]
    return reported["report"]["hosts"][host.name]


def test_the_report_is_open_and_written_in_both_forms(reported, mine, host):
    proc = reported["proc"]
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]  # something is open: exit FINDINGS
    assert reported["report"]["schema"] == "litellm-runner/remediation-report" and mine["status"] == "open"
    assert mine["errors"] == {}, mine["errors"]  # every part was read
    assert f"## Host {host.name}: open" in reported["markdown"]


def test_still_open_is_what_the_drift_check_says(reported, mine):
    """The open drift is the check's verdict on the same host with the same data: the same items, exit 2."""
    check, drift = reported["check"]
    assert check.returncode == 2, check.stdout[-2000:]
    drifted = sorted(i["id"] for r in drift["hosts"].values() for i in r["items"] if i["status"] in ("drift", "error"))
    assert sorted(i["id"] for i in mine["open"] if i["what"] == "drift") == drifted
    process = [i for i in mine["open"] if i["id"] == OPERATION and i["before"].get("pid") == reported["pid"]]
    assert process and process[0]["control"] == "acct-01", mine["open"]
    assert process[0]["before"]["cmdline"][-1] == shown.mark(CANARY) + "\\x1b[2J"  # redacted, escaped
    env = [i for i in mine["open"] if "LITELLM_SALT_KEY" in json.dumps(i.get("after"))]
    assert env and fingerprint(CANARY) in json.dumps(env[0]["after"])  # the new salt key: its fingerprint only


def test_found_is_the_check_before_the_converge_and_the_converge_changed_it(reported, mine, host):
    before = reported["before"]["hosts"][host.name]["items"]
    found = mine["found"]["drift"] + mine["found"]["sweep"]
    assert sorted(i["id"] for i in found) == sorted(i["id"] for i in before if i["status"] in ("drift", "error"))
    assert found and all(i["control"] for i in found if "|" in i["id"])  # each with its control id
    changed = [o["name"] for o in reported["first"].json["results"]["operations"] if host.name in o["success"]]
    assert sorted(o["id"] for o in mine["changed"]["converge"]["changed"]) == sorted(changed)
    # the converge changed what was found; a database item the check could not plan (dbctl not on the incident host
    # yet: "litellm-dbctl cannot run yet") is planned again while converging, and may then have nothing to do (db-06)
    unplanned = {i["id"] for i in found if str(i["before"]).startswith("litellm-dbctl cannot")}
    assert {i["id"] for i in found if i["status"] == "drift"} - unplanned <= set(changed)
    ended = {o["name"] for o in reported["first"].json["results"]["operations"] if not o["error"]}
    assert unplanned <= ended  # each ran, changed or found nothing to do, and none failed


def test_the_second_run_claim_is_pyinfras_own(reported, mine, host):
    assert reported["second"].changed(host.name) == [] == mine["verified"]["second_run"]["changed"]
    assert "- second run: 0 changes, 0 failed" in reported["markdown"]


def test_every_quarantined_path_is_in_the_quarantine(mine, host):
    folders = mine["changed"]["quarantine"]
    on_host = host.out(f"ls -1 {QUARANTINE}").split()
    assert [f["folder"].rsplit("/", 1)[1] for f in folders] == sorted(on_host)[-50:]
    moved = [i for f in folders for i in f.get("items", []) if i.get("moved_to")]
    assert moved, folders  # the incident state's plants were quarantined by the session's converge
    for item in moved:
        path = shlex.quote(item["moved_to"])
        there = host.ssh(f"test -e {path} || test -L {path}", check=False)
        assert (there.returncode == 0) == item["present"], item


def test_the_readiness_claim_matches_a_real_request(mine, host):
    claim = mine["verified"]["readiness"]
    get = (
        "import urllib.request,urllib.error\ntry:\n print(urllib.request.urlopen("
        f"{claim['url']!r}, timeout=10).status)\nexcept urllib.error.HTTPError as e:\n print(e.code)"
    )
    assert int(host.out(f"python3 -c {shlex.quote(get)}")) == claim["status"] == 200


def test_the_unit_scores_are_the_hosts_own_systemd_analyze(mine, host):
    """Scored again from the installed unit files (not the rendered ones), by the host's systemd-analyze."""
    units = mine["verified"]["units"]
    installed = {name: host.out(f"cat /etc/systemd/user/{name}") for name in units["scores"]}
    lines = host.out(HostExposure().command(installed), timeout=180).splitlines()
    version, scores = unit_gate.parse_host(sorted(installed), lines)
    assert (version, scores) == (units["systemd"], units["scores"])
    assert all(score <= units["threshold"] for score in scores.values())


def test_the_status_claims_are_litellm_status_as_the_account_runs_it(mine, host):
    run = host.ssh(AS_LITELLM, check=False, timeout=180)
    lines = [line for line in run.stdout.splitlines() if line.startswith(("OK ", "FAIL "))]
    now = {line.split()[1].rstrip(":"): line.startswith("OK") for line in lines}
    claimed = {c["check"]: c["ok"] for c in mine["verified"]["status"]["checks"]}
    for stable in ("services", "database", "config", "prisma", "proxy-database"):  # not timing-dependent
        assert claimed[stable] == now[stable], (stable, run.stdout)
    database = {c["check"] for c in mine["verified"]["database"]["status_checks"]}
    assert database == {"database", "proxy-database"}
    assert mine["verified"]["database"]["controls_in_sync"]  # db-* controls the check found in sync


def test_no_secret_and_no_escape_code_in_any_output(reported, host):
    old = read_secrets_file(sandbox.host_data(host.name)["litellm_secrets_file"])["LITELLM_SALT_KEY"]
    proc = reported["proc"]
    outputs = [proc.stdout, proc.stderr, json.dumps(reported["report"], ensure_ascii=False), reported["markdown"]]
    for text in outputs:
        assert CANARY not in text and old not in text
        assert not RAW_CONTROL.search(text), RAW_CONTROL.search(text)
    assert shown.mark(CANARY) in outputs[2]  # it was there to hide: the process's command line carried it
