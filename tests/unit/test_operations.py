"""Data-driven tests of the custom operations, in the form of pyinfra's own operation tests:
arguments and facts in, commands or noop reason out (and, with ``--diff``, the lines pyinfra
prints); command output in, fact out."""

import json
import logging
import re

import pytest
from pyinfra.api.config import Config
from pyinfra.context import ctx_config, ctx_host

from litellm_runner.gates.cve import locked_versions
from litellm_runner.pyinfra_ext.facts import FileText
from litellm_runner.pyinfra_ext.operations import (
    directory,
    file_attrs,
    linger,
    managed_file,
    no_abandoned_lock,
    no_account_plants,
    no_leftovers,
    sha256_text,
    system_packages,
    user_daemon_reload,
    user_unit,
    user_unit_sources,
    venv_requirements,
)
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot, units_of
from tests.unit import fakehost
from tests.unit.fakehost import Meta, run_op, snap

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Printed(logging.Handler):
    """What pyinfra's logger printed (the lines ``--diff`` shows), colours taken off."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(ANSI.sub("", record.getMessage()))


def run_diff(op, facts, diff=True, **kwargs):
    """``run_op`` with pyinfra's ``--diff`` (config.DIFF) on: (commands, noops, printed lines)."""
    printed, pyinfra_logger = Printed(), logging.getLogger("pyinfra")
    pyinfra_logger.addHandler(printed)
    level = pyinfra_logger.level
    pyinfra_logger.setLevel(logging.INFO)
    try:
        with ctx_config.use(Config(DIFF=diff)):
            commands, noops = run_op(op, facts, **kwargs)
    finally:
        pyinfra_logger.removeHandler(printed)
        pyinfra_logger.setLevel(level)
    return commands, noops, printed.lines


DIR = {"type": "directory", "mode": "0750", "user": "litellm", "group": "litellm", "sha256": None}


@pytest.mark.parametrize(
    "present, fact, manager, expected",
    [
        (True, True, True, []),
        (True, False, False, ["loginctl enable-linger litellm"]),
        (True, True, False, ["loginctl enable-linger litellm"]),  # lingering, but its manager was stopped
        (False, True, True, ["loginctl disable-linger litellm"]),
        (False, False, False, []),
    ],
)
def test_linger(present, fact, manager, expected):
    commands, noops = run_op(
        linger, {HostSnapshot: snap(linger=fact, manager=manager)}, user="litellm", present=present
    )
    assert [c.split(" && ")[0] for c in commands] == expected
    assert bool(noops) == (not expected)


@pytest.mark.parametrize(
    "found, expected",
    [
        ([], []),
        (["/r/state/c.yaml.tmp-litellm-runner"], ['hostside unlink {"paths": ["/r/state/c.yaml.tmp-litellm-runner"]}']),
    ],
)
def test_no_leftovers(found, expected):
    commands, noops = run_op(no_leftovers, {HostSnapshot: snap(leftovers=found)}, dirs=["/r/state"])
    assert commands == expected and bool(noops) == (not expected)


def hs(action, **args):
    """How fakehost shows a host-side command."""
    import json

    return f"hostside {action} {json.dumps(args, sort_keys=True)}"


ACCOUNT = {"user": "litellm", "group": "litellm", "mode": "0750"}


