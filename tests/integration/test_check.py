"""The drift check tells the truth: exit 0/2/1, every kind of drift named in
the JSON report, and no secret in any output, report, log or process list."""

import json
import os
import subprocess
import sys

import pytest

from tests.support.hosts import REPO, drift_check, pyinfra, ssh_argv

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
CTL = "systemctl --user --machine=litellm@.host"
PS_END = "::ps-end::"  # ends each process list the canary test reads from the host
WATCH_PS = f"while :; do ps -eo args; echo {PS_END}; sleep 0.2; done"


check = drift_check


def test_check_on_a_never_converged_host_reports_every_item(check_before):
    proc, report = check_before
    assert proc.returncode == 2, proc.stderr[-2000:]
    items = {i["id"] for h in report["hosts"].values() for i in h["items"] if i["status"] == "drift"}
    assert report["schema"] == "litellm-runner/drift-report" and report["version"] == 1
    for expected in (
        "Linger for litellm | users-02",
        f"Directory {ROOT}/state 0750 | fs-01",
        f"Venv {CODE}/venv satisfies its pins | py-01",
        "Unit litellm.service enabled and running | svc-01",
    ):
        assert expected in items
    by_id = {i["id"]: i for h in report["hosts"].values() for i in h["items"]}
    assert by_id[f"Directory {ROOT}/state 0750 | fs-01"]["before"]["mode"] == "0777"
    packages = {
        i["before"]["name"]: (i["before"]["version"], i["after"]["version"])
        for h in report["hosts"].values()
        for i in h["items"]
        if i["kind"] == "package"
    }
    # the versions the hash lock installs (files/locks/), each satisfying the incident's CVE pins; root's venv
    # does not exist on the incident host yet (its venv is the account's, a legacy copy the converge replaces)
    assert packages["fastapi-users"] == (None, "15.0.5")
    assert packages["urllib3"] == (None, "2.8.0")
    assert packages["pyasn1"] == (None, "0.6.5")


