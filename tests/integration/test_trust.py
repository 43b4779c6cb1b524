"""Root never trusts what the service account owns (issue #12).

Each row plants, as the service account ``litellm``, something a compromised
account could leave in its own tree: a trojan interpreter, tool or dbctl;
symlinks at a managed file, directory, backup, temp name and parent
directory, each pointing at root-owned files; file names with blanks and line
breaks; a swap raced against the converge by a loop. Then the drift check and
two converges run as root over SSH, as an operator would after an incident,
and the row shows:

- root-owned files are unchanged: content hash, owner and mode of
  /etc/shadow and /etc/passwd, owner and mode of /usr and of every entry of /usr;
- nothing of them reaches any output or report (a canary password hash in
  /etc/shadow is looked for);
- the trojan never ran as root (it logs ``id -u`` of every run);
- the host converged afterwards: the second converge reports 0 changes.
"""

from __future__ import annotations

import json
import os
import shlex

import pytest

from tests.support.hosts import drift_check, pyinfra

ROOT = "/home/litellm/litellm"
STATE = f"{ROOT}/state"
CONFIG = f"{STATE}/config.generated.yaml"
UNITS = "/home/litellm/.config/systemd/user"
AS_ACCOUNT = "runuser -u litellm -- sh -c"
LOG = "/tmp/litellm-trojan.log"
CANARY = "CANARYshadowHASH" + os.urandom(4).hex()

# what root owns, read over plain SSH: changes to any of it fail the row
ROOT_FILES = (
    "stat -c '%n %U %G %a' /etc/shadow /etc/passwd /usr /root/.bashrc; "
    "sha256sum /etc/shadow /etc/passwd /root/.bashrc; "
    "find /usr /etc -xdev -printf '%p %U %G %m\\n' 2>/dev/null | sha256sum"
)


def trojan(path: str) -> str:
    """Replace PATH (an executable of the account's) with a script that logs its uid, then runs the original."""
    return (
        f"mv {path} {path}.real && printf '%s\\n' '#!/bin/sh' "
        f'\'echo "$(id -u) $0" >> {LOG}\' \'exec "$0.real" "$@"\' > {path} && chmod 0755 {path}'
    )


def untrojan(path: str) -> str:
    return f"if [ -e {path}.real ] || [ -L {path}.real ]; then mv -f {path}.real {path}; fi"


# (id, planted as the account, cleanup as root after the row or "", background race loop or "");
# rows whose plant replaces a managed path must show as drift in the check (exit 2)
DRIFT = {
    "symlink-managed-file",
    "symlink-env-file",
    "symlink-managed-directory",
    "symlink-parent-directory",
    "race-swap-temp-file",
}
ATTACKS = [
    ("trojan-venv-python", trojan(f"{ROOT}/venv/bin/python"), untrojan(f"{ROOT}/venv/bin/python"), ""),
    ("trojan-venv-python3", trojan(f"{ROOT}/venv/bin/python3"), untrojan(f"{ROOT}/venv/bin/python3"), ""),
    ("trojan-venv-pip", trojan(f"{ROOT}/venv/bin/pip"), untrojan(f"{ROOT}/venv/bin/pip"), ""),
    ("trojan-dbctl", trojan(f"{ROOT}/bin/litellm-dbctl"), untrojan(f"{ROOT}/bin/litellm-dbctl"), ""),
    ("symlink-managed-file", f"rm -f {CONFIG} && ln -s /etc/shadow {CONFIG}", "", ""),
    ("symlink-env-file", f"rm -f {ROOT}/env.litellm && ln -s /etc/shadow {ROOT}/env.litellm", "", ""),
    ("symlink-managed-directory", f"rm -rf {STATE}/files && ln -s /etc {STATE}/files", "", ""),
    ("symlink-newest-backup", f"ln -s /etc/shadow {CONFIG}.bak-29991231T235959000000000", "", ""),
    (
        "symlink-temp-names",
        f"ln -s /etc/shadow {CONFIG}.tmp-litellm-runner && "
        f"ln -s /etc/passwd {CONFIG}.tmp-litellm-runner-bak && "
        f"ln -s /etc/shadow {ROOT}/env.litellm.tmp-litellm-runner",
        "",
        "",
    ),
    (
        "symlink-parent-directory",
        f"mv {UNITS} {UNITS}.moved && ln -s /etc/systemd/system {UNITS}",
        f"rm -rf {UNITS}.moved",
        "",
    ),
    (
        "names-with-blanks-and-line-breaks",
        f"cd {STATE} && touch 'config.generated.yaml.bak-x .bashrc' \"config.generated.yaml.bak-1\n.bashrc\" "
        "'config.generated.yaml.bak-20200101T000000 shadow' \"config.generated.yaml.bak-20200101T000000000\nshadow\"",
        "",
        "",
    ),
    (
        "race-swap-directory",
        f"rm -rf {STATE}/files",
        "",
        f"while :; do rm -rf {STATE}/files 2>/dev/null; ln -sfn /etc {STATE}/files 2>/dev/null; "
        f"rm -f {STATE}/files 2>/dev/null; mkdir {STATE}/files 2>/dev/null; done",
    ),
    (
        "race-swap-temp-file",
        f"sed -i 's/request_timeout: 120/request_timeout: 600/' {CONFIG}",
        "",
        f"while :; do ln -sf /etc/shadow {CONFIG}.tmp-litellm-runner 2>/dev/null; "
        f"ln -sf /etc/passwd {CONFIG}.tmp-litellm-runner-bak 2>/dev/null; done",
    ),
]