@pytest.mark.parametrize(
    "fact, expected, before",
    [
        (DIR, [], None),
        (
            {**DIR, "mode": "0777"},
            [hs("attrs", path="/r/state", **ACCOUNT)],
            {"mode": "0777", "owner": "litellm:litellm"},
        ),
        (
            {**DIR, "mode": "0775", "user": "root"},
            [hs("attrs", path="/r/state", **ACCOUNT)],
            {"mode": "0775", "owner": "root:litellm"},
        ),
        (None, [hs("mkdir", path="/r/state", **ACCOUNT)], None),
        # a planted link or a file in the way: moved aside by mkdir, never followed
        (
            {"type": "symlink", "mode": "0777", "user": "litellm", "group": "litellm", "sha256": None},
            [hs("mkdir", path="/r/state", **ACCOUNT)],
            {"type": "symlink"},
        ),
        ({**DIR, "type": "file"}, [hs("mkdir", path="/r/state", **ACCOUNT)], {"type": "file"}),
        (
            {"type": "unsafe", "detail": "/r is a symlink: not followed"},
            [hs("mkdir", path="/r/state", **ACCOUNT)],
            {"type": "unsafe"},
        ),
    ],
)
def test_directory(fact, expected, before):
    commands, noops = run_op(
        directory,
        {HostSnapshot: snap(paths={"/r/state": fact})},
        path="/r/state",
        user="litellm",
        group="litellm",
        mode="0750",
    )
    assert commands == expected
    assert noops == ([] if expected else ["/r/state is a directory, 0750, litellm:litellm"])
    if before:  # the drift report says what differs, before -> after
        assert fakehost.last_drift[0]["before"] == before


FILE = {"type": "file", "mode": "0640", "user": "litellm", "group": "litellm", "sha256": sha256_text("a: 1\n")}
WRITE = "write /r/c.yaml 0640 litellm:litellm"
HOST_TEXT = "a: 0\nb: 2\n"  # what FileText reads on the host (not secret: a rendered config, a unit file)

# (id, the path as the snapshot found it, desired content, backups_keep, commands, drift before, unified diff
# tail, what --diff prints)
MANAGED_FILE = [
    ("equal", FILE, "a: 1\n", 0, [], None, None, []),
    ("mode-drift-is-file-attrs-business", {**FILE, "mode": "0644"}, "a: 1\n", 0, [], None, None, []),
    (
        "missing",
        None,
        "a: 1\n",
        0,
        [WRITE],
        None,
        None,
        ["[fake-host] Will create /r/c.yaml", "  @@ -0,0 +1 @@", "  + a: 1", ""],
    ),
    (
        "changed-content",
        {**FILE, "sha256": "0" * 64},
        "a: 1\nb: 2\n",
        3,
        [f"{WRITE} (backups 3)"],
        "sha256:000000000000",
        ["-a: 0", "+a: 1", " b: 2"],
        ["[fake-host] Will modify /r/c.yaml", "  @@ -1,2 +1,2 @@", "  - a: 0", "  + a: 1", "    b: 2", ""],
    ),
    (
        "symlink-replaced-never-read-through",
        {**FILE, "type": "symlink", "sha256": None},
        "a: 1\n",
        0,
        [WRITE],
        {"type": "symlink"},
        None,
        ["[fake-host] Will replace /r/c.yaml (now: symlink, not read through)", "  @@ -0,0 +1 @@", "  + a: 1", ""],
    ),
    (
        "hard-linked",
        {**FILE, "type": "unsafe", "detail": "2 links"},
        "a: 1\n",
        0,
        [WRITE],
        {"type": "unsafe", "detail": "2 links"},  # the host's reason, naming the path, is in the report
        None,
        ["[fake-host] Will replace /r/c.yaml (now: unsafe, not read through)", "  @@ -0,0 +1 @@", "  + a: 1", ""],
    ),
]


@pytest.mark.parametrize("diff", [False, True], ids=["plain", "diff"])
@pytest.mark.parametrize(
    "case, fact, content, keep, expected, before, unified, printed", MANAGED_FILE, ids=[r[0] for r in MANAGED_FILE]
)
def test_managed_file(case, fact, content, keep, expected, before, unified, printed, diff):
    commands, noops, lines = run_diff(
        managed_file,
        {HostSnapshot: snap(paths={"/r/c.yaml": fact}), FileText: HOST_TEXT},
        diff=diff,
        dest="/r/c.yaml",
        content=content,
        user="litellm",
        group="litellm",
        mode="0640",
        backups_keep=keep,
    )
    assert commands == expected
    assert noops == ([] if expected else ["/r/c.yaml has the desired content"])
    assert lines == (printed if diff else [])  # --diff prints what pyinfra's files.put would; nothing without it
    drifted = fakehost.last_drift[0] if fakehost.last_drift else {}
    assert drifted.get("before") == before
    assert drifted.get("diff", [None])[-len(unified or [None]) :] == (unified or [None])


