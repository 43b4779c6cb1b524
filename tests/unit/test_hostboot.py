"""Root's cache of the compiled host-side code (``hostboot``), run for real on this machine.

The exact command the runner sends (``facts.hostside``, root's /usr/bin/python3) reads a file with
each cache in place: root's own intact file is used; a file or folder another user could have
written (``nobody`` plays the service account), a link, a hard link or a damaged file is never run,
and the command compiles its own source instead and answers the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from litellm_runner import layout
from litellm_runner.pyinfra_ext import facts

UID, GID = 65534, 65534
PLANTED = 'def main(argv):\n    print(\'{"text": "planted"}\')\n    return 0\n'


def read(cache, path, code=True) -> str | None:
    """The ``read`` action's text of PATH, run as the runner runs it, with its compiled code kept in CACHE;
    without CODE (the command carries only the code's key) None when the command answered ``UNCACHED``."""
    command = facts.hostside("read", {"path": str(path)}, cache=str(cache), code=code)
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    if facts.uncached(proc.stdout.splitlines()):
        return None
    return json.loads(proc.stdout)["text"]


def compiled(source: str) -> bytes:
    """SOURCE compiled by root's interpreter, in the cache's format: the sha256 of the code, a line break, the code."""
    program = (
        "import hashlib,marshal,sys;d=marshal.dumps(compile(sys.argv[1],'x','exec'));"
        "sys.stdout.buffer.write(hashlib.sha256(d).hexdigest().encode()+b'\\n'+d)"
    )
    return subprocess.run(
        [layout.SYSTEM_PYTHON, "-I", "-S", "-c", program, source], capture_output=True, timeout=30
    ).stdout


@pytest.fixture
def cached(tmp_path):
    """(cache folder, its one file, a file to read): the cache filled by a first command."""
    cache, text = tmp_path / "cache", tmp_path / "text"
    text.write_text("root's text\n")
    assert read(cache, text) == "root's text\n"  # compiled, and kept
    (entry,) = cache.iterdir()
    return cache, entry, text


def test_the_first_command_keeps_the_compiled_code_root_alone_can_write(cached):
    cache, entry, _ = cached
    assert (cache.stat().st_uid, cache.stat().st_mode & 0o7777) == (0, 0o700)
    assert (entry.stat().st_uid, entry.stat().st_mode & 0o7777, entry.stat().st_nlink) == (0, 0o600, 1)
    digest, _, data = entry.read_bytes().partition(b"\n")
    assert digest == hashlib.sha256(data).hexdigest().encode()
    assert entry.name.startswith(f"hostside-{hashlib.sha256(facts.source().encode()).hexdigest()}-cpython-")


def test_root_s_intact_cache_file_is_what_runs(cached):
    cache, entry, text = cached
    entry.write_bytes(compiled(PLANTED))  # root's own file (this test runs as root): trusted as root's code
    assert read(cache, text) == "planted"


@pytest.mark.parametrize(
    "plant",
    [
        "owned by the account",
        "writable by others",
        "damaged",
        "a symlink",
        "hard-linked",
        "folder open to others",
        "folder of the account",
    ],
)
def test_a_cache_anyone_else_could_write_is_never_run(cached, plant, tmp_path):
    cache, entry, text = cached
    entry.write_bytes(compiled(PLANTED))
    if plant == "owned by the account":
        os.chown(entry, UID, GID)
    elif plant == "writable by others":
        entry.chmod(0o622)
    elif plant == "damaged":
        entry.write_bytes(entry.read_bytes()[:-10] + b"0" * 10)
    elif plant == "a symlink":
        elsewhere = tmp_path / "elsewhere"
        entry.rename(elsewhere)
        entry.symlink_to(elsewhere)
    elif plant == "hard-linked":
        os.link(entry, tmp_path / "second-name")
    elif plant == "folder open to others":
        cache.chmod(0o777)
    elif plant == "folder of the account":
        os.chown(cache, UID, GID)
    assert read(cache, text) == "root's text\n"  # the command's own source, compiled: not the planted code


@pytest.mark.parametrize("plant", ["owned by the account", "damaged", "folder open to others"])
def test_a_command_without_its_code_runs_only_root_s_intact_cache(cached, plant):
    """The drift check's snapshot is first sent without its code: it runs root's kept code, or nothing."""
    cache, entry, text = cached
    assert read(cache, text, code=False) == "root's text\n"
    entry.write_bytes(compiled(PLANTED))
    if plant == "owned by the account":
        os.chown(entry, UID, GID)
    elif plant == "damaged":
        entry.write_bytes(entry.read_bytes()[:-10] + b"0" * 10)
    elif plant == "folder open to others":
        cache.chmod(0o777)
    assert read(cache, text, code=False) is None  # neither the planted code nor anything else ran


def test_a_command_without_its_code_on_a_new_host_writes_nothing(tmp_path):
    text = tmp_path / "text"
    text.write_text("root's text\n")
    assert read(tmp_path / "cache", text, code=False) is None
    assert not (tmp_path / "cache").exists()
    assert read(tmp_path / "cache", text) == "root's text\n"  # sent again with its code: compiled, and kept
    assert read(tmp_path / "cache", text, code=False) == "root's text\n"


def test_a_command_without_its_code_is_small():
    """What SSH, root's login shell and ``sh`` carry for each drift check: the key, not the 77 KB of code."""
    lean = facts.hostside("read", {"path": "/etc/hostname"}, code=False)
    assert len(lean) < 8000 < 50000 < len(facts.hostside("read", {"path": "/etc/hostname"}))
    assert '"""' not in lean and "#" not in lean.split(" -c ", 1)[1]  # no docstring, no comment


def test_a_cache_folder_behind_a_link_or_in_another_user_s_folder_is_not_used_nor_written(tmp_path):
    text = tmp_path / "text"
    text.write_text("root's text\n")
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    assert read(tmp_path / "link", text) == "root's text\n" and list(real.iterdir()) == []
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, UID, GID)
    assert read(theirs / "cache", text) == "root's text\n" and list(theirs.iterdir()) == []


def test_another_version_s_file_is_replaced(cached):
    cache, entry, text = cached
    old = cache / "hostside-0000-cpython-311-0-m4"
    old.write_bytes(compiled(PLANTED))
    entry.unlink()
    assert read(cache, text) == "root's text\n"
    assert [p.name for p in cache.iterdir()] == [entry.name]  # the other version's file was removed
