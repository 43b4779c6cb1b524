"""Nothing the service account plants in its state stops a repair; output shows only what is safe (issue #22).

The account ``litellm`` plants, in the tree it owns, what used to stop every converge until a
person removed it by hand: directories at the runner's temporary and backup names and at a unit's
name in its ``user.control``, a 20 GB sparse file and a FIFO at managed paths, 1,100 nested
directories, a RECORD line of 200,000 characters and a FIFO in the venv, the venv's ``python3``
linked to a large root-owned file; and what used to reach the operator's terminal raw: file names
and a distribution name with terminal escape codes, the master key written as a literal into the
rendered config. Each test plants several items at once (one check, two converges), and shows for
each item by name:

- the drift check exits 2 and names the item's path;
- a converge as root finishes (exit 0): the rest of the host converged, the item was displaced
  (``PATH.displaced-TIME``, kept) or replaced, never followed, never read;
- the second converge changes nothing, and the check exits 0 again;
- no raw control character of the plant's and no secret (the master key) in any output: the
  check's terminal output, its JSON and JUnit reports, both converges' output.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from litellm_runner import envfile, sandbox
from tests.support.hosts import drift_check, pyinfra

ROOT = "/home/litellm/litellm"
STATE = f"{ROOT}/state"
CONFIG = f"{STATE}/config.generated.yaml"
VENV = f"{ROOT}/venv"
CONTROL = "/home/litellm/.config/systemd/user.control"
BIG = f"{STATE}/compliance-desired.json"  # a managed file the account replaces by a 20 GB sparse one
ROOT_BIG = "/opt/h-trust-large-library.so"  # root's own large file the venv's python3 is linked to
ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\x1b[8m"  # window title, clear screen, concealed text
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # none in the check's own output (TAB, LF allowed)


def master_key() -> str:
    return envfile.read(sandbox.secrets_file())["LITELLM_MASTER_KEY"]


def as_account(host, script: str) -> None:
    host.ssh(f"runuser -u litellm -- sh -c {shlex.quote(script)}")


def outputs_are_safe(texts: list[str]) -> None:
    """No secret and no raw escape of the plants' in any of TEXTS."""
    key = master_key()
    for text in texts:
        assert key not in text, "the master key reached an output"
        raw = text.lower()  # a distribution name is shown normalized (lower case)
        assert "\x1b]0;pwned" not in raw and "\x1b[8m" not in raw, "a planted escape code reached an output raw"


def check_names(host, tmp_path, paths: list[str]) -> list[str]:
    """The drift check: exit 2, each of PATHS named in its output and reports, nothing unsafe in them."""
    proc, report = drift_check(host, tmp_path)
    junit = (tmp_path / "drift.xml").read_text() if (tmp_path / "drift.xml").exists() else ""
    shown = proc.stdout + proc.stderr
    assert proc.returncode == 2, shown[-3000:]
    for path in paths:
        assert path in shown, f"the check does not name {path}:\n{shown[-3000:]}"
        assert path in json.dumps(report), f"the JSON report does not name {path}"
    for text in (proc.stdout, json.dumps(report), junit):
        assert not RAW_CONTROL.search(text.replace("\n", "").replace("\t", "")), "a raw control character"
    return [proc.stdout, proc.stderr, json.dumps(report), junit]


def converge_twice(host) -> list[str]:
    """A converge that finishes, then one that changes nothing; their output."""
    first = pyinfra([host.name], "-y", "--diff", "-vvv")  # facts' and commands' output is printed at -vvv
    assert first.returncode == 0, first.stderr[-4000:]
    second = pyinfra([host.name], "-y")
    assert second.returncode == 0 and second.changed() == [], (second.changed(), second.stderr[-2000:])
    return [first.stdout, first.stderr, second.stdout, second.stderr]


