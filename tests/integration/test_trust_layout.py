"""What the services run is root's, and what the account plants to change them is drift (issue #22, item 1).

On the shared session host (the seed's layout: venv, tools, config and env file in the account's tree,
converged once by the session), as the service account ``litellm``:

- the converge moved the seed's copies into the root-owned quarantine folder, with a manifest, and a
  second converge changed nothing;
- everything the managed services execute or read is root's along its whole path: a ``.pth`` file in
  the venv's site-packages, a new tool, a renamed parent are refused by the kernel (permission denied);
- a drop-in folder that is a symlink (``ExecStartPre=``), an ``environment.d`` file setting
  ``PYTHONPATH`` to a ``sitecustomize.py``, an extra enabled ``litellm-extra.service`` and a
  ``PYTHONPATH`` in the account's manager environment: the check exits 2 naming each path; the
  converge quarantines each (its manifest lists it), stops the extra unit and restarts the managed
  ones; the second converge changes nothing. Every plant writes a marker line when it runs: none
  appears, so neither root nor a managed service ran anything of the account's.
"""

from __future__ import annotations

import json
import shlex

import pytest

from litellm_runner import layout
from tests.support.hosts import drift_check, pyinfra

ROOT = "/home/litellm/litellm"
HOME = "/home/litellm"
MARKER = "/tmp/h22-layout-marker.log"  # world-writable: any process that runs a plant appends "uid tag"
EVIL = f"{HOME}/.cache/h22"


def as_account(host, command: str, check: bool = True):
    """COMMAND as the service account, with its own user manager reachable (systemctl --user)."""
    uid = host.out("id -u litellm")
    env = f"XDG_RUNTIME_DIR=/run/user/{uid} DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus"
    return host.ssh(f"cd / && runuser -u litellm -- env {env} sh -c {shlex.quote(command)}", check=check)