@pytest.mark.parametrize(
    "fact, expected",
    [
        (FILE, []),
        ({**FILE, "mode": "0644"}, [hs("attrs", path="/r/c.yaml", user="litellm", group="litellm", mode="0640")]),
        ({**FILE, "user": "root"}, [hs("attrs", path="/r/c.yaml", user="litellm", group="litellm", mode="0640")]),
        (None, []),  # created with its mode by managed_file
        ({**FILE, "type": "symlink"}, []),  # replaced by managed_file, never chowned through
    ],
)
def test_file_attrs(fact, expected):
    commands, noops = run_op(
        file_attrs,
        {HostSnapshot: snap(paths={"/r/c.yaml": fact})},
        path="/r/c.yaml",
        user="litellm",
        group="litellm",
        mode="0640",
    )
    assert commands == expected
    assert bool(noops) == (not expected)


LOCK = "".join(
    f"{name}=={version} \\\n    --hash=sha256:{'ab' * 32}\n    # via litellm\n"
    for name, version in {"litellm": "1.102.4", "urllib3": "2.8.0"}.items()
)
AS_ROOT = (  # root, with a reset environment: nothing of the SSH session's reaches pip
    "cd / && runuser -u root -- env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
    "LANG=C.UTF-8"
)
INSTALL = (
    f"{AS_ROOT} /v/bin/pip install --no-input --disable-pip-version-check -q --require-hashes "
    "--no-deps --only-binary :all: -r /r/lock.txt"
)
UNINSTALL = f"{AS_ROOT} /v/bin/pip uninstall --no-input --disable-pip-version-check -y -q"
REBUILD = f"{AS_ROOT} /usr/bin/python3 -m venv --clear /v"
BASE = {"litellm": "1.102.4", "urllib3": "2.8.0", "pip": "23.0.1", "setuptools": "66.1.1"}


@pytest.mark.parametrize(
    "case, installed, expected, drifted",
    [
        ("equal", BASE, [], []),
        ("other-version", {**BASE, "urllib3": "2.5.0"}, [INSTALL], [("urllib3", "2.5.0", "2.8.0")]),
        ("missing", {k: v for k, v in BASE.items() if k != "urllib3"}, [INSTALL], [("urllib3", None, "2.8.0")]),
        (
            "extras",
            {**BASE, "six": "1.17.0", "requests-toolbelt": "1.0"},
            [f"{UNINSTALL} requests-toolbelt six"],
            [("requests-toolbelt", "1.0", None), ("six", "1.17.0", None)],
        ),
        (
            "extra-and-other-version",
            {**BASE, "six": "1.17.0", "litellm": "1.82.7"},
            [f"{UNINSTALL} six", INSTALL],
            [("litellm", "1.82.7", "1.102.4"), ("six", "1.17.0", None)],
        ),
        ("no-venv", None, [REBUILD, INSTALL], [("litellm", None, "1.102.4"), ("urllib3", None, "2.8.0")]),
        ("no-pip", {"litellm": "1.102.4", "urllib3": "2.8.0"}, [REBUILD, INSTALL], []),  # cannot repair in place
        ("odd-name", {**BASE, "x;reboot": "1"}, [REBUILD, INSTALL], [("x;reboot", "1", None)]),
        (
            "not-root-owned",  # a file of another user's in root's venv is given to root by handle
            {"foreign": ["/v/lib"], "foreign_count": 3},
            ['hostside adopt {"group": "root", "path": "/v", "user": "root"}'],
            [],
        ),
        (
            "group-writable",  # root's hand-made chmod g+w: taken away by handle (the account could write there)
            {"writable": ["/v/lib/python3.11/site-packages"], "writable_count": 1},
            ['hostside adopt {"group": "root", "path": "/v", "user": "root"}'],
            [],
        ),
        (
            "half-installed",
            {"broken": {"urllib3": "lib/python3.11/site-packages/urllib3/__init__.py: 0 bytes"}},
            [f"{UNINSTALL} urllib3", INSTALL],
            [("urllib3", "2.8.0", "2.8.0")],
        ),
        ("no-metadata", {"broken": {"six": "x.dist-info: no METADATA or RECORD"}}, [REBUILD, INSTALL], []),
        ("other-python", {"version": "3.9.2"}, [REBUILD, INSTALL], []),
        ("python-elsewhere", {"python": "/opt/venv/bin/python3"}, [REBUILD, INSTALL], []),
        ("dangling-python", {"python": "/usr/bin/python3.99", "exists": False}, [REBUILD, INSTALL], []),
    ],
)
def test_venv_requirements(case, installed, expected, drifted):
    """INSTALLED: the packages, or a change to a sound venv (``Snapshot.venv_at``) of BASE."""
    state = {
        "packages": BASE,
        "python": "/usr/bin/python3",
        "exists": True,
        "home": "/usr/bin",
        "version": "3.11.2",
        "foreign": [],
        "foreign_count": 0,
        "broken": {},
    }
    state = {**state, **installed} if installed and "litellm" not in installed else {**state, "packages": installed}
    commands, noops = run_op(
        venv_requirements,
        {HostSnapshot: snap(venv=state)},
        venv="/v",
        locked=locked_versions(LOCK),
        lock_path="/r/lock.txt",
        python="/usr/bin/python3",
        user="root",
        python_version="3.11",
    )
    assert commands == expected
    assert noops == ([] if expected else ["/v: equals its lock (RECORD hashes not compared: litellm_venv_integrity)"])
    packages = [d for d in fakehost.last_drift if d["kind"] == "package"]
    assert [(d["before"]["name"], d["before"]["version"], d["after"]["version"]) for d in packages] == drifted
    assert any(d["kind"] == "venv" for d in fakehost.last_drift) == (
        case
        not in ("equal", "other-version", "missing", "extras", "extra-and-other-version", "no-venv", "half-installed")
    )


