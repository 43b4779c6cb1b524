"""The host-side code root runs in the service account's tree, run for real on this machine.

Each row plants what a compromised account could leave in its own tree
(``nobody`` plays the account), runs one action through the exact command
the runner sends (``facts.hostside``: root's /usr/bin/python3, isolated), and
checks what a person would: root's file untouched, the managed path what it
should be, the plant moved aside or refused, never followed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time

import pytest

from litellm_runner.pyinfra_ext import hostside as host_code
from litellm_runner.pyinfra_ext.facts import hostside
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot

USER, GROUP = "nobody", "nogroup"
UID, GID = 65534, 65534


@pytest.fixture
def tree(tmp_path):
    """An account-owned deployment root (``tree/root``) and a root-owned secret beside it (``tree/secret``)."""
    root = tmp_path / "root"
    root.mkdir()
    os.chown(root, UID, GID)
    secret = tmp_path / "secret"
    secret.write_text("root's secret\n")
    secret.chmod(0o600)
    return root, secret


def run(action: str, **args):
    proc = subprocess.run(["sh", "-c", hostside(action, args)], capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout) if proc.returncode == 0 else proc.stderr


def stage(tmp_path, text: str) -> str:
    path = tmp_path / "staged"
    path.write_text(text)
    return str(path)


def as_account(path, uid=UID):
    os.chown(path, uid, GID, follow_symlinks=False)
    return path


def unchanged(secret) -> bool:
    st = secret.stat()
    return secret.read_text() == "root's secret\n" and (st.st_uid, st.st_mode & 0o777) == (0, 0o600)


# -- write ------------------------------------------------------------------------------------
def plant_link(root, secret):
    (root / "c.yaml").symlink_to(secret)
    as_account(root / "c.yaml")


def plant_temp_link(root, secret):
    (root / "c.yaml.tmp-litellm-runner").symlink_to(secret)
    (root / "c.yaml.tmp-litellm-runner-bak").symlink_to(secret)
    (root / "c.yaml").write_text("old\n")


def plant_hard_link(root, secret):
    os.link(secret, root / "c.yaml")


def plant_directory(root, secret):
    (root / "c.yaml").mkdir()


@pytest.mark.parametrize("plant", [None, plant_link, plant_temp_link, plant_hard_link, plant_directory])
def test_write_replaces_whatever_is_planted_and_never_writes_through_it(tree, tmp_path, plant):
    root, secret = tree
    if plant:
        plant(root, secret)
    code, out = run(
        "write",
        dest=str(root / "c.yaml"),
        src=stage(tmp_path, "new\n"),
        user=USER,
        group=GROUP,
        mode="0640",
        backups_keep=2,
    )
    assert code == 0, out
    st = (root / "c.yaml").lstat()
    assert (root / "c.yaml").read_text() == "new\n" and (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (UID, GID, 0o640)
    assert unchanged(secret)
    backups = sorted(p.name for p in root.iterdir() if ".bak-" in p.name)
    if plant is plant_temp_link:  # a regular old file is kept as a backup, owned like the file
        assert len(backups) == 1 and (root / backups[0]).read_text() == "old\n"
    else:  # a link, hard link or directory is moved aside, never copied into a backup
        assert backups == []
        assert bool([p for p in root.iterdir() if ".displaced-" in p.name]) == (plant not in (None,))


def test_write_refuses_a_parent_directory_that_is_the_accounts_symlink(tree, tmp_path):
    root, secret = tree
    (root / "state").symlink_to(secret.parent)
    as_account(root / "state")
    code, err = run(
        "write",
        dest=str(root / "state" / "secret"),
        src=stage(tmp_path, "pwned\n"),
        user=USER,
        group=GROUP,
        mode="0640",
    )
    assert code == 1 and "is a symlink: not followed" in err
    assert unchanged(secret)


def test_backups_are_pruned_by_name_as_data(tree, tmp_path):
    root, secret = tree
    (root / "c.yaml").write_text("v0\n")
    odd = [
        "c.yaml.bak-x .bashrc",
        "c.yaml.bak-1\n.bashrc",
        "c.yaml.bak-20200101T000000 secret",
        "c.yaml.bak-20200101T000000000\nsecret",
    ]
    for name in odd:
        (root / name).write_text("planted\n")
    (root / "c.yaml.bak-20000101T000000000000000").symlink_to(secret)  # an old "backup" that is a link
    for i in range(1, 4):
        code, out = run(
            "write",
            dest=str(root / "c.yaml"),
            src=stage(tmp_path, f"v{i}\n"),
            user=USER,
            group=GROUP,
            mode="0640",
            backups_keep=2,
        )
        assert code == 0, out
    names = sorted(p.name for p in root.iterdir())
    assert all(name in names for name in odd)  # names that are not ours are left alone
    ours = [n for n in names if n.startswith("c.yaml.bak-") and n not in odd]
    assert [(root / n).read_text() for n in sorted(ours)] == ["v1\n", "v2\n"]  # the newest two; the link pruned
    assert unchanged(secret)


def test_restore_skips_a_planted_backup_link(tree, tmp_path):
    root, secret = tree
    (root / "c.yaml").write_text("broken\n")
    (root / "c.yaml.bak-20260101T000000000000000").write_text("good\n")
    (root / "c.yaml.bak-29991231T235959000000000").symlink_to(secret)  # the "newest" one
    code, out = run("restore", dest=str(root / "c.yaml"), user=USER, group=GROUP, mode="0640")
    assert code == 0 and out == {"restored": "c.yaml.bak-20260101T000000000000000"}
    assert (root / "c.yaml").read_text() == "good\n" and (root / "c.yaml").stat().st_uid == UID
    assert unchanged(secret)


# -- directories and attributes ---------------------------------------------------------------
@pytest.mark.parametrize("plant", ["missing", "symlink", "file", "loose"])
def test_mkdir_creates_or_takes_back_the_directory(tree, plant):
    root, secret = tree
    path = root / "state"
    if plant == "symlink":
        path.symlink_to(secret.parent)
    elif plant == "file":
        path.write_text("x")
    elif plant == "loose":
        path.mkdir(mode=0o777)
        path.chmod(0o777)
    code, out = run("mkdir", path=str(path), user=USER, group=GROUP, mode="0750")
    assert code == 0, out
    st = path.lstat()
    assert path.is_dir() and not path.is_symlink() and (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (UID, GID, 0o750)
    assert (out["displaced"] is not None) == (plant in ("symlink", "file"))
    assert unchanged(secret) and secret.parent.stat().st_uid == 0


@pytest.mark.parametrize("target", ["link", "hard-link"])
def test_attrs_never_changes_a_root_file_through_a_link(tree, target):
    root, secret = tree
    path = root / "c.yaml"
    path.symlink_to(secret) if target == "link" else os.link(secret, path)
    code, err = run("attrs", path=str(path), user=USER, group=GROUP, mode="0644")
    assert code == 1 and "not followed" in err or "not a single regular file" in err
    assert unchanged(secret)


def asked(paths, **more):
    """A HostSnapshot question (``snapshot.question``'s keys) for PATHS of USER, with no unit and no venv."""
    return {
        "paths": paths,
        "user": USER,
        "group": GROUP,
        "units": [],
        "venv": "/nonexistent",
        "venv_link": None,
        "venv_owner": "root",
        "venv_integrity": False,
        "env_files": [],
        "dirs": [],
        "python": None,
        "debs": [],
        **more,
    }


# -- reading ----------------------------------------------------------------------------------
def test_snapshot_reports_links_as_links_and_reads_nothing_through_them(tree):
    root, secret = tree
    (root / "d").mkdir(mode=0o750)
    (root / "d").chmod(0o750)
    (root / "f").write_text("hello\n")
    (root / "link").symlink_to(secret)
    (root / "dirlink").symlink_to(secret.parent)
    as_account(root / "dirlink")
    (root / "env").write_text("# managed\nA='x'\nB=\"y\\\\z\"\n")
    paths = [str(root / n) for n in ("d", "f", "link", "dirlink/secret", "missing", "env")]
    proc = subprocess.run(
        ["sh", "-c", HostSnapshot().command(**asked(paths, env_files=[paths[-1]]), code=True)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    snap = HostSnapshot().process(proc.stdout.splitlines()).paths
    assert snap[paths[0]]["type"] == "directory" and snap[paths[0]]["mode"] == "0750"
    assert snap[paths[1]]["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
    assert snap[paths[2]]["type"] == "symlink" and snap[paths[2]]["sha256"] is None
    assert snap[paths[3]]["type"] == "unsafe" and "not followed" in snap[paths[3]]["detail"]
    assert snap[paths[4]] is None
    assert set(snap[paths[5]]["env"]) == {"A", "B"}
    assert "root's secret" not in proc.stdout


def test_read_refuses_a_link(tree):
    root, secret = tree
    (root / "c.yaml").symlink_to(secret)
    code, err = run("read", path=str(root / "c.yaml"))
    assert code == 1 and "root's secret" not in err


def test_read_redacts_the_hosts_known_secrets_before_they_are_printed(tmp_path):
    """A master key and a database password written by hand into a config leave the host only as their
    marks (FileText's output is what pyinfra prints at -vvv); a value that is not a known secret stays."""
    from litellm_runner import shown
    from litellm_runner.pyinfra_ext.facts import FileText

    key, password = "sk-h22-literal-master-key", "p@ss/word"
    env = tmp_path / "env.litellm"
    env.write_text(f"LITELLM_MASTER_KEY={key}\nDATABASE_URL=postgresql://u:p%40ss%2Fword@db/x\nLITELLM_LOG=INFO\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"master_key: {key}\ndatabase_url: postgresql://u:{password}@db/x\nlog: INFO\n")
    marks = [shown.mark(key), shown.mark(password), shown.mark("absent-secret")]
    command = FileText().command(str(config), env_file=str(env), marks=marks)
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert key not in proc.stdout and "word" not in proc.stdout
    assert FileText().process(proc.stdout.splitlines()) == (
        f"master_key: {shown.mark(key)}\ndatabase_url: postgresql://u:{shown.mark(password)}@db/x\nlog: INFO\n"
    )
    env.unlink()  # the secrets cannot be found: the text is not shown at all
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert FileText().process(proc.stdout.splitlines()) is None and key not in proc.stdout + proc.stderr


# -- the system interpreter's version: root runs only an interpreter that is root's alone -----------------
TROJAN = """#!/bin/sh
touch {marker}
echo 3.99
"""


@pytest.fixture
def root_dir():
    """A root-owned 0755 directory outside /tmp (which anyone can write), removed afterwards."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="litellm-runner-test-", dir="/run")
    os.chmod(path, 0o755)  # noqa: S103 (root's, as /usr/bin is)
    yield path
    shutil.rmtree(path)


def plant_python(root_dir, tmp_path, case):
    """The interpreter path CASE names, planted under ROOT_DIR; every plant that is not root's alone
    is a script that leaves a marker when run."""
    trojan = os.path.join(root_dir, "trojan")
    with open(trojan, "w") as handle:
        handle.write(TROJAN.format(marker=tmp_path / "ran"))
    os.chmod(trojan, 0o755)  # noqa: S103 (executable, as a planted interpreter would be)
    if case == "system":
        return "/usr/bin/python3"
    if case == "missing":
        return os.path.join(root_dir, "python3")
    if case == "root-copy":  # another interpreter, root's alone: run (-I, empty environment)
        import shutil

        shutil.copy2(os.path.realpath("/usr/bin/python3"), os.path.join(root_dir, "python3"))
        return os.path.join(root_dir, "python3")
    if case == "under-tmp":
        os.chmod(tmp_path, 0o755)  # noqa: S103 (only /tmp above it is writable by others)
        os.symlink("/usr/bin/python3", tmp_path / "python3")
        return str(tmp_path / "python3")
    if case == "accounts-file":
        as_account(trojan)
        return trojan
    if case == "accounts-link":
        os.symlink("/usr/bin/python3", os.path.join(root_dir, "python3"))
        as_account(os.path.join(root_dir, "python3"))
        return os.path.join(root_dir, "python3")
    if case == "accounts-venv":  # the account's venv: its directory, its bin/python
        venv_bin = os.path.join(root_dir, "venv", "bin")
        os.makedirs(venv_bin)
        os.rename(trojan, os.path.join(venv_bin, "python"))
        as_account(os.path.join(root_dir, "venv"))
        return os.path.join(venv_bin, "python")
    if case == "group-writable-dir":
        os.chmod(root_dir, 0o775)  # noqa: S103 (the plant: a directory its group can write)
        return trojan
    if case == "link-through-accounts-link":  # root's link -> the account's link -> the trojan
        os.symlink(trojan, os.path.join(root_dir, "hop"))
        as_account(os.path.join(root_dir, "hop"))
        os.symlink(os.path.join(root_dir, "hop"), os.path.join(root_dir, "python3"))
        return os.path.join(root_dir, "python3")
    if case == "not-python":
        return "/bin/true"
    raise AssertionError(case)


SYSTEM_VERSION = subprocess.run(
    ["/usr/bin/python3", "-I", "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
    capture_output=True,
    text=True,
    timeout=30,
).stdout.strip()
# (case, version, what the refusal says (None: not refused)); the trojan never runs
PYTHONS = [
    ("system", SYSTEM_VERSION, None),  # root's own: not even run
    ("root-copy", SYSTEM_VERSION, None),
    ("missing", None, None),
    ("under-tmp", None, "/tmp is writable by group or others (1777)"),
    ("accounts-file", None, "trojan is owned by uid 65534"),
    ("accounts-link", None, "python3 is owned by uid 65534"),
    ("accounts-venv", None, "/venv is owned by uid 65534"),
    ("group-writable-dir", None, "is writable by group or others (0775)"),
    ("link-through-accounts-link", None, "/hop is owned by uid 65534"),
    ("not-python", None, "/bin/true: not a Python interpreter"),
]


@pytest.mark.parametrize("case, version, refused", PYTHONS, ids=[r[0] for r in PYTHONS])
def test_snapshot_reads_the_system_pythons_version_and_never_runs_the_accounts(
    root_dir, tmp_path, case, version, refused
):
    python = plant_python(root_dir, tmp_path, case)
    code, doc = run("snapshot", paths=[], user="root", units=[], venv="/nonexistent", python=python)
    assert code == 0, doc
    assert doc["python"]["version"] == version
    if refused is None:
        assert doc["python"]["refused"] is None
    else:
        assert refused in doc["python"]["refused"] and doc["python"]["refused"].startswith(python)
    assert not (tmp_path / "ran").exists()  # nothing the account could write was run


def installed_provides() -> tuple[str, str, str]:
    """(virtual name, its provider, the provider's version) of a package installed here that provides
    a name no installed package has, as dpkg-query lists them."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\t${Provides}\n"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    real = {r[0] for r in rows}
    for package, version, status, provides in rows:
        for entry in provides.split(","):
            virtual = entry.split("(")[0].strip()
            if status == "installed" and virtual and virtual not in real:
                return virtual, package, version
    raise AssertionError("no installed package here provides a virtual package")


def test_snapshot_reads_the_debian_packages_from_dpkgs_status_as_data():
    virtual, provider, provider_version = installed_provides()
    names = ["bash", "python3", "no-such-package-x", virtual]
    code, doc = run("snapshot", paths=[], user="root", units=[], venv="/nonexistent", debs=names)
    assert code == 0, doc
    for name in ("bash", "python3"):
        version = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True, text=True, timeout=30
        ).stdout
        assert doc["debs"][name] == version
    assert doc["debs"]["no-such-package-x"] is None
    assert doc["debs"][virtual] == f"{provider_version} ({provider})"  # as apt sees it: installed
    assert run("snapshot", paths=[], user="root", units=[], venv="/nonexistent")[1]["debs"] is None  # not asked


@pytest.mark.parametrize("ns", [999_999_999, 1_000_000_000, 1_000_000_001, 59_999_999_999, 60_000_000_000])
def test_backup_stamps_sort_as_the_clock_reads_across_a_second(monkeypatch, ns):
    """One clock reading per stamp: a stamp made a nanosecond later sorts later, across a second's boundary."""
    base = 1_796_000_000 * 10**9
    stamps = []
    for t in (base + ns - 1, base + ns):
        monkeypatch.setattr(host_code.time, "time_ns", lambda t=t: t)
        stamps.append(host_code._stamp())
    assert stamps[0] < stamps[1] and re.fullmatch(r"[0-9]{8}T[0-9]{15}", stamps[1]), stamps


@pytest.mark.parametrize(
    "case,argv,timeout,limit,expected",
    [
        ("its exit code and output", ["sh", "-c", "echo out; echo err >&2; exit 3"], 10, 4096, (3, b"out\n")),
        ("a path runs as it is", ["/bin/sh", "-c", 'printf %s "$PATH $LANG"'], 10, 4096, (0, b"/usr/bin:/bin C.UTF-8")),
        ("stdin is /dev/null", ["sh", "-c", "cat; echo done"], 10, 4096, (0, b"done\n")),
        ("SIGPIPE as a program expects it", ["sh", "-c", "yes | head -c 3; echo $?"], 10, 4096, (0, b"y\ny0\n")),
        ("killed by a signal", ["sh", "-c", "kill -9 $$"], 10, 4096, (-9, b"")),
        ("in its own session, in /", ["sh", "-c", "ps -o sid= -p $$ | tr -d ' '; pwd"], 10, 4096, "session"),
        ("a binary not in the system path", ["no-such-binary-x"], 10, 4096, None),
        ("more than its limit", ["sh", "-c", "yes"], 10, 1 << 16, None),
        ("longer than its timeout", ["sh", "-c", "sleep 30"], 0.5, 4096, None),
        ("its stdout closed, still running", ["sh", "-c", "exec >&-; sleep 30"], 0.5, 4096, None),
    ],
)
def test_bounded_run(case, argv, timeout, limit, expected):
    """Root's own commands in the snapshot (the interpreter ``python_version`` asks) run through ``bounded_run``: exit
    code and bounded output, or None; a child stopped at its limit leaves nothing behind."""
    tag = f"litellm-bounded-{os.getpid()}"
    found = host_code.bounded_run([*argv, tag] if argv[0] == "sh" else argv, timeout, limit)
    if expected == "session":
        assert found is not None and found[0] == 0
        sid, cwd = found[1].decode().split()
        assert int(sid) != os.getsid(0) and cwd == "/"
    else:
        assert found == expected
    left = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True, timeout=10)
    assert left.stdout == "", case


def test_spawn_runs_root_code_as_the_account_untraceable_with_nothing_of_roots_open(tmp_path):
    """``spawn``: root's own Python code in a forked child dropped to the account (no exec): its ids, no
    supplementary group, none of root's open files, and not dumpable, so the account cannot trace it or read
    its memory (``prctl(PR_GET_DUMPABLE)`` is 0)."""
    import ctypes
    import pwd

    dumpable = ctypes.CDLL(None).prctl

    held = os.open(tmp_path, os.O_RDONLY)  # a handle root holds when it forks

    def report() -> int:
        fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        facts = [os.getuid(), os.getgid(), os.getgroups(), dumpable(3, 0, 0, 0, 0), held in fds, os.getcwd()]
        os.write(1, json.dumps(facts).encode())
        return 7

    try:
        found = host_code.spawn(report, 10, 4096, pwd.getpwnam(USER)).result()
    finally:
        os.close(held)
    assert found is not None and found[0] == 7
    assert json.loads(found[1]) == [UID, GID, [], 0, False, "/"]


@pytest.mark.parametrize(
    "case,body,timeout,expected",
    [
        ("its return value is its exit code", "os.write(1, b'out'); return 3", 10, (3, b"out")),
        ("an exception ends it with 1", "os.write(1, b'x'); raise ValueError('no')", 10, (1, b"x")),
        ("more than its limit", "os.write(1, b'y' * (1 << 17)); return 0", 10, None),
        ("longer than its timeout", "time.sleep(30); return 0", 0.5, None),
    ],
)
def test_spawn_is_bounded(case, body, timeout, expected):
    """A ``spawn`` child's answer is its exit code and at most LIMIT bytes within its timeout, else None; it is
    reaped either way."""
    namespace = {"os": os, "time": __import__("time")}
    exec(f"def target():\n    {body}\n", namespace)  # noqa: S102 - the table's own code
    child = host_code.spawn(namespace["target"], timeout, 1 << 16)
    assert child.result() == expected, case
    # reaped: neither running nor a zombie (read from /proc: pyinfra's gevent, imported by other unit tests,
    # replaces os.waitpid in this process with one that answers again for a child already reaped)
    assert not os.path.exists(f"/proc/{child.pid}"), case


def test_the_snapshot_starts_without_subprocess():
    """The snapshot's start imports no ``subprocess`` (its modules cost the host about 6 ms of CPU per command)."""
    from litellm_runner.layout import SYSTEM_PYTHON

    command = hostside("snapshot", {"paths": [], "user": "root", "units": [], "venv": "/nonexistent"})
    command = command.replace(f"{SYSTEM_PYTHON} -I -S", f"{SYSTEM_PYTHON} -I -S -X importtime", 1)
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "import time:" in line}
    assert "json" in imported and "subprocess" not in imported and "threading" not in imported


def test_unit_sources_lists_each_folder_once_for_every_unit(tmp_path, monkeypatch):
    """The files systemd would read for each unit besides the managed one: the account's unit file, its own
    drop-ins and the shared ones (``litellm-.service.d``, ``service.d``); a folder reached twice counts once."""
    acct, managed = tmp_path / "account", tmp_path / "managed"
    for folder in ("litellm.service.d", "litellm-.service.d", "service.d", "litellm-backup.timer.d"):
        (acct / folder).mkdir(parents=True)
    managed.mkdir()
    (tmp_path / "again").symlink_to(managed)  # root's link to the managed folder, as /etc/xdg/systemd/user
    for rel in (
        "litellm.service",
        "litellm.service.d/own.conf",
        "litellm.service.d/ignored.txt",
        "litellm-.service.d/prefix.conf",
        "service.d/all.conf",
    ):
        (acct / rel).write_text("[Service]\n")
    for unit in ("litellm.service", "litellm-metrics.service", "litellm-backup.timer"):
        (managed / unit).write_text("[Unit]\n")
    monkeypatch.setattr(host_code, "unit_dirs", lambda user: [str(acct), str(managed), str(tmp_path / "again")])
    monkeypatch.setattr(host_code, "MANAGED_UNITS", str(managed))
    units = ["litellm.service", "litellm-metrics.service", "litellm-backup.timer", "litellm-backup.service"]
    assert host_code.unit_sources(USER, units) == {
        "litellm.service": [
            f"{acct}/litellm.service",
            f"{acct}/litellm.service.d/own.conf",
            f"{acct}/service.d/all.conf",  # no dash in its name: no prefix drop-ins
        ],
        "litellm-metrics.service": [f"{acct}/litellm-.service.d/prefix.conf", f"{acct}/service.d/all.conf"],
        "litellm-backup.timer": [],  # an empty drop-in folder
        "litellm-backup.service": [f"{acct}/litellm-.service.d/prefix.conf", f"{acct}/service.d/all.conf"],
    }


ACROSS = b"Name: b\nVersion: 2\nP: ".ljust(8191, b"p")  # its blank line falls across the first two 8 KB reads
LONG_HEAD = b"Name: c\n" + b"Classifier: z\n" * 2000


@pytest.mark.parametrize(
    "case,text,name",
    [
        ("head in the first chunk", b"Name: a\nVersion: 1\n\n" + b"x" * 100_000, ("a", "1", True)),
        ("the blank line across two chunks", ACROSS + b"\n\nbody", ("b", "2", True)),
        ("a head longer than a chunk", LONG_HEAD + b"Version: 3\n\nbody", ("c", "3", True)),
        ("no body", b"Name: d\nVersion: 4\n", ("d", "4", True)),
        ("the first of a field counts", b"Name: g\nVersion: 7\nName: h\nVersion: 8\n", ("g", "7", True)),
        ("no RECORD beside it", b"Name: i\nVersion: 9\n", ("i", "9", False)),
        ("a field only at a line's start", b"Summary: Name: no\nName: j\nVersion: 10", ("j", "10", True)),
        ("CRLF lines", b"Metadata-Version: 2.1\r\nName: k\r\nVersion: 11\r\n\r\n", ("k", "11", True)),
        ("Name on the first line", b"Name: l\nVersion: 12\n\n", ("l", "12", True)),
        ("no Name", b"Metadata-Version: 2.1\nVersion: 13\n\n", None),
        ("Version only in the body", b"Name: e\n\nVersion: 5\n", None),
        ("larger than 1 MB", b"Name: f\nVersion: 6\n\n" + b"x" * (1 << 20), None),
    ],
)
def test_a_distributions_metadata_head_is_read_up_to_its_first_blank_line(tmp_path, case, text, name):
    """``_metadata`` reads a dist-info's METADATA only up to the end of its head (Name, Version: what the snapshot
    needs), in 8 KB chunks, and says whether a RECORD is there; a file larger than 1 MB is refused unread."""
    (tmp_path / "x-1.dist-info").mkdir()
    (tmp_path / "x-1.dist-info" / "METADATA").write_bytes(text)
    if case != "no RECORD beside it":
        (tmp_path / "x-1.dist-info" / "RECORD").write_text("")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert host_code._metadata(fd, "x-1.dist-info") == name, case
    finally:
        os.close(fd)


def dist(site, name: str, version: str, record: bool = True) -> None:
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    if record:
        (folder / "RECORD").write_text("")


def settle(folder) -> None:
    """FOLDER's entries last changed a minute ago (its mtime), as in a venv installed a while ago."""
    old = time.time() - 60
    os.utime(folder, (old, old))


def test_a_venvs_distributions_are_read_again_only_when_its_site_packages_changes(tmp_path, root_cache):
    """``_distributions`` keeps what it read in root's cache under the site-packages folder's identity: read again
    when a dist-info folder is added or removed; not while the folder is as it was (a METADATA changed in place,
    which root's installs never do, is not seen: that is ``venv_integrity``'s)."""
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    dist(site, "Fast_API", "0.1")
    dist(site, "half", "1.0", record=False)
    venv = str(tmp_path / "venv")
    settle(site)
    first = host_code._distributions(venv)
    assert first == (
        {"fast-api": "0.1", "half": "1.0"},
        {"half": "lib/python3.11/site-packages/half-1.0.dist-info: no METADATA or RECORD"},
    )
    kept = sorted(p.name for p in root_cache.iterdir() if p.name.startswith("dists-"))
    assert len(kept) == 1
    (site / "Fast_API-0.1.dist-info" / "METADATA").write_text("Name: Fast_API\nVersion: 9.9\n\n")  # in place
    assert host_code._distributions(venv) == first  # kept: no METADATA read
    dist(site, "urllib3", "2.5.0")  # an install adds a folder: read again
    assert host_code._distributions(venv)[0] == {"fast-api": "9.9", "half": "1.0", "urllib3": "2.5.0"}
    assert sorted(p.name for p in root_cache.iterdir() if p.name.startswith("dists-")) == kept  # read, not kept
    subprocess.run(["rm", "-r", str(site / "half-1.0.dist-info")], check=True, timeout=30)
    settle(site)
    assert host_code._distributions(venv) == ({"fast-api": "9.9", "urllib3": "2.5.0"}, {})
    assert len([p for p in root_cache.iterdir() if p.name.startswith("dists-")]) == 1  # the last read only
