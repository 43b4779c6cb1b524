"""Root never trusts what the service account owns (issue #12, on the root-owned layout of issue #22).

Each row plants, as the service account ``litellm``, something a compromised account would try:

- **in root's code and configuration** (``litellm_runner.layout``: the venv, the host tools, the
  rendered config, its backups and temporary names, the env file, the unit folder): a trojan
  interpreter, pip or dbctl, a symlink at a managed file, file names with blanks and line breaks, a
  parent moved away. Each is refused by the kernel: the account's command fails with "Permission
  denied", the check then exits 0 and a converge changes nothing;
- **in its own state** (``litellm_root``, the account's to write, and its own unit folder): symlinks
  at a managed directory, at the runner's temporary names and at the unit folder, each pointing at
  root's files; names with blanks and line breaks; a swap raced against the check and converge by a
  loop. The check exits 2 naming the plant (a raced row: 0 or 2, whatever the loop left at that
  moment), and the converge repairs it.

Then, as an operator would after an incident, the drift check and the converges run as root over SSH,
and every row shows:

- root's files are unchanged: content hash, owner and mode of /etc/shadow, /etc/passwd and
  /root/.bashrc; owner and mode of every entry of /usr and /etc outside the folders the converge
  manages; and the files it manages there (interpreter, pip, tools, config, env file, units) hash as
  before the row, which began converged: the row ends where it began;
- nothing of them reaches any output or report (a canary password hash in /etc/shadow is looked
  for), and no raw control character reaches the check's output or JSON report;
- the trojan never ran as root (it logs ``id -u`` of every run);
- the host converged afterwards: the last converge reports 0 changes.

Each row runs three times (``RUNS``, issue #22's Done-when): a row in the account's state whole, once per
``run`` in its id, so a row that passes once by the luck of a race's timing or of the state the row before
left fails one of the others; a row in root's files tries its plant three times, then checks and converges
once (the kernel's answer does not depend on timing, and each whole run would cost a check and a converge).
"""

from __future__ import annotations

import json
import os
import re
import shlex

import pytest

from litellm_runner import layout
from tests.support.hosts import drift_check, pyinfra

HOME = "/home/litellm"
ROOT = f"{HOME}/litellm"
STATE = f"{ROOT}/state"
FILES = f"{STATE}/files"
ACCOUNT_UNITS = f"{HOME}/.config/systemd/user"
TMP = ".tmp-litellm-runner"
AS_ACCOUNT = "cd / && runuser -u litellm -- sh -c"
LOG = "/tmp/litellm-trojan.log"
CANARY = "CANARYshadowHASH" + os.urandom(4).hex()
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # TAB and LF are the check's own
RUNS = 3

# What root owns, read over plain SSH: a change to any of it fails the row. The folders the converge
# manages (root's code, config and units) are left out of the walk of /usr and /etc (a converge that
# repairs writes there, e.g. a config backup) and compared by content instead.
MANAGED = (layout.CODE, layout.CONFIG, layout.UNITS)
ROOT_FILES = (
    f"stat -c '%n %U %G %a' /etc/shadow /etc/passwd /usr /root/.bashrc {' '.join(MANAGED)} {layout.VENV} "
    f"{layout.BIN}; sha256sum /etc/shadow /etc/passwd /root/.bashrc {layout.VENV}/bin/python "
    f"{layout.VENV}/bin/python3 {layout.VENV}/bin/pip {layout.BIN}/* {layout.CONFIG_FILE} {layout.ENV_FILE} "
    f"{layout.COMPLIANCE} {layout.UNITS}/*.service {layout.UNITS}/*.timer; "
    f"find /usr /etc -xdev {' '.join(f'-path {path} -prune -o' for path in MANAGED)} "
    "-printf '%p %U %G %m\\n' 2>/dev/null | sha256sum"
)


def trojan(path: str) -> str:
    """Replace PATH (an executable) with a script that logs its uid, then runs the original."""
    return (
        f"mv {path} {path}.real && printf '%s\\n' '#!/bin/sh' "
        f'\'echo "$(id -u) $0" >> {LOG}\' \'exec "$0.real" "$@"\' > {path} && chmod 0755 {path}'
    )