CTL = "systemctl --user --machine=litellm@.host"


@pytest.mark.parametrize(
    "state, wanted, inputs_changed, expected",
    [
        ({"enabled": True, "active": True}, True, False, []),
        ({"enabled": True, "active": True}, True, True, [f"{CTL} restart litellm.service"]),
        ({}, True, True, [f"{CTL} enable litellm.service", f"{CTL} start litellm.service"]),  # no restart after start
        ({"enabled": False, "active": True}, True, False, [f"{CTL} enable litellm.service"]),
        (
            {"enabled": True, "active": True},
            False,
            True,
            [f"{CTL} disable litellm.service", f"{CTL} stop litellm.service"],
        ),
        ({"enabled": False, "active": False}, False, False, []),
    ],
)
def test_user_unit(state, wanted, inputs_changed, expected):
    commands, noops = run_op(
        user_unit,
        {HostSnapshot: snap(units={"litellm.service": state} if state else {})},
        user="litellm",
        unit="litellm.service",
        enabled=wanted,
        running=wanted,
        restart_when=[Meta(False), Meta(inputs_changed)],
    )
    assert commands == expected
    assert bool(noops) == (not expected)


UNIT_DIR = "/etc/systemd/user"  # layout.UNITS
MANAGED = f"{UNIT_DIR}/litellm.service"
DROPIN = f"{UNIT_DIR}/litellm.service.d/override.conf"
CONTROL = "/home/litellm/.config/systemd/user.control/litellm.service.d/50-CPUWeight.conf"
RUNTIME = "/run/user/1000/systemd/user/litellm.service.d/override.conf"
SHOW = [
    "Id=litellm.service",
    "LoadState=loaded",
    "UnitFileState=enabled",
    "ActiveState=active",
    f"FragmentPath={MANAGED}",
    "DropInPaths=",
    "NeedDaemonReload=no",
]


def show(**props):
    """``systemctl show`` lines of litellm.service with PROPS replaced, then the snapshot's X-Sources block."""
    sources = props.pop("sources", [])
    lines = [f"{k}={props.get(k, v)}" for k, v in (line.split("=", 1) for line in SHOW)]
    return lines + ["", "Id=litellm.service", f"X-Sources={json.dumps(sources)}"]


