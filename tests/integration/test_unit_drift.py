"""Every way an operator changes a managed user unit by hand is drift (issue #13 item 3).

Each row makes one hand edit as an operator would (``systemctl --user edit``,
``set-property``, a unit file in another search path, a mask, a change on disk
not reloaded), then: the check exits 2 naming the unit and what differs; a
converge brings ``systemctl --user show`` of the unit back to exactly what the
deploy manages (its managed file as fragment, no drop-in, the managed property
value, active); the converge after that changes nothing. The managed unit files are root's
(/etc/systemd/user); what the account puts in its own unit paths is quarantined (svc-02, issue #22).
"""

import json
import re

import pytest

from tests.support.hosts import drift_check

UNIT = "litellm-rerank.service"  # a stub server: restarts in a moment (the proxy may take minutes)
MANAGED = f"/etc/systemd/user/{UNIT}"
ACCOUNT = "/home/litellm/.config/systemd/user"  # the account's own unit path: its enablement links only
CONTROL = "/home/litellm/.config/systemd/user.control"
RUN = "/run/user/$(id -u litellm)/systemd"
CTL = "systemctl --user --machine=litellm@.host"
# the operator as the account, with a terminal for ``systemctl edit`` and a scripted editor
AS = "cd / && runuser -u litellm -- env XDG_RUNTIME_DIR=/run/user/$(id -u litellm) SYSTEMD_EDITOR=/tmp/hand-editor"
EDITOR = (
    'printf \'#!/bin/sh\\nprintf "[Service]\\\\nEnvironment=LITELLM_HAND_EDIT=1\\\\n" > "$1"\\n\' '
    "> /tmp/hand-editor && chmod 755 /tmp/hand-editor"
)
SHOWN = ["FragmentPath", "DropInPaths", "LoadState", "NeedDaemonReload", "ActiveState"]
SOURCES = f"Unit {UNIT} only from its managed file | svc-01"
RELOAD = "Reload the user manager of litellm | svc-01"
PLANTS = "Nothing of litellm's own changes a managed unit or its environment | svc-02"


def edit(flags=""):
    return f"{EDITOR} && {AS} script -qec 'systemctl --user edit {flags} {UNIT}' /dev/null"


ROWS = [
    # (hand edit, property it changes, drifted item, a path the report names)
    # the account's own unit paths: its plants (issue #22), quarantined with evidence
    pytest.param(edit(), "Environment", PLANTS, f"{ACCOUNT}/{UNIT}.d", id="edit"),
    pytest.param(edit("--runtime"), "Environment", PLANTS, f"systemd/user/{UNIT}.d", id="edit-runtime"),
    pytest.param(
        f"{CTL} set-property {UNIT} CPUWeight=50",
        "CPUWeight",
        PLANTS,
        f"{CONTROL}/{UNIT}.d",
        id="set-property",
    ),
    pytest.param(
        f"{CTL} set-property --runtime {UNIT} MemoryMax=300M",
        "MemoryMax",
        PLANTS,
        f"user.control/{UNIT}.d",
        id="set-property-runtime",
    ),
    pytest.param(
        f"{AS} sh -c 'mkdir -p {CONTROL} && sed s/^RestartSec=.*/RestartSec=9/ {MANAGED} > {CONTROL}/{UNIT}' "
        f"&& {CTL} daemon-reload",
        "RestartUSec",
        PLANTS,
        f"{CONTROL}/{UNIT}",
        id="user-control-unit",
    ),
    pytest.param(
        f"{AS} sh -c 'mkdir -p {ACCOUNT} && sed s/^RestartSec=.*/RestartSec=9/ {MANAGED} > {ACCOUNT}/{UNIT}' "
        f"&& {CTL} daemon-reload",
        "RestartUSec",
        PLANTS,
        f"{ACCOUNT}/{UNIT}",
        id="account-unit-shadows",
    ),
    pytest.param(
        f"{CTL} mask --runtime {UNIT} && {CTL} daemon-reload", "LoadState", PLANTS, "/run/user/", id="mask-runtime"
    ),  # /run/user/UID/systemd/user/UNIT -> /dev/null
    pytest.param(
        f"{AS} sh -c 'mkdir -p {CONTROL} && ln -s /dev/null {CONTROL}/{UNIT}' && {CTL} daemon-reload",
        "LoadState",
        PLANTS,
        f"{CONTROL}/{UNIT}",
        id="masked",
    ),
    pytest.param(
        f'{AS} sh -c \'mkdir -p {ACCOUNT}/{UNIT}.d && printf "[Service]\\nEnvironment=LITELLM_HAND_EDIT=1\\n" '
        f"> {ACCOUNT}/{UNIT}.d/late.conf'",
        "Environment",
        PLANTS,
        f"{ACCOUNT}/{UNIT}.d",
        id="dropin-not-reloaded",
    ),
    # root's folders: an operator's hand edit as root, quarantined by svc-01
    pytest.param(
        f"mkdir -p /etc/systemd/user/{UNIT}.d && printf '[Service]\\nEnvironment=LITELLM_HAND_EDIT=1\\n' "
        f"> /etc/systemd/user/{UNIT}.d/override.conf && {CTL} daemon-reload",
        "Environment",
        SOURCES,
        f"/etc/systemd/user/{UNIT}.d/override.conf",
        id="etc-dropin",
    ),
    pytest.param(f"touch {MANAGED}", "Environment", RELOAD, UNIT, id="changed-not-reloaded"),
]


