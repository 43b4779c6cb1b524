"""The host side's D-Bus client (``hostside.Bus``): the wire format, and peers that misbehave.

The marshalling is checked against byte strings written from the D-Bus specification's rules and by round
trips; the connection against a peer played by a thread on a unix socket in a temporary folder: a manager
that answers, one that refuses, lies, floods, stalls or drips. Each misbehaving peer ends in ``DBusError``
within the connection's limits; the snapshot's own use against a real systemd is in
tests/integration/test_unit_drift.py (this machine has no systemd as PID 1).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import struct
import tempfile
import time

import pytest

from litellm_runner.pyinfra_ext import hostside as host_code
from litellm_runner.pyinfra_ext.hostside import DBusError, _Wire, marshal, parse_message
from litellm_runner.pyinfra_ext.snapshot import units_of

UID = 65534  # nobody plays the account

# (signature, values, the little-endian bytes the specification's rules give, marshalled at offset 0)
KNOWN = [
    ("y", [7], b"\x07"),
    ("b", [True], b"\x01\0\0\0"),
    ("u", [7], b"\x07\0\0\0"),
    ("t", [5], b"\x05" + b"\0" * 7),
    ("yu", [1, 2], b"\x01\0\0\0\x02\0\0\0"),  # a UINT32 aligned to 4
    ("yt", [1, 2], b"\x01" + b"\0" * 7 + b"\x02" + b"\0" * 7),  # a UINT64 aligned to 8
    ("s", ["foo"], b"\x03\0\0\0foo\0"),  # length, the UTF-8 bytes, a NUL not counted
    ("o", ["/a"], b"\x02\0\0\0/a\0"),
    ("g", ["ai"], b"\x02ai\0"),  # a signature: one byte of length
    ("s", [""], b"\0\0\0\0\0"),
    # the specification's example: an array of one UINT64 5 is its length 8, 4 bytes of padding (not counted)
    ("at", [[5]], b"\x08\0\0\0" + b"\0" * 4 + b"\x05" + b"\0" * 7),
    ("at", [[]], b"\0\0\0\0" + b"\0" * 4),  # an empty array is padded to its element's alignment too
    ("as", [["a", "bc"]], b"\x0f\0\0\0" + b"\x01\0\0\0a\0" + b"\0\0" + b"\x02\0\0\0bc\0"),
    ("v", [("u", 1)], b"\x01u\0\0\x01\0\0\0"),  # a variant: its signature, then the value aligned
    ("(yu)", [(1, 2)], b"\x01\0\0\0\x02\0\0\0"),
    ("a{sb}", [{"x": True}], b"\x0c\0\0\0" + b"\0" * 4 + b"\x01\0\0\0x\0\0\0" + b"\x01\0\0\0"),
]

ROUND_TRIPS = [
    ("ybnqiuxtd", [255, False, -2, 65535, -(2**31), 2**32 - 1, -(2**63), 2**64 - 1, 1.5]),
    ("sog", ["ünïcode ✓", "/org/freedesktop/systemd1/unit/litellm_2eservice", "a{sv}"]),
    ("as", [["/etc/systemd/user/litellm.service.d/a.conf", "/b"]]),
    ("a{sv}", [{"Id": ("s", "litellm.service"), "NeedDaemonReload": ("b", True), "Next": ("t", 2**64 - 1)}]),
    ("a(sbbsi)", [[("ConditionUser", False, True, "litellm", 1), ("ConditionPath", True, False, "/x", -1)]]),
    ("(uo)v", [(0, "/"), ("as", ["x"])]),
    ("aay", [[[1, 2], [], [3]]]),
    ("aas", [[["a"], [], ["b", "c"]]]),
    ("ya(yv)", [1, [(1, ("o", "/x")), (5, ("u", 9)), (8, ("g", "ss"))]]),
]


@pytest.mark.parametrize("sig,values,expected", KNOWN, ids=[f"{s}-{i}" for i, (s, *_) in enumerate(KNOWN)])
def test_marshalled_as_the_specification_says(sig, values, expected):
    assert bytes(marshal(sig, values)) == expected
    assert _Wire(expected, "<").values(sig) == values  # and read back


@pytest.mark.parametrize("sig,values", ROUND_TRIPS, ids=[s for s, _ in ROUND_TRIPS])
def test_round_trips(sig, values):
    data = bytes(marshal(sig, values))
    reader = _Wire(data, "<")
    assert reader.values(sig) == values and reader.pos == len(data)


def test_big_endian_is_read_too():
    """A peer may send big-endian (``B``): the same values."""
    data = struct.pack(">I", 3) + b"foo\0" + struct.pack(">Q", 2**40)
    assert _Wire(data, ">").values("st") == ["foo", 2**40]


def test_a_method_call_as_the_specification_lays_it_out():
    """``Get("org.freedesktop.systemd1.Unit", "Id")`` on a unit's path: the fixed header (little-endian, a method
    call, no flags, version 1, the body's length, the serial), the fields PATH, INTERFACE, MEMBER, SIGNATURE, the
    header padded to 8, the body."""
    call = host_code._method_call(7, "/u", "i.P", "Get", "ss", ("a", "Id"))
    body = b"\x01\0\0\0a\0\0\0" + b"\x02\0\0\0Id\0"
    fields = (  # each field a struct (BYTE code, VARIANT), aligned to 8
        b"\x01\x01o\0"
        + b"\x02\0\0\0/u\0"
        + b"\0" * 5  # PATH, an object path
        + b"\x02\x01s\0"
        + b"\x03\0\0\0i.P\0"
        + b"\0" * 4  # INTERFACE
        + b"\x03\x01s\0"
        + b"\x03\0\0\0Get\0"
        + b"\0" * 4  # MEMBER
        + b"\x08\x01g\0"
        + b"\x02ss\0"  # SIGNATURE
    )
    header = b"l\x01\0\x01" + struct.pack("<II", len(body), 7) + struct.pack("<I", len(fields)) + fields
    assert call == header + b"\0" * (-len(header) % 8) + body
    assert parse_message(call) == (
        1,
        {"PATH": "/u", "INTERFACE": "i.P", "MEMBER": "Get", "SIGNATURE": "ss"},
        ["a", "Id"],
    )


@pytest.mark.parametrize(
    "why,sig,data",
    [
        ("a string past the end", "s", b"\x09\0\0\0foo\0"),
        ("a string without its NUL", "s", b"\x03\0\0\0fooX"),
        ("a NUL inside a string", "s", b"\x03\0\0\0f\0o\0"),
        ("a string not UTF-8", "s", b"\x02\0\0\0\xff\xfe\0"),
        ("an array longer than the message", "au", b"\xff\xff\0\0\x01\0\0\0"),
        ("an element across the array's end", "au", b"\x06\0\0\0\x01\0\0\0\x02\0\0\0"),
        ("a fixed value cut short", "t", b"\x01\0\0"),
        ("a variant of two types", "v", b"\x02uu\0\x01\0\0\0\x01\0\0\0"),
        ("a variant of no type", "v", b"\0\0"),
        ("a variant of an unknown type", "v", b"\x01Z\0"),
        ("variants nested too deep", "v", b"\x01v\0" * 40 + b"\x01y\0\x01"),
        ("arrays nested too deep", "v", b"\x29" + b"a" * 40 + b"y\0"),
        ("a dict entry outside an array", "v", b"\x04{sy}\0"),
        ("a dict entry keyed by a container", "v", b"\x06a{vy}\0"),
        ("an empty struct", "v", b"\x02()\0"),
        ("an unclosed struct", "v", b"\x02(y\0"),
    ],
)
def test_malformed_values_are_refused(why, sig, data):
    with pytest.raises(DBusError):
        _Wire(data, "<").values(sig)


@pytest.mark.parametrize(
    "why,data",
    [
        ("too short", b"l\x02\0\x01"),
        ("another byte order mark", b"x\x02\0\x01" + b"\0" * 12),
        ("another protocol version", b"l\x02\0\x02" + b"\0" * 12),
        ("a body longer than its signature", b"l\x02\0\x01\x04\0\0\0\x01\0\0\0\0\0\0\0" + b"\0" * 4),
    ],
)
def test_malformed_messages_are_refused(why, data):
    with pytest.raises(DBusError):
        parse_message(data)


@pytest.mark.parametrize(
    "unit,path",
    [
        ("litellm.service", "litellm_2eservice"),
        ("user@1000.service", "user_401000_2eservice"),
        ("litellm-backup.timer", "litellm_2dbackup_2etimer"),
        ("9x_y", "_39x_5fy"),  # a leading digit and an underscore are escaped too
        ("", "_"),
    ],
)
def test_unit_paths_are_systemds(unit, path):
    assert host_code.unit_path(unit) == f"/org/freedesktop/systemd1/unit/{path}"


# -- a peer on a unix socket ------------------------------------------------------------------------
def reply(serial: int, sig: str = "", values=(), kind: int = 2, error: str = "") -> bytes:
    """A METHOD_RETURN (or, KIND 3, an ERROR named ERROR) to SERIAL."""
    fields = [(5, ("u", serial))] + ([(8, ("g", sig))] if sig else []) + ([(4, ("s", error))] if error else [])
    body = marshal(sig, values)
    header = marshal("a(yv)", [fields], bytearray(b"l" + bytes([kind]) + b"\0\x01" + struct.pack("<II", len(body), 1)))
    return bytes(header + b"\0" * (-len(header) % 8) + body)


def signal_message() -> bytes:
    """A signal (``UnitNew``), which a client that asked nothing of it skips."""
    fields = [(1, ("o", "/org/freedesktop/systemd1")), (2, ("s", "org.freedesktop.systemd1.Manager")), (3, ("s", "X"))]
    header = marshal("a(yv)", [fields], bytearray(b"l\x04\0\x01" + struct.pack("<II", 0, 1)))
    return bytes(header + b"\0" * (-len(header) % 8))


PROPS = {
    ("litellm.service", "Id"): ("s", "litellm.service"),
    ("litellm.service", "LoadState"): ("s", "loaded"),
    ("litellm.service", "UnitFileState"): ("s", "enabled"),
    ("litellm.service", "ActiveState"): ("s", "active"),
    ("litellm.service", "FragmentPath"): ("s", "/etc/systemd/user/litellm.service"),
    ("litellm.service", "DropInPaths"): ("as", ["/home/x/.config/systemd/user/litellm.service.d/a.conf", "/b.conf"]),
    ("litellm.service", "NeedDaemonReload"): ("b", True),
    ("litellm-backup.timer", "Id"): ("s", "litellm-backup.timer"),
    ("litellm-backup.timer", "LoadState"): ("s", "loaded"),
    ("litellm-backup.timer", "UnitFileState"): ("s", "disabled"),
    ("litellm-backup.timer", "ActiveState"): ("s", "inactive"),
    ("litellm-backup.timer", "FragmentPath"): ("s", "/etc/systemd/user/litellm-backup.timer\nId=forged.service"),
    ("litellm-backup.timer", "DropInPaths"): ("as", []),
    ("litellm-backup.timer", "NeedDaemonReload"): ("b", False),
    ("gone.service", "Id"): ("s", "gone.service"),
    ("gone.service", "LoadState"): ("s", "not-found"),
}
PROPS = {(host_code.unit_path(unit), name): value for (unit, name), value in PROPS.items()}


PEERS: list[int] = []  # the peers' processes, stopped after each test


@pytest.fixture(autouse=True)
def _stop_peers():
    yield
    while PEERS:
        pid = PEERS.pop()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


class Peer:
    """A D-Bus peer on a unix socket in FOLDER, in a process of its own (the unit run has gevent's monkey patching,
    so a thread would wait for the client's real blocking reads): it plays SCRIPT(conn, peer) with each client,
    one after another, and keeps what each client sent to authenticate in FOLDER/auth (``auth``)."""

    def __init__(self, folder, script):
        self.path, self.record = str(folder / "private"), folder / "auth"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.path)
        os.chmod(self.path, 0o777)  # noqa: S103 - the account's child connects to it
        server.listen(4)
        pid = os.fork()
        if pid == 0:
            try:
                self.serve(server, script)
            finally:
                os._exit(0)
        server.close()
        PEERS.append(pid)

    @property
    def auth(self) -> bytes:
        return self.record.read_bytes()

    def serve(self, server, script) -> None:
        while True:
            conn, _ = server.accept()
            conn.settimeout(10)
            self.line = b""
            try:
                script(conn, self)
                time.sleep(0.1)
            except OSError:
                pass
            finally:
                conn.close()

    def authenticate(self, conn, answer: bytes = b"OK 0123456789abcdef0123456789abcdef\r\n") -> bool:
        while b"\r\n" not in self.line:
            self.line += conn.recv(256)
        conn.sendall(answer)
        if answer.startswith(b"OK"):
            while not self.line.endswith(b"BEGIN\r\n"):
                self.line += conn.recv(1)
        self.record.write_bytes(self.line)
        return answer.startswith(b"OK")

    def calls(self, conn):
        """The method calls the client sends, as ``(serial, fields, body)``, until it hangs up."""
        buf = b""
        while True:
            while len(buf) < 16 or len(buf) < self.size(buf):
                chunk = conn.recv(1 << 16)
                if not chunk:
                    return
                buf += chunk
            size = self.size(buf)
            _, fields, body = parse_message(buf[:size])
            yield struct.unpack("<I", buf[8:12])[0], fields, body
            buf = buf[size:]

    @staticmethod
    def size(buf: bytes) -> int:
        body, fields = struct.unpack("<4xI4xI", buf[:16])
        return 16 + fields + (-fields % 8) + body


OTHERS = {  # what else a unit's GetAll gives: read past, never kept
    "Conditions": ("a(sbbsi)", [("ConditionUser", False, True, "litellm", 1)]),
    "Job": ("(uo)", (0, "/")),
    "InvocationID": ("ay", [1, 2, 3]),
    "Markers": ("as", []),
    "Nested": ("v", ("v", ("as", ["x"]))),
    "CPUWeight": ("t", 5),
    "Refs": ("a{sv}", {"x": ("u", 1)}),
    "Kind": ("g", "a{sv}"),
}


LOADED = ["litellm.service", "litellm-backup.timer", "gone.service"]  # what the manager has loaded
FILE_STATES = {"litellm-knowledge-refresh.timer": "disabled"}  # GetUnitFileState of a unit it has not loaded


def manager(conn, peer, before=b"", props=PROPS, loaded=LOADED) -> None:
    """A manager that gives PROPS (``{(object path, property): (signature, value)}``) to ``Get``, an object's all
    (with ``OTHERS``) to ``GetAll``, an error for any other property or object; the LOADED units matching the
    patterns to ``ListUnitsByPatterns`` (None: an older systemd without it, an error), ``FILE_STATES`` to
    ``GetUnitFileState``; BEFORE sent ahead of each reply."""
    if not peer.authenticate(conn):
        return
    for serial, fields, args in peer.calls(conn):
        member, no = fields["MEMBER"], reply(serial, "s", ["no"], 3, "org.freedesktop.DBus.Error.UnknownProperty")
        if fields["INTERFACE"] == "org.freedesktop.systemd1.Manager":
            assert fields["PATH"] == "/org/freedesktop/systemd1"
            if member == "ListUnitsByPatterns" and loaded is not None:
                assert args[0] == []
                rows = [(u, "", "loaded", "active", "running", "", host_code.unit_path(u), 0, "", "/") for u in loaded]
                answer = reply(serial, "a(ssssssouso)", [[row for row in rows if row[0] in args[1]]])
            elif member == "GetUnitFileState" and args[0] in FILE_STATES:
                answer = reply(serial, "s", [FILE_STATES[args[0]]])
            else:
                answer = None
            conn.sendall(before + (answer or no))
            continue
        assert fields["INTERFACE"] == "org.freedesktop.DBus.Properties" and member in ("Get", "GetAll")
        if member == "GetAll":
            found = {name: value for (path, name), value in props.items() if path == fields["PATH"]}
            answer = reply(serial, "a{sv}", [{**OTHERS, **found}]) if found else None
        else:
            found = props.get((fields["PATH"], args[1]))
            answer = None if found is None else reply(serial, "v", [found])
        conn.sendall(before + (answer or no))


@pytest.fixture
def open_folder():
    """A folder the account can reach (pytest's own are root's alone), removed afterwards."""
    folder = tempfile.mkdtemp(prefix="litellm-dbus-")
    os.chmod(folder, 0o755)  # noqa: S103 - the account's child reaches its socket
    yield pathlib.Path(folder)
    shutil.rmtree(folder)


@pytest.mark.parametrize("listing", [True, False], ids=["loaded-units-listed", "older-systemd"])
def test_show_units_prints_what_systemctl_show_prints(tmp_path, listing):
    """Each unit a block of the asked properties, ``systemctl show``'s way (yes/no, a list joined by blanks); a
    property the manager does not give is left out, a loaded unit it gives nothing of (an error) too; signals
    are skipped; a line break in a value stays inside its line. A unit the manager has not loaded is not asked
    to load: inactive, its unit file state, nothing to reload. A manager without ``ListUnitsByPatterns`` is
    asked every unit's properties."""
    loaded = LOADED if listing else None
    peer = Peer(tmp_path, lambda conn, peer: manager(conn, peer, before=signal_message(), loaded=loaded))
    asked = ["litellm.service", "litellm-backup.timer", "broken.service", "gone.service"]
    asked += ["litellm-knowledge-refresh.timer"]
    text = host_code.show_units(peer.path, asked, 5, 1 << 20)
    assert peer.auth == b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\nBEGIN\r\n"
    blocks = [block.splitlines() for block in text.split("\n\n") if block]
    not_loaded = [
        ["Id=broken.service", "ActiveState=inactive", "NeedDaemonReload=no"],
        ["Id=litellm-knowledge-refresh.timer", "ActiveState=inactive", "UnitFileState=disabled", "NeedDaemonReload=no"],
    ]
    assert (
        blocks
        == [  # in systemctl show's order
            [
                "Id=litellm.service",
                "LoadState=loaded",
                "ActiveState=active",
                "FragmentPath=/etc/systemd/user/litellm.service",
                "DropInPaths=/home/x/.config/systemd/user/litellm.service.d/a.conf /b.conf",
                "UnitFileState=enabled",
                "NeedDaemonReload=yes",
            ],
            [
                "Id=litellm-backup.timer",
                "LoadState=loaded",
                "ActiveState=inactive",
                "FragmentPath=/etc/systemd/user/litellm-backup.timer\\x0aId=forged.service",
                "DropInPaths=",
                "UnitFileState=disabled",
                "NeedDaemonReload=no",
            ],
            *not_loaded[:1] * listing,
            ["Id=gone.service", "LoadState=not-found"],
            *not_loaded[1:] * listing,
        ]
    )
    units = units_of(text.splitlines())
    assert units["litellm.service"]["drop_ins"] == ["/home/x/.config/systemd/user/litellm.service.d/a.conf", "/b.conf"]
    assert (units["gone.service"]["load"], units["gone.service"]["enabled"]) == ("not-found", False)
    if listing:
        resting = units["litellm-knowledge-refresh.timer"]
        assert (resting["active"], resting["enabled"], resting["file_state"], resting["need_reload"]) == (
            False,
            False,
            "disabled",
            False,
        )


def test_the_snapshot_asks_the_account_s_manager_as_the_account(open_folder, monkeypatch):
    """``_units`` asks in a child with the account's uid (its SASL identity says so), and reads what it prints."""
    peer = Peer(open_folder, manager)
    os.rename(peer.path, open_folder / str(UID))
    monkeypatch.setattr(host_code, "USER_BUS", str(open_folder / "{uid}"))
    monkeypatch.setattr(host_code, "unit_sources", lambda user, units: {unit: [] for unit in units})
    units = units_of(host_code._units("nobody", ["litellm.service", "gone.service"]))
    assert peer.auth == b"\0AUTH EXTERNAL " + str(UID).encode().hex().encode() + b"\r\nBEGIN\r\n"
    assert units["litellm.service"]["active"] and units["litellm.service"]["need_reload"]
    assert units["gone.service"]["load"] == "not-found" and units["gone.service"]["sources"] == []


def never_answers(conn, peer) -> None:
    peer.authenticate(conn)
    time.sleep(3)


def drips(conn, peer) -> None:
    """Authenticates, then sends a reply's bytes one by one, each well within the timeout, never finishing in time."""
    peer.authenticate(conn)
    for byte in reply(1, "v", [("s", "x" * 200)]):
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


def floods(conn, peer) -> None:
    peer.authenticate(conn)
    while True:
        conn.sendall(signal_message() * 100)


def oversized(conn, peer) -> None:
    """Announces a 64 MB body."""
    peer.authenticate(conn)
    conn.sendall(b"l\x02\0\x01" + struct.pack("<III", 64 << 20, 1, 0))
    time.sleep(3)


def malformed(conn, peer) -> None:
    peer.authenticate(conn)
    conn.sendall(b"l\x02\0\x01" + struct.pack("<III", 4, 1, 8) + b"\x05\x01u\0\x01\0\0\0" + b"\xff" * 4)


@pytest.mark.parametrize(
    "why,script,timeout",
    [
        ("authentication refused", lambda conn, peer: peer.authenticate(conn, b"REJECTED EXTERNAL\r\n"), 5),
        ("hangs up", lambda conn, peer: peer.authenticate(conn), 5),
        ("never answers", never_answers, 0.5),
        ("drips its answer", drips, 1),
        ("floods signals past the byte limit", floods, 30),
        ("announces a message past the limit", oversized, 30),
        ("a reply without a signature, with a body", malformed, 5),
    ],
)
def test_a_peer_that_misbehaves_is_no_answer(tmp_path, why, script, timeout):
    peer = Peer(tmp_path, script)
    with pytest.raises(DBusError):
        host_code.show_units(peer.path, ["litellm.service"], timeout, 1 << 20)


MANAGER = host_code.unit_path(f"user@{UID}.service")


@pytest.mark.parametrize(
    "case,props,version,active,pid",
    [
        (
            "running",
            {
                ("/org/freedesktop/systemd1", "Version"): ("s", "257.9-1~deb13u1"),
                (MANAGER, "ActiveState"): ("s", "active"),
                (MANAGER, "MainPID"): ("u", 321),
            },
            "systemd 257 (257.9-1~deb13u1)",
            True,
            321,
        ),
        ("reloading", {(MANAGER, "ActiveState"): ("s", "reloading")}, None, True, None),
        (
            "stopping",
            {(MANAGER, "ActiveState"): ("s", "deactivating"), (MANAGER, "MainPID"): ("u", 321)},
            None,
            False,
            321,
        ),
        (
            "not running",
            {(MANAGER, "ActiveState"): ("s", "inactive"), (MANAGER, "MainPID"): ("u", 0)},
            None,
            False,
            None,
        ),
        ("a version without a number", {("/org/freedesktop/systemd1", "Version"): ("s", "git")}, None, False, None),
        (
            "answers of another type",
            {(MANAGER, "MainPID"): ("s", "321"), ("/org/freedesktop/systemd1", "Version"): ("u", 1)},
            None,
            False,
            None,
        ),
        ("no PID 1 socket", None, None, False, None),
    ],
)
def test_root_asks_pid1_itself(open_folder, monkeypatch, case, props, version, active, pid):
    """The snapshot's systemd version, whether the account's manager runs, and the sweep's manager PID: PID 1's
    answers on its private socket, as ``systemctl --version``, ``systemctl is-active`` and ``systemctl show
    --property=MainPID`` gave them; no answer is None, False, None."""
    monkeypatch.setattr(host_code, "PID1_BUS", str(open_folder / "private"))
    if props is not None:
        Peer(open_folder, lambda conn, peer: manager(conn, peer, props=props))
    found = [host_code.systemd_version(), host_code._manager_active("nobody"), host_code._manager_pid(UID)]
    assert found == [version, active, pid], case


@pytest.mark.parametrize(
    "script", [floods, never_answers, lambda conn, peer: None], ids=["floods", "silent", "hangs up"]
)
def test_a_misbehaving_manager_is_a_manager_that_does_not_run(open_folder, monkeypatch, script):
    """The account's child fails alone: ``_units`` then gives what a manager that does not run gives."""
    Peer(open_folder, script)
    monkeypatch.setattr(host_code, "USER_BUS", str(open_folder / "private"))
    monkeypatch.setattr(host_code, "SHOW_TIMEOUT", 1)
    monkeypatch.setattr(host_code, "unit_sources", lambda user, units: {unit: [] for unit in units})
    lines = host_code._units("nobody", ["litellm.service"])
    assert lines == ["", "Id=litellm.service", "X-Sources=[]"]
    assert units_of(lines)["litellm.service"]["load"] == "not-found"


def corrupt(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


GETALL = bytes(marshal("a{sv}", [{"Skipped": ("as", ["abc"]), "Other": ("s", "defg"), "Id": ("s", "x.service")}]))


@pytest.mark.parametrize(
    "why,data,expected",
    [
        ("only the wanted entries", GETALL, {"Id": ("s", "x.service")}),
        ("a skipped array past the message", corrupt(GETALL, b"\x08\0\0\0\x03", b"\xff\0\0\0\x03"), DBusError),
        ("a skipped string past the message", corrupt(GETALL, b"\x04\0\0\0defg", b"\xff\0\0\0defg"), DBusError),
        ("a skipped variant of two types", corrupt(GETALL, b"\x02as\0", b"\x02ss\0"), DBusError),
        ("the dict past the message", b"\xff\0\0\0" + GETALL[4:], DBusError),
        ("a skipped name without its NUL", corrupt(GETALL, b"Other\0", b"Other!"), DBusError),
        ("a skipped signature not a type", corrupt(GETALL, b"Other\0\x01s\0", b"Other\0\x01}\0"), DBusError),
        ("a skipped signature past the dict", GETALL[:-12] + b"\xff" + GETALL[-11:], DBusError),
    ],
)
def test_a_getall_answer_is_read_for_the_wanted_entries_and_checked_past_the_others(why, data, expected):
    if expected is DBusError:
        with pytest.raises(DBusError):
            _Wire(data, "<").properties({"Id"})
    else:
        assert _Wire(data, "<").properties({"Id"}) == expected


EVERY_KIND = {
    "Byte": ("y", 7),
    "Flag": ("b", True),
    "Small": ("n", -3),
    "Count": ("t", 1 << 40),
    "Ratio": ("d", 0.5),
    "Path": ("o", "/org/freedesktop/systemd1/unit/x_2eservice"),
    "Sig": ("g", "a{sv}"),
    "Nested": ("v", ("s", "inner")),
    "Pair": ("(st)", ("a", 9)),
    "Times": ("a(sasbttttuii)", [("/bin/x", ["x", "-y"], False, 1, 2, 3, 4, 5, 6, 7)]),
    "Names": ("as", ["a", "bc"]),
    "Empty": ("as", []),
    "Map": ("a{ss}", {"k": "v"}),
    "Id": ("s", "x.service"),
    "ActiveState": ("s", "active"),
    "NeedDaemonReload": ("b", False),
    "DropInPaths": ("as", ["/etc/systemd/user/x.service.d/a.conf"]),
}


@pytest.mark.parametrize(
    "wanted",
    [set(), {"Id"}, {"Id", "ActiveState", "NeedDaemonReload", "DropInPaths"}, set(EVERY_KIND), {"Pair", "Times"}],
)
def test_the_wanted_entries_are_those_a_whole_read_gives(wanted):
    """Passing the other entries by their sizes lands on each wanted one as reading every value does."""
    data = bytes(marshal("a{sv}", [EVERY_KIND]))
    whole = _Wire(data, "<").value("a{sv}")
    assert _Wire(data, "<").properties(wanted) == {name: whole[name] for name in wanted}


def test_a_big_endian_getall_is_passed_by_its_own_sizes():
    """A big-endian peer's counts are read big-endian: an array and a 64-bit value passed, the wanted one read."""
    be = (
        struct.pack(">I", 74)  # the dict's byte count, then its entries at multiples of 8
        + b"\0" * 4
        + struct.pack(">I", 5)
        + b"Names\0"
        + b"\x02as\0"
        + b"\0" * 2  # name, signature, to 4
        + struct.pack(">I", 6)
        + struct.pack(">I", 1)
        + b"a\0"  # the array: 6 bytes, one string
        + b"\0" * 6
        + struct.pack(">I", 5)
        + b"Count\0"
        + b"\x01t\0"
        + b"\0" * 3  # to 8
        + struct.pack(">Q", 1 << 40)
        + struct.pack(">I", 2)
        + b"Id\0"
        + b"\x01s\0"
        + b"\0" * 2
        + struct.pack(">I", 1)
        + b"x\0"
    )
    assert _Wire(be, ">").properties({"Id"}) == {"Id": ("s", "x")}
    assert _Wire(be, ">").properties({"Count"}) == {"Count": ("t", 1 << 40)}