@pytest.fixture(scope="module")
def planted_canary(host, converged):
    """A canary password hash in /etc/shadow (for a locked system account), removed afterwards."""
    host.ssh(f"usermod -p '{CANARY}' nobody")
    yield
    host.ssh("usermod -p '*' nobody")


check = drift_check


@pytest.mark.parametrize("name, plant, cleanup, race", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_planted_attack_changes_nothing_of_root_and_the_host_converges(
    host, converged, planted_canary, tmp_path, name, plant, cleanup, race
):
    host.ssh(f"rm -f {LOG}; touch {LOG}; chmod 0666 {LOG}")
    before = host.out(ROOT_FILES)
    host.ssh(f"{AS_ACCOUNT} {shlex.quote(plant)}")
    racer = None
    if race:  # the account's loop runs for the whole check and converge
        racer = host.out(f"runuser -u litellm -- setsid sh -c {shlex.quote(race)} >/dev/null 2>&1 & echo $!")
    outputs = []
    try:
        proc, report = check(host, tmp_path)
        outputs += [proc.stdout, proc.stderr, json.dumps(report)]
        assert proc.returncode == (2 if name in DRIFT else proc.returncode) and proc.returncode in (0, 2), (
            proc.stdout[-2000:] + proc.stderr[-2000:]
        )
        first = pyinfra([host.name], "-y", "--diff", "-vvv")  # facts' output is printed at -vvv
        outputs += [first.stdout, first.stderr]
    finally:
        if racer:
            host.ssh(f"pkill -u litellm -f 'while :' ; kill {racer} 2>/dev/null; true", check=False)
    if cleanup:
        host.ssh(cleanup)
    if race or first.returncode != 0:  # a converge with the account's loop running may fail; the next must not
        assert not (first.returncode and not race), first.stderr[-3000:]
        second = pyinfra([host.name], "-y")
        outputs += [second.stdout, second.stderr]
        assert second.returncode == 0, second.stderr[-3000:]
    last = pyinfra([host.name], "-y")
    assert last.returncode == 0 and last.changed() == [], (last.changed(), last.stderr[-2000:])

    assert host.out(ROOT_FILES) == before, "a root-owned file changed"
    for text in outputs:
        assert CANARY not in text, "the content of /etc/shadow reached an output"
        assert "root:x:0:0" not in text, "the content of /etc/passwd reached an output"
    runs = host.out(f"cat {LOG}").splitlines()
    assert not [line for line in runs if line.split()[0] == "0"], f"the trojan ran as root: {runs}"
    # every managed path is what the deploy manages again, no link left at one
    assert (
        host.out(f"stat -c %F {CONFIG} {ROOT}/env.litellm {STATE}/files {UNITS}")
        == "regular file\nregular file\ndirectory\ndirectory"
    )
