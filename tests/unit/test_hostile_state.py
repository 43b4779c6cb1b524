"""Nothing the account plants in its state stops root's host-side code (issue #22), run for real here.

Each row plants, as ``nobody`` (playing the account), what used to abort a whole snapshot or write:
a FIFO, socket or directory where a file is expected, a file too large to read, a directory at a
temporary or backup name, a tree deeper than any package's, a RECORD field longer than csv's limit,
``python3`` linked to a large root file. The row runs the action through the exact command the
runner sends and shows that it finished, named the item's path, and read nothing it should not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from litellm_runner import envfile
from litellm_runner.pyinfra_ext import hostside as hs
from litellm_runner.pyinfra_ext import lock
from litellm_runner.pyinfra_ext.facts import as_account
from tests.unit.test_hostside import GID, GROUP, UID, USER, run, stage, tree  # noqa: F401 (fixture)

BIG = 20 * 1024**3  # a sparse file the size the issue planted


def own(path):
    os.chown(path, UID, GID, follow_symlinks=False)
    return path


def fifo(path):
    os.mkfifo(path)
    return own(path)


def sock(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return own(path)


def sparse(path):
    with open(path, "wb") as handle:
        handle.truncate(BIG)
    return own(path)


def directory(path):
    path.mkdir()
    return own(path)


PATH_STATES = [  # (case, plant, type reported, detail): a FIFO or socket is reported by lstat, never opened
    ("fifo", fifo, "other", None),
    ("socket", sock, "other", None),
    ("sparse 20 GB", sparse, "unsafe", f"{BIG} bytes, more than {hs.READ_LIMIT}: not read"),
]


@pytest.mark.parametrize("case, plant, kind, detail", PATH_STATES, ids=[c[0] for c in PATH_STATES])
def test_the_snapshot_names_a_planted_non_file_and_reads_on(tree, case, plant, kind, detail):  # noqa: F811
    root, _ = tree
    plant(root / "c.yaml")
    (root / "ok.yaml").write_text("fine\n")
    started = time.monotonic()
    code, out = run(
        "snapshot", paths=[str(root / "c.yaml"), str(root / "ok.yaml")], user="root", units=[], venv="/nonexistent"
    )
    assert code == 0, out
    assert time.monotonic() - started < 30  # a FIFO is never waited on (no writer ever comes)
    found = out["paths"][str(root / "c.yaml")]
    assert found["type"] == kind and found["sha256"] is None
    if detail:
        assert detail in found["detail"] and str(root / "c.yaml") in found["detail"]
    assert out["paths"][str(root / "ok.yaml")]["type"] == "file"  # the rest of the snapshot is read


@pytest.mark.parametrize("plant", [fifo, sparse, directory], ids=["fifo", "sparse", "directory"])
def test_a_write_displaces_the_plant_at_its_path_and_writes(tree, tmp_path, plant):  # noqa: F811
    root, _ = tree
    plant(root / "c.yaml")
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
    assert (root / "c.yaml").read_text() == "new\n"
    assert out["displaced"].startswith(str(root / "c.yaml.displaced-"))
    assert os.path.lexists(out["displaced"])  # kept for inspection, never deleted


def test_directories_at_temporary_and_backup_names_are_leftovers_displaced_alone(tree, tmp_path):  # noqa: F811
    root, _ = tree
    planted = {
        "c.yaml.tmp-litellm-runner": directory,
        "x.tmp-litellm-runner": directory,
        "\x1b]0;t\x07.tmp-litellm-runner-bak": fifo,
        "c.yaml.bak-20260101T000000": directory,
    }
    for name, plant in planted.items():
        plant(root / name)
    (root / "c.yaml.bak-20250101T000000").write_text("a real backup\n")
    (root / "c.yaml").write_text("old\n")

    code, out = run("snapshot", paths=[], user="root", units=[], venv="/nonexistent", dirs=[str(root)])
    assert code == 0, out
    assert out["leftovers"] == sorted(str(root / n) for n in planted)  # the real backup is no leftover

    code, out = run("unlink", paths=sorted(str(root / n) for n in planted))
    assert code == 0, out
    assert sorted(c["displaced"] for c in out["cleared"]) == sorted(str(root / n) for n in planted)
    left = set(os.listdir(root))
    assert not set(planted) & left and sum(".displaced-" in n for n in left) == len(planted)
    assert (root / "c.yaml.bak-20250101T000000").read_text() == "a real backup\n"


def test_a_directory_at_the_temporary_name_is_in_no_writes_way(tree, tmp_path):  # noqa: F811
    root, _ = tree
    directory(root / "c.yaml.tmp-litellm-runner")
    directory(root / "c.yaml.bak-20260101T000000")  # newer than any real backup: pruned first if it counted
    (root / "c.yaml").write_text("old\n")
    code, out = run(
        "write",
        dest=str(root / "c.yaml"),
        src=stage(tmp_path, "new\n"),
        user=USER,
        group=GROUP,
        mode="0640",
        backups_keep=1,
    )
    assert code == 0, out
    assert (root / "c.yaml").read_text() == "new\n"
    assert (root / "c.yaml.bak-20260101T000000").is_dir()  # no backup: left to the leftovers step


def test_the_venv_walk_is_bounded_and_names_what_it_did_not_walk(tree):  # noqa: F811
    root, _ = tree
    venv = root / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    os.makedirs(site)
    deep = site / "deep"
    deep.mkdir()  # 1,100 levels below it: deeper than Python's recursion limit (made by the shell: makedirs recurses)
    subprocess.run(
        ["sh", "-c", "i=0; while [ $i -lt 1100 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done"],
        cwd=deep,
        check=True,
        timeout=120,
    )
    dist = site / "x-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Name: x\nVersion: 1.0\n\n")
    (dist / "RECORD").write_text("x.py,sha256=" + "0" * 200_000 + ",1\n")  # past csv's field limit
    (site / "litellm" / "proxy").mkdir(parents=True)
    os.mkfifo(site / "litellm" / "proxy" / "schema.prisma")
    big = root.parent / "large-root-library.so"
    with open(big, "wb") as handle:
        handle.truncate(BIG)
    os.utime(big, (0, 0))  # a read would move the access time
    (venv / "bin").mkdir()
    os.symlink("python3", venv / "bin" / "python")
    os.symlink(big, venv / "bin" / "python3")
    subprocess.run(["chown", "-R", "-h", f"{UID}:{GID}", str(venv)], check=True, timeout=60)

    code, out = run("snapshot", paths=[], user=USER, units=[], venv=str(venv), venv_integrity=True)  # the walk
    subprocess.run(["rm", "-rf", str(deep)], timeout=120)  # pytest's own cleanup recurses
    assert code == 0, out
    state = out["venv"]
    assert state["hostile"] and state["hostile"][0].startswith(f"{deep}/d/d/")
    assert f"more than {hs.MAX_DEPTH} directories deep" in state["hostile"][0]
    assert state["broken"]["x"].startswith(f"{venv}/lib/python3.11/site-packages/x-1.0.dist-info/RECORD: unreadable")
    assert state["python"] == str(big) and state["exists"] is True
    assert os.stat(big).st_atime == 0  # root never read the linked file


def test_the_tree_walk_stops_at_its_entry_bound(tmp_path):
    for i in range(30):
        (tmp_path / f"f{i}").write_text("")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        out: dict = {}
        problems = hs._tree(fd, "", out, entries=10)
    finally:
        os.close(fd)
    assert len(out) == 10 and problems == [".: more than 10 entries: not walked further"]


def test_a_refusal_names_the_path_with_its_control_characters_escaped(tree):  # noqa: F811
    root, _ = tree
    bad = root / "\x1b[2Jx.tmp-litellm-runner"
    code, out = run("unlink", paths=[str(bad) + "/../../etc"])
    assert code == 1 and "\x1b" not in out and "\\u001b[2Jx" in out


@pytest.mark.parametrize("plant", [fifo, sparse, sock], ids=["fifo", "sparse", "socket"])
def test_the_env_file_codec_reads_only_a_small_regular_file_without_blocking(tmp_path, plant):
    path = plant(tmp_path / "env.litellm")
    started = time.monotonic()
    with pytest.raises(envfile.EnvFileError, match=f"{path}: .*not read"):
        envfile.read(path)
    assert time.monotonic() - started < 10


def test_a_fact_run_as_the_account_is_stopped_with_its_processes():
    import pathlib
    import tempfile

    where = pathlib.Path(tempfile.mkdtemp(prefix="hostile-", dir="/tmp"))
    os.chmod(where, 0o755)  # noqa: S103 (the account must reach the FIFO)
    pipe = fifo(where / "blocked.fifo")
    command = f"{as_account(USER, GROUP, '/', 2)} sh -c 'cat {pipe}; echo never'"
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 124 and "never" not in proc.stdout
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", str(pipe)], capture_output=True, text=True, timeout=10).stdout
    subprocess.run(["rm", "-rf", str(where)], timeout=30)
    assert left == ""


def test_the_lock_guard_refuses_a_directory_that_is_not_its_own(tmp_path):
    path = str(tmp_path / "litellm-runner.lock")
    os.mkdir(lock.guard_dir(path), 0o755)  # an older runner's, or anybody's but root's at 0700
    proc = subprocess.run(
        ["sh", "-c", lock.take_command(lock.me(), path=path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3 and "not a directory of this user at 0700" in proc.stderr
    assert not os.path.exists(path)