@pytest.mark.parametrize(
    "case, output, parsed",
    [
        (
            "managed",
            show(),
            {
                "fragment": MANAGED,
                "drop_ins": [],
                "file_state": "enabled",
                "need_reload": False,
                "sources": [],
                "enabled": True,
                "active": True,
            },
        ),
        ("edit", show(DropInPaths=DROPIN, sources=[DROPIN]), {"drop_ins": [DROPIN], "sources": [DROPIN]}),
        ("set-property", show(DropInPaths=f"{CONTROL} {RUNTIME}"), {"drop_ins": [CONTROL, RUNTIME]}),
        (
            "shadowed",
            show(FragmentPath="/home/litellm/.config/systemd/user.control/litellm.service"),
            {"fragment": "/home/litellm/.config/systemd/user.control/litellm.service"},
        ),
        (
            "masked",
            show(UnitFileState="masked-runtime", LoadState="masked", FragmentPath="/dev/null"),
            {"file_state": "masked-runtime", "load": "masked", "enabled": False},
        ),
        ("not-reloaded", show(NeedDaemonReload="yes", sources=[DROPIN]), {"need_reload": True, "sources": [DROPIN]}),
        (
            "no-manager",
            ["", "Id=litellm.service", "X-Sources=[]"],
            {"load": "not-found", "enabled": False, "fragment": "", "drop_ins": []},
        ),
    ],
)
def test_user_units_fact_parses_systemctl_show(case, output, parsed):
    unit = units_of(output)["litellm.service"]
    assert {k: unit[k] for k in parsed} == parsed


def test_user_units_fact_parses_timers():
    out = [
        "Id=litellm.service",
        "LoadState=loaded",
        "UnitFileState=enabled",
        "ActiveState=active",
        "",
        "Id=litellm-backup.timer",
        "LoadState=loaded",
        "UnitFileState=disabled",
        "ActiveState=inactive",
    ]
    units = units_of(out)
    assert units["litellm.service"]["enabled"] is True and units["litellm.service"]["active"] is True
    assert units["litellm-backup.timer"]["enabled"] is False and units["litellm-backup.timer"]["active"] is False


def state(**kw):
    return {
        "enabled": True,
        "active": True,
        "fragment": MANAGED,
        "drop_ins": [],
        "file_state": "enabled",
        "need_reload": False,
        **kw,
    }  # no "sources": as the standalone fact reads it (no disk scan)


ETC = "/home/litellm/.config/systemd/user/litellm.service"  # shadows the managed unit
MASK = "/run/user/1000/systemd/user/litellm.service"


@pytest.mark.parametrize(
    "case, unit_state, removed",
    [
        ("managed", state(), []),
        ("edit", state(drop_ins=[DROPIN], sources=[DROPIN]), [DROPIN]),
        ("edit-not-reloaded", state(need_reload=True, sources=[DROPIN]), [DROPIN]),
        ("set-property", state(drop_ins=[CONTROL, RUNTIME], sources=[CONTROL, RUNTIME]), [CONTROL, RUNTIME]),
        (
            "shadowed",
            state(fragment="/home/litellm/.config/systemd/user.control/litellm.service"),
            ["/home/litellm/.config/systemd/user.control/litellm.service"],
        ),
        (
            "shadowed-scanned",
            state(
                fragment="/home/litellm/.config/systemd/user.control/litellm.service",
                sources=["/home/litellm/.config/systemd/user.control/litellm.service"],
            ),
            ["/home/litellm/.config/systemd/user.control/litellm.service"],
        ),
        # the disk scan is what the converge removes: a drop-in removed but not reloaded is the reload's business
        ("removed-not-reloaded", state(drop_ins=[DROPIN], need_reload=True, sources=[]), []),
        ("etc-fragment", state(sources=[ETC]), [ETC]),
        ("masked-runtime", state(file_state="masked-runtime", fragment="/dev/null", sources=[MASK]), [MASK]),
        ("vendor-dropin", state(drop_ins=["/usr/lib/systemd/user/service.d/10-timeout-abort.conf"]), []),
        ("no-manager", {}, []),
    ],
)
def test_user_unit_sources(case, unit_state, removed):
    commands, noops = run_op(
        user_unit_sources,
        {HostSnapshot: snap(units={"litellm.service": unit_state})},
        user="litellm",
        unit="litellm.service",
        path=MANAGED,
    )
    assert commands == ([hs("unit_clean", user="litellm", paths=sorted(removed))] if removed else [])
    assert noops == ([] if removed else [f"litellm.service is read from {MANAGED} only"])
    if removed:  # the report names what differs: the files, before -> after
        assert fakehost.last_drift[0]["before"]["files"] == sorted(removed)
        assert fakehost.last_drift[0]["after"] == {"fragment": MANAGED, "files": []}