def test_check_after_converge_is_clean(converged, host, tmp_path):
    proc, report = check(host, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert report["status"] == "ok" and report["totals"]["items"] == 0


def test_roots_compiled_tools_are_clean_and_anything_else_there_is_drift(converged, host, tmp_path):
    """The converge compiled the tools' modules into root's bin/__pycache__ (the check above is clean with them);
    a file no converge wrote there is drift, named (the repair, the folder moved aside: test_tools_bytecode)."""
    cache = f"{CODE}/bin/__pycache__"
    owners = host.out(f"stat -c '%U:%G %a %n' {cache} {cache}/*").splitlines()
    assert owners[0] == f"root:root 755 {cache}"
    assert {line.rsplit("/", 1)[1].split(".")[0] for line in owners[1:]} >= {"litellm_dbctl", "litellm_migrations"}
    assert all(line.startswith("root:root 644 ") for line in owners[1:]), owners
    host.ssh(f"printf x > {cache}/evil.pyc")
    try:
        proc, report = check(host, tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
        drifted = [i for i in report["hosts"][host.name]["items"] if i["status"] == "drift"]
        assert [i["id"] for i in drifted] == [f"Tools' compiled modules {cache} | cfg-02"]
        assert drifted[0]["before"]["files"] == {"evil.pyc": "not a compiled module of a tool"}
    finally:
        host.ssh(f"rm -f {cache}/evil.pyc")
    proc, _ = check(host, tmp_path)
    assert proc.returncode == 0, proc.stdout


def test_check_is_not_fooled_by_pyinfra_yes(converged, host, tmp_path):
    host.ssh(f"chmod 0777 {ROOT}/logs")
    try:
        proc, report = check(host, tmp_path, env={"PYINFRA_YES": "1"})
        assert proc.returncode == 2
        assert [i["id"] for i in report["hosts"][host.name]["items"]] == [f"Directory {ROOT}/logs 0750 | fs-01"]
        refused = subprocess.run(
            [sys.executable, "-m", "litellm_runner.cli.check", "-y"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and "-y/--yes skips change detection" in refused.stderr
    finally:
        host.ssh(f"chmod 0750 {ROOT}/logs")


def test_check_that_cannot_run_exits_1(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "litellm_runner.cli.check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LITELLM_SANDBOXES": "no-such-sandbox"},
    )
    assert proc.returncode == 1
    assert "sandbox no-such-sandbox is not running" in proc.stderr


DRIFTS = [
    pytest.param(
        f"chmod 0775 {ROOT}/state/redis",
        f"Directory {ROOT}/state/redis 0750 | fs-01",
        {"mode": "0775", "owner": "litellm:litellm"},
        id="directory-mode",
    ),
    pytest.param(
        "sed -i 's/store_prompts_in_spend_logs: false/store_prompts_in_spend_logs: true/' "
        "/etc/litellm/config.generated.yaml",
        "Rendered config /etc/litellm/config.generated.yaml content | cfg-01",
        None,
        id="config-line",
    ),
    pytest.param(
        "sed -i 's/^REDIS_PORT=.*/REDIS_PORT=6380/' /etc/litellm/env.litellm",
        "Env file /etc/litellm/env.litellm content | sec-01",
        None,
        id="env-file",
    ),
    pytest.param(
        "sed -i 's/^RestartSec=5/RestartSec=9/' /etc/systemd/user/litellm-metrics.service",
        "Unit file litellm-metrics.service content | svc-01",
        None,
        id="unit-file",
    ),
    pytest.param(
        f"{CTL} disable --now litellm-model-inventory.timer",
        "Unit litellm-model-inventory.timer enabled and running | tmr-01",
        {"enabled": False, "active": False},
        id="timer-disabled",
    ),
    pytest.param("loginctl disable-linger litellm", "Linger for litellm | users-02", "off", id="linger-off"),
    pytest.param(
        f"{CODE}/venv/bin/pip install -q --no-deps pyasn1==0.6.1",
        f"Venv {CODE}/venv satisfies its pins | py-01",
        {"name": "pyasn1", "version": "0.6.1"},
        id="package-downgraded",
    ),
]


@pytest.mark.parametrize("breakage, item_id, before", DRIFTS)
def test_each_kind_of_drift_is_reported_then_repaired(converged, host, converge, tmp_path, breakage, item_id, before):
    host.ssh(breakage, timeout=300)
    proc, report = check(host, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    drifted = [i for i in report["hosts"][host.name]["items"] if i["status"] == "drift"]
    assert item_id in [i["id"] for i in drifted]
    if before is not None:
        assert [i["before"] for i in drifted if i["id"] == item_id][0] == before
    assert item_id in proc.stdout  # the human output names it too
    if item_id.startswith("Rendered config"):
        diff = [i for i in drifted if i["id"] == item_id][0]["diff"]
        assert "-  store_prompts_in_spend_logs: true" in diff and "+  store_prompts_in_spend_logs: false" in diff
    converge()
    proc, report = check(host, tmp_path)
    assert proc.returncode == 0, proc.stdout


def test_canary_secret_appears_nowhere(converged, host, tmp_path):
    """The env file drifted (the secret source changed): neither the old secret on the host nor the
    new one appears in any output, at any verbosity, in --debug, the check's reports or the process list."""
    from litellm_runner import sandbox
    from litellm_runner.secrets import read_secrets_file

    old = read_secrets_file(sandbox.host_data(host.name)["litellm_secrets_file"])["LITELLM_SALT_KEY"]
    canary = "sk-canary-" + os.urandom(8).hex()
    env = {"LITELLM_SALT_KEY": canary}  # the operator's secret source now holds the canary
    # the host's process list every 0.2 s, through one SSH session for the whole test (an SSH login per
    # sample cost the host and this machine more CPU than the runs it watched), into a file
    snapshots = tmp_path / "ps.txt"
    with open(snapshots, "w") as out:
        watcher = subprocess.Popen(
            [*ssh_argv(host.name), "root@127.0.0.1", f"timeout 1800 sh -c '{WATCH_PS}'"],
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    try:
        outputs = []
        for args in (["--dry", "--diff"], ["--dry", "--diff", "-vvv"], ["--dry", "--debug"]):
            dry = pyinfra([host.name], *args, env=env)
            outputs += [dry.stdout, dry.stderr]
        proc, report = check(host, tmp_path, env=env)
        outputs += [proc.stdout, proc.stderr, json.dumps(report), (tmp_path / "drift.xml").read_text()]
        assert proc.returncode == 2  # the env file will change
        assert "LITELLM_SALT_KEY" in proc.stdout  # named, by fingerprint only
        run = pyinfra([host.name], "-y", "--diff", "-vvv", env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        outputs += [run.stdout, run.stderr]
        proc, report = check(host, tmp_path, env=env)
        outputs += [proc.stdout, proc.stderr, json.dumps(report)]
        assert proc.returncode == 0
    finally:
        watched_throughout = watcher.poll() is None  # the session did not end early: no gap in the samples
        watcher.kill()
        watcher.wait(timeout=60)
    assert watched_throughout, "the process-list watch ended before the runs did"
    assert host.ssh(f"grep -c {canary} /etc/litellm/env.litellm").stdout.strip() == "1"  # it did reach the host
    for text in outputs:
        assert canary not in text and old not in text
    seen_in_ps = [canary in ps or old in ps for ps in snapshots.read_text().split(PS_END + "\n") if ps]
    assert seen_in_ps and not any(seen_in_ps)
    assert (
        canary
        not in host.ssh(
            f"journalctl --no-pager -q; cat {ROOT}/logs/* 2>/dev/null; cat /etc/litellm/config.generated.yaml",
            check=False,
        ).stdout
    )
    # back to the sandbox's own secret
    assert pyinfra([host.name], "-y").returncode == 0


def run_compliance(host):
    host.ssh(f"{CTL} start litellm-compliance-check.service", check=False, timeout=120)
    return json.loads(host.out(f"cat {ROOT}/state/compliance.json"))


def test_on_host_compliance_timer(converged, host, converge):
    first = run_compliance(host)
    assert (first["ok"], first["failures"]) == (True, [])
    host.ssh(f"chmod 0777 {ROOT}/state/archive")
    try:
        result = run_compliance(host)
        assert result["ok"] is False
        assert result["failures"] == [f"{ROOT}/state/archive: 0777 litellm, expected 0750 litellm"]
        journal = host.out("journalctl --no-pager -q _SYSTEMD_USER_UNIT=litellm-compliance-check.service | tail -5")
        assert f"FAIL {ROOT}/state/archive: 0777 litellm" in journal
        assert host.out(f"{CTL} show -P Result litellm-compliance-check.service") == "exit-code"
    finally:
        converge()
    assert run_compliance(host)["ok"] is True


def test_bad_input_is_refused_before_any_host_command(converged, host):
    before = host.out(f"stat -c '%a %Y' {ROOT}/state /etc/litellm/env.litellm")
    run = pyinfra([host.name], "-y", "-vv", "--data", "litellm_dir_mode=0777", "--data", "litellm_port=99999")
    assert run.returncode == 1
    assert "refusing to touch any host, the desired state is invalid:" in run.stderr
    assert (
        "litellm_dir_mode = 777 (= 0o1411, a number): expected an octal mode string such as '0750', not world-writable"
        in run.stderr
    )
    assert "litellm_port = 99999: expected a port 1-65535" in run.stderr
    assert "Loaded fact" not in run.stderr and "Starting operation" not in run.stderr  # nothing ran on the host
    assert host.out(f"stat -c '%a %Y' {ROOT}/state /etc/litellm/env.litellm") == before