def show(host, prop):
    """The unit's properties; Debian's /etc/xdg/systemd/user is a link to /etc/systemd/user, so systemd may name
    the managed file through either path: shown as the managed one."""
    return host.out(f"{CTL} show -p {','.join([*SHOWN, prop])} {UNIT}").replace(
        "/etc/xdg/systemd/user/", "/etc/systemd/user/"
    )


check = drift_check


@pytest.mark.parametrize("hand_edit, prop, item, named", ROWS)
def test_a_hand_edit_of_a_unit_is_drift_and_converged_away(
    converged, host, converge, tmp_path, hand_edit, prop, item, named
):
    managed = show(host, prop)
    assert f"FragmentPath={MANAGED}\n" in managed + "\n" and "DropInPaths=\n" in managed + "\n"
    host.ssh(hand_edit, timeout=120)
    proc, report = check(host, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    drifted = {i["id"]: i for i in report["hosts"][host.name]["items"] if i["status"] == "drift"}
    assert item in drifted, sorted(drifted)
    assert UNIT in item or UNIT in json.dumps(drifted[item]["before"])  # the unit is named
    assert named in json.dumps(drifted[item]["before"])  # and what differs, before -> after
    assert named not in json.dumps(drifted[item]["after"])
    run = converge()
    assert item in run.changed(host.name)
    assert f"Unit {UNIT} enabled and running | svc-01" in run.changed(host.name)  # restarted once
    assert show(host, prop) == managed
    assert converge().changed(host.name) == []


# -- the snapshot's systemd answers: asked over D-Bus, the same as systemctl's (issue #22) ----------------------
ASKED = [UNIT, "litellm-backup.timer", "litellm.socket", "litellm-no-such.timer", "litellm-no-such.service"]
ASKED += ["litellm-knowledge-refresh.timer"]  # installed, disabled: not loaded until asked
NOT_RELOADED = (  # a drop-in of the account's, loaded, then one more it has not reloaded
    f"{AS} sh -c 'mkdir -p {ACCOUNT}/{UNIT}.d {ACCOUNT}/litellm-backup.timer.d "
    f'&& printf "[Unit]\\nDescription=x\\n" > {ACCOUNT}/{UNIT}.d/a.conf '
    f'&& printf "[Timer]\\nRandomizedDelaySec=1\\n" > {ACCOUNT}/litellm-backup.timer.d/a.conf '
    f'&& systemctl --user daemon-reload && printf "[Unit]\\nDescription=y\\n" > {ACCOUNT}/{UNIT}.d/b.conf\''
)
NOT_FOUND = r"Id=litellm-no-such\.timer\nLoadState=not-found\n"
LOADED_TIMER = r"Id=litellm-backup\.timer\nLoadState=loaded\n"
STATES = [
    # (what is done, undone after, what systemctl shows then (patterns): the snapshot must print the same)
    pytest.param("true", "true", [LOADED_TIMER, NOT_FOUND, "NeedDaemonReload=no"], id="converged"),
    pytest.param(
        NOT_RELOADED,
        f"rm -rf {ACCOUNT}/{UNIT}.d {ACCOUNT}/litellm-backup.timer.d && {AS} systemctl --user daemon-reload",
        [f"DropInPaths={ACCOUNT}/{UNIT}.d/a.conf\n", "NeedDaemonReload=yes", r"timer\.d/a\.conf\n", NOT_FOUND],
        id="drop-ins-not-reloaded",
    ),
]


def blocks(text: str) -> dict[str, list[str]]:
    """``systemctl show``'s blocks, each unit's lines by its ``Id``."""
    found = {}
    for block in text.strip("\n").split("\n\n"):
        lines = block.splitlines()
        found[next(line[3:] for line in lines if line.startswith("Id="))] = lines
    return found


@pytest.mark.parametrize("make, undo, shows", STATES)
def test_the_snapshot_asks_systemd_what_systemctl_shows(converged, host, make, undo, shows):
    """The snapshot asks PID 1 and the account's manager over D-Bus (``hostside.Bus``): its version, whether the
    manager runs and the units' properties are what ``systemctl --version``, ``is-active`` and ``show`` print,
    line for line for a loaded unit: its state, its drop-ins, a pending reload. A unit the
    manager has not loaded (a disabled timer, a unit with no file) is not loaded by the snapshot, as ``show`` does:
    the snapshot says it is inactive with nothing to reload and gives the unit file state ``show`` gives. (A
    manager that does not run was compared by hand, docs/benchmarks.md: stopping it here can take minutes.)"""
    from litellm_runner.pyinfra_ext.facts import hostside
    from litellm_runner.pyinfra_ext.hostside import UNIT_PROPS

    args = {"paths": [], "user": "litellm", "units": ASKED, "venv": "/nonexistent", "systemd": True}
    host.ssh(make, timeout=120)
    try:
        doc = json.loads(host.out(hostside("snapshot", args), timeout=120))
        shown = host.ssh(
            f"{AS} systemctl --user show --property={UNIT_PROPS} {' '.join(ASKED)}", timeout=60, check=False
        ).stdout
        version = host.out("systemctl --version").splitlines()[0]
        active = host.ssh("systemctl is-active --quiet user@$(id -u litellm).service", check=False).returncode == 0
    finally:
        host.ssh(undo, timeout=120)
    asked = blocks("\n".join(doc["units"][: -3 * len(ASKED)]))  # then each unit's X-Sources block
    expected = blocks(shown)
    assert list(asked) == list(expected) == ASKED
    resting = {unit for unit, lines in asked.items() if not any(line.startswith("LoadState=") for line in lines)}
    assert resting == {"litellm-no-such.timer", "litellm-no-such.service", "litellm-knowledge-refresh.timer"}
    for unit, lines in asked.items():
        if unit in resting:  # what show says of it, less what only loading it tells
            assert set(lines) <= set(expected[unit]) | {"ActiveState=inactive", "NeedDaemonReload=no"}, (unit, lines)
            assert "ActiveState=inactive" in expected[unit] and "NeedDaemonReload=no" in expected[unit]
        else:
            assert lines == expected[unit]
    assert "UnitFileState=disabled" in asked["litellm-knowledge-refresh.timer"]
    assert all(re.search(pattern, shown) for pattern in shows), shown
    assert (doc["systemd"], doc["manager"]) == (version, active) and version.startswith("systemd ")
    assert active and shown