# Rows in root's code and configuration: (id, plant); the account's command must fail, permission denied.
REFUSED = [
    ("trojan-venv-python", trojan(f"{layout.VENV}/bin/python")),
    ("trojan-venv-python3", trojan(f"{layout.VENV}/bin/python3")),
    ("trojan-venv-pip", trojan(f"{layout.VENV}/bin/pip")),
    ("trojan-dbctl", trojan(f"{layout.BIN}/litellm-dbctl")),
    ("symlink-managed-file", f"rm -f {layout.CONFIG_FILE} && ln -s /etc/shadow {layout.CONFIG_FILE}"),
    ("symlink-env-file", f"rm -f {layout.ENV_FILE} && ln -s /etc/shadow {layout.ENV_FILE}"),
    ("symlink-newest-backup", f"ln -s /etc/shadow {layout.CONFIG_FILE}.bak-29991231T235959000000000"),
    (
        "symlink-temp-names",
        f"ln -s /etc/shadow {layout.CONFIG_FILE}{TMP} && ln -s /etc/passwd {layout.CONFIG_FILE}{TMP}-bak && "
        f"ln -s /etc/shadow {layout.ENV_FILE}{TMP}",
    ),
    ("symlink-parent-directory", f"mv {layout.UNITS} {layout.UNITS}.moved && ln -s /etc/systemd/system {layout.UNITS}"),
    ("move-code-directory", f"mv {layout.CODE} {layout.CODE}.moved && mkdir -p {layout.BIN}"),
    (
        "names-with-blanks-and-line-breaks",
        f"cd {layout.CONFIG} && touch 'config.generated.yaml.bak-x .bashrc' \"config.generated.yaml.bak-1\n.bashrc\" "
        "'config.generated.yaml.bak-20200101T000000 shadow' \"config.generated.yaml.bak-20200101T000000000\nshadow\"",
    ),
]

# Rows in the account's own state: (id, planted as the account, what the check names or "" for a raced
# row, cleanup as root after the row or "", the account's loop running through the check and converge or "").
STATE_ROWS = [
    ("symlink-managed-directory", f"rm -rf {FILES} && ln -s /etc {FILES}", FILES, "", ""),
    (
        "symlink-temp-names",
        f"ln -s /etc/shadow {FILES}/config.generated.yaml{TMP} && ln -s /etc/passwd {STATE}/env.litellm{TMP}-bak",
        f"{FILES}/config.generated.yaml{TMP}",
        "",
        "",
    ),
    (
        "symlink-unit-folder",
        f"mv {ACCOUNT_UNITS} {ACCOUNT_UNITS}.moved && ln -s /etc/systemd/system {ACCOUNT_UNITS}",
        ACCOUNT_UNITS,
        f"rm -rf {ACCOUNT_UNITS}.moved",
        "",
    ),
    (
        "names-with-blanks-and-line-breaks",
        f"cd {FILES} && touch 'x .bashrc{TMP}' \"x\n.bashrc{TMP}\" 'y shadow{TMP}-bak'",
        f"{FILES}/x .bashrc{TMP}",
        "",
        "",
    ),
    (
        "race-swap-directory",
        f"rm -rf {FILES}",
        "",
        "",
        f"while :; do rm -rf {FILES} 2>/dev/null; ln -sfn /etc {FILES} 2>/dev/null; "
        f"rm -f {FILES} 2>/dev/null; mkdir {FILES} 2>/dev/null; done",
    ),
    (
        "race-swap-temp-file",
        f"chmod 0777 {FILES}",
        "",
        "",
        f"while :; do ln -sf /etc/shadow {FILES}/x{TMP} 2>/dev/null; "
        f"ln -sf /etc/passwd {STATE}/x{TMP}-bak 2>/dev/null; done",
    ),
]


@pytest.fixture(scope="module")
def planted_canary(host, converged):
    """A canary password hash in /etc/shadow (for a locked system account), removed afterwards."""
    host.ssh(f"usermod -p '{CANARY}' nobody")
    yield
    host.ssh("usermod -p '*' nobody")