@pytest.mark.parametrize(
    "case, states, files_changed, expected",
    [
        ("nothing", {"litellm.service": state()}, False, []),
        ("unit-file-changed", {"litellm.service": state()}, True, [f"{CTL} daemon-reload"]),
        ("not-reloaded", {"litellm.service": state(need_reload=True)}, False, [f"{CTL} daemon-reload"]),
        ("no-manager", {}, False, []),
    ],
)
def test_user_daemon_reload(case, states, files_changed, expected):
    commands, noops = run_op(
        user_daemon_reload,
        {HostSnapshot: snap(units=states)},
        user="litellm",
        when=[Meta(False), Meta(files_changed)],
        units=["litellm.service"],
    )
    assert commands == expected
    assert bool(noops) == (not expected)
    assert bool(fakehost.last_drift) == (case == "not-reloaded")


@pytest.mark.parametrize(
    "case, unit_state, expected",
    [
        ("managed", state(), []),
        ("edited", state(drop_ins=[DROPIN], sources=[DROPIN]), [f"{CTL} restart litellm.service"]),
        ("not-reloaded", state(need_reload=True), [f"{CTL} restart litellm.service"]),
        (
            "masked-and-stopped",
            state(file_state="masked", enabled=False, active=False, fragment="/dev/null", sources=[MASK]),
            [f"{CTL} enable litellm.service", f"{CTL} start litellm.service"],
        ),
        ("edited-stopped-unit", state(active=False, sources=[DROPIN]), [f"{CTL} start litellm.service"]),
    ],
)
def test_user_unit_restarts_once_after_a_hand_edit(case, unit_state, expected):
    commands, _ = run_op(
        user_unit,
        {HostSnapshot: snap(units={"litellm.service": unit_state}, paths={MANAGED: {"type": "file"}})},
        user="litellm",
        unit="litellm.service",
        restart_when=[Meta(False)],
        path=MANAGED,
    )
    assert commands == expected


def test_a_unit_whose_file_is_written_again_is_enabled_again():
    """Its directory was removed with the .wants links; the manager may still think it enabled."""
    commands, _ = run_op(
        user_unit,
        {HostSnapshot: snap(units={"litellm.service": state()}, paths={MANAGED: None})},
        user="litellm",
        unit="litellm.service",
        restart_when=[Meta(True)],
        path=MANAGED,
    )
    assert commands == [f"{CTL} enable litellm.service", f"{CTL} restart litellm.service"]


@pytest.mark.parametrize(
    "unit, dirs",
    [
        ("litellm.service", ["litellm.service.d", "service.d"]),
        ("litellm-backup.timer", ["litellm-backup.timer.d", "litellm-.timer.d", "timer.d"]),
        (
            "litellm-embed-arctic.service",
            ["litellm-embed-arctic.service.d", "litellm-embed-.service.d", "litellm-.service.d", "service.d"],
        ),
    ],
)
def test_dropin_dirs_are_the_ones_systemd_reads(unit, dirs):
    from litellm_runner.pyinfra_ext import hostside

    assert hostside.dropin_dirs(unit) == dirs


