"""Every way an operator changes a managed user unit by hand is drift (issue #13 item 3).

Each row makes one hand edit as an operator would (``systemctl --user edit``,
``set-property``, a unit file in another search path, a mask, a change on disk
not reloaded), then: the check exits 2 naming the unit and what differs; a
converge brings ``systemctl --user show`` of the unit back to exactly what the
deploy manages (its managed file as fragment, no drop-in, the managed property
value, active); the converge after that changes nothing.
"""

import json

import pytest

from tests.support.hosts import drift_check

UNIT = "litellm-rerank.service"  # a stub server: restarts in a moment (the proxy may take minutes)
MANAGED = f"/home/litellm/.config/systemd/user/{UNIT}"
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


def edit(flags=""):
    return f"{EDITOR} && {AS} script -qec 'systemctl --user edit {flags} {UNIT}' /dev/null"


ROWS = [
    # (hand edit, property it changes, drifted item, a path the report names)
    pytest.param(edit(), "Environment", SOURCES, f"{MANAGED}.d/override.conf", id="edit"),
    pytest.param(edit("--runtime"), "Environment", SOURCES, f"{UNIT}.d/override.conf", id="edit-runtime"),
    pytest.param(
        f"{CTL} set-property {UNIT} CPUWeight=50",
        "CPUWeight",
        SOURCES,
        f"{CONTROL}/{UNIT}.d/50-CPUWeight.conf",
        id="set-property",
    ),
    pytest.param(
        f"{CTL} set-property --runtime {UNIT} MemoryMax=300M",
        "MemoryMax",
        SOURCES,
        f"user.control/{UNIT}.d/50-MemoryMax.conf",
        id="set-property-runtime",
    ),
    pytest.param(
        f"{AS} sh -c 'mkdir -p {CONTROL} && sed s/^RestartSec=.*/RestartSec=9/ {MANAGED} > {CONTROL}/{UNIT}' "
        f"&& {CTL} daemon-reload",
        "RestartUSec",
        SOURCES,
        f"{CONTROL}/{UNIT}",
        id="user-control-unit",
    ),
    pytest.param(
        f"mkdir -p /etc/systemd/user/{UNIT}.d && printf '[Service]\\nEnvironment=LITELLM_HAND_EDIT=1\\n' "
        f"> /etc/systemd/user/{UNIT}.d/override.conf && {CTL} daemon-reload",
        "Environment",
        SOURCES,
        f"/etc/systemd/user/{UNIT}.d/override.conf",
        id="etc-dropin",
    ),
    pytest.param(
        f"cp {MANAGED} /etc/systemd/user/{UNIT} && {CTL} daemon-reload",
        "Environment",
        SOURCES,
        f"/etc/systemd/user/{UNIT}",
        id="etc-unit-shadowed",
    ),
    pytest.param(
        f"{CTL} mask --runtime {UNIT} && {CTL} daemon-reload", "LoadState", SOURCES, "/run/user/", id="mask-runtime"
    ),  # /run/user/UID/systemd/user/UNIT -> /dev/null
    pytest.param(
        f"{AS} sh -c 'mkdir -p {CONTROL} && ln -s /dev/null {CONTROL}/{UNIT}' && {CTL} daemon-reload",
        "LoadState",
        SOURCES,
        f"{CONTROL}/{UNIT}",
        id="masked",
    ),
    pytest.param(f"touch {MANAGED}", "Environment", RELOAD, UNIT, id="changed-not-reloaded"),
    pytest.param(
        f'{AS} sh -c \'mkdir -p {MANAGED}.d && printf "[Service]\\nEnvironment=LITELLM_HAND_EDIT=1\\n" '
        f"> {MANAGED}.d/late.conf'",
        "Environment",
        SOURCES,
        f"{MANAGED}.d/late.conf",
        id="dropin-not-reloaded",
    ),
]


def show(host, prop):
    return host.out(f"{CTL} show -p {','.join([*SHOWN, prop])} {UNIT}")


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