def clean_check(host, tmp_path) -> None:
    proc, _ = drift_check(host, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def displaced(host, path: str) -> list[str]:
    """What a converge moved aside from PATH (``PATH.displaced-TIME``)."""
    return host.out(f"ls -d {shlex.quote(path)}.displaced-* 2>/dev/null || true").splitlines()


@pytest.fixture
def remove_displaced(host):
    """The displaced plants removed afterwards (as root; the deep tree with rm, which has no depth limit)."""
    yield
    host.ssh(
        f"rm -rf {STATE}/*.displaced-* {ROOT}/*.displaced-* {CONTROL}/*.displaced-* {ROOT_BIG}",
        timeout=300,
        check=False,
    )


def test_the_account_cannot_hold_create_or_replace_the_run_lock(host, converged):
    """The guard lives in a directory only root enters (0700), the lock and guard are 0600: the account
    can neither open, flock, create nor replace them, and a converge takes the lock as before."""
    assert host.out("stat -c '%U %a %F' /run/litellm-runner.lock.d /run/litellm-runner.lock.d/guard") == (
        "root 700 directory\nroot 600 regular empty file"
    )
    for attempt in (
        "exec 9</run/litellm-runner.lock.d/guard",
        "flock -n /run/litellm-runner.lock.d/guard true",
        "exec 9>>/run/litellm-runner.lock",
        "touch /run/litellm-runner.lock.x && mv -f /run/litellm-runner.lock.x /run/litellm-runner.lock",
        "ls /run/litellm-runner.lock.d",
    ):
        proc = host.ssh(f"runuser -u litellm -- sh -c {shlex.quote(attempt)}", check=False)
        assert proc.returncode != 0, f"the account could: {attempt}"


@pytest.mark.usefixtures("remove_displaced")
def test_plants_in_the_state_each_fail_or_are_displaced_alone(host, converged, tmp_path):
    unit = "litellm.service"
    escaped = f"{STATE}/{ESCAPES}.tmp-litellm-runner"
    plants = {
        "temp-name directory": f"{STATE}/x.tmp-litellm-runner",
        "backup-name directory": f"{CONFIG}.bak-20260101T000000",
        "unit-name directory in user.control": f"{CONTROL}/{unit}",
        "20 GB sparse file at a managed path": BIG,
        "FIFO at the env file": f"{ROOT}/env.litellm",
    }
    key = master_key()
    as_account(
        host,
        f"mkdir {plants['temp-name directory']} {plants['backup-name directory']} && "
        f"mkdir -p {plants['unit-name directory in user.control']} && "
        f"rm -f {BIG} && truncate -s 20G {BIG} && "
        f"rm -f {ROOT}/env.litellm && mkfifo {ROOT}/env.litellm && "
        # the master key as a literal in the rendered config, as hand-written LiteLLM configs often have it
        f"sed -i 's|master_key: os.environ/LITELLM_MASTER_KEY|master_key: {key}|' {CONFIG} && grep -q {key} {CONFIG}",
    )
    as_account(host, f"mkdir {shlex.quote(escaped)}")  # a file name with terminal escape codes

    outputs = check_names(host, tmp_path, list(plants.values()))
    assert "\\x1b]0;PWNED" in outputs[0], "the escaped file name is not shown"
    assert "<secret sha256:" in outputs[0], "the config diff does not show where the master key was redacted"
    outputs += converge_twice(host)
    outputs_are_safe(outputs)

    for what, path in plants.items():
        if what == "20 GB sparse file at a managed path":
            assert displaced(host, path), f"{what}: {path} not moved aside"
            assert host.out(f"stat -c '%F %s' {path}").startswith("regular file"), f"{what}: not written"
        elif what == "FIFO at the env file":
            assert displaced(host, path), f"{what}: {path} not moved aside"
            assert host.out(f"stat -c '%F %a %U' {path}") == "regular file 600 litellm"
        else:
            assert displaced(host, path), f"{what}: {path} not moved aside"
            assert host.ssh(f"test -e {shlex.quote(path)}", check=False).returncode != 0, f"{what}: still there"
    assert key not in host.out(f"cat {CONFIG}"), "the config was not rendered again"
    assert host.out("runuser -u litellm -- systemctl --user is-active litellm.service") == "active"
    clean_check(host, tmp_path)


@pytest.mark.usefixtures("remove_displaced")
def test_plants_in_the_venv_rebuild_it_without_root_walking_or_reading_them(host, converged, tmp_path):
    site = host.out(f"ls -d {VENV}/lib/python3*/site-packages")
    record = host.out(f"ls -d {site}/*.dist-info | grep -v -e '/pip-' -e '/litellm-' | head -n 1") + "/RECORD"
    deep = f"{site}/deep"
    named = {  # each plant, and how the check names it
        "1,100 nested directories": f"{deep}/d/d/d",
        "RECORD line of 200,000 characters": f"{record}: unreadable",
        "FIFO at the venv's schema.prisma": "litellm/proxy/schema.prisma: not a regular file",
        "python3 linked to a large root-owned file": ROOT_BIG,
        "distribution name with escape codes": "x1b]0;pwned",  # normalized: lower case
    }
    # root's own large file: the atime shows whether root read it (set in the past, a read sets it now)
    host.ssh(f"truncate -s 20G {ROOT_BIG} && touch -a -d 2001-01-01 {ROOT_BIG}")
    as_account(
        host,
        f"mkdir {deep} && cd {deep} && i=0; while [ $i -lt 1100 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; "
        f"printf 'x.py,sha256=%0200000d,1\\n' 0 >> {record} && "
        f"rm -f {site}/litellm/proxy/schema.prisma && mkfifo {site}/litellm/proxy/schema.prisma && "
        f"ln -sfn {ROOT_BIG} {VENV}/bin/python3",
    )
    escaped = f"{site}/{ESCAPES}evil-1.0.dist-info"
    as_account(
        host,
        f"mkdir {shlex.quote(escaped)} && printf 'Name: {ESCAPES}evil\\nVersion: 1.0\\n\\n' "
        f"> {shlex.quote(escaped + '/METADATA')} && : > {shlex.quote(escaped + '/RECORD')}",
    )

    outputs = check_names(host, tmp_path, list(named.values()))
    outputs += converge_twice(host)
    outputs_are_safe(outputs)

    assert displaced(host, VENV), "the venv was not moved aside"
    assert host.ssh(f"test -d {VENV}.displaced-*/lib", check=False).returncode == 0  # kept, never deleted
    assert host.out(f"readlink {VENV}/bin/python3") != ROOT_BIG
    assert host.out(f"stat -c %X {ROOT_BIG}") == host.out("date -d 2001-01-01 +%s"), "root read the linked file"
    assert host.out(f"stat -c %F {VENV}/lib/python3*/site-packages/litellm/proxy/schema.prisma") == "regular file"
    assert host.out("runuser -u litellm -- systemctl --user is-active litellm.service") == "active"
    left = host.out("pgrep -u litellm -a -f 'schema.prisma|litellm-dbctl' || true")
    assert left == "", f"a process of the account's facts was left behind: {left}"
    clean_check(host, tmp_path)