def lock_text(**fields):
    base = {
        "run_id": "r1",
        "user": "op",
        "machine": "ctl",
        "mid": "other-machine",
        "pid": 99999,
        "pstart": "",
        "started": 1000,
        "beat": 1000,
    }
    return " ".join(f"{k}={v}" for k, v in {**base, **fields}.items())


@pytest.mark.parametrize(
    "found, drifted",
    [
        (None, False),
        ({"text": lock_text(), "mtime": 1000, "now": 1000 + 60}, False),  # another machine's live run: wait, not drift
        ({"text": lock_text(), "mtime": 1000, "now": 1000 + 301}, True),  # its heartbeat stopped 301 s ago
        ({"text": "garbled", "mtime": 1000, "now": 1000 + 301}, True),  # unreadable owner, old
    ],
)
def test_no_abandoned_lock(found, drifted):
    commands, noops = run_op(no_abandoned_lock, {HostSnapshot: snap(run_lock=found)}, stale_after=300)
    assert len(commands) == drifted and bool(noops) == (not drifted)
    assert bool(fakehost.last_drift) == drifted


APT = (
    'DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::="--force-confdef" '
    '-o Dpkg::Options::="--force-confold" install'
)
DEBS = ["python3-venv", "iproute2"]


# (id, the snapshot's Debian packages, pyinfra's DebPackages (asked by apt.packages only when something is
# missing), commands, noops, packages recorded as drift)
SYSTEM_PACKAGES = [
    (
        "all-installed",
        {"python3-venv": "3.11.2-1+b1", "iproute2": "6.1.0-3"},
        None,
        [],
        ["python3-venv, iproute2 installed"],
        [],
    ),
    (
        "one-missing",
        {"python3-venv": "3.11.2-1+b1", "iproute2": None},
        {"python3-venv": ["3.11.2-1+b1"]},
        [f"{APT} iproute2"],
        [],
        ["iproute2"],
    ),
    (
        "no-dpkg-status",
        None,
        {"python3-venv": ["3.11.2-1+b1"]},
        [f"{APT} iproute2"],
        ["package python3-venv is installed (3.11.2-1+b1)"],
        [],
    ),
]


@pytest.mark.parametrize(
    "case, found, dpkg, expected, noops, drifted", SYSTEM_PACKAGES, ids=[r[0] for r in SYSTEM_PACKAGES]
)
def test_system_packages(case, found, dpkg, expected, noops, drifted):
    from pyinfra.facts.deb import DebPackages

    commands, said = run_op(system_packages, {HostSnapshot: snap(debs=found), DebPackages: dpkg}, packages=DEBS)
    assert commands == expected
    assert said == noops
    assert [d["before"]["name"] for d in fakehost.last_drift] == drifted


# -- facts: command output in, fact out ------------------------------------------------------------
# the host-side snapshot's JSON document: what a converged host with linger on answers
DOC = {
    "paths": {},
    "linger": True,
    "account": {"user": None, "group": False, "created": False},
    "leftovers": [],
    "manager": True,
    "run_lock": None,
    "units": [],
    "venv": {"packages": None},
    "plants": [],
    "python": {"version": "3.11", "refused": None},
    "debs": {},
    "systemd": "systemd 252 (252.38-1~deb12u1)",
}
REFUSED = "/v/bin/python: /v is owned by uid 999: not run as root"
# (id, fact, its output, how the answer is read, the answer)
FACTS = [
    ("linger-on", HostSnapshot, [json.dumps(DOC)], lambda s: s.linger, True),
    ("linger-off", HostSnapshot, [json.dumps({**DOC, "linger": False})], lambda s: s.linger, False),
    ("file-text", FileText, ['{"text": "a: 1\\n"}'], None, "a: 1\n"),
    ("file-text-unsafe", FileText, ["null"], None, None),
    ("python", HostSnapshot, [json.dumps(DOC)], lambda s: s.python_at("/usr/bin/python3"), DOC["python"]),
    (
        "python-refused",
        HostSnapshot,
        [json.dumps({**DOC, "python": {"version": None, "refused": REFUSED}})],
        lambda s: s.python_at("/usr/bin/python3"),
        {"version": None, "refused": REFUSED},
    ),
    (
        "debs",
        HostSnapshot,
        [json.dumps({**DOC, "debs": {"iproute2": "6.1.0-3", "x": None}})],
        lambda s: s.packages(["iproute2", "x"]),
        {"iproute2": "6.1.0-3", "x": None},
    ),
    ("no-dpkg", HostSnapshot, [json.dumps({**DOC, "debs": None})], lambda s: s.packages(["iproute2"]), None),
    (
        "unit",
        HostSnapshot,
        [json.dumps({**DOC, "units": ["Id=litellm.service", "UnitFileState=enabled", "ActiveState=active"]})],
        lambda s: {k: s.unit("litellm.service")[k] for k in ("enabled", "active", "load")},  # type: ignore[literal-required]
        {"enabled": True, "active": True, "load": "not-found"},
    ),
    ("unknown-unit", HostSnapshot, [json.dumps(DOC)], lambda s: s.unit("litellm.service"), {}),
]