@pytest.fixture
def row(host, converged, planted_canary):
    """The trojan's log, empty; root's files before the row; afterwards, what every row shows."""
    host.ssh(f"rm -f {LOG}; touch {LOG}; chmod 0666 {LOG}")
    before = host.out(ROOT_FILES)
    outputs: list[str] = []
    yield outputs
    assert host.out(ROOT_FILES) == before, "a root-owned file changed"
    for text in outputs:
        assert CANARY not in text, "the content of /etc/shadow reached an output"
        assert "root:x:0:0" not in text, "the content of /etc/passwd reached an output"
    runs = host.out(f"cat {LOG}").splitlines()
    assert not [line for line in runs if line.split()[0] == "0"], f"the trojan ran as root: {runs}"
    # every managed path is what the deploy manages again, no link left at one
    assert host.out(
        f"stat -c '%F %U' {layout.CONFIG_FILE} {layout.ENV_FILE} {layout.UNITS} {FILES} {ACCOUNT_UNITS}"
    ) == ("regular file root\nregular file root\ndirectory root\ndirectory litellm\ndirectory litellm")


def checked(host, tmp_path, outputs: list[str]) -> int:
    """The drift check's exit code; its output and report added to OUTPUTS, with no raw control character."""
    proc, report = drift_check(host, tmp_path)
    outputs += [proc.stdout, proc.stderr, json.dumps(report)]
    for text in (proc.stdout, json.dumps(report)):
        assert not RAW_CONTROL.search(text), "a raw control character in the check's output"
    assert proc.returncode in (0, 2), proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.returncode


@pytest.mark.parametrize("name, plant", REFUSED, ids=[f"root-{r[0]}" for r in REFUSED])
def test_the_kernel_refuses_the_accounts_attack_on_roots_files(host, row, tmp_path, name, plant):
    for _ in range(RUNS):  # the kernel's answer does not depend on timing: the check and converge run once
        planted = host.ssh(f"{AS_ACCOUNT} {shlex.quote(plant)}", check=False)
        assert planted.returncode != 0 and "Permission denied" in planted.stderr, (planted.returncode, planted.stderr)
        row.append(planted.stderr)
    assert checked(host, tmp_path, row) == 0, "the check reports drift after a refused plant"
    converge = pyinfra([host.name], "-y", "--diff", "-vvv")  # facts' output is printed at -vvv
    row += [converge.stdout, converge.stderr]
    assert converge.returncode == 0 and converge.changed() == [], (converge.changed(), converge.stderr[-2000:])


@pytest.mark.parametrize("run", range(1, RUNS + 1))
@pytest.mark.parametrize("name, plant, named, cleanup, race", STATE_ROWS, ids=[f"state-{r[0]}" for r in STATE_ROWS])
def test_the_accounts_plant_in_its_state_is_reported_and_repaired(
    host, row, tmp_path, name, plant, named, cleanup, race, run
):
    host.ssh(f"{AS_ACCOUNT} {shlex.quote(plant)}")
    racer = None
    if race:  # the account's loop runs for the whole check and converge
        racer = host.out(f"runuser -u litellm -- setsid sh -c {shlex.quote(race)} >/dev/null 2>&1 & echo $!")
    try:
        code = checked(host, tmp_path, row)
        if named:
            assert code == 2, row[0][-2000:]
            assert named in row[0] and named in row[2], f"the check does not name {named}:\n{row[0][-2000:]}"
        first = pyinfra([host.name], "-y", "--diff", "-vvv")
        row += [first.stdout, first.stderr]
    finally:
        if racer:
            host.ssh(f"pkill -u litellm -f 'while :' ; kill {racer} 2>/dev/null; true", check=False)
    if cleanup:
        host.ssh(cleanup)
    if race or first.returncode != 0:  # a converge with the account's loop running may fail; the next must not
        assert not (first.returncode and not race), first.why
        second = pyinfra([host.name], "-y")
        row += [second.stdout, second.stderr]
        assert second.returncode == 0, second.why
    last = pyinfra([host.name], "-y")
    assert last.returncode == 0 and last.changed() == [], (last.changed(), last.stderr[-2000:])