def manifests(host) -> list[dict]:
    """Every quarantine manifest on the host, oldest first."""
    read = "import glob, json; [print(json.dumps(json.load(open(f)))) for f in sorted(glob.glob('%s/*/manifest.json'))]"
    out = host.out(f"python3 -c {shlex.quote(read % layout.QUARANTINE)}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def quarantined(host) -> set[str]:
    return {item["path"] for doc in manifests(host) for item in doc["items"] if item.get("moved_to")}


def test_the_seed_layout_was_moved_into_roots_layout(host, converged):
    first, second = converged
    assert second.changed() == [], second.changed()
    moved = quarantined(host)
    for path in (f"{ROOT}/venv", f"{ROOT}/bin", f"{ROOT}/env.litellm", f"{ROOT}/state/config.generated.yaml"):
        assert path in moved, (path, sorted(moved))
        # moved; or, a folder of the image's lower layer that no rename can move (podman's overlay), sealed
        gone = host.ssh(f"test -e {path} || test -L {path}", check=False).returncode == 1
        assert gone or host.out(f"stat -c '%U %a' {path}") == "root 700", path
    assert host.out(f"stat -c '%U %a' {layout.QUARANTINE}") == "root 700"


def test_what_the_services_run_is_roots_along_its_whole_path(host, converged):
    # the venv the units name is root's link to a versioned venv beside the others (docs/venv-switch.md)
    assert host.out(f"stat -c '%U %F' {layout.VENV}") == "root symbolic link"
    assert host.out(f"readlink {layout.VENV}").startswith("venvs/")
    real = host.out(f"readlink -e {layout.VENV}")
    paths = [
        real,
        layout.BIN,
        layout.CONFIG_FILE,
        layout.ENV_FILE,
        *(f"{layout.UNITS}/litellm.{k}" for k in ("service", "socket")),
    ]
    for path in paths:
        parts = path.strip("/").split("/")
        for i in range(len(parts) + 1):
            here = "/" + "/".join(parts[:i])
            owner, mode = host.out(f"stat -c '%U %a' {here}").split()
            assert owner == "root", f"{here} is {owner}'s"
            assert not int(mode, 8) & 0o022 or here == "/tmp", f"{here} is {mode}: group or others may write"
    assert host.out(f"stat -c '%U:%G %a' {layout.ENV_FILE}") == "root:litellm 640"
    assert host.out(f"find {layout.CODE} {layout.CONFIG} ! -user root | head -3") == ""
    # the proxy and the tools run from root's venv; the proxy's launcher is root's tool, on root's socket unit
    assert f"ExecStart={layout.VENV}/bin/python {layout.BIN}/litellm-serve --config" in host.out(
        f"cat {layout.UNITS}/litellm.service"
    )


def test_the_kernel_refuses_the_accounts_changes_to_the_venv_config_and_units(host, converged):
    site = host.out(f"ls -d {layout.VENV}/lib/python3*/site-packages")
    attempts = [
        f"echo 'import os' > {site}/zz-h22.pth",
        f"cp /bin/true {layout.BIN}/litellm-h22",
        f"printf x > {layout.BIN}/__pycache__/litellm_tools.cpython-311.pyc",  # root's compiled tools
        f"mv {layout.VENV} {layout.VENV}.h22",
        f"mv {layout.CODE} {layout.CODE}.h22",
        f"echo 'x: 1' >> {layout.CONFIG_FILE}",
        f"echo 'X=1' >> {layout.ENV_FILE}",
        f"mkdir {layout.UNITS}/litellm.service.d",
    ]
    for command in attempts:
        proc = as_account(host, command, check=False)
        assert proc.returncode != 0 and "ermission denied" in proc.stderr, (command, proc.stderr)
    assert host.out(f"ls {site}/zz-h22.pth {layout.BIN}/litellm-h22 2>/dev/null || true") == ""
    assert as_account(host, f"cat {layout.ENV_FILE} >/dev/null").returncode == 0  # the account's group reads it


# (what, planted as the account): each plant appends "$(id -u) TAG" to MARKER whenever it runs
PLANTS = [
    f"mkdir -p {EVIL}/dropin {EVIL}/py {HOME}/.config/systemd/user {HOME}/.config/environment.d",
    # a drop-in folder of a managed service that is a symlink, with ExecStartPre=
    f"printf '[Service]\\nExecStartPre=/bin/sh -c \"echo $$(id -u) dropin >> {MARKER}\"\\n' > {EVIL}/dropin/x.conf",
    f"ln -s {EVIL}/dropin {HOME}/.config/systemd/user/litellm-metrics.service.d",
    # environment.d: PYTHONPATH to a sitecustomize.py
    f"printf 'import os\\nos.system(\"echo $(id -u) sitecustomize >> {MARKER}\")\\n' > {EVIL}/py/sitecustomize.py",
    f"echo PYTHONPATH={EVIL}/py > {HOME}/.config/environment.d/50-h22.conf",
    # the same in the account's running manager (not a file: the units unset it)
    f"systemctl --user set-environment PYTHONPATH={EVIL}/py",
    # an extra unit, enabled
    f'printf \'[Service]\\nExecStart=/bin/sh -c "echo $$(id -u) extra >> {MARKER}; sleep 3600"\\n'
    f"[Install]\\nWantedBy=default.target\\n' > {HOME}/.config/systemd/user/litellm-extra.service",
    "systemctl --user enable litellm-extra.service",
]
PLANTED = [
    f"{HOME}/.config/systemd/user/litellm-metrics.service.d",
    f"{HOME}/.config/environment.d/50-h22.conf",
    f"{HOME}/.config/systemd/user/litellm-extra.service",
    f"{HOME}/.config/systemd/user/default.target.wants/litellm-extra.service",
]


@pytest.fixture
def planted(host, converged):
    host.ssh(f"rm -f {MARKER}; touch {MARKER}; chmod 0666 {MARKER}")
    for command in PLANTS:
        as_account(host, command)
    yield
    as_account(host, f"systemctl --user unset-environment PYTHONPATH; rm -rf {EVIL}", check=False)
    host.ssh(f"rm -f {MARKER}", check=False)


def test_plants_are_drift_quarantined_and_never_run(host, planted, tmp_path):
    before = quarantined(host)
    proc, report = drift_check(host, tmp_path)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    shown = proc.stdout + json.dumps(report)
    for path in PLANTED:
        assert path in shown, f"the check did not name {path}"

    first = pyinfra([host.name], "-y")
    assert first.returncode == 0, first.why
    assert any("svc-02" in name for name in first.changed()), first.changed()
    second = pyinfra([host.name], "-y")
    assert second.returncode == 0 and second.changed() == [], (second.changed(), second.stderr[-2000:])

    moved = quarantined(host) - before
    for path in PLANTED:
        assert path in moved, (path, sorted(moved))
        assert host.ssh(f"test -e {path} || test -L {path}", check=False).returncode == 1, f"{path} still there"
    item = next(i for d in manifests(host) for i in d["items"] if i["path"] == PLANTED[0])
    assert item["type"] == "symlink" and item["target"] == f"{EVIL}/dropin" and item["owner"] == "litellm:litellm"
    # the extra unit is stopped and disabled; the managed services run root's code, restarted without the plants
    assert as_account(host, "systemctl --user is-enabled litellm-extra.service", check=False).stdout.strip() != (
        "enabled"
    )
    assert as_account(host, "systemctl --user is-active litellm-extra.service", check=False).stdout.strip() != (
        "active"
    )
    assert as_account(host, "systemctl --user is-active litellm-metrics.service").stdout.strip() == "active"
    runs = host.out(f"cat {MARKER}")
    assert runs == "", f"a plant ran: {runs}"