@pytest.mark.parametrize("case, fact, output, read, expected", FACTS, ids=[r[0] for r in FACTS])
def test_fact_process(case, fact, output, read, expected):
    answer = fact().process(output)
    assert (read(answer) if read else answer) == expected


@pytest.mark.parametrize(
    "found, refused",
    [
        ({"version": "3.11", "refused": None}, None),
        ({"version": None, "refused": None}, None),  # missing: lock_for says so
        (
            {"version": None, "refused": "/home/litellm/litellm/venv/bin/python: /home/litellm is owned by uid 1000"},
            "host fake-host: litellm_python /home/litellm/litellm/venv/bin/python: /home/litellm is owned by uid 1000",
        ),
    ],
)
def test_a_system_python_the_snapshot_would_not_run_is_refused(found, refused):
    """pyinfra's DeployError (the run exits 1 with its message) before any operation, never sys.exit."""
    from pyinfra.api.exceptions import DeployError

    from litellm_runner.tasks.python_env import refuse_untrusted

    with ctx_host.use(fakehost.FakeHost({})):
        if refused is None:
            refuse_untrusted(found)
            return
        with pytest.raises(DeployError) as exc:
            refuse_untrusted(found)
    assert str(exc.value).startswith("refusing to touch any host") and refused in str(exc.value)


@pytest.mark.parametrize("executing", [True, False])
def test_diff_is_asked_safely_in_any_greenlet(executing):
    """pyinfra executes operations in greenlets of their own, where its config context is not set:
    asking for --diff there is False, never an AttributeError of gevent's local (as config.DIFF raised)."""
    import gevent

    from litellm_runner.pyinfra_ext.operations import diff_wanted

    fake = fakehost.FakeHost({})
    fake.state.is_executing = executing

    def ask():
        with ctx_host.use(fake):
            return diff_wanted()

    assert gevent.spawn(ask).get() is False


def plant(path: str) -> dict:
    return {"path": path, "why": "an extra unit or file in the account's unit search path", "type": "file"}


def test_no_account_plants_puts_only_real_unit_names_on_a_command_line():
    """An extra unit is stopped by name; a planted file whose name systemd would never load (terminal
    escape codes in it) is only quarantined: its name never reaches a command pyinfra prints at -vv."""
    escaped = "/home/litellm/.config/systemd/user/\x1b]0;PWNED\x07\x1b[2J.service"
    extra = "/home/litellm/.config/systemd/user/litellm-extra.service"
    commands, _ = run_op(
        no_account_plants, {HostSnapshot: snap(plants=[plant(escaped), plant(extra)])}, user="litellm", units=[]
    )
    assert commands[0].startswith("hostside quarantine ")
    assert commands[1:] == ["systemctl --user --machine=litellm@.host stop litellm-extra.service || true"]
    shown = [item["before"]["path"] for item in fakehost.last_drift]
    assert "/home/litellm/.config/systemd/user/\\x1b]0;PWNED\\x07\\x1b[2J.service" in shown  # escaped in the report
