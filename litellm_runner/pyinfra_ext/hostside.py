"""Root's hands inside the service account's tree: run on the host by the system interpreter.

This module is the only code root runs on a host to read or write the
account's files. It is not installed on the host: ``command(action, args)``
sends its source (with the env-file codec) inline to ``/usr/bin/python3 -I -S``,
a root-owned interpreter in isolated mode, so nothing the account can write
(its venv, ``bin/``, ``PYTHONPATH``, the working directory) is ever executed
by root.

Every path is walked from ``/`` one component at a time with ``O_NOFOLLOW``
(``walk``): a symlink is followed only when it and the directory holding it
belong to root and nobody else can write that directory (``/home`` as a link
to ``/srv/home`` is fine; ``state`` as a link to ``/etc`` is not). Files are
then opened once and acted on by handle: ``fchown``/``fchmod`` on what was
opened, temporary files created with ``O_EXCL|O_NOFOLLOW`` and renamed into
place inside the same directory handle, backups listed as data (no shell) and
removed with ``unlinkat``. A symlink planted at a managed path is reported as
``{"type": "symlink"}`` and never read through; a write replaces it.

Actions (``python3 -I -S -c SOURCE ACTION ARGS_B64JSON``), each printing one JSON
document on stdout, or an error line on stderr with exit 1:

- ``snapshot``: ``paths`` (type, mode, owner, sha256 of regular files; env-file
  key fingerprints for ``env_files``), ``linger``, ``units``, ``venv``, the
  version of the system interpreter ``python`` (``python_version``: run only when
  it is root's alone), the Debian packages ``debs`` (dpkg's status file as data) and the venv's Prisma
  client (``prisma_client``), and with ``plan`` the database plan, run beside the rest as the account (``Planning``)
- ``plan``: the database plan alone (``Planning``)
- ``read``: a regular file's text (for diffs), the host's known secrets in it redacted (``_redacted``)
- ``mkdir``: a missing directory, created 0700, then chowned/chmodded by handle
- ``attrs``: owner and mode of an existing file or directory, by handle
- ``write``: replace a file with staged content (tmp + rename), backups kept
- ``restore``: put the newest backup of a file back
- ``adopt``: give whatever in a venv another user owns back to the account, by handle
- ``unit_clean``: quarantine foreign unit files and drop-ins of the managed units (``unit_sources``)
- ``quarantine``: move the account's plants (``account_plants``) and the account's copies of root's
  files into a root-owned quarantine folder with a manifest, never deleting them
- ``unlink``: clear what ``leftovers`` found at a temporary or backup name
- ``displace``: move a venv root must not walk aside (``PATH.displaced-TIME``)
- ``switch``: point the venv link at the venv built beside the running one (``venv_link``), by rename
- ``prune``: remove the venvs nothing needs any more (neither the running one nor the one before it)
- ``compile_tools``: root's checked compiled form of the host tools' modules in ``bin/__pycache__``
  (``tools_bytecode``, also part of ``snapshot``, reads that folder as data)

Anything the account plants is hostile input of any type, size and depth (issue #22): files are
opened with O_NONBLOCK|O_NOFOLLOW and fstat-ed before the first read (a FIFO, socket or device is
never read, a file larger than READ_LIMIT is refused unread, its path named); trees are walked
without recursion, at most MAX_DEPTH levels and MAX_ENTRIES entries; a RECORD that csv cannot read
fails its distribution alone. Whatever is in a write's way (a directory at the temporary name, at a
backup name, at a unit's name, at the managed path itself) is moved aside, never entered or
deleted (``_clear``, ``_displace``), so each plant fails or is displaced alone and the rest of the
host converges. Error lines are printable ASCII (``printable``): a planted name cannot write
control characters to the operator's terminal.
"""

from __future__ import annotations

import _signal  # signal's C core: ``signal`` builds its enum classes at import (about 1 ms)
import _socket  # socket's C core: ``socket`` itself builds its enum classes at import (about 1.5 ms)
import binascii
import errno
import gc
import grp
import hashlib
import itertools
import json
import os
import pwd
import re
import select
import stat
import struct
import sys
import time
import zlib
from collections.abc import Callable

from litellm_runner import layout  # shipped ahead of this file (facts._boot): the constants both sides share

SYSTEM_PYTHON = layout.SYSTEM_PYTHON
TMP_SUFFIX = ".tmp-litellm-runner"
BACKUP_RE = r"\.bak-[0-9]{8}T[0-9]{6,}"
READ_LIMIT = 16 * 1024 * 1024
URLSAFE = bytes.maketrans(b"+/", b"-_")  # base64 to its URL-safe alphabet, as RECORD writes a sha256
MAX_DEPTH = 64  # directories below a walked tree's top: deeper is the account's plant, never a package's
MAX_ENTRIES = 400_000  # entries of one walked tree (a litellm venv holds about 40,000)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class Unsafe(Exception):
    """A path that root must not act on (a link in the account's tree, a hard link, a swap)."""


# -- walking without following the account's links ---------------------------------------------
def _split(path: str) -> list[str]:
    if not path.startswith("/") or "\0" in path:
        raise Unsafe(f"{path!r}: expected an absolute path")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise Unsafe(f"{path}: '.' and '..' are not walked")
    return parts


def _trusted_link(dirfd: int, name: str) -> bool:
    """A symlink root may follow: owned by root, in a root-owned directory nobody else can write."""
    link, parent = os.stat(name, dir_fd=dirfd, follow_symlinks=False), os.fstat(dirfd)
    return link.st_uid == 0 and parent.st_uid == 0 and not parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


_HELD: dict[tuple[str, ...], int] | None = None  # while a snapshot reads (``held_walks``): directories it reached


def walk(parts: list[str], shown: str) -> int:
    """A handle on the directory ``/parts...`` reached without following an untrusted link.

    Inside ``held_walks`` each directory reached is kept by its handle, and a later walk starts from the
    deepest one already held: the snapshot's 60-odd paths share a few folders, each opened once (about 2 ms of
    the host's CPU). A held handle is the directory root reached and judged then; a rename since does not
    lead a later walk elsewhere."""
    held, start, fd = _HELD, 0, None
    if held is not None:
        for i in range(len(parts), 0, -1):
            if (found := held.get(tuple(parts[:i]))) is not None:
                fd, start = os.dup(found), i
                break
    if fd is None:
        fd = os.open("/", DIR_FLAGS)
    try:
        for i in range(start, len(parts)):
            name = parts[i]
            try:
                nxt = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                is_link = stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
                if not (is_link and _trusted_link(fd, name)):
                    where = "/" + "/".join(parts[: i + 1])
                    raise Unsafe(
                        f"{shown}: {where} is {'a symlink' if is_link else 'not a directory'}: not followed"
                    ) from None
                nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if held is not None:
                held[tuple(parts[: i + 1])] = os.dup(fd)
        return fd
    except BaseException:
        os.close(fd)
        raise


class held_walks:
    """``with held_walks():`` the walks inside share the directories they reach (``walk``); all closed after."""

    def __enter__(self):
        global _HELD
        _HELD = {}

    def __exit__(self, *exc):
        global _HELD
        held, _HELD = _HELD or {}, None
        for fd in held.values():
            os.close(fd)


def parent(path: str) -> tuple[int, str]:
    """(handle on PATH's directory, PATH's last name)."""
    parts = _split(path)
    if not parts:
        raise Unsafe("/: not managed")
    return walk(parts[:-1], path), parts[-1]


def _kind(st) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "other"


_NAMES: dict = {}  # (lookup, id) -> name: each id is looked up once per command (NSS reads /etc/passwd each time)


def _name(lookup, ident) -> str:
    """The user or group name of IDENT (``pwd.getpwuid``, ``grp.getgrgid``), else IDENT as text (never kept: an
    account created later in the same command is found)."""
    key = (lookup, ident)
    if key not in _NAMES:
        try:
            _NAMES[key] = lookup(ident)[0]
        except KeyError:
            return str(ident)
    return _NAMES[key]


def _open_file(dirfd: int, name: str, shown: str, flags=os.O_RDONLY) -> int:
    """Open a regular file by name in DIRFD, never through a link, never a hard-linked one."""
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unsafe(f"{shown} is a symlink: not followed") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise Unsafe(f"{shown} is not a single regular file (type {_kind(st)}, {st.st_nlink} links)")
    return fd


def _read_fd(fd: int, limit: int = READ_LIMIT, shown: str = "the file", until: bytes = b"") -> bytes:
    """At most LIMIT bytes of the regular file FD (fstat first: a FIFO, socket or device is refused
    before the first read, a file that says it is larger is refused unread; SHOWN names it). With UNTIL,
    reading stops at the chunk that holds it (a METADATA file's head ends at its first blank line)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise Unsafe(f"{shown} is not a regular file (type {_kind(st)}): not read")
    if st.st_size > limit:
        raise Unsafe(f"{shown}: {st.st_size} bytes, more than {limit}: not read")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, 1 << 13 if until else 1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise Unsafe(f"{shown}: more than {limit} bytes: not read")
        chunks.append(chunk)
        if until and until in (chunks[-2][-len(until) :] if len(chunks) > 1 else b"") + chunk:
            return b"".join(chunks)


# -- snapshot ------------------------------------------------------------------------------------
def path_state(path: str, env_file: bool = False) -> dict | None:
    """Type, mode, owner (and sha256 / env key fingerprints) of PATH itself, never of a link's target."""
    try:
        dirfd, name = parent(path)
    except FileNotFoundError:
        return None
    except (Unsafe, NotADirectoryError) as exc:
        return {"type": "unsafe", "detail": str(exc)}
    try:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        out = {
            "type": _kind(st),
            "mode": format(stat.S_IMODE(st.st_mode), "04o"),
            "user": _name(pwd.getpwuid, st.st_uid),
            "group": _name(grp.getgrgid, st.st_gid),
            "sha256": None,
            "links": st.st_nlink,
        }
        if out["type"] == "file":
            try:
                fd = _open_file(dirfd, name, path)
            except Unsafe as exc:
                return {**out, "type": "unsafe", "detail": str(exc)}
            try:
                data = _read_fd(fd, shown=path)
            except Unsafe as exc:  # too large to be a file the deploy wrote: named, replaced by the write
                return {**out, "type": "unsafe", "detail": str(exc)}
            finally:
                os.close(fd)
            out["sha256"] = hashlib.sha256(data).hexdigest()
            if env_file:
                out["env"] = _env_fingerprints(data, path)
        return out
    finally:
        os.close(dirfd)


def _env_fingerprints(data: bytes, path: str):
    """KEY -> fingerprint of its value as the env-file codec reads it (no value leaves the host)."""
    codec, mark = globals().get("loads"), globals().get("fingerprint")  # the codec sent along (facts._boot)
    if codec is None or mark is None:
        return None
    try:
        return {k: mark(v) for k, v in codec(data.decode("utf-8", "replace"), path).items()}
    except ValueError as exc:
        return {"#unreadable": str(exc)}


def _normalized(name: str) -> str:
    """A distribution's NAME as PEP 503 normalizes it (``Fast_API`` is ``fast-api``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_name(entry: str) -> str:
    """The normalized distribution name of a ``NAME-VERSION.dist-info`` folder's name."""
    return _normalized(entry.split("-", 1)[0])


DISTS_PREFIX = "dists-"  # the name of a venv's distributions kept by root (``_distributions``)
SETTLED_NS = (
    2_000_000_000  # a folder whose entries changed less long ago is not kept: a change in the same tick keeps its time
)


def _distributions(venv: str) -> tuple[dict | None, dict]:
    """``({normalized name: version}, {distribution: problem})`` from the venv's *.dist-info folders, read as
    data (nothing executed): each one's METADATA head (at most 1 MB) and whether it has a RECORD (lstat);
    a folder without either is what a killed pip leaves. ``(None, {})`` without lib/python*/site-packages.

    What was read is kept in root's cache (``keep``) under the identity of each site-packages folder (device,
    inode, and its mtime and ctime in ns): a dist-info folder added, removed or renamed changes it, and only then
    are the METADATA heads read again (LiteLLM's venv has 129: about 3.5 ms of the host's CPU per check). A folder
    changed in the last ``SETTLED_NS`` is read but not kept (a pip still installing: its next change may come in
    the same tick of the file system's clock, and leave the folder's times as they were). The
    venv is root's along its whole path (``_path_problems``), and root's installs only add and remove dist-info
    folders; ``venv_integrity`` checks every file against its RECORD."""
    try:
        libfd = walk(_split(venv) + ["lib"], venv)
    except (FileNotFoundError, NotADirectoryError, Unsafe):
        return None, {}
    sites: list[tuple[str, int]] = []
    try:
        pythons = sorted(n for n in _names(libfd) if n.startswith("python"))
        if not pythons:
            return None, {}
        for py in pythons:
            try:
                sites.append((py, walk(_split(venv) + ["lib", py, "site-packages"], venv)))
            except (FileNotFoundError, NotADirectoryError, Unsafe):
                continue
        idents = [(py, os.fstat(fd)) for py, fd in sites]
        key = "\0".join(
            [
                str(KEPT_FORMAT),
                venv,
                *(f"{py}:{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}" for py, st in idents),
            ]
        )
        name = f"{DISTS_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}.json"
        try:
            doc = json.loads(kept(name) or "null")
            if isinstance(doc, dict) and isinstance(doc.get("found"), dict) and isinstance(doc.get("broken"), dict):
                return doc["found"], doc["broken"]
        except ValueError:
            pass
        found, broken = {}, {}
        for py, sitefd in sites:
            for entry in _names(sitefd):
                if not entry.endswith(".dist-info"):
                    continue
                meta = _metadata(sitefd, entry)
                if meta:
                    found[_normalized(meta[0])] = meta[1]
                if not (meta and meta[2]):
                    broken[_dist_name(entry)] = f"lib/{py}/site-packages/{entry}: no METADATA or RECORD"
        if all(time.time_ns() - st.st_mtime_ns > SETTLED_NS for _, st in idents):
            keep(name, json.dumps({"found": found, "broken": broken}))
        return found, broken
    finally:
        for _, fd in sites:
            os.close(fd)
        os.close(libfd)


def _is_a(kind, dirfd: int, rel: str) -> bool:
    """Whether REL (below DIRFD, no link followed on the way or at the end) is of KIND (``stat.S_ISREG``,
    ``stat.S_ISDIR``), from lstat."""
    *dirs, name = rel.split("/")
    fds: list[int] = []
    try:
        for part in dirs:
            fds.append(os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fds[-1] if fds else dirfd))
        return kind(os.stat(name, dir_fd=fds[-1] if fds else dirfd, follow_symlinks=False).st_mode)
    except OSError:
        return False
    finally:
        for fd in fds:
            os.close(fd)


def _metadata(sitefd: int, entry: str) -> tuple[str, str, bool] | None:
    """``(Name, Version, whether a RECORD file is there)`` of the dist-info folder ENTRY, from its METADATA's
    head (the first of each field; the head is read up to its end, at most 1 MB); None without both fields."""
    try:
        dfd = os.open(entry, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=sitefd)
    except OSError:
        return None
    try:
        fd = _open_file(dfd, "METADATA", entry)
    except (OSError, Unsafe):
        os.close(dfd)
        return None
    try:
        head = _read_fd(fd, 1 << 20, f"{entry}/METADATA", until=b"\n\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")
        record = _is_a(stat.S_ISREG, dfd, "RECORD")
    except Unsafe:
        return None
    finally:
        os.close(fd)
        os.close(dfd)
    name, version = _field(head, "Name: "), _field(head, "Version: ")
    return None if name is None or version is None else (name, version, record)


def _field(head: str, key: str) -> str | None:
    """The value of the first line of HEAD that starts with KEY (``Name: ``), found without splitting HEAD into
    its lines (a METADATA head has dozens); None when there is none."""
    text = "\n" + head
    at = text.find("\n" + key)
    if at < 0:
        return None
    end = text.find("\n", at + 1)
    return text[at + 1 + len(key) : end if end >= 0 else len(text)].rstrip("\r")


# the unit properties the snapshot reads (``units_of``), in the order ``systemctl show`` prints them (``show_units``)
UNIT_PROPS = "Id,LoadState,ActiveState,FragmentPath,DropInPaths,UnitFileState,NeedDaemonReload"


MANAGED_UNITS = layout.UNITS  # the managed unit files, root's
QUARANTINE = layout.QUARANTINE


def unit_dirs(user: str) -> list[str]:
    """USER's systemd search paths (systemd.unit(5)), the fifth (``MANAGED_UNITS``) the managed one.

    The vendor directories under /usr are left out (packages', never an operator's edit).
    /etc/systemd/user comes before /etc/xdg/systemd/user, Debian's link to it: a file there is
    named by its own path.
    """
    pw = pwd.getpwnam(user)
    home, run = pw.pw_dir.rstrip("/"), f"/run/user/{pw.pw_uid}/systemd"
    return [
        f"{home}/.config/systemd/user.control",
        f"{run}/user.control",
        f"{run}/transient",
        f"{home}/.config/systemd/user",
        "/etc/systemd/user",
        "/etc/xdg/systemd/user",
        f"{run}/user",
        "/run/systemd/user",
        f"{home}/.local/share/systemd/user",
    ]


def dropin_dirs(unit: str) -> list[str]:
    """The drop-in directories systemd reads for UNIT: ``unit.d``, each dash prefix's, the type's."""
    stem, _, kind = unit.rpartition(".")
    parts = stem.split("-")
    return [f"{unit}.d", *(f"{'-'.join(parts[:i])}-.{kind}.d" for i in range(len(parts) - 1, 0, -1)), f"{kind}.d"]


def _listing(path: str) -> tuple[tuple, list[str]] | None:
    """(identity, names) of directory PATH reached without following an untrusted link (None: absent, unsafe)."""
    try:
        fd = walk(_split(path), path)
    except (OSError, Unsafe):
        return None
    try:
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino), sorted(_names(fd))
    finally:
        os.close(fd)


def unit_sources(user: str, units: list[str]) -> dict[str, list[str]]:
    """``{unit: every file on disk systemd would read for it besides the managed one, loaded or not yet}`` for
    UNITS, each folder of USER's search paths listed once for all of them.

    A directory reached twice (Debian's /etc/xdg/systemd/user is a link to /etc/systemd/user) counts once.
    """
    found: dict[str, list[str]] = {unit: [] for unit in units}
    try:
        dirs = unit_dirs(user)
    except KeyError:
        return found
    seen = set()
    for base in dirs:
        listed = _listing(base)
        if listed is None or listed[0] in seen:
            continue
        seen.add(listed[0])
        names, dropins = set(listed[1]), {}  # a drop-in folder units share (``service.d``) is listed once
        for unit in units:
            if unit in names and base != MANAGED_UNITS:
                found[unit].append(f"{base}/{unit}")
            for sub in dropin_dirs(unit):
                if sub in names:
                    if sub not in dropins:
                        dropins[sub] = [n for n in (_listing(f"{base}/{sub}") or ((), []))[1] if n.endswith(".conf")]
                    found[unit] += [f"{base}/{sub}/{n}" for n in dropins[sub]]
    return found


SYSTEM_PATH = "/usr/bin:/bin"  # root's own binaries: what a command run as the account is looked up in
SHOW_TIMEOUT = 30  # seconds for the account's child asking its manager for the units (``_units``)
SHOW_LIMIT = 1 << 20  # bytes the child reads from the manager, and root from the child (its lines: about 5 KB)


ROOT_ENV = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}  # what root's own commands (systemctl) start with


class Child:
    """A child process root started (``spawn``): its stdout is read, bounded, by ``result``."""

    def __init__(self, pid: int, read_end: int, timeout: float, limit: int):
        self.pid, self.read_end, self.limit = pid, read_end, limit
        self.deadline = time.monotonic() + timeout

    def result(self) -> tuple[int, bytes] | None:
        """``(exit code, stdout)``, at most LIMIT bytes read before the deadline; None when the child ran longer
        or printed more: then its process group is killed. Either way it is reaped: nothing is left behind."""
        chunks, size, reaped = [], 0, False
        poller = select.poll()
        poller.register(self.read_end, select.POLLIN)
        try:
            while True:
                left = self.deadline - time.monotonic()
                if left <= 0 or not poller.poll(left * 1000):
                    return None
                chunk = os.read(self.read_end, 1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.limit:
                    return None
                chunks.append(chunk)
            while time.monotonic() < self.deadline:  # its stdout closed: it exits now, or is stopped at the deadline
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    reaped = True
                    return os.waitstatus_to_exitcode(status), b"".join(chunks)
                time.sleep(0.001)
            return None
        finally:
            os.close(self.read_end)
            if not reaped:
                try:
                    os.killpg(self.pid, 9)  # the group it leads (setsid); not reaped yet, so still its own
                except ProcessLookupError:  # stopped before its setsid (or reaped by a SIGCHLD handler: gevent's)
                    try:
                        os.kill(self.pid, 9)
                    except ProcessLookupError:
                        pass
                try:
                    os.waitpid(self.pid, 0)
                except ChildProcessError:  # reaped already
                    pass


def spawn(target, timeout: float, limit: int, pw=None, before_drop=None) -> Child:
    """Start ``TARGET()`` in a forked child and return it (``Child.result`` reads what it wrote to stdout).

    The child leads a new session, in ``/``, with stdin and stderr on /dev/null, stdout a pipe to root, every
    other file descriptor closed, and SIGPIPE as a program expects it; with PW (a ``pwd`` entry) it drops to
    that account's uid and primary group with no supplementary groups (``setgroups``, ``setresgid``,
    ``setresuid``) before TARGET runs. TARGET's return value is the exit code (an exception: 1, its traceback on
    the child's stderr, which is /dev/null). A child that drops its ids without an exec is not dumpable (the
    kernel's ``suid_dumpable``): the account can signal it, but neither trace it nor read its memory.
    Only ``os``, ``gc`` and ``signal`` calls run before TARGET (the host side has no threads), and ``BEFORE_DROP()``
    when given, still as root, just before the ids are dropped. The child's garbage collector is off: a
    collection would walk every object it shares with root and copy their pages (about 2 ms of each plan).
    """
    sys.stdout.flush()  # what root printed so far is root's to print once, never the child's
    read_end, write_end = os.pipe()  # both close at exec (PEP 446); dup2 makes the child's stdout inheritable
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: any failure ends it
        code = 127
        try:
            gc.disable()  # short-lived: no collection walks root's objects, copying the pages it shares with root
            os.setsid()
            os.dup2(null, 0)
            os.dup2(write_end, 1)
            os.dup2(null, 2)
            os.closerange(3, max(os.sysconf("SC_OPEN_MAX"), 1024))  # close_range(2): the handles root holds
            os.chdir("/")
            _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)  # Python ignores it; a program expects the default
            if before_drop is not None:
                before_drop()
            if pw is not None:
                os.setgroups([])
                os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
                os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
            code = 1
            code = int(target() or 0)
            sys.stdout.flush()
        finally:
            os._exit(code)
    os.close(write_end)
    os.close(null)
    return Child(pid, read_end, timeout, limit)


def bounded_run(argv: list[str], timeout: float, limit: int, env=None) -> tuple[int, bytes] | None:
    """``(exit code, stdout)`` of ARGV (a root-owned binary, looked up in ``SYSTEM_PATH`` unless ARGV[0] is a
    path), at most LIMIT bytes read within TIMEOUT seconds; None when it could not start, ran longer or printed
    more (its process group killed, and reaped: no process is left behind).

    ARGV is executed in a ``spawn`` child, as root, with the environment ENV (default
    ``ROOT_ENV``); a failed exec ends it with 127. This is what ``subprocess`` does, without importing it: its
    modules (threading, selectors, locale...) cost the host about 6 ms of CPU at the start of every host-side
    command.
    """
    path = (
        argv[0]
        if "/" in argv[0]
        else next((f"{d}/{argv[0]}" for d in SYSTEM_PATH.split(":") if os.access(f"{d}/{argv[0]}", os.X_OK)), None)
    )
    if path is None:
        return None
    env = ROOT_ENV if env is None else env

    def execute() -> int:
        os.execve(path, argv, env)  # noqa: S606 - a root-owned binary, argv as a list: no shell
        return 127

    return spawn(execute, timeout, limit).result()


# -- D-Bus: systemd's managers asked on their private sockets (issue #22) --------------------------
# A minimal client of the D-Bus wire protocol (https://dbus.freedesktop.org/doc/dbus-specification.html)
# for the two peer-to-peer sockets systemd's managers listen on: PID 1's ``/run/systemd/private`` (root's)
# and a user manager's ``/run/user/UID/systemd/private`` (its account's), the sockets ``systemctl`` itself
# uses. No bus daemon is in between, so there is no ``Hello`` and no destination. One connection: SASL
# EXTERNAL with the process's uid, then method calls (``Bus.calls``, sent at once, each reply matched by
# its serial), each message at most ``DBUS_LIMIT`` bytes and all of them together too, every read within
# the connection's deadline. What the peer sends is parsed by ``_Wire`` (every type of the protocol but
# unix fds, nested at most ``DBUS_DEPTH`` deep); anything malformed, too large or too slow is ``DBusError``.
PID1_BUS = "/run/systemd/private"
USER_BUS = "/run/user/{uid}/systemd/private"  # a user manager's, its account's
DBUS_TIMEOUT = 10  # seconds for one conversation with PID 1
DBUS_LIMIT = 1 << 20  # bytes read from one peer in all (the 16 managed units' GetAll answers: about 75 KB)
DBUS_DEPTH = 32  # nested containers (the specification allows 32 arrays and 32 structs)
SYSTEMD1 = "/org/freedesktop/systemd1"
PROPERTIES = "org.freedesktop.DBus.Properties"
UNIT = "org.freedesktop.systemd1.Unit"
MANAGER = "org.freedesktop.systemd1.Manager"
_FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "h": "I", "x": "q", "t": "Q", "d": "d"}
_ALIGN = {**{c: struct.calcsize(f) for c, f in _FIXED.items()}, "s": 4, "o": 4, "g": 1, "v": 1, "a": 4, "(": 8, "{": 8}
_FIELDS = {1: "PATH", 2: "INTERFACE", 3: "MEMBER", 4: "ERROR_NAME", 5: "REPLY_SERIAL", 8: "SIGNATURE"}


class DBusError(Exception):
    """A D-Bus conversation that failed: no socket, refused, malformed, too large or too slow, or an error reply."""


def unit_path(unit: str) -> str:
    """UNIT's object path, as systemd names it (``sd_bus_path_encode``): every byte but a letter, or a digit after
    the first, as ``_XX``; the manager loads the unit when that path is asked (``systemctl show`` asks it so)."""
    raw = unit.encode()
    label = "".join(
        chr(b) if chr(b).isascii() and (chr(b).isalpha() or (i and chr(b).isdigit())) else f"_{b:02x}"
        for i, b in enumerate(raw)
    )
    return f"{SYSTEMD1}/unit/{label or '_'}"


def _complete(sig: str, i: int, depth: int = 0, element: bool = False) -> int:
    """The end of the single complete type that starts at SIG[I] (an array's ELEMENT: a dict entry may be one);
    DBusError when there is none."""
    if depth > DBUS_DEPTH or i >= len(sig) or (sig[i] == "{" and not element):
        raise DBusError(f"bad signature {sig!r}")
    code = sig[i]
    if code == "a":
        return _complete(sig, i + 1, depth + 1, True)
    if code in "({":
        close, i, count = ")" if code == "(" else "}", i + 1, 0
        while i < len(sig) and sig[i] != close:
            if code == "{" and (count > 1 or (count == 0 and sig[i] not in "ybnqiuxtdhsog")):
                raise DBusError(f"bad dict entry in {sig!r}")
            i, count = _complete(sig, i, depth + 1), count + 1
        if i >= len(sig) or count < (2 if code == "{" else 1):
            raise DBusError(f"bad container in {sig!r}")
        return i + 1
    if code not in _ALIGN or code in ")}":
        raise DBusError(f"bad type {code!r} in {sig!r}")
    return i + 1


def split_signature(sig: str, _known: dict[str, list[str]] = {}) -> list[str]:  # noqa: B006 - the cache
    """SIG's single complete types: ``"sa{sv}"`` is ``["s", "a{sv}"]`` (each signature split once)."""
    if sig not in _known:
        types, i = [], 0
        while i < len(sig):
            end = _complete(sig, i)
            types.append(sig[i:end])
            i = end
        _known[sig] = types
    return _known[sig]


def marshal(sig: str, values, buf: bytearray | None = None) -> bytearray:
    """VALUES (one per complete type of SIG) appended to BUF little-endian, aligned as if BUF began the message
    (a body begins at a multiple of 8). A variant is ``(signature, value)``, a dict a ``dict``, a struct a tuple."""
    buf = bytearray() if buf is None else buf
    for code, value in zip(split_signature(sig), values, strict=True):
        _put(buf, code, value)
    return buf


def _put(buf: bytearray, sig: str, value) -> None:
    buf.extend(b"\0" * (-len(buf) % _ALIGN[sig[0]]))
    code = sig[0]
    if code in _FIXED:
        buf.extend(struct.pack("<" + _FIXED[code], value))
    elif code in "so":
        raw = value.encode()
        buf.extend(struct.pack("<I", len(raw)) + raw + b"\0")
    elif code == "g":
        buf.extend(bytes([len(value)]) + value.encode() + b"\0")
    elif code == "v":
        _put(buf, "g", value[0])
        _put(buf, value[0], value[1])
    elif code == "a":
        item = sig[1:]
        at = len(buf)
        buf.extend(b"\0\0\0\0")
        buf.extend(b"\0" * (-len(buf) % _ALIGN[item[0]]))
        start = len(buf)
        for element in value.items() if item[0] == "{" else value:
            _put(buf, item, element)
        struct.pack_into("<I", buf, at, len(buf) - start)
    else:  # a struct or a dict entry
        for part, element in zip(split_signature(sig[1:-1]), value, strict=True):
            _put(buf, part, element)


class _Wire:
    """Values read from a D-Bus message DATA (byte order ORDER) from offset POS; DBusError past its end."""

    def __init__(self, data: bytes, order: str, pos: int = 0):
        self.data, self.order, self.pos = data, order, pos

    def take(self, size: int, align: int = 1) -> bytes:
        start = self.pos + (-self.pos % align)
        if start + size > len(self.data):
            raise DBusError("message ends inside a value")
        self.pos = start + size
        return self.data[start : self.pos]

    def text(self, size: int) -> str:
        raw = self.take(size + 1)
        if raw[-1] != 0 or 0 in raw[:-1]:
            raise DBusError("string without its NUL, or with another one")
        try:
            return raw[:-1].decode()
        except UnicodeDecodeError:
            raise DBusError("string not UTF-8") from None

    def value(self, sig: str, depth: int = 0):
        if depth > DBUS_DEPTH:
            raise DBusError("values nested too deep")
        code = sig[0]
        if code in _FIXED:
            (found,) = struct.unpack(self.order + _FIXED[code], self.take(_ALIGN[code], _ALIGN[code]))
            return bool(found) if code == "b" else found
        if code in "so":
            return self.text(struct.unpack(self.order + "I", self.take(4, 4))[0])
        if code == "g":
            return self.text(self.take(1)[0])
        if code == "v":
            inner = self.value("g")
            if len(split_signature(inner)) != 1:
                raise DBusError(f"variant of {inner!r}")
            return inner, self.value(inner, depth + 1)
        if code == "a":
            size = struct.unpack(self.order + "I", self.take(4, 4))[0]
            self.take(0, _ALIGN[sig[1]])
            end = self.pos + size
            if end > len(self.data):
                raise DBusError("array longer than its message")
            items = []
            while self.pos < end:
                items.append(self.value(sig[1:], depth + 1))
            if self.pos != end:
                raise DBusError("array element past the array's end")
            return dict(items) if sig[1] == "{" else items
        self.take(0, 8)
        return tuple(self.value(part, depth + 1) for part in split_signature(sig[1:-1]))

    def values(self, sig: str) -> list:
        return [self.value(code) for code in split_signature(sig)]

    def skip(self, sig: str, depth: int = 0) -> None:
        """Past one value of the complete type SIG, nothing of it kept: an array by its length, unread."""
        code = sig[0]
        if depth > DBUS_DEPTH:
            raise DBusError("values nested too deep")
        if code in _FIXED:
            self.take(_ALIGN[code], _ALIGN[code])
        elif code in "so":
            self.take(struct.unpack(self.order + "I", self.take(4, 4))[0] + 1)
        elif code == "g":
            self.take(self.take(1)[0] + 1)
        elif code == "v":
            inner = self.value("g")
            if len(split_signature(inner)) != 1:
                raise DBusError(f"variant of {inner!r}")
            self.skip(inner, depth + 1)
        elif code == "a":
            size = struct.unpack(self.order + "I", self.take(4, 4))[0]
            self.take(0, _ALIGN[sig[1]])
            self.take(size)
        else:
            self.take(0, 8)
            for part in split_signature(sig[1:-1]):
                self.skip(part, depth + 1)

    def properties(self, wanted: set[str]) -> dict:
        """The WANTED entries of an ``a{sv}`` (``GetAll``): ``{name: (signature, value)}``. The others (about 100
        per unit, of which the snapshot wants 7) are passed by their sizes in one loop over the bytes: a name, and
        a variant's signature (checked: one complete type), then its value by its type (``_passing``): a fixed
        value by its size, a string by its length, an array by its byte count, unread; anything else by ``skip``.
        Every step is bounded by the dict's end."""
        size = struct.unpack(self.order + "I", self.take(4, 4))[0]
        self.take(0, 8)
        end, found = self.pos + size, {}
        if end > len(self.data):
            raise DBusError("array longer than its message")
        data, pos, word = self.data, self.pos, _WORD[self.order]
        names = {name.encode(): name for name in wanted}
        try:
            while pos < end:
                pos += -pos % 8
                (length,) = word(data, pos)
                stop = pos + 4 + length
                if stop >= end or data[stop]:
                    raise DBusError("property name without its NUL")
                name = data[pos + 4 : stop]
                length = data[stop + 1]
                pos = stop + 3 + length
                if pos > end or data[pos - 1]:
                    raise DBusError("variant signature without its NUL")
                sig = data[stop + 2 : pos - 1]
                how = _passing(sig)
                if name in names:
                    self.pos = pos
                    found[names[name]] = (sig.decode(), self.value(sig.decode(), 1))
                    pos = self.pos
                elif how is None:
                    self.pos = pos
                    self.skip(sig.decode(), 1)
                    pos = self.pos
                elif how[0] == "a":  # a 4-byte count, then the elements at their alignment
                    pos += -pos % 4
                    (length,) = word(data, pos)
                    pos += 4
                    pos += -pos % how[1] + length
                elif how[0] == "s":
                    pos += -pos % 4
                    (length,) = word(data, pos)
                    pos += 5 + length
                else:  # a fixed value of that size
                    pos += -pos % how[1] + how[1]
                if pos > end:
                    raise DBusError("property value past the array's end")
        except (struct.error, IndexError, UnicodeDecodeError):
            raise DBusError("malformed properties") from None
        self.pos = pos
        if self.pos != end:
            raise DBusError("array element past the array's end")
        return found


_WORD = {order: struct.Struct(order + "I").unpack_from for order in "<>"}


def _passing(sig: bytes, _known: dict = {}) -> tuple[str, int] | None:  # noqa: B006 - the cache
    """How ``_Wire.properties`` passes a value of the variant signature SIG (``("a", element alignment)``, ``("s",
    4)`` for a string or object path, ``("f", size)`` for a fixed value, None: ``skip`` walks it); DBusError when SIG
    is not one complete type. Each signature is looked at once."""
    if sig not in _known:
        text = sig.decode()
        if len(split_signature(text)) != 1:
            raise DBusError(f"variant of {text!r}")
        code = text[0]
        _known[sig] = (
            ("a", _ALIGN[text[1]])
            if code == "a"
            else ("s", 4)
            if code in "so"
            else ("f", _ALIGN[code])
            if code in _FIXED
            else None
        )
    return _known[sig]


def _method_call(serial: int, path: str, interface: str, member: str, sig: str = "", args=()) -> bytes:
    """A METHOD_CALL message, little-endian, that expects its reply."""
    fields = {1: ("o", path), 2: ("s", interface), 3: ("s", member), **({8: ("g", sig)} if sig else {})}
    body = marshal(sig, args)
    header = marshal("a(yv)", [list(fields.items())], bytearray(b"l\1\0\1" + struct.pack("<II", len(body), serial)))
    return bytes(header + b"\0" * (-len(header) % 8) + body)


def parse_message(data: bytes, wanted: set[str] | None = None, replies: bool = False) -> tuple[int, dict, list]:
    """``(message type, {field name: value}, body values)`` of one whole message DATA; DBusError when malformed.
    With WANTED, a body that is one ``a{sv}`` is read as ``[{name: (signature, value)}]`` of those names only.
    With REPLIES, the body of a message that is no reply (a signal: systemd sends its signals to every client of
    its private socket) is not read: ``[]``."""
    if len(data) < 16 or data[:1] not in (b"l", b"B") or data[3] != 1:
        raise DBusError("not a D-Bus message")
    reader = _Wire(data, "<" if data[:1] == b"l" else ">", 12)
    fields = {_FIELDS.get(code, code): value for code, (_, value) in reader.value("a(yv)")}
    if replies and data[1] not in (2, 3):
        return data[1], fields, []
    reader.take(0, 8)
    sig = fields.get("SIGNATURE", "")
    body = [reader.properties(wanted)] if wanted is not None and sig == "a{sv}" else reader.values(sig)
    if reader.pos != len(data):
        raise DBusError("body longer than its signature")
    return data[1], fields, body


class Bus:
    """A connection to the peer-to-peer D-Bus socket PATH, authenticated as this process's uid, that reads at most
    LIMIT bytes in all and gives up TIMEOUT seconds after it was opened, or after ``calls`` sent (``DBusError``)."""

    def __init__(self, path: str, timeout: float, limit: int = DBUS_LIMIT):
        self.timeout, self.left, self.serial, self.buf = timeout, limit, 0, b""
        self.deadline = time.monotonic() + timeout
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            self._wait()
            try:
                self.sock.connect(path)
            except OSError as exc:
                raise DBusError(f"{path}: {exc.strerror}") from None
            # BEGIN in the same write as AUTH, as sd-bus's own clients send it: systemd's server leaves a message
            # it reads together with BEGIN unanswered until the next one arrives, so none may follow BEGIN
            # before the server has answered OK
            self._send(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\nBEGIN\r\n")
            while b"\r\n" not in self.buf:
                self._read(256)
            line, _, self.buf = self.buf.partition(b"\r\n")
            if not line.startswith(b"OK "):
                raise DBusError(f"{path}: authentication refused")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _wait(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DBusError("no answer in time")
        self.sock.settimeout(left)

    def _send(self, data: bytes) -> None:
        try:
            self._wait()
            self.sock.sendall(data)
        except OSError as exc:
            raise DBusError(f"cannot send: {exc}") from None

    def _read(self, want: int) -> None:
        """At least one more byte into ``buf``, at most WANT; within the deadline and the byte budget."""
        if self.left <= 0:
            raise DBusError("the peer sent more than its limit")
        try:
            self._wait()
            chunk = self.sock.recv(max(1, min(want, self.left)))
        except OSError as exc:
            raise DBusError(f"no answer: {exc}") from None
        if not chunk:
            raise DBusError("the peer closed the connection")
        self.left -= len(chunk)
        self.buf += chunk

    def _message(self) -> bytes:
        """The next whole message the peer sent."""
        while len(self.buf) < 16:
            self._read(1 << 16)
        order = "<" if self.buf[:1] == b"l" else ">"
        body, fields = struct.unpack(order + "4xI4xI", self.buf[:16])
        size = 16 + fields + (-fields % 8) + body
        if size > DBUS_LIMIT:
            raise DBusError(f"a message of {size} bytes")
        while len(self.buf) < size:
            self._read(size - len(self.buf))
        message, self.buf = self.buf[:size], self.buf[size:]
        return message

    def calls(self, calls: list[tuple], wanted: set[str] | None = None) -> list:
        """The replies to CALLS (``(path, interface, member, signature, args)``), sent at once: each reply's body
        values (an ``a{sv}`` only its WANTED names, when given: ``parse_message``), or a ``DBusError`` for an
        error reply (each call fails alone); messages not replying are skipped."""
        self.deadline = time.monotonic() + self.timeout
        first, self.serial = self.serial + 1, self.serial + len(calls)
        serials: dict[int, int] = {first + n: n for n in range(len(calls))}
        self._send(b"".join(_method_call(first + n, *call) for n, call in enumerate(calls)))
        replies: list = [None] * len(calls)
        while serials:
            kind, fields, body = parse_message(self._message(), wanted, replies=True)
            index = serials.pop(fields.get("REPLY_SERIAL", 0), None) if kind in (2, 3) else None
            if index is not None:
                why = body[0] if body and isinstance(body[0], str) else ""
                replies[index] = body if kind == 2 else DBusError(f"{fields.get('ERROR_NAME')}: {why}")
        return replies


def get_properties(bus: Bus, asked: list[tuple[str, str, str]]) -> list:
    """The values of ASKED (``(object path, interface, property)``), Properties.Get each, sent at once: each
    ``(signature, value)``, or a ``DBusError`` for a property the manager did not give."""
    return [
        r if isinstance(r, DBusError) else r[0] if len(r) == 1 and isinstance(r[0], tuple) else DBusError("no variant")
        for r in bus.calls([(path, PROPERTIES, "Get", "ss", (iface, name)) for path, iface, name in asked])
    ]


_PID1: dict[str, Bus] = {}  # root's one connection to PID 1, opened at its first question


def pid1_property(path: str, interface: str, name: str):
    """Property NAME of PATH's INTERFACE as PID 1 gives it (root's own socket: its answer is root's), as
    ``(signature, value)``; None when PID 1 cannot be asked or gives none. The snapshot's questions share one
    connection (each costs PID 1 about 1 ms); one that failed is closed."""
    try:
        if "bus" not in _PID1:
            _PID1["bus"] = Bus(PID1_BUS, DBUS_TIMEOUT)
        found = get_properties(_PID1["bus"], [(path, interface, name)])[0]
    except DBusError:
        if "bus" in _PID1:
            _PID1.pop("bus").close()
        return None
    return None if isinstance(found, DBusError) else found


def show_value(found) -> str:
    """A property's ``(signature, value)`` as ``systemctl show`` prints it: ``yes``/``no``, a list joined by
    blanks. A control character is escaped (``\\x0a``): one property is one line."""
    sig, value = found
    if sig == "b":
        text = "yes" if value else "no"
    elif sig == "as":
        text = " ".join(value)
    else:
        text = str(value)
    return "".join(c if " " <= c != "\x7f" else f"\\x{ord(c):02x}" for c in text)


def show_units(socket_path: str, units: list[str], timeout: float, limit: int) -> str:
    """``systemctl show --property=UNIT_PROPS UNITS``'s answer from the manager at SOCKET_PATH for the units it has
    loaded: a block of ``Key=Value`` lines per unit, a property the manager does not give left out. DBusError when
    it cannot be asked.

    First the units it has loaded (``ListUnitsByPatterns``: it loads none). Those are asked as ``GetAll`` of each
    unit's ``Unit`` interface (only the wanted entries read, the others skipped by their length), all sent at
    once: a ``Get`` per property costs the manager about twice as much (about 150 µs per call, whatever it
    asks). A unit it has not loaded (a disabled timer) is not asked
    so, as ``systemctl show`` would: that loads it (its file, and a mount unit per path it names), then collects
    it, sending a dozen signals to every client: about 3 ms of the manager's CPU per unit and check. Such a unit is
    not running and has nothing to reload; its block is ``Id``, ``ActiveState=inactive``, ``UnitFileState`` (the
    manager's ``GetUnitFileState``, read from the unit files without loading it) and ``NeedDaemonReload=no``."""
    with Bus(socket_path, timeout, limit) as bus:
        plain = [unit for unit in units if not set(unit) & set("*?[\\")]  # names fnmatch reads as themselves
        (listed,) = bus.calls([(SYSTEMD1, MANAGER, "ListUnitsByPatterns", "asas", ([], plain))])
        resting = set(plain) - {entry[0] for entry in listed[0]} if isinstance(listed, list) else set()
        loaded = [unit for unit in units if unit not in resting]
        calls: list[tuple] = [(unit_path(unit), PROPERTIES, "GetAll", "s", (UNIT,)) for unit in loaded]
        calls += [(SYSTEMD1, MANAGER, "GetUnitFileState", "s", (unit,)) for unit in units if unit in resting]
        replies = bus.calls(calls, set(UNIT_PROPS.split(",")))
    found: dict[str, dict] = {unit: {} for unit in units}
    for unit, reply in zip(loaded, replies, strict=False):
        found[unit] = reply[0] if isinstance(reply, list) and reply else {}
    for unit, reply in zip([u for u in units if u in resting], replies[len(loaded) :], strict=True):
        state = (
            {"UnitFileState": ("s", reply[0])}
            if isinstance(reply, list) and reply and isinstance(reply[0], str)
            else {}
        )
        found[unit] = {"Id": ("s", unit), "ActiveState": ("s", "inactive"), **state, "NeedDaemonReload": ("b", False)}
    blocks = [
        [f"{name}={show_value(props[name])}" for name in UNIT_PROPS.split(",") if name in props]
        for props in found.values()
        if props
    ]
    return "".join("\n" * bool(n) + "\n".join(lines) + "\n" for n, lines in enumerate(blocks))


def _units(user: str, units: list[str]) -> list[str]:
    """``systemctl show --property=UNIT_PROPS`` of UNITS, then per unit ``X-Sources=`` the files on disk besides
    the managed one.

    The properties come from the account's user manager, the one that runs the managed units, asked on its
    private socket (``/run/user/UID/systemd/private``, where ``systemctl --user`` asks it: the manager itself, no
    bus daemon in between, and no user bus needed) by root's D-Bus client (``show_units``) **in a child run as
    the account** (``spawn``: the account's uid and group, not dumpable, root's handles closed, no exec). The
    account owns that manager, so it can fake these answers (say a unit is active, enabled, loaded from the
    managed file): the units' state is the account's report, never evidence against it. What root itself trusts
    is read from the files (``paths``, ``unit_sources``, ``account_plants``). Root's code parses the account's
    D-Bus messages only in that child, with the account's rights; root itself reads only the ``Key=Value``
    lines the child prints, bounded (``SHOW_LIMIT`` bytes within ``SHOW_TIMEOUT``), as data. A child that
    fails (no socket, a protocol error, too slow, too much) is no answer (``{}`` for every unit), as a manager
    that does not run.
    """
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        pw = None
    found = None
    if pw is not None:
        socket_path = USER_BUS.format(uid=pw.pw_uid)

        def ask() -> int:
            data = show_units(socket_path, units, SHOW_TIMEOUT, SHOW_LIMIT).encode()
            while data:
                data = data[os.write(1, data) :]
            return 0

        found = spawn(ask, SHOW_TIMEOUT, SHOW_LIMIT, pw).result()
    lines = found[1].decode("utf-8", "replace").splitlines() if found and found[0] == 0 else []
    for unit, sources in unit_sources(user, units).items():
        lines += ["", f"Id={unit}", f"X-Sources={json.dumps(sources)}"]
    return lines


def _removable(user: str, path: str) -> bool:
    """PATH is a unit file or drop-in in one of USER's search paths, never a managed unit file."""
    dirs = unit_dirs(user)
    head, _, name = path.rpartition("/")
    if head in dirs:
        return path.rpartition("/")[0] != MANAGED_UNITS and name.endswith((".service", ".timer", ".socket"))
    base, _, sub = head.rpartition("/")
    return base in dirs and sub.endswith(".d") and name.endswith(".conf")


def unit_clean(args: dict) -> dict:
    """Quarantine ARGS.paths (foreign unit files and drop-ins of USER's units; ``quarantine``), never deleted."""
    for path in args["paths"]:
        if not _removable(args["user"], path):
            raise Unsafe(f"{path}: not a unit file or drop-in of {args['user']}'s search paths")
    return quarantine({"user": args["user"], "units": [], "paths": args["paths"], "why": "edits a managed unit"})


# -- the account's plants: its own files that would change a managed unit or service --------------------
ACCOUNT_UNIT_DIRS, ACCOUNT_ENV_DIRS = layout.ACCOUNT_UNIT_DIRS, layout.ACCOUNT_ENV_DIRS
ACCOUNT_ENV_FILES = layout.ACCOUNT_ENV_FILES
WANTS = (".wants", ".requires", ".upholds")
QUARANTINED = re.compile(r"\.quarantined-[0-9]{8}T[0-9]{6,}\Z")  # quarantine's in-place name (another file system)
PLANTS_LIMIT = 200  # items reported per run: a flood of plants is reported, never walked without end
LISTING_SAMPLE = 10  # names shown of a planted directory
ASSIGNMENT = re.compile(rb"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]{0,127})[ \t]*=", re.M)  # NAME= of a file


def _evidence(dirfd: int, name: str, path: str, why: str) -> dict:
    """What is at NAME in DIRFD, from lstat and a bounded read by handle: path, type, owner, mode, size,
    mtime, sha256 of a regular file, the target of a link (read as data), the first names of a directory."""
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    out = {
        "path": path,
        "why": why,
        "type": _kind(st),
        "owner": f"{_name(pwd.getpwuid, st.st_uid)}:{_name(grp.getgrgid, st.st_gid)}",
        "mode": format(stat.S_IMODE(st.st_mode), "04o"),
        "size": st.st_size,
        "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
        "sha256": None,
    }
    if stat.S_ISLNK(st.st_mode):
        out["target"] = os.readlink(name, dir_fd=dirfd)[:4096]
    elif stat.S_ISREG(st.st_mode):
        try:
            fd = _open_file(dirfd, name, path)
            try:
                data = _read_fd(fd, 1 << 20)
            finally:
                os.close(fd)
            out["sha256"] = hashlib.sha256(data).hexdigest()
            out["variables"] = sorted({m.group(1).decode() for m in ASSIGNMENT.finditer(data)})[: LISTING_SAMPLE * 5]
        except (OSError, Unsafe) as exc:
            out["sha256"] = f"unread: {exc}"
    elif stat.S_ISDIR(st.st_mode):
        try:
            fd = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
            try:
                names = os.listdir(fd)
            finally:
                os.close(fd)
            out["entries"] = len(names)
            out["sample"] = sorted(names)[:LISTING_SAMPLE]
        except OSError as exc:
            out["sample"] = [f"unread: {exc}"]
    return out


def _entries(path: str) -> tuple[int, list[str]] | None:
    """(handle, names) of directory PATH reached without following an untrusted link; None when absent."""
    try:
        fd = walk(_split(path), path)
    except FileNotFoundError:
        return None
    try:
        return fd, sorted(os.listdir(fd))
    except OSError:
        os.close(fd)
        raise


XDG_UNITS = "/etc/xdg/systemd/user"  # Debian's link to MANAGED_UNITS: systemctl enable may name it


def _enablement(dirfd: int, name: str, units: set[str]) -> bool:
    """NAME in a ``*.wants`` folder is the enablement link ``systemctl enable`` makes for a managed unit."""
    try:
        target = os.readlink(name, dir_fd=dirfd)
    except OSError:
        return False
    return name in units and target in (f"{MANAGED_UNITS}/{name}", f"{XDG_UNITS}/{name}")


def account_plants(user: str, units: list[str]) -> list[dict]:
    """Everything of USER's own that would change a managed unit or what its services run, with evidence.

    In USER's unit search paths (``ACCOUNT_UNIT_DIRS``) every entry is one, except the enablement links
    of the managed UNITS (``*.wants/UNIT -> /etc/systemd/user/UNIT``): a unit file that shadows or
    extends a managed unit, a drop-in folder (a real one or a link), an extra unit, an extra ``.wants``
    entry. Every file in ``environment.d`` and the user manager's own configuration is one too. A folder
    of these that is itself a link, or cannot be walked, is one item. Nothing is followed or run.
    """
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return []
    home = pw.pw_dir.rstrip("/")
    fill = {"home": home, "uid": pw.pw_uid}
    managed = set(units)
    found: list[dict] = []

    def add(dirfd: int, name: str, path: str, why: str) -> None:
        if len(found) < PLANTS_LIMIT:
            try:
                found.append(_evidence(dirfd, name, path, why))
            except OSError:
                pass  # absent, or gone meanwhile

    def linked(base: str) -> bool:
        """Add the first link on the way from the account's home to BASE (``~/.config -> elsewhere``)."""
        parts = base[len(home) :].strip("/").split("/") if base.startswith(home + "/") else []
        for i in range(1, len(parts) + 1):
            path = f"{home}/{'/'.join(parts[:i])}"
            try:
                dirfd, name = parent(path)
            except (OSError, Unsafe):
                return False
            try:
                if stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                    add(dirfd, name, path, "a link on the way to the account's unit or environment folders")
                    return True
            except OSError:
                return False
            finally:
                os.close(dirfd)
        return False

    def scan(base: str, why) -> None:
        try:
            listed = _entries(base)
        except (OSError, Unsafe) as exc:
            if not linked(base) and not any(f["path"] == base for f in found):
                found.append({"path": base, "why": f"its folder cannot be walked safely: {exc}", "type": "unsafe"})
            return
        if listed is None:
            return
        fd, names = listed
        try:
            for name in names:
                if QUARANTINED.search(name) or sealed(os.stat(name, dir_fd=fd, follow_symlinks=False)):
                    continue  # an earlier quarantine's, in place: systemd ignores or cannot read it
                why(fd, name, f"{base}/{name}")
        finally:
            os.close(fd)

    def unit_entry(fd: int, name: str, path: str) -> None:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if name.endswith(WANTS) and stat.S_ISDIR(st.st_mode):
            sub = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            try:
                for link in sorted(os.listdir(sub)):
                    if not _enablement(sub, link, managed) and not QUARANTINED.search(link):
                        add(sub, link, f"{path}/{link}", "an extra unit wanted by the account's target")
            finally:
                os.close(sub)
            return
        stem = name[:-2] if name.endswith(".d") else name
        if stem in managed or any(name in dropin_dirs(u) for u in managed):
            why = "a drop-in folder of a managed unit" if name.endswith(".d") else "shadows a managed unit"
        else:
            why = "an extra unit or file in the account's unit search path"
        add(fd, name, path, why)

    for base in ACCOUNT_UNIT_DIRS:
        scan(base.format(**fill), unit_entry)
    for base in ACCOUNT_ENV_DIRS:
        scan(base.format(**fill), lambda fd, name, path: add(fd, name, path, "sets the environment of every service"))
    for path in (p.format(**fill) for p in ACCOUNT_ENV_FILES):
        try:
            dirfd, name = parent(path)
        except (OSError, Unsafe):
            continue
        try:
            add(dirfd, name, path, "configures the account's service manager")
        finally:
            os.close(dirfd)
    return found


def _mkdirs(path: str, mode: int) -> int:
    """A handle on root's folder PATH, each missing part created root:root MODE (never through a link)."""
    fd = os.open("/", DIR_FLAGS)
    for part in _split(path):
        try:
            os.mkdir(part, mode, dir_fd=fd)
        except FileExistsError:
            pass
        nxt = os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = nxt
    st = os.fstat(fd)
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise Unsafe(f"{path}: not root's alone")
    return fd


def sealed(st) -> bool:
    """A folder quarantine sealed in place: root's, nobody else may enter (the account cannot make one)."""
    return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o077


def _move(dirfd: int, name: str, qfd: int, target: str, stamp: str, path: str) -> str:
    """Move NAME (in DIRFD) to TARGET in the quarantine folder QFD; where it went, as the manifest says it.

    Another file system: renamed in place (``NAME.quarantined-TIME``). A folder no rename can move (an
    overlay's lower layer) is sealed in place instead: root:root 0700 by handle, so neither the account's
    manager nor its services can read it, and the account cannot undo it."""
    try:
        os.rename(name, target, src_dir_fd=dirfd, dst_dir_fd=qfd)
        return f"{{quarantine}}/{target}"
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    aside = f"{name}.quarantined-{stamp}"
    try:
        os.rename(name, aside, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        return f"{path.rpartition('/')[0]}/{aside} (another file system: renamed in place)"
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    fd = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)  # only a folder gives EXDEV here
    try:
        _settle(fd, 0, 0, 0o700)
    finally:
        os.close(fd)
    return f"{path} (cannot be moved on this file system: sealed in place, root:root 0700)"


def quarantine(args: dict) -> dict:
    """Move the account's plants (``account_plants`` of ARGS.user and ARGS.units, as found now) and ARGS.paths
    into a fresh folder of ``QUARANTINE`` with ``manifest.json`` (each item's evidence, where it went).

    Nothing is deleted, followed or run. An item on another file system is renamed in place
    (``NAME.quarantined-TIME``, a name systemd and environment.d ignore) and its manifest entry says so.
    Each item fails alone; the manifest is written; then the action fails naming what could not be moved.
    """
    items = account_plants(args["user"], args.get("units", [])) if args.get("units") else []
    known = {item["path"] for item in items}
    for path in args.get("paths", []):
        if path in known:
            continue
        try:
            dirfd, name = parent(path)
        except (OSError, Unsafe):
            continue
        try:
            if not sealed(os.stat(name, dir_fd=dirfd, follow_symlinks=False)):
                items.append(_evidence(dirfd, name, path, args.get("why", "the account's copy of root's file")))
        except FileNotFoundError:
            pass
        finally:
            os.close(dirfd)
    if not items:
        return {"folder": None, "moved": []}
    stamp = _stamp()
    base = _mkdirs(QUARANTINE, 0o700)
    try:
        os.mkdir(stamp, 0o700, dir_fd=base)
        qfd = os.open(stamp, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=base)
    finally:
        os.close(base)
    failed = []
    try:
        for i, item in enumerate(items):
            item["moved_to"] = None
            if item.get("type") == "unsafe":
                failed.append(f"{item['path']}: {item['why']}")
                continue
            target = f"{i:03d}-" + item["path"].strip("/").replace("/", "_")[-200:]
            try:
                dirfd, name = parent(item["path"])
            except (OSError, Unsafe) as exc:
                failed.append(f"{item['path']}: {exc}")
                continue
            try:
                item["moved_to"] = _move(dirfd, name, qfd, target, stamp, item["path"]).replace(
                    "{quarantine}", f"{QUARANTINE}/{stamp}"
                )
            except OSError as exc:
                failed.append(f"{item['path']}: {exc.strerror}")
            finally:
                os.close(dirfd)
        manifest = json.dumps({"time": stamp, "user": args["user"], "items": items}, indent=2).encode()
        fd = os.open("manifest.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=qfd)
        try:
            os.write(fd, manifest)
        finally:
            os.close(fd)
    finally:
        os.close(qfd)
    if failed:
        raise Unsafe(f"quarantined into {QUARANTINE}/{stamp} except: {'; '.join(failed)}")
    return {"folder": f"{QUARANTINE}/{stamp}", "moved": [item["path"] for item in items]}


VENV_SAMPLE = 5  # paths named per problem in the venv report
RECORD_LIMIT = 8 * 1024 * 1024  # bytes of one RECORD or pyvenv.cfg read (litellm's RECORD: about 1 MB)


def _tree(dirfd: int, rel: str, out: dict, depth: int = MAX_DEPTH, entries: int = MAX_ENTRIES) -> list[str]:
    """``{relative path: (type, uid, size, mode)}`` of everything under DIRFD into OUT, from lstat; real directories
    are entered by handle, one name at a time with O_NOFOLLOW, a symlink is recorded and never followed.

    Bounded: no recursion (a stack of open directories, at most DEPTH of them), at most ENTRIES
    entries. Returns what was not walked, one sentence per problem naming its path (REL-relative):
    ``"a/b/...: more than 64 directories deep: not walked"``."""
    problems: list[str] = []
    top = os.dup(dirfd)
    stack = [(top, os.scandir(top), rel)]
    try:
        while stack:
            fd, listing, here = stack[-1]
            entry = next(listing, None)
            if entry is None:
                listing.close()
                os.close(fd)
                stack.pop()
                continue
            path = f"{here}/{entry.name}" if here else entry.name
            if len(out) >= entries:
                problems.append(f"{rel or '.'}: more than {entries} entries: not walked further")
                break
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            out[path] = (_kind(st), st.st_uid, st.st_size, st.st_mode)
            if not stat.S_ISDIR(st.st_mode):
                continue
            if len(stack) >= depth:
                problems.append(f"{path}: more than {depth} directories deep: not walked")
                continue
            try:
                sub = os.open(entry.name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                continue
            stack.append((sub, os.scandir(sub), path))
    finally:
        for fd, listing, _ in stack:
            listing.close()
            os.close(fd)
    return problems


def _interpreter(venv: str) -> dict:
    """Where bin/python leads: links inside bin/ read as data (lstat and readlink, never followed by the kernel);
    ``{"python": first target outside bin/ or None, "exists": whether that target exists}``."""
    try:
        dirfd = walk(_split(venv) + ["bin"], venv)
    except (OSError, Unsafe):
        return {"python": None, "exists": False}
    try:
        name = "python"
        for _ in range(8):
            try:
                kind = _kind(os.stat(name, dir_fd=dirfd, follow_symlinks=False))
            except OSError:
                kind = "missing"
            if kind != "symlink":
                return {"python": f"{venv}/bin/{name}" if kind == "file" else None, "exists": kind == "file"}
            target = os.readlink(name, dir_fd=dirfd)
            if "/" in target:
                found = _lkind(target) if target.startswith("/") else None
                return {"python": target, "exists": found in ("file", "symlink")}
            name = target
        return {"python": None, "exists": False}
    finally:
        os.close(dirfd)


def _lkind(path: str) -> str | None:
    """The type of PATH itself from lstat (None: absent or unsafe to reach); PATH is never opened."""
    try:
        dirfd, name = parent(path)
    except (OSError, Unsafe):
        return None
    try:
        return _kind(os.stat(name, dir_fd=dirfd, follow_symlinks=False))
    except OSError:
        return None
    finally:
        os.close(dirfd)


def _small_file(venv: str, rel: str) -> str | None:
    """Text of the venv's file REL (a few KB at most), reached without following a link; None if unreadable."""
    parts = rel.split("/")
    try:
        dirfd = walk(_split(venv) + parts[:-1], venv)
    except (OSError, Unsafe):
        return None
    try:
        fd = _open_file(dirfd, parts[-1], rel)
        try:
            return _read_fd(fd, RECORD_LIMIT, rel).decode("utf-8", "replace")
        finally:
            os.close(fd)
    except (OSError, Unsafe):
        return None
    finally:
        os.close(dirfd)


WRITABLE = stat.S_IWGRP | stat.S_IWOTH


def _path_problems(venv: str, uid: int) -> tuple[list[str], list[str]]:
    """What the kernel's protection of the venv rests on, one fstat per directory: every directory from ``/``
    down to the venv, and the venv's own ``bin/``, ``lib/``, ``lib/python*/`` and ``site-packages/`` (where
    the interpreter, the scripts the units start and ``.pth`` files are found). ``(foreign, writable)``: those
    owned by another user than root (the venv's own: than UID), those group- or world-writable. A file below
    them can be changed only by root then (or by a mode root gave it: ``integrity``)."""
    parts = _split(venv)
    dirs = [parts[:i] for i in range(len(parts) + 1)] + [parts + ["bin"], parts + ["lib"]]
    try:
        libfd = walk(parts + ["lib"], venv)
        try:
            pythons = sorted(n for n in _names(libfd) if n.startswith("python"))
        finally:
            os.close(libfd)
    except (OSError, Unsafe):
        pythons = []
    dirs += [parts + ["lib", py] for py in pythons] + [parts + ["lib", py, "site-packages"] for py in pythons]
    foreign, writable = [], []
    for path in dirs:
        try:
            fd = walk(path, venv)
        except (OSError, Unsafe):
            continue  # missing: the venv is (re)created; a link or no directory: the rebuild reasons say so
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        shown = "/" + "/".join(path)
        if st.st_uid != (uid if len(path) >= len(parts) else 0):
            foreign.append(shown)
        if st.st_mode & WRITABLE and not (st.st_mode & stat.S_ISVTX and len(path) < len(parts)):
            writable.append(shown)
    return foreign, writable


def _integrity(venv: str, uid: int) -> dict:
    """The full check of root's venv, for root's own mistakes (a hand-made ``chmod``, a killed pip, a file
    edited in place): every entry walked (owner, mode; no recursion, bounded as ``_tree``), every file each
    RECORD lists compared with it by size, then by sha256. ``{"foreign", "writable", "hostile": [paths],
    "broken": {distribution: first problem}, "cost": {"files", "bytes", "cpu_s", "wall_s"}}``."""
    cpu, wall = time.process_time(), time.monotonic()
    out: dict = {"foreign": [], "writable": [], "hostile": [], "broken": {}}
    cost: dict = {"files": 0, "bytes": 0}
    try:
        venvfd = walk(_split(venv), venv)
    except (OSError, Unsafe):
        return {**out, "cost": None}
    try:
        top = os.fstat(venvfd)
        tree = {"": (_kind(top), top.st_uid, 0, top.st_mode)}
        out["hostile"] = [f"{venv}/{p}" for p in _tree(venvfd, "", tree)]
        out["foreign"] = sorted(f"{venv}/{p}".rstrip("/") for p, v in tree.items() if v[1] != uid)
        out["writable"] = sorted(
            f"{venv}/{p}".rstrip("/") for p, v in tree.items() if v[0] != "symlink" and v[3] & WRITABLE
        )
        out["broken"] = _half_installed(venv, venvfd, tree, cost)
    finally:
        os.close(venvfd)
    cost.update(cpu_s=round(time.process_time() - cpu, 3), wall_s=round(time.monotonic() - wall, 3))
    return {**out, "cost": cost}


def _half_installed(venv: str, venvfd: int, tree: dict, cost: dict) -> dict:
    """``{distribution: first problem}``: a dist-info without METADATA or RECORD, or a file its RECORD lists
    that is missing, of another size or another sha256 (COST counts the files and bytes hashed)."""
    import csv

    broken = {}
    for path in sorted(
        p for p, v in tree.items() if v[0] == "directory" and p.endswith(".dist-info") and p.count("/") == 3
    ):
        dist = _dist_name(path.rsplit("/", 1)[1])
        record = _small_file(venv, f"{path}/RECORD")
        if record is None or tree.get(f"{path}/METADATA", ("",))[0] != "file":
            broken[dist] = f"{path}: no METADATA or RECORD"
            continue
        site = path.rsplit("/", 1)[0]
        try:
            problem = _record_problem(site, record, tree, venvfd, cost)
        except csv.Error as exc:  # a field longer than csv's limit, a NUL: not a RECORD pip wrote
            problem = f"{venv}/{path}/RECORD: unreadable ({exc})"
        if problem:
            broken[dist] = problem
    return broken


def _record_problem(site: str, record: str, tree: dict, venvfd: int, cost: dict) -> str | None:
    """The first file RECORD lists (relative to SITE) that TREE has missing, of another size, not a regular
    file, or whose sha256 (read by handle below VENVFD) is not RECORD's."""
    import csv

    for row in csv.reader(record.splitlines()):
        if len(row) < 3 or not row[2]:
            continue
        rel = os.path.normpath(f"{site}/{row[0]}")
        have = tree.get(rel)
        if rel.startswith("..") or (have is not None and have[0] == "symlink"):
            continue
        if have is None:
            return f"{rel}: missing"
        if have[0] != "file":
            return f"{rel}: not a regular file ({have[0]}), RECORD says {row[2]} bytes"
        if str(have[2]) != row[2]:
            return f"{rel}: {have[2]} bytes, RECORD says {row[2]}"
        algo, _, want = row[1].partition("=")
        if algo == "sha256" and _digest(venvfd, rel, cost) != want:
            return f"{rel}: sha256 is not the one its RECORD says"
    return None


def _digest(venvfd: int, rel: str, cost: dict) -> str | None:
    """RECORD's form of the sha256 of the venv's regular file REL (opened by handle, no link followed on the
    way), read in chunks whatever its size; None when it cannot be opened."""
    *dirs, name = rel.split("/")
    fds: list[int] = []
    try:
        for part in dirs:
            fds.append(os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fds[-1] if fds else venvfd))
        fd = _open_file(fds[-1] if fds else venvfd, name, rel)
    except (OSError, Unsafe):
        return None
    finally:
        for dirfd in fds:
            os.close(dirfd)
    digest = hashlib.sha256()
    try:
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
            cost["bytes"] += len(chunk)
    finally:
        os.close(fd)
    cost["files"] += 1
    return binascii.b2a_base64(digest.digest(), newline=False).translate(URLSAFE).rstrip(b"=").decode()


def venv_state(venv: str, user: str, integrity: bool = False) -> dict:
    """The venv as data, nothing of it run: ``packages`` ({name: version} | None), ``python`` (where bin/python
    leads) and whether it ``exists``, ``home`` and ``version`` of pyvenv.cfg, ``foreign`` and ``writable``
    (the first few paths not owned by USER, or root above the venv, and group- or world-writable, with
    ``foreign_count`` and ``writable_count``), ``broken`` ({distribution: problem}).

    Without INTEGRITY it costs a few dozen syscalls and the dist-info folders' METADATA heads: the layout
    makes the venv root's along its whole path (``_path_problems``), so that is all the account could change.
    With INTEGRITY (``_integrity``) every entry is walked and every RECORD checked by sha256; ``integrity``
    then holds what it cost (``{"files", "bytes", "cpu_s", "wall_s"}``), and ``hostile`` what was too deep or
    too large to walk."""
    packages, broken = _distributions(venv)
    out: dict = {
        "packages": packages,
        "python": None,
        "exists": False,
        "home": None,
        "version": None,
        "foreign": [],
        "foreign_count": 0,
        "writable": [],
        "writable_count": 0,
        "broken": broken,
        "hostile": [],
        "integrity": None,
    }
    try:
        uid = pwd.getpwnam(user).pw_uid
        os.close(walk(_split(venv), venv))
    except (KeyError, OSError, Unsafe):
        return out
    foreign, writable = _path_problems(venv, uid)
    if integrity:
        full = _integrity(venv, uid)
        foreign = sorted(set(foreign) | set(full["foreign"]))
        writable = sorted(set(writable) | set(full["writable"]))
        out.update(broken={**full["broken"], **broken}, hostile=full["hostile"][:VENV_SAMPLE], integrity=full["cost"])
    cfg = dict(line.split("=", 1) for line in (_small_file(venv, "pyvenv.cfg") or "").splitlines() if "=" in line)
    cfg = {k.strip(): v.strip() for k, v in cfg.items()}
    out.update(
        _interpreter(venv),
        home=cfg.get("home"),
        version=cfg.get("version") or cfg.get("version_info"),
        foreign=foreign[:VENV_SAMPLE],
        foreign_count=len(foreign),
        writable=writable[:VENV_SAMPLE],
        writable_count=len(writable),
    )
    return out


PRISMA_LIMIT = 64 * 1024 * 1024  # bytes of a Prisma file hashed (litellm's schema.prisma: about 100 KB)


def _prisma_sha(site: str, rel: str) -> str | None:
    """The sha256 of the single regular file SITE/REL (no untrusted link on the way, none at the end, never
    blocking, at most PRISMA_LIMIT bytes); None for anything else."""
    try:
        dirfd, name = parent(f"{site}/{rel}")
    except (OSError, Unsafe):
        return None
    try:
        fd = _open_file(dirfd, name, rel)
    except (OSError, Unsafe):
        return None
    finally:
        os.close(dirfd)
    try:
        return hashlib.sha256(_read_fd(fd, PRISMA_LIMIT, rel)).hexdigest()
    except (OSError, Unsafe):
        return None
    finally:
        os.close(fd)


PRISMA_COMPILED = ("client.py", "types.py", "models.py", "actions.py")  # of the prisma package: 10 of its 10.7 MB


def _compiled(package: str, modules) -> bool:
    """Whether each of MODULES of the package folder PACKAGE (root's venv, reached as ``_prisma_sha`` reaches it)
    has this interpreter's compiled form in its ``__pycache__``, root's, made from the module as it is now (a
    timestamp pyc: the module's mtime and size in its header), so that importing it compiles nothing. The folder
    and its ``__pycache__`` are opened once for all of them; each pyc's first 16 bytes are read."""
    magic = _pyc_header()[0]
    try:
        dirfd = walk(_split(package), package)
    except (OSError, Unsafe):
        return False
    try:
        cachefd = os.open(PYCACHE, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
        try:
            for name in modules:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                fd = _open_file(cachefd, _pyc_name(name), f"{package}/{PYCACHE}/{_pyc_name(name)}")
                try:
                    pyc, head = os.fstat(fd), os.read(fd, 16)
                finally:
                    os.close(fd)
                stamp = (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (st.st_size & 0xFFFFFFFF).to_bytes(
                    4, "little"
                )
                if not (stat.S_ISREG(st.st_mode) and pyc.st_uid == 0 and head == magic + bytes(4) + stamp):
                    return False
        finally:
            os.close(cachefd)
    except (OSError, Unsafe):
        return False
    finally:
        os.close(dirfd)
    return True


def prisma_client(venv: str, probe: dict | None) -> dict:
    """Whether the venv's prisma package holds a client generated from the schema its litellm ships, read as
    data (``tasks/prisma.py``, py-02): ``{"schema": sha256 of litellm's schema.prisma or None, "generated":
    bool, "compiled": bool, "download": None or why the engines' host is unreachable}``.

    ``compiled``: the generated client's largest modules (``PRISMA_COMPILED``) have their compiled form, made by
    root from them as they are (``_compiled``). ``prisma generate`` writes 10.7 MB of Python that pip did not
    compile; the account cannot write root's ``__pycache__``, so without it every start of the proxy (each
    worker) compiled it again: importing the client cost 4.4 s of CPU without the compiled form, 2.0 s with it.

    The venv is root's along its whole path (docs/trust-boundary.md), and the snapshot already reads it as
    root (``venv_state``; with ``venv_integrity`` every file's sha256): these three files are read the same
    way, no link followed that the account could have made, no FIFO or device opened for reading, nothing
    larger than PRISMA_LIMIT read. The engines' host PROBE (``{"host", "port", "timeout"}``) is probed with
    one TCP connect only when the client is not generated."""
    sites = []
    try:
        libfd = walk(_split(venv) + ["lib"], venv)
    except (OSError, Unsafe):
        libfd = None
    if libfd is not None:
        try:
            pythons = [n for n in _names(libfd) if n.startswith("python3")]
            sites = sorted(n for n in pythons if _is_a(stat.S_ISDIR, libfd, f"{n}/site-packages"))
        finally:
            os.close(libfd)
    site = f"{venv}/lib/{sites[-1]}/site-packages" if sites else ""
    schema = _prisma_sha(site, "litellm/proxy/schema.prisma") if site else None
    generated = bool(schema) and _prisma_sha(site, "prisma/client.py") is not None
    state = {"schema": schema, "generated": generated and _prisma_sha(site, "prisma/schema.prisma") == schema}
    state["compiled"] = state["generated"] and _compiled(f"{site}/prisma", PRISMA_COMPILED)
    state["download"] = None
    if not state["generated"] and probe and probe.get("host"):
        import socket

        where = (probe["host"], int(probe["port"]))
        try:
            socket.create_connection(where, timeout=float(probe["timeout"])).close()
        except OSError as exc:
            state["download"] = f"{where[0]}:{where[1]} unreachable: {exc.strerror or exc.__class__.__name__}"
    return state


def _settle_owner(fd: int, uid: int, gid: int) -> int:
    """Give FD to UID:GID if another user owns it, and take group and world write away from it: 0, 1 or 2
    changes (the kernel drops setuid/setgid bits at the chown)."""
    st, count = os.fstat(fd), 0
    if st.st_uid != uid:
        os.fchown(fd, uid, gid)
        count += 1
    if st.st_mode & WRITABLE:
        os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~WRITABLE)
        count += 1
    return count


def _adopt(dirfd: int, uid: int, gid: int, shown: str, depth: int = MAX_DEPTH) -> int:
    """Give every entry under DIRFD not owned by UID to UID:GID, and take group and world write away, by handle
    (links themselves, never followed); at most DEPTH levels down (a deeper tree is refused with its path)."""
    if depth <= 0:
        raise Unsafe(f"{shown}: more than {MAX_DEPTH} directories deep: not walked")
    count = 0
    for entry in _names(dirfd):
        st = os.stat(entry, dir_fd=dirfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(entry, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
            try:
                count += _adopt(sub, uid, gid, f"{shown}/{entry}", depth - 1)
                count += _settle_owner(sub, uid, gid)
            finally:
                os.close(sub)
        elif st.st_uid == uid and not (st.st_mode & WRITABLE and not stat.S_ISLNK(st.st_mode)):
            continue
        elif stat.S_ISLNK(st.st_mode):
            os.chown(entry, uid, gid, dir_fd=dirfd, follow_symlinks=False)
            count += 1
        else:
            fd = _open_file(dirfd, entry, f"{shown}/{entry}")  # a hard link or a device is refused
            try:
                count += _settle_owner(fd, uid, gid)
            finally:
                os.close(fd)
    return count


def adopt(args: dict) -> dict:
    """Give the venv ARGS.path back to its owner ARGS.user: whatever in it another user owns (a hand-run pip as
    another user), and whatever in it is group- or world-writable (a hand-made chmod)."""
    uid, gid = _ids(args["user"], args["group"])
    fd = walk(_split(args["path"]), args["path"])
    try:
        count = _adopt(fd, uid, gid, args["path"])
        count += _settle_owner(fd, uid, gid)
    finally:
        os.close(fd)
    return {"adopted": count}


CREATED = layout.CREATED  # root's record of the accounts the runner made


def account(user: str, group: str) -> dict:
    """The account and group from the user database (never /etc/shadow), and whether the runner made it."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        found = None
    else:
        found = {
            "uid": pw.pw_uid,
            "group": _name(grp.getgrgid, pw.pw_gid),
            "home": pw.pw_dir,
            "shell": pw.pw_shell,
            "groups": sorted(g.gr_name for g in grp.getgrall() if user in g.gr_mem),
        }
    try:
        grp.getgrnam(group)
        has_group = True
    except KeyError:
        has_group = False
    return {"user": found, "group": has_group, "created": os.path.exists(f"{CREATED}/{user}")}


def _manager_active(user: str) -> bool:
    """Whether USER's systemd manager (``user@UID.service``) runs, as ``systemctl is-active`` says it: PID 1's
    ``ActiveState`` of that unit is active or reloading (``refreshing`` since systemd 256)."""
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return False
    found = pid1_property(unit_path(f"user@{uid}.service"), UNIT, "ActiveState")
    return found is not None and found[1] in ("active", "reloading", "refreshing")


TMP_NAME = re.compile(re.escape(TMP_SUFFIX) + r"(-bak)?\Z")
BACKUP_NAME = re.compile(BACKUP_RE + r"\Z")


def _in_the_way(dirfd: int, name: str) -> bool:
    """NAME (a runner's temporary or backup name) is in DIRFD and something the runner did not leave:
    any temporary name (a killed run's file, or the account's plant), a backup name that is not a file."""
    if TMP_NAME.search(name):
        return True
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        return False
    return not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode))


def leftovers(paths: list[str]) -> list[str]:
    """What would be in a write's way in the managed directories PATHS (names matched as data): temporary
    files a killed run left, and anything else at a temporary name, or at a backup name but not a file."""
    found = []
    for path in paths:
        try:
            dirfd = walk(_split(path), path)
        except (OSError, Unsafe):
            continue
        try:
            names = [n for n in _names(dirfd) if TMP_NAME.search(n) or BACKUP_NAME.search(n)]
            found += [f"{path}/{n}" for n in names if _in_the_way(dirfd, n)]
        finally:
            os.close(dirfd)
    return sorted(found)


def _names(dirfd: int, limit: int = MAX_ENTRIES) -> list[str]:
    """The names in directory DIRFD, at most LIMIT of them (a directory of millions is not read whole)."""
    with os.scandir(dirfd) as listing:
        return [entry.name for entry in itertools.islice(listing, limit)]


def _clear(dirfd: int, name: str, shown: str) -> dict:
    """Take NAME out of DIRFD's way: a file or link is removed (a link itself, never its target), anything
    else (a directory, FIFO, socket, device) is moved aside to ``NAME.displaced-TIME``, never entered.
    ``{"removed": SHOWN}`` or ``{"displaced": SHOWN, "to": the new name}``, ``{}`` when NAME is gone."""
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return {}
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        os.unlink(name, dir_fd=dirfd)
        return {"removed": shown}
    aside = f"{name}.displaced-{_stamp()}"
    os.rename(name, aside, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    return {"displaced": shown, "to": f"{shown.rpartition('/')[0]}/{aside}"}


def unlink(args: dict) -> dict:
    """Clear ARGS.paths (``leftovers``: a runner's temporary or backup name, the name says so) by handle:
    files removed, anything else displaced (``_clear``), never through a link."""
    done = []
    for path in args["paths"]:
        if not (TMP_NAME.search(path) or BACKUP_NAME.search(path)):
            raise Unsafe(f"{path}: not a temporary or backup name of the runner")
        dirfd, name = parent(path)
        try:
            if _in_the_way(dirfd, name):
                done.append(_clear(dirfd, name, path))
        finally:
            os.close(dirfd)
    return {"removed": len(args["paths"]), "cleared": [d for d in done if d]}


RUN_LOCK = layout.RUN_LOCK


def run_lock() -> dict | None:
    """The run lock's owner record as text, its mtime and the host's clock (None: no lock)."""
    try:
        dirfd, name = parent(RUN_LOCK)
    except (OSError, Unsafe):
        return None
    try:
        fd = _open_file(dirfd, name, RUN_LOCK)
    except (OSError, Unsafe):
        return None
    finally:
        os.close(dirfd)
    try:
        return {
            "text": _read_fd(fd, 1 << 16).decode("utf-8", "replace"),
            "mtime": int(os.fstat(fd).st_mtime),
            "now": int(time.time()),
        }
    finally:
        os.close(fd)


# -- the system interpreter and packages, as data -------------------------------------------------
LINK_HOPS = 40  # as the kernel's limit on symlinks in one lookup


def _root_only(path: str) -> str | None:
    """Why PATH is not root's alone (it or a directory on the way is another user's, or writable by
    group or others), or None. Links on the way count as root's when root owns them (see ``hops``)."""
    parts = _split(path)
    for i in range(len(parts) + 1):
        where = "/" + "/".join(parts[:i])
        st = os.lstat(where)
        if st.st_uid != 0:
            return f"{where} is owned by uid {st.st_uid}"
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{where} is writable by group or others ({stat.S_IMODE(st.st_mode):04o})"
    return None


def hops(path: str) -> list[str]:
    """PATH, each link it leads through (read as data, never followed by the kernel), and where it ends."""
    seen = [path]
    while stat.S_ISLNK(os.lstat(seen[-1]).st_mode):
        if len(seen) > LINK_HOPS:
            raise Unsafe(f"{path}: more than {LINK_HOPS} links")
        target = os.readlink(seen[-1])
        seen.append(os.path.normpath(os.path.join(os.path.dirname(seen[-1]), target)))
    return [*seen, os.path.realpath(path)]


def python_version(path: str) -> dict:
    """``{"version": "X.Y" | None, "refused": why | None}`` of the system interpreter PATH (``litellm_python``).

    Root runs it (``-I``, empty environment) only when it, every link on the way to it and every
    directory holding them are root's and nobody else can write them: an interpreter in the
    account's tree (its venv) is refused, never run. Root's own interpreter (this one) is not run
    at all. A missing PATH is ``version: None`` with no refusal.
    """
    try:
        chain = hops(path)
        why = next(filter(None, (_root_only(p) for p in chain)), None)
        real = chain[-1]
        if why is None and not stat.S_ISREG(os.stat(real).st_mode):
            why = f"{real} is not a regular file"
    except FileNotFoundError:
        return {"version": None, "refused": None}
    except (OSError, Unsafe) as exc:
        return {"version": None, "refused": str(exc)}
    if why:
        return {"version": None, "refused": f"{path}: {why}: not run as root"}
    if real == os.path.realpath(sys.executable):
        return {"version": "{}.{}".format(*sys.version_info[:2]), "refused": None}
    ran = bounded_run([real, "-I", "-c", "import sys;print(*sys.version_info[:2],sep='.')"], 30, 4096, env={})
    if ran is None:
        return {"version": None, "refused": f"{path}: could not be run, or did not answer within 30 s"}
    found = re.fullmatch(r"(\d+\.\d+)\n?", ran[1].decode(errors="replace")) if ran[0] == 0 else None
    return {"version": found and found.group(1), "refused": None if found else f"{path}: not a Python interpreter"}


DPKG_STATUS = "/var/lib/dpkg/status"


def deb_packages(names: list[str]) -> dict | None:
    """``{name: installed version or None}`` of the Debian packages NAMES, from dpkg's status file read
    as data (nothing run); a virtual package (``postgresql-client``) counts as installed when an installed
    package provides it, as apt sees it: ``"VERSION (PROVIDER)"``. None when the host has no readable
    dpkg database."""
    try:
        with open(DPKG_STATUS, "rb") as handle:
            text = _read_fd(handle.fileno()).decode("utf-8", "replace")
    except (OSError, Unsafe):
        return None
    found: dict = dict.fromkeys(names)
    provided: dict = {}
    for block in text.split("\n\n"):
        if not any(name in block for name in names):  # neither the package nor a provider of it: most of them
            continue
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(": ")
            if sep and key in ("Package", "Status", "Version", "Provides"):
                fields[key] = value
        name = fields.get("Package")
        if not name or not fields.get("Status", "").endswith(" installed"):
            continue
        if name in found:
            found[name] = fields.get("Version")
        for entry in fields.get("Provides", "").split(","):
            virtual = entry.split("(")[0].strip()
            if virtual in found:
                provided.setdefault(virtual, f"{fields.get('Version')} ({name})")
    return {name: version or provided.get(name) for name, version in found.items()}


def systemd_version() -> str | None:
    """The host's systemd as ``systemctl --version`` names it in its first line, e.g. ``systemd 257
    (257.9-1~deb13u1)``: from PID 1's ``Version`` (the version in parentheses); None when it cannot be asked."""
    found = pid1_property(SYSTEMD1, MANAGER, "Version")
    major = re.match(r"[0-9]+", found[1]) if found is not None and found[0] == "s" else None
    return f"systemd {major.group()} ({found[1]})" if found is not None and major else None


def _alone(read, *args):
    """READ(*ARGS), or None when it fails: one item of the snapshot fails alone (its operation says so)."""
    try:
        return read(*args)
    except Exception:  # noqa: BLE001 - any failure of this one item is its answer, None
        return None


def snapshot(args: dict) -> dict:
    with held_walks():
        return _snapshot(args)


def _snapshot(args: dict) -> dict:
    planning = Planning(args["plan"]) if args.get("plan") else None  # first: the database plan runs side by side
    env_files = set(args.get("env_files", []))
    return {
        "systemd": systemd_version() if args.get("systemd") else None,
        "python": python_version(args["python"]) if args.get("python") else None,
        "debs": deb_packages(args["debs"]) if "debs" in args else None,
        "run_lock": run_lock(),
        "account": account(args["user"], args.get("group", args["user"])),
        "paths": {p: path_state(p, p in env_files) for p in args["paths"]},
        "leftovers": leftovers(args.get("dirs", [])),
        "manager": _manager_active(args["user"]),
        "linger": os.path.exists(f"/var/lib/systemd/linger/{args['user']}"),
        "units": _units(args["user"], args["units"]),
        "venv": venv_state(args["venv"], args.get("venv_owner", args["user"]), bool(args.get("venv_integrity"))),
        "venv_link": venv_link(args["venv_link"], args["venv"]) if args.get("venv_link") else None,
        "plants": account_plants(args["user"], args["units"]) if args.get("plants") else None,
        "bytecode": tools_bytecode(args["bytecode"]) if args.get("bytecode") else None,  # the tools' __pycache__
        "prisma": _alone(prisma_client, args["venv"], args["prisma"]) if "prisma" in args else None,
        **({"plan": planning.answer(), "plan_key": args["plan"].get("key")} if planning else {}),  # ran beside the rest
    }


def _read_text(path: str, limit: int = READ_LIMIT) -> str:
    """The text of the single regular file PATH, reached and opened without following a link, bounded."""
    dirfd, name = parent(path)
    try:
        fd = _open_file(dirfd, name, path)
        try:
            return _read_fd(fd, limit, shown=path).decode("utf-8", "replace")
        finally:
            os.close(fd)
    finally:
        os.close(dirfd)


def _secret_mark(value: str) -> str:
    """How a redacted secret is shown (litellm_runner.shown.mark): its fingerprint, never the value."""
    return f"<secret sha256:{hashlib.sha256(value.encode()).hexdigest()[:8]}>"


def _redacted(text: str, env_file: str, marks: set[str]) -> str:
    """TEXT with every value of root's ENV_FILE whose mark is among MARKS (the control machine's known secrets,
    as ``shown.mark`` shows them), and the password inside such a URL, replaced by its mark: a secret written
    into a file by hand never leaves the host in clear, not even in the fact output pyinfra prints at -vvv.
    Refused when ENV_FILE cannot be read: the text is then not shown at all."""
    import urllib.parse  # here, not at the top: every other action (the snapshot) starts without it

    codec = globals().get("loads")  # the env-file codec sent along (facts._boot)
    if codec is None:
        raise Unsafe(f"{env_file}: no env-file codec to find the secrets with: not shown")
    try:
        values = codec(_read_text(env_file, 1 << 20), env_file).values()
    except ValueError as exc:
        raise Unsafe(f"{env_file}: {exc}: the secrets cannot be found, the text is not shown") from None
    found = []
    for value in values:
        found.append(value)
        try:
            password = urllib.parse.urlsplit(value).password
        except ValueError:
            password = None
        if password:
            found += [password, urllib.parse.unquote(password)]
    for value in sorted(set(found), key=len, reverse=True):
        if len(value) >= 4 and _secret_mark(value) in marks:  # shown.MIN_SECRET
            text = text.replace(value, _secret_mark(value))
    return text


def read(args: dict) -> dict:
    """ARGS.path's text; with ARGS.marks, the secrets of ARGS.env_file among them redacted (``_redacted``)."""
    text = _read_text(args["path"])
    if args.get("marks"):
        text = _redacted(text, args["env_file"], set(args["marks"]))
    return {"text": text}


# -- changes -------------------------------------------------------------------------------------
def _ids(user: str, group: str) -> tuple[int, int]:
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


def _settle(fd: int, uid: int, gid: int, mode: int) -> None:
    os.fchown(fd, uid, gid)
    os.fchmod(fd, mode)


def _stamp() -> str:
    """UTC time to the nanosecond, from one clock reading: names made later sort later (two readings, one for
    the seconds and one for the fraction, could straddle a second and sort a newer backup before an older one)."""
    now = time.time_ns()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9)) + f"{now % 10**9:09d}"


def _displace(dirfd: int, name: str, keep) -> str | None:
    """Move whatever is at NAME aside (``NAME.displaced-TIME``) unless KEEP(its lstat) holds."""
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if keep(st):
        return None
    aside = f"{name}.displaced-{_stamp()}"
    os.rename(name, aside, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    return aside


def mkdir(args: dict) -> dict:
    uid, gid = _ids(args["user"], args["group"])
    dirfd, name = parent(args["path"])
    try:
        aside = _displace(dirfd, name, lambda st: stat.S_ISDIR(st.st_mode))
        old = os.umask(0o077)
        try:
            os.mkdir(name, 0o700, dir_fd=dirfd)
        except FileExistsError:
            pass
        finally:
            os.umask(old)
        fd = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
        try:
            _settle(fd, uid, gid, int(args["mode"], 8))
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or exc.errno == errno.ENOTDIR:
            raise Unsafe(f"{args['path']} is not a directory (a symlink is not followed)") from None
        raise
    finally:
        os.close(dirfd)
    return {"displaced": aside}


def attrs(args: dict) -> dict:
    uid, gid = _ids(args["user"], args["group"])
    dirfd, name = parent(args["path"])
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
        else:
            fd = _open_file(dirfd, name, args["path"])
        try:
            _settle(fd, uid, gid, int(args["mode"], 8))
        finally:
            os.close(fd)
    finally:
        os.close(dirfd)
    return {"ok": True}


def _replace(dirfd: int, name: str, data: bytes, uid: int, gid: int, mode: int, tmp: str) -> None:
    """Write DATA to TMP (exclusive, no link followed), settle it by handle, rename it over NAME."""
    _clear(dirfd, tmp, tmp)  # a killed run's file removed; a directory planted at the name moved aside
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dirfd)
    try:
        _settle(fd, uid, gid, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)


def _backups(dirfd: int, name: str) -> list[str]:
    """NAME's backups in DIRFD, newest first: file names matched as data, never through a shell."""
    pattern = re.compile(re.escape(name) + BACKUP_RE + r"\Z")
    found = (n for n in _names(dirfd) if pattern.match(n))
    return sorted((n for n in found if not _in_the_way(dirfd, n)), reverse=True)  # a directory is no backup


def write(args: dict) -> dict:
    """Replace ARGS.dest with the staged ARGS.src; keep ``backups_keep`` copies of the old content."""
    uid, gid = _ids(args["user"], args["group"])
    mode, keep = int(args["mode"], 8), int(args.get("backups_keep", 0))
    with open(args["src"], "rb") as staged:  # the operator's own upload, in a private directory
        data = staged.read()
    dirfd, name = parent(args["dest"])
    try:
        aside = _displace(
            dirfd, name, lambda st: stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size <= READ_LIMIT
        )
        if keep:
            try:
                fd = _open_file(dirfd, name, args["dest"])
            except FileNotFoundError:
                fd = None
            except Unsafe:
                fd = None  # a planted link or device is replaced, never copied
            if fd is not None:
                try:
                    old = _read_fd(fd, shown=args["dest"])
                finally:
                    os.close(fd)
                _replace(dirfd, f"{name}.bak-{_stamp()}", old, uid, gid, mode, f"{name}{TMP_SUFFIX}-bak")
            for extra in _backups(dirfd, name)[keep:]:
                os.unlink(extra, dir_fd=dirfd)
        _replace(dirfd, name, data, uid, gid, mode, f"{name}{TMP_SUFFIX}")
    finally:
        os.close(dirfd)
    return {"displaced": aside and f"{args['dest'].rpartition('/')[0]}/{aside}"}


def restore(args: dict) -> dict:
    """Put the newest regular-file backup of ARGS.dest back in place (links and hard links skipped)."""
    uid, gid = _ids(args["user"], args["group"])
    dirfd, name = parent(args["dest"])
    try:
        for candidate in _backups(dirfd, name):
            try:
                fd = _open_file(dirfd, candidate, candidate)
            except (OSError, Unsafe):
                continue
            try:
                data = _read_fd(fd)
            finally:
                os.close(fd)
            _replace(dirfd, name, data, uid, gid, int(args["mode"], 8), f"{name}{TMP_SUFFIX}")
            return {"restored": candidate}
        return {"restored": None}
    finally:
        os.close(dirfd)


def displace(args: dict) -> dict:
    """Move ARGS.path (a venv the account filled with what root must not walk) aside by handle, to
    ``PATH.displaced-TIME`` in the same directory, never entered: kept for inspection, never deleted."""
    dirfd, name = parent(args["path"])
    try:
        return {"displaced": _clear(dirfd, name, args["path"]) if _lkind(args["path"]) == "directory" else {}}
    finally:
        os.close(dirfd)


VENV_NAME = re.compile(r"venvs/[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")  # a link's target root may follow: venvs/NAME


def venv_link(path: str, read: str | None = None) -> dict | None:
    """The stable venv path PATH (``layout.VENV``) as data: ``{"type", "user", "target", "venv", "packages",
    "previous", "entries"}``. A root-owned symlink whose target is ``venvs/NAME`` (relative, inside PATH's
    folder) leads to ``venv``, the versioned folder the services run from, with its distributions
    (``packages``); a real directory (the layout before versioned venvs) is ``venv`` itself. A link of
    another owner or to anything else is reported, never followed (``venv`` None). ``previous``: the target of
    ``PATH-previous``; ``entries``: the first names in ``venvs/``. ``packages`` is not read again when ``venv``
    is READ (the venv the snapshot reads anyway). None when PATH's folder cannot be reached."""
    try:
        dirfd, name = parent(path)
    except (OSError, Unsafe):
        return None
    try:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        out: dict = {"type": None, "user": None, "target": None, "venv": None, "packages": None}
        if st is not None:
            out.update(type=_kind(st), user=_name(pwd.getpwuid, st.st_uid))
        if st is not None and stat.S_ISLNK(st.st_mode):
            out["target"] = printable(os.readlink(name, dir_fd=dirfd))
            if st.st_uid == 0 and VENV_NAME.match(out["target"]):
                real = f"{path.rpartition('/')[0]}/{out['target']}"
                out["venv"] = real if _lkind(real) == "directory" else None
        elif st is not None and stat.S_ISDIR(st.st_mode):
            out["venv"] = path
        if out["venv"] and out["venv"] != read:
            out["packages"] = _distributions(out["venv"])[0]
        try:
            previous = os.readlink(f"{name}-previous", dir_fd=dirfd)
        except OSError:
            previous = None
        out["previous"] = printable(previous) if previous is not None else None
        try:
            venvs = os.open("venvs", DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
        except OSError:
            out["entries"] = []
        else:
            try:
                out["entries"] = sorted(printable(n) for n in _names(venvs, 1000))[:100]
            finally:
                os.close(venvs)
        return out
    finally:
        os.close(dirfd)


def _place_link(dirfd: int, name: str, target: str) -> None:
    """Point the symlink NAME in DIRFD at TARGET atomically: a new link at a temporary name renamed over it."""
    tmp = f"{name}{TMP_SUFFIX}"
    _clear(dirfd, tmp, tmp)
    os.symlink(target, tmp, dir_fd=dirfd)
    os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)


def switch(args: dict) -> dict:
    """Point ARGS.link (``layout.VENV``) at ARGS.target (``venvs/NAME``, a folder root built beside the running
    venv), and ``LINK-previous`` at what it led to before: each link replaced by a rename, so every lookup
    finds the old venv or the new one, never neither. A real directory at LINK (the layout before versioned
    venvs) is first renamed into ``venvs/`` (``venvs/unversioned-TIME``), a file or anything else moved aside.
    Without ARGS.target, LINK is pointed back at ``LINK-previous``'s target (a rollback)."""
    dirfd, name = parent(args["link"])
    try:
        try:
            previous = os.readlink(f"{name}-previous", dir_fd=dirfd)
        except OSError:
            previous = None
        target = args.get("target") or previous
        if not target or not VENV_NAME.match(target):
            raise Unsafe(f"{args['link']}: no venv to point at ({target!r}, expected venvs/NAME)")
        st = os.stat(target, dir_fd=dirfd, follow_symlinks=False)  # under root's own folder: no link followed
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
            raise Unsafe(f"{args['link']}: {target} is not a folder of root's: not switched to")
        try:
            here = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            here = None
        old = None
        if here is not None and stat.S_ISLNK(here.st_mode):
            old = os.readlink(name, dir_fd=dirfd)
        elif here is not None and stat.S_ISDIR(here.st_mode):
            old = f"venvs/unversioned-{_stamp()}"
            os.rename(name, old, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        elif here is not None:
            _clear(dirfd, name, args["link"])
        if old and old != target and VENV_NAME.match(old):
            _place_link(dirfd, f"{name}-previous", old)
        _place_link(dirfd, name, target)
        return {"from": old, "to": target}
    finally:
        os.close(dirfd)


def prune(args: dict) -> dict:
    """Remove the venvs in ``venvs/`` next to ARGS.link that nothing needs: all but the targets of LINK and
    ``LINK-previous`` and the names in ARGS.keep (the one being built). A venv moved aside for inspection
    (``*.displaced-*``) is kept. Root's own folder, removed by handle (``shutil.rmtree`` with ``dir_fd``)."""
    import shutil

    dirfd, name = parent(args["link"])
    try:
        keep = {f"venvs/{n}" for n in args.get("keep", [])}
        for link in (name, f"{name}-previous"):
            try:
                keep.add(os.readlink(link, dir_fd=dirfd))
            except OSError:
                pass
        venvs = os.open("venvs", DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
        try:
            gone = [
                n
                for n in _names(venvs)
                if f"venvs/{n}" not in keep and ".displaced-" not in n and VENV_NAME.match(f"venvs/{n}")
            ]
            for n in gone:
                if stat.S_ISDIR(os.stat(n, dir_fd=venvs, follow_symlinks=False).st_mode):
                    shutil.rmtree(n, dir_fd=venvs)
                else:
                    os.unlink(n, dir_fd=venvs)
        finally:
            os.close(venvs)
        return {"removed": sorted(gone)}
    finally:
        os.close(dirfd)


def printable(text: str) -> str:
    """TEXT (a message naming paths the account chose) with every character outside printable ASCII escaped."""
    return "".join(c if " " <= c <= "~" else json.dumps(c)[1:-1] for c in text)


ACTIONS = {
    "snapshot": snapshot,
    "packages": lambda args: _distributions(args["venv"])[0],  # a venv's {name: version}, or None
    "read": read,
    "mkdir": mkdir,
    "attrs": attrs,
    "write": write,
    "restore": restore,
    "unit_clean": unit_clean,
    "quarantine": quarantine,
    "adopt": adopt,
    "unlink": unlink,
    "displace": displace,
    "switch": switch,
    "prune": prune,
}


def main(argv: list[str]) -> int:
    action, args = argv[1], json.loads(zlib.decompress(binascii.a2b_base64(argv[2])))
    try:
        result = ACTIONS[action](args)
    except (Unsafe, OSError, KeyError, RecursionError) as exc:
        print(printable(f"litellm-runner {action}: refused: {exc}"), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


# == The account sweep (issue #27, item 1; helper h-sweep) ======================================
# What the service account can leave running or scheduled outside the managed services: its sshd
# keys, crontab, ``at`` jobs and shell start files, its processes outside the managed units and the
# listeners no managed unit holds. ``sweep`` only reads; ``sweep_apply`` stops the foreign processes
# it was told to (by PID and start time, through a pidfd), then moves the foreign files into the
# root-owned quarantine: a folder per run with ``manifest.json``, the format ``quarantine`` of the
# unit-plant sweep writes (issue #22), under the same folder. Nothing is deleted, followed or run.

SWEEP_QUARANTINE = layout.QUARANTINE  # the same folder as the unit plants' quarantine
CRONTABS = "/var/spool/cron/crontabs"  # Debian cron: one file per account, named after it
ATJOBS = "/var/spool/cron/atjobs"  # Debian at: one file per job, owned by whoever queued it
SKEL = "/etc/skel"  # root's start files: a copy identical to its skel file is not the account's
KEY_FILES = (".ssh/authorized_keys", ".ssh/authorized_keys2")  # sshd's default AuthorizedKeysFile
SHELL_FILES = (
    ".profile",
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".zshenv",
    ".zprofile",
    ".zshrc",
    ".zlogin",
    ".zlogout",
    ".kshrc",
    ".mkshrc",
    ".cshrc",
    ".tcshrc",
    ".login",
    ".logout",
)
SWEEP_FILE_LIMIT = 16 * 1024 * 1024  # bytes of a swept file hashed
EXE_LIMIT = 256 * 1024 * 1024  # bytes of a process's executable hashed
PROC_LIMIT = 1 << 16  # bytes of one /proc file read
FD_LIMIT = 65536  # open files looked at per process
SHOWN = 2048  # characters of an escaped value kept
SWEEP_ITEMS = 200  # items reported per kind
STOP_GRACE = 5.0  # seconds a process has after SIGTERM, then after SIGKILL
MANAGER_UNITS = ("init.scope", "dbus.service")  # the user manager's own (systemd --user, sd-pam, its bus)
TCP_LISTEN = "0A"


def sweep_escape(raw, limit: int = SHOWN) -> str:
    """RAW (bytes or text read from the host) as one printable line: a backslash, a control, format or
    non-UTF-8 character is escaped (``\\\\``, ``\\n``, ``\\x1b``, ``\\u202e``), the rest kept; cut at LIMIT
    characters with the count of what was cut."""
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    shown = "".join(out)
    return shown if len(shown) <= limit else f"{shown[:limit]}...({len(shown) - limit} more)"


HIDDEN_NAME = (  # a variable or flag name that says its value is a secret
    r"[A-Za-z0-9_.-]*(?:pass(?:word|wd)?|token|secret|api[_-]?key|master[_-]?key|salt[_-]?key|credential|auth)"
    r"[A-Za-z0-9_.-]*"
)
# compiled at the sweep's first use (re's own cache), not at every host-side command's start (about 1 ms)
SECRET_PATTERNS = (
    rf"(?i)(\b{HIDDEN_NAME}\s*[=:]\s*)([^\s&]+)",  # NAME=value, NAME: value, ?token=value
    r"(?i)(bearer\s+|basic\s+)(\S+)",  # an Authorization header's value
    r"(://[^/\s:@]*:)([^@\s/]+)(@)",  # a URL's password
    r"()(sk-[A-Za-z0-9_-]{6,})",  # a LiteLLM or OpenAI-style key
)
SECRET_FLAG = rf"(?i)^--?{HIDDEN_NAME}$"  # --password VALUE: the next argument


def _fingerprint(value: str) -> str:
    """``sha256:1a2b3c4d``: the env-file codec's fingerprint form (envfile.fingerprint)."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:8]


def _hide_value(found: re.Match) -> str:
    """A match of a SECRET_PATTERNS entry with its second group (the value) as a fingerprint."""
    return found.group(0).replace(found.group(2), _fingerprint(found.group(2)), 1)


def sweep_redact(args: list[str]) -> list[str]:
    """ARGS (a command line) with every value that looks like a secret replaced by its fingerprint: a
    ``NAME=value`` whose name says password, token, secret, key or auth, a bearer token, a URL's
    password, an ``sk-...`` key, the argument after ``--password`` and its kind. A foreign process's
    command line is evidence, and may carry the secrets it stole."""
    out, hide_next = [], False
    for arg in args:
        if hide_next:
            out.append(_fingerprint(arg))
            hide_next = False
            continue
        for pattern in SECRET_PATTERNS:
            arg = re.sub(pattern, _hide_value, arg)
        hide_next = bool(re.match(SECRET_FLAG, arg))
        out.append(arg)
    return out


def net_address(hexaddr: str) -> str:
    """An address of /proc/net/tcp (``0100007F``) or tcp6 (32 hex digits), each 32-bit word in host order
    (little-endian here), as text (``127.0.0.1``, ``::1``)."""
    import ipaddress

    raw = bytes.fromhex(hexaddr)
    if len(raw) not in (4, 16):
        raise ValueError(f"{hexaddr!r}: not an IPv4 or IPv6 address")
    address = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
    mapped = getattr(address, "ipv4_mapped", None)
    return f"::ffff:{mapped}" if mapped else str(address)  # one form on every Python (3.13 prints it so)


def net_listeners(text: str, proto: str) -> list[dict]:
    """The listening sockets of a /proc/net/tcp or tcp6 table: ``{proto, address, port, uid, inode}``.
    A line that does not parse is skipped (the table is the kernel's, but a bounded read may cut one)."""
    found = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10 or f[3] != TCP_LISTEN:
            continue
        try:
            addr, port = f[1].split(":")
            address = net_address(addr)
            found.append(
                {"proto": proto, "address": address, "port": int(port, 16), "uid": int(f[7]), "inode": int(f[9])}
            )
        except ValueError:
            continue
    return found


def endpoint(listener: dict) -> str:
    """``127.0.0.1:8080`` or ``[::1]:8080``."""
    address = listener["address"]
    return f"[{address}]:{listener['port']}" if ":" in address else f"{address}:{listener['port']}"


def sweep_cgroup(text: str) -> str:
    """The cgroup systemd tracks a process by, from /proc/PID/cgroup: the ``name=systemd`` hierarchy
    (cgroup v1 and hybrid hosts), else the unified one (``0::``)."""
    unified = ""
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if fields[1] == "name=systemd":
            return fields[2]
        if fields[0] == "0" and fields[1] == "":
            unified = fields[2]
    return unified


def sweep_unit(cgroup: str, uid: int) -> str | None:
    """The unit of UID's user manager (``user@UID.service``) a cgroup path is in: ``litellm.service``,
    ``init.scope``; ``""`` for the manager's cgroup itself or a slice; None outside the manager."""
    parts = [p for p in cgroup.split("/") if p]
    mark = f"user@{uid}.service"
    if mark not in parts:
        return None
    rest = [p for p in parts[parts.index(mark) + 1 :] if not p.endswith(".slice")]
    return rest[0] if rest else ""


def sweep_class(unit: str | None, managed, from_manager: bool) -> str:
    """``managed`` (a process of a managed unit), ``manager`` (the user manager's own) or ``foreign``.

    The account may move its own processes between the cgroups of its manager (systemd delegates that
    subtree to it), so a cgroup counts only for a process the manager itself started (FROM_MANAGER:
    the manager's PID is the process or one of its ancestors); a ``nohup``ed process moved into
    ``litellm.service`` is still foreign.
    """
    if unit is not None and from_manager:
        if unit in managed:
            return "managed"
        if unit in MANAGER_UNITS:
            return "manager"
    return "foreign"


def sweep_listener_managed(classes: list[str], endpoint: str, sockets) -> bool:
    """Whether a listener is the account's own work: a process of a managed unit holds it (CLASSES: its
    holders' ``sweep_class``), or only the user manager does and it listens where a managed socket unit
    does (SOCKETS: their ``Listen=`` endpoints; ``litellm.socket`` between two proxies)."""
    if "managed" in classes:
        return True
    return bool(classes) and set(classes) == {"manager"} and endpoint in sockets


def socket_listens(units: list[str]) -> set[str]:
    """The endpoints the managed socket units among UNITS listen on (``127.0.0.1:4000``), from root's own
    unit files in ``MANAGED_UNITS``: never from the account's manager, whose answer the account controls
    (a faked ``Listen=`` would pass its own listener off as the proxy's socket). A file that is not root's
    regular file, or that cannot be read, names none."""
    found: set[str] = set()
    for unit in units:
        if not unit.endswith(".socket") or "/" in unit:
            continue
        try:
            fd = os.open(f"{MANAGED_UNITS}/{unit}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022:
                found |= listen_streams(os.read(fd, UNIT_FILE_LIMIT).decode("utf-8", "replace"))
        except OSError:
            pass
        finally:
            os.close(fd)
    return found


UNIT_FILE_LIMIT = 1 << 16  # bytes of a managed socket unit read (the rendered one is under 1 KiB)


def listen_streams(text: str) -> set[str]:
    """The ``ListenStream=`` endpoints of a socket unit's TEXT, as the listener table names them
    (``127.0.0.1:4000``, ``[::1]:4000``); a bare port, a path or a value without a port names none."""
    found, section = set(), ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Socket]" and line.startswith("ListenStream="):
            host, _, port = line[13:].strip().rpartition(":")
            if host and port.isdigit():
                found.add(f"{host}:{port}" if host.startswith("[") or ":" not in host else f"[{host}]:{port}")
    return found


def _head(path: str, limit: int = PROC_LIMIT) -> tuple[bytes, bool]:
    """(the first LIMIT bytes of PATH, whether there was more), read non-blocking, never through a link."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        return data[:limit], len(data) > limit
    finally:
        os.close(fd)


def _hash_fd(fd: int, limit: int) -> str:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return f"unread: not a regular file ({_kind(st)})"
    digest, size = hashlib.sha256(), 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return digest.hexdigest()
        size += len(chunk)
        if size > limit:
            return f"unread: more than {limit} bytes"
        digest.update(chunk)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def sweep_evidence(dirfd: int, name: str, path: str, why: str) -> dict:
    """What is at NAME in DIRFD, by lstat and a bounded read by handle (O_NOFOLLOW|O_NONBLOCK, fstat):
    path, why, type, owner, mode, size, mtime, sha256 (a link's target read as data, never followed);
    the field names of ``quarantine``'s manifest."""
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    out = {
        "path": sweep_escape(path),
        "why": why,
        "type": _kind(st),
        "owner": f"{_name(pwd.getpwuid, st.st_uid)}:{_name(grp.getgrgid, st.st_gid)}",
        "mode": format(stat.S_IMODE(st.st_mode), "04o"),
        "size": st.st_size,
        "mtime": _iso(st.st_mtime),
        "sha256": None,
    }
    if stat.S_ISLNK(st.st_mode):
        out["target"] = sweep_escape(os.readlink(name, dir_fd=dirfd))
    elif stat.S_ISREG(st.st_mode):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError as exc:
            out["sha256"] = f"unread: {exc.strerror}"
        else:
            try:
                out["sha256"] = _hash_fd(fd, SWEEP_FILE_LIMIT)
            finally:
                os.close(fd)
    return out


def _sweep_entry(path: str, kind: str, why: str) -> dict | None:
    """The item for PATH (None: absent); a path that cannot be reached safely is an item too, its reason named."""
    item = {"kind": kind, "key": path}
    try:
        dirfd, name = parent(path)
    except FileNotFoundError:
        return None
    except (Unsafe, OSError) as exc:
        return {**item, "path": sweep_escape(path), "why": why, "type": "unsafe", "error": sweep_escape(str(exc))}
    try:
        return {**item, **sweep_evidence(dirfd, name, path, why)}
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {**item, "path": sweep_escape(path), "why": why, "type": "unsafe", "error": sweep_escape(str(exc))}
    finally:
        os.close(dirfd)


def _skel_sha256(name: str, skel: str) -> str | None:
    """The sha256 of root's own SKEL/NAME (None: missing, or not root's regular file)."""
    try:
        dirfd = walk(_split(skel), skel)
    except (OSError, Unsafe):
        return None
    try:
        fd = _open_file(dirfd, name, f"{skel}/{name}")
    except (OSError, Unsafe):
        return None
    finally:
        os.close(dirfd)
    try:
        return _hash_fd(fd, SWEEP_FILE_LIMIT) if os.fstat(fd).st_uid == 0 else None
    finally:
        os.close(fd)


def _owned_in(folder: str, uid: int) -> list[str]:
    """The entries of root's spool FOLDER that UID owns (lstat; nothing followed)."""
    try:
        fd = walk(_split(folder), folder)
    except (OSError, Unsafe):
        return []
    try:
        found = []
        for entry in sorted(os.listdir(fd)):
            try:
                if os.stat(entry, dir_fd=fd, follow_symlinks=False).st_uid == uid:
                    found.append(f"{folder}/{entry}")
            except FileNotFoundError:
                continue
        return found[:SWEEP_ITEMS]
    finally:
        os.close(fd)


def sweep_files(user: str, uid: int, home: str, crontabs=CRONTABS, atjobs=ATJOBS, skel=SKEL) -> list[dict]:
    """USER's sshd keys, crontab, ``at`` jobs and shell start files, each with its evidence.

    A start file identical to root's skel copy is not an item; ``~/.ssh`` that is not a real folder
    (a link) is one item itself. Each item is read alone: one that cannot be read safely is reported
    with ``type: unsafe`` and its reason, the others still are.
    """
    items: list[dict | None] = []
    ssh = _sweep_entry(f"{home}/.ssh", "authorized_keys", "sshd reads the account's keys from here")
    if ssh is not None and ssh.get("type") != "directory":
        items.append(ssh)
    else:
        for rel in KEY_FILES:
            items.append(_sweep_entry(f"{home}/{rel}", "authorized_keys", "a key that logs in as the account"))
    spool = [f"{crontabs}/{user}", *_owned_in(crontabs, uid)]
    for path in dict.fromkeys(spool):
        items.append(_sweep_entry(path, "crontab", "cron runs it as the account"))
    for path in _owned_in(atjobs, uid):
        items.append(_sweep_entry(path, "at_job", "atd runs it as the account"))
    for name in SHELL_FILES:
        found = _sweep_entry(f"{home}/{name}", "shell_file", "a shell runs it at the account's login")
        if found and found.get("type") == "file" and found["sha256"] == _skel_sha256(name, skel):
            continue
        items.append(found)
    return [item for item in items if item is not None]


def _start_ticks(pid: int) -> int | None:
    """PID's start time in clock ticks after boot (field 22 of /proc/PID/stat; None: gone)."""
    try:
        raw, _ = _head(f"/proc/{pid}/stat")
        return int(raw.rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _process(pid: int) -> dict | None:
    """What /proc says of PID: uids, parent, start, command line, cgroup, socket inodes (None: gone)."""
    try:
        status, _ = _head(f"/proc/{pid}/status")
        lines = status.decode("ascii", "replace").splitlines()
        uids = next(line.split()[1:] for line in lines if line.startswith("Uid:"))
        raw_stat, _ = _head(f"/proc/{pid}/stat")
        tail = raw_stat.rsplit(b")", 1)[1].split()
        cmdline, cut = _head(f"/proc/{pid}/cmdline")
        cgroup, _ = _head(f"/proc/{pid}/cgroup")
    except (OSError, StopIteration, IndexError):
        return None
    return {
        "pid": pid,
        "uids": [int(u) for u in uids],
        "state": tail[0].decode("ascii", "replace"),
        "ppid": int(tail[1]),
        "start": int(tail[19]),
        "cmdline": sweep_redact([sweep_escape(a, 512) for a in cmdline.rstrip(b"\0").split(b"\0")[:64]])
        + (["..."] if cut else []),
        "cgroup": sweep_cgroup(cgroup.decode("utf-8", "replace")),
    }


def _sockets(pid: int) -> set[int] | None:
    """The socket inodes PID holds (its open files read as links' text, never opened); None when root
    may not read them (no CAP_SYS_PTRACE: a container's root)."""
    found: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")[:FD_LIMIT]
    except PermissionError:
        return None
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            found.add(int(target[8:-1]))
    return found


def _exe(pid: int) -> dict:
    """PID's executable: its path (escaped) and the sha256 of what the kernel runs, read through the
    process's own reference (``/proc/PID/exe``: the file even when deleted or replaced)."""
    out: dict = {"exe": None, "exe_sha256": None}
    try:
        out["exe"] = sweep_escape(os.readlink(f"/proc/{pid}/exe"))
        fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        out["exe_sha256"] = f"unread: {exc.strerror}"
        return out
    try:
        out["exe_sha256"] = _hash_fd(fd, EXE_LIMIT)
    finally:
        os.close(fd)
    return out


def _manager_pid(uid: int) -> int | None:
    """The main PID of UID's user manager, as PID 1 gives it; None when it does not run or cannot be asked."""
    found = pid1_property(unit_path(f"user@{uid}.service"), "org.freedesktop.systemd1.Service", "MainPID")
    return found[1] or None if found is not None and found[0] == "u" else None


def _descends(pid: int, ancestor: int | None, parents: dict[int, int]) -> bool:
    seen = 0
    while ancestor is not None and pid > 1 and seen < 4096:
        if pid == ancestor:
            return True
        pid, seen = parents.get(pid, 0), seen + 1
    return False


def _netns(pid) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def sweep_processes(uid: int, managed, sockets=()) -> tuple[list[dict], list[dict], dict]:
    """(UID's processes outside the managed units, the listeners no managed unit holds, counts).

    A process is UID's when any of its real, effective, saved or file-system uids is. A listener is
    UID's when UID owns the socket or one of UID's processes holds it; it is foreign when no process of a
    managed unit holds it, unless only the user manager does on one of SOCKETS (``sweep_listener_managed``).
    The tables are read per network namespace of UID's processes (and root's).
    """
    procs, parents = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        found = _process(int(entry))
        if found is None or found["state"] in ("Z", "X") or 2 in (found["pid"], found["ppid"]):
            continue  # gone, exited (a zombie holds nothing), or a kernel thread
        parents[found["pid"]] = found["ppid"]
        if uid in found["uids"]:
            procs[found["pid"]] = found
    manager = _manager_pid(uid)
    holders: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        proc["unit"] = sweep_unit(proc["cgroup"], uid)
        proc["class"] = sweep_class(proc["unit"], managed, _descends(pid, manager, parents))
        proc["socket_inodes"] = _sockets(pid)
        for inode in proc["socket_inodes"] or ():
            holders.setdefault(inode, []).append(pid)
    tables = {}
    for pid in ["self", *procs]:
        ns = _netns(pid)
        if ns is not None and ns not in tables:
            tables[ns] = pid
    own = _netns("self")
    unread = any(p["socket_inodes"] is None for p in procs.values())  # a holder may be one of these
    listeners = []
    for ns, pid in tables.items():
        for proto, table in (("tcp", "tcp"), ("tcp6", "tcp6")):
            try:
                text, _ = _head(f"/proc/{pid}/net/{table}", 16 * 1024 * 1024)
            except OSError:
                continue
            for sock in net_listeners(text.decode("ascii", "replace"), proto):
                held = sorted(holders.get(sock["inode"], []))
                if sock["uid"] != uid and not held:
                    continue
                if sweep_listener_managed([procs[p]["class"] for p in held], endpoint(sock), sockets):
                    continue
                sock.update(endpoint=endpoint(sock), pids=held if held or not unread else None)
                if ns != own:
                    sock["netns"] = f"net:[{ns}]"
                listeners.append(sock)
    by_inode = {s["inode"]: s["endpoint"] for s in listeners}
    foreign = []
    for proc in procs.values():
        if proc["class"] != "foreign":
            continue
        inodes = proc.pop("socket_inodes")
        proc["sockets"] = None if inodes is None else sorted(by_inode[i] for i in inodes if i in by_inode)
        foreign.append(proc)
    counts = {"processes": len(procs), "listeners": len(listeners)}
    return foreign[:SWEEP_ITEMS], listeners[:SWEEP_ITEMS], counts


def _btime() -> int:
    raw, _ = _head("/proc/stat", 1 << 20)
    return next(int(line.split()[1]) for line in raw.decode().splitlines() if line.startswith("btime "))


def _process_item(proc: dict, btime: int) -> dict:
    started = btime + proc["start"] / os.sysconf("SC_CLK_TCK")
    return {
        "kind": "process",
        "key": f"pid:{proc['pid']}:{proc['start']}",
        "path": f"/proc/{proc['pid']}",
        "why": "runs as the account outside the managed units",
        "pid": proc["pid"],
        "ppid": proc["ppid"],
        "cmdline": proc["cmdline"],
        **_exe(proc["pid"]),
        "started": _iso(started),
        "cgroup": sweep_escape(proc["cgroup"]),
        "unit": proc["unit"],
        "sockets": proc["sockets"],
    }


def _listener_item(sock: dict) -> dict:
    return {
        "kind": "listener",
        "key": f"listen:{sock['proto']}:{sock['endpoint']}" + (f":{sock['netns']}" if "netns" in sock else ""),
        "path": f"{sock['proto']} {sock['endpoint']}",
        "why": "listens for the account, held by no managed unit"
        + ("" if sock["pids"] is not None else " (its holders could not be read: root lacks CAP_SYS_PTRACE)"),
        "proto": sock["proto"],
        "endpoint": sock["endpoint"],
        "uid": sock["uid"],
        "inode": sock["inode"],
        "pids": sock["pids"],
        **({"netns": sock["netns"]} if "netns" in sock else {}),
    }


def sweep_allowed(entries: list[str], home: str) -> dict:
    """The declared items (``litellm_account_allowed``): ``PATH`` or ``PATH sha256:HEX`` (``~/`` is the
    account's home), ``exe:PATH`` (processes running that executable), ``port:N`` (a listener)."""
    out: dict = {"files": {}, "exes": set(), "ports": set()}
    for entry in entries:
        if entry.startswith("exe:"):
            out["exes"].add(entry[4:])
        elif entry.startswith("port:"):
            out["ports"].add(int(entry[5:]))
        else:
            path, _, digest = entry.partition(" sha256:")
            path = f"{home}/{path[2:]}" if path.startswith("~/") else path
            out["files"][path] = digest or None
    return out


def _declared(item: dict, allowed: dict) -> bool:
    if item["kind"] == "process":
        return item["exe"] in allowed["exes"]
    if item["kind"] == "listener":
        return int(item["endpoint"].rpartition(":")[2]) in allowed["ports"]
    if item["key"] in allowed["files"]:
        pinned = allowed["files"][item["key"]]
        return pinned is None or pinned == item.get("sha256")
    return False


def sweep(args: dict) -> dict:
    """Every foreign item of ARGS.user with its evidence, the declared ones (ARGS.allowed) left out;
    ARGS.units are the managed units. ``{"items": [...], "checked": {...}}``; an unknown user has none."""
    try:
        pw = pwd.getpwnam(args["user"])
    except KeyError:
        return {"items": [], "checked": {}}
    home = pw.pw_dir.rstrip("/")
    allowed = sweep_allowed(args.get("allowed", []), home)
    files = sweep_files(args["user"], pw.pw_uid, home)
    units = list(args.get("units", []))
    procs, listeners, counts = sweep_processes(pw.pw_uid, set(units), socket_listens(units))
    btime = _btime()
    found = [*files, *(_process_item(p, btime) for p in procs), *(_listener_item(s) for s in listeners)]
    declared = [i for i in found if _declared(i, allowed)]
    holders = {p for i in declared if i["kind"] == "process" for p in [i["pid"]]}
    items = [
        i
        for i in found
        if i not in declared and not (i["kind"] == "listener" and i["pids"] and set(i["pids"]) <= holders)
    ]
    return {"items": items, "checked": {"files": len(files), **counts, "declared": len(declared)}}


def _exited(pidfds: dict, timeout: float) -> set[int]:
    """The PIDs among PIDFDS (pid -> pidfd) that exited within TIMEOUT seconds (a pidfd turns readable)."""
    import select

    deadline, done = time.monotonic() + timeout, set[int]()
    while len(done) < len(pidfds):
        poller = select.poll()
        for pid, pfd in pidfds.items():
            if pid not in done:
                poller.register(pfd, select.POLLIN)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for pfd, _ in poller.poll(int(left * 1000) + 1):
            done.update(pid for pid, fd in pidfds.items() if fd == pfd)
    return done


def sweep_stop(targets: list[tuple[int, int]]) -> dict[int, str]:
    """Stop the processes TARGETS (pid, start ticks), race-safe: each is opened as a pidfd and its start
    time checked after that (a PID reused meanwhile is left alone), then SIGTERM, STOP_GRACE seconds,
    SIGKILL. Returns pid -> how it ended (``SIGTERM``, ``SIGKILL``, ``gone``) or why not (``failed: ...``)."""
    result: dict[int, str] = {}
    pidfds: dict[int, int] = {}
    for pid, start in targets:
        try:
            pfd = os.pidfd_open(pid)
        except ProcessLookupError:
            result[pid] = "gone"
            continue
        except OSError as exc:
            result[pid] = f"failed: {exc.strerror}"
            continue
        if _start_ticks(pid) != start:
            os.close(pfd)
            result[pid] = "gone"  # exited; its PID may now be another process's
            continue
        pidfds[pid] = pfd
    try:
        for how in ("SIGTERM", "SIGKILL"):
            for pid, pfd in pidfds.items():
                if pid not in result:
                    try:
                        _signal.pidfd_send_signal(pfd, getattr(_signal, how))
                    except ProcessLookupError:
                        result[pid] = "gone"
            for pid in _exited({p: f for p, f in pidfds.items() if p not in result}, STOP_GRACE):
                result[pid] = how
        for pid in pidfds:
            result.setdefault(pid, f"failed: still running {STOP_GRACE * 2:.0f} s after SIGTERM and SIGKILL")
    finally:
        for pfd in pidfds.values():
            os.close(pfd)
    return result


def _sweep_folder() -> tuple[int, str]:
    """(a handle on a fresh folder of SWEEP_QUARANTINE, its path): root's, 0700, nothing followed."""
    fd = os.open("/", DIR_FLAGS)
    parts = _split(SWEEP_QUARANTINE)
    try:
        for i, part in enumerate(parts):
            try:
                os.mkdir(part, 0o700 if i == len(parts) - 1 else 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nxt = os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        st = os.fstat(fd)
        if st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o077:
            raise Unsafe(f"{SWEEP_QUARANTINE}: not root's alone ({st.st_uid}, {stat.S_IMODE(st.st_mode):04o})")
        stamp = _stamp()
        os.mkdir(stamp, 0o700, dir_fd=fd)
        return os.open(stamp, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd), f"{SWEEP_QUARANTINE}/{stamp}"
    finally:
        os.close(fd)


def _sweep_move(item: dict, qfd: int, folder: str, index: int) -> dict:
    """Move ITEM's file into the quarantine folder QFD by rename (a link moved as itself, never followed);
    its evidence read again there, where the account can no longer change it. On another file system the
    file is copied by handle and the original renamed in place (``NAME.quarantined-TIME``)."""
    path = item["key"]
    dirfd, name = parent(path)
    target = f"{index:03d}-" + path.strip("/").replace("/", "_")[-200:]
    try:
        try:
            os.rename(name, target, src_dir_fd=dirfd, dst_dir_fd=qfd)
            return {**sweep_evidence(qfd, target, path, item["why"]), "moved_to": f"{folder}/{target}"}
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        found = sweep_evidence(dirfd, name, path, item["why"])
        if found["type"] == "file":
            src = _open_file(dirfd, name, path)
            try:
                data = _read_fd(src, SWEEP_FILE_LIMIT)
            finally:
                os.close(src)
            _replace(qfd, target, data, 0, 0, 0o600, f"{target}{TMP_SUFFIX}")
        aside = f"{name}.quarantined-{folder.rpartition('/')[2]}"
        os.rename(name, aside, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        copied = f"; copied to {folder}/{target}" if found["type"] == "file" else ""
        where = f"{path.rpartition('/')[0]}/{aside}"
        return {**found, "moved_to": f"{where} (another file system: renamed in place{copied})"}
    finally:
        os.close(dirfd)


def sweep_apply(args: dict) -> dict:
    """Act on the items ARGS.keys (decided from ``sweep``) that are still foreign now: record each one's
    evidence in a fresh quarantine folder's ``manifest.json`` (a process's included: once stopped, it is
    gone), stop the processes (and those holding a listener), move the files into the folder; the
    manifest then lists each item with its evidence, where it went or how it ended, and when.

    Each item fails alone; the manifest is written; then the action fails naming each item that failed.
    """
    keys = set(args["keys"])
    now = [i for i in sweep(args)["items"] if i["key"] in keys]
    procs = {i["pid"]: i for i in now if i["kind"] == "process"}
    for item in now:
        if item["kind"] == "listener":
            for pid in item["pids"] or []:
                if pid not in procs:
                    found = _process(pid)
                    if found is not None and args["user"] in [_name(pwd.getpwuid, u) for u in found["uids"]]:
                        procs[pid] = {"pid": pid, "key": f"pid:{pid}:{found['start']}"}
    if not now:
        return {"folder": None, "moved": [], "stopped": {}}
    files = [i for i in now if i["kind"] not in ("process", "listener")]
    failed: list[str] = []
    entries: list[dict] = []
    handled: set[str] = set()
    qfd, folder = _sweep_folder()
    head = {"time": folder.rpartition("/")[2], "user": args["user"], "source": "account sweep"}

    def record(items: list[dict]) -> None:
        data = json.dumps({**head, "items": items}, indent=2).encode()
        _replace(qfd, "manifest.json", data, 0, 0, 0o600, f"manifest.json{TMP_SUFFIX}")

    try:
        # the evidence is on record before any process is stopped or file moved (a stopped process's
        # evidence would be gone), then the manifest says how each item ended
        record([{**item, "moved_to": None, "stopped": None} for item in now])
        ended = sweep_stop([(pid, int(i["key"].rsplit(":", 1)[1])) for pid, i in procs.items()])
        for item in now:
            if item["kind"] == "process":
                entries.append({**item, "moved_to": None, "stopped": ended.get(item["pid"]), "time": _iso(time.time())})
                handled.add(item["key"])
            elif item["kind"] == "listener":
                entries.append({**item, "moved_to": None, "stopped": {p: ended.get(p) for p in item["pids"] or []}})
                handled.add(item["key"])
        failed += [f"process {pid}: {how}" for pid, how in ended.items() if how.startswith("failed")]
        for index, item in enumerate(files):
            try:
                moved = _sweep_move(item, qfd, folder, index)
                entries.append({"kind": item["kind"], **moved, "time": _iso(time.time())})
            except (OSError, Unsafe) as exc:
                failed.append(f"{sweep_escape(item['key'])}: {sweep_escape(str(exc))}")
                entries.append({**item, "moved_to": None, "error": sweep_escape(str(exc))})
            handled.add(item["key"])
    finally:  # an item not reached keeps its evidence, as recorded before
        record(entries + [{**item, "moved_to": None, "stopped": None} for item in now if item["key"] not in handled])
        os.close(qfd)
    if failed:
        raise Unsafe(f"account sweep (quarantine {folder}) could not act on: {'; '.join(failed)}")
    return {"folder": folder, "moved": [e["path"] for e in entries if e.get("moved_to")], "stopped": ended}


ACTIONS.update({"sweep": sweep, "sweep_apply": sweep_apply})

# == The remediation report's reads (issue #27, item 3): root's quarantine as it is, the proxy's readiness ==========
MANIFEST_LIMIT = 1 << 20  # bytes of one manifest.json read
MANIFESTS = 50  # quarantine folders read per report (the newest; the count of the others is said)
READINESS_LIMIT = 64 * 1024  # bytes of the proxy's /health/readiness answer read


def _manifest(qfd: int, name: str) -> dict:
    """One quarantine folder's manifest, each moved item's ``present`` (its ``moved_to`` exists, not followed)."""
    shown = f"{SWEEP_QUARANTINE}/{name}/manifest.json"
    dirfd = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=qfd)
    try:
        fd = _open_file(dirfd, "manifest.json", shown)
        try:
            doc = json.loads(_read_fd(fd, MANIFEST_LIMIT, shown))
        finally:
            os.close(fd)
    finally:
        os.close(dirfd)
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise Unsafe(f"{shown}: not a manifest (an object with items)")
    for item in doc["items"]:
        moved = item.get("moved_to") if isinstance(item, dict) else None
        if isinstance(moved, str):
            item["present"] = os.path.lexists(moved)
    return {"folder": f"{SWEEP_QUARANTINE}/{name}", **doc}


def quarantine_manifests(args: dict) -> dict:
    """The newest MANIFESTS quarantine folders' manifests (oldest first), each read alone and bounded."""
    try:
        qfd = walk(_split(SWEEP_QUARANTINE), SWEEP_QUARANTINE)
    except FileNotFoundError:
        return {"folders": [], "more": 0}
    try:
        names = sorted(n for n in _names(qfd) if not n.startswith("."))
        folders = []
        for name in names[-MANIFESTS:]:
            try:
                folders.append(_manifest(qfd, name))
            except (OSError, Unsafe, ValueError) as exc:
                folders.append({"folder": f"{SWEEP_QUARANTINE}/{sweep_escape(name)}", "error": sweep_escape(str(exc))})
        return {"folders": folders, "more": max(0, len(names) - MANIFESTS)}
    finally:
        os.close(qfd)


def readiness(args: dict) -> dict:
    """GET ``url`` (the proxy's /health/readiness on loopback) once: its HTTP status and the answer's
    ``status`` and ``db``, bounded; no answer is ``status: null`` and the error's class."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(args["url"], timeout=args.get("timeout", 10)) as answer:  # noqa: S310
            status, body = answer.status, answer.read(READINESS_LIMIT)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(READINESS_LIMIT)
    except (OSError, ValueError) as exc:
        return {"url": args["url"], "status": None, "failure": exc.__class__.__name__}
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    fields = {"status_field": doc.get("status"), "db": doc.get("db")}
    shown = {k: sweep_escape(str(v)) for k, v in fields.items() if v is not None}
    return {"url": args["url"], "status": status, **shown}


ACTIONS.update({"quarantine_manifests": quarantine_manifests, "readiness": readiness})


# == The host tools' compiled modules (issue #22): root's ``bin/__pycache__`` ==========================================
# The account's interpreter cannot write a ``__pycache__`` into root's ``bin/``, so before this every tool run (every
# check's database plan) compiled the modules it imports again. The converge now compiles them as root, in root's
# interpreter, into hash-checked files (PEP 552, ``checked-hash``): the import compares each with its source's hash
# on every load, so a file compiled from another source is never used. ``tools_bytecode`` reads the folder as data
# (nothing of it is loaded here); ``compile_tools`` writes it anew.

PYCACHE = "__pycache__"
PYC_FLAGS = 0b11  # a hash-based pyc checked against its source at every import (PEP 552)
PYCACHE_ENTRIES = 1000  # entries of the folder read (the converge writes one per tool module)


def _pyc_name(module: str) -> str:
    return f"{module.removesuffix('.py')}.{sys.implementation.cache_tag}.pyc"


def _pyc_header() -> tuple[bytes, Callable[[bytes], bytes]]:
    """``(MAGIC_NUMBER, source_hash)`` as ``importlib.util`` defines them, from the import system's own module,
    loaded before any code runs: importing ``importlib.util`` (with ``warnings`` and ``contextlib``) cost every
    snapshot about 4.5 ms of the host's CPU."""
    import _imp

    magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    raw = int.from_bytes(magic, "little")
    return magic, lambda source: _imp.source_hash(raw, source)


def _tool_source(dirfd: int, name: str, shown: str) -> bytes | None:
    try:
        fd = _open_file(dirfd, name, shown)
    except (OSError, Unsafe):
        return None
    try:
        return _read_fd(fd, shown=shown)
    except Unsafe:
        return None
    finally:
        os.close(fd)


def _pyc_problem(cachefd: int, name: str, source: bytes | None, stems: set[str]) -> str | None:
    """Why the file NAME of root's ``__pycache__`` is not the checked compiled form of SOURCE (None: NAME is not
    this interpreter's form of a tool module, whose STEMS are given); None when it is."""
    MAGIC_NUMBER, source_hash = _pyc_header()

    st = os.stat(name, dir_fd=cachefd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        return f"a {_kind(st)}, not a compiled module"
    if st.st_uid != 0 or st.st_gid != 0 or stat.S_IMODE(st.st_mode) != 0o644 or st.st_nlink != 1:
        mode = format(stat.S_IMODE(st.st_mode), "04o")
        return f"{_name(pwd.getpwuid, st.st_uid)}:{_name(grp.getgrgid, st.st_gid)} {mode}, {st.st_nlink} links"
    if source is None:
        tool = name.endswith(".pyc") and name.split(".")[0] in stems and name.count(".") == 2
        return "compiled by another interpreter" if tool else "not a compiled module of a tool"
    fd = _open_file(cachefd, name, name)
    try:
        head = os.read(fd, 16)
    finally:
        os.close(fd)
    if head[:4] != MAGIC_NUMBER:
        return "compiled by another interpreter"
    if int.from_bytes(head[4:8], "little") != PYC_FLAGS:
        return "not checked against its source at import (a timestamp or unchecked pyc)"
    if head[8:16] != source_hash(source):
        return "compiled from another source"
    return None


def tools_bytecode(args: dict) -> dict | None:
    """ARGS.folder's ``__pycache__`` (the host tools' folder, root's) as found, nothing of it loaded: ``None``
    when there is none; else ``{"dir": path_state, "tag": this interpreter's cache tag, "problems": {name: why}}``,
    each entry that is not the checked compiled form of one of ARGS.modules as they are now (a foreign or stale
    file, a link, a folder), and each such form that is missing, at most ``MAX_ENTRIES`` entries read."""
    folder = args["folder"]
    found = path_state(f"{folder}/{PYCACHE}")
    if found is None:
        return None
    out: dict = {"dir": found, "tag": sys.implementation.cache_tag, "problems": {}}
    if found["type"] != "directory":
        return out
    try:
        dirfd = walk(_split(folder), folder)
    except (OSError, Unsafe) as exc:  # changed since path_state looked: named, the snapshot goes on
        out["problems"][PYCACHE] = printable(f"not read: {exc}")
        return out
    try:
        sources = {_pyc_name(m): _tool_source(dirfd, m, f"{folder}/{m}") for m in args["modules"]}
        stems = {m.removesuffix(".py") for m in args["modules"]}
        cachefd = os.open(PYCACHE, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
    except (OSError, Unsafe) as exc:
        out["problems"][PYCACHE] = printable(f"not read: {exc}")
        return out
    finally:
        os.close(dirfd)
    try:
        names = _names(cachefd, PYCACHE_ENTRIES)
        for name in names:
            try:
                why = _pyc_problem(cachefd, name, sources.get(name), stems)
            except (OSError, Unsafe) as exc:
                why = f"not read: {exc}"
            if why:
                out["problems"][name] = printable(why)
        for name in sources:
            if name not in names:
                out["problems"][name] = "missing"
    finally:
        os.close(cachefd)
    return out


def compile_tools(args: dict) -> dict:
    """ARGS.folder's ``__pycache__`` written anew, root:root 0755, with the checked compiled form of each of
    ARGS.modules (root:root 0644), built in a temporary folder and renamed into place. The folder it replaces
    is removed when it held only such files of root's; anything else there (a file or folder no converge wrote,
    another owner, a link) is kept as evidence: that folder is moved aside, ``__pycache__.displaced-TIME``."""
    import marshal

    MAGIC_NUMBER, source_hash = _pyc_header()

    folder = args["folder"]
    dirfd = walk(_split(folder), folder)
    tmp = PYCACHE + TMP_SUFFIX
    try:
        _clear(dirfd, tmp, f"{folder}/{tmp}")  # a killed run's
        os.mkdir(tmp, 0o700, dir_fd=dirfd)
        tmpfd = os.open(tmp, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
        try:
            for module in args["modules"]:
                source = _tool_source(dirfd, module, f"{folder}/{module}")
                if source is None:
                    raise Unsafe(f"{folder}/{module}: not a single regular file")
                code = compile(source, f"{folder}/{module}", "exec", dont_inherit=True)
                data = b"".join(
                    [
                        MAGIC_NUMBER,
                        PYC_FLAGS.to_bytes(4, "little"),
                        source_hash(source),
                        marshal.dumps(code),
                    ]
                )
                fd = os.open(
                    _pyc_name(module), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=tmpfd
                )
                try:
                    os.write(fd, data)
                    _settle(fd, 0, 0, 0o644)
                finally:
                    os.close(fd)
            _settle(tmpfd, 0, 0, 0o755)
        finally:
            os.close(tmpfd)
        old = tools_bytecode({"folder": folder, "modules": args["modules"]})
        kept = None
        if old is not None:
            ours = old["dir"]["type"] == "directory" and (old["dir"]["user"], old["dir"]["group"]) == ("root", "root")
            stale = ("compiled from another source", "missing", "compiled by another interpreter")
            if ours and all(why in stale for why in old["problems"].values()):
                oldfd = os.open(PYCACHE, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
                try:
                    for name in _names(oldfd):
                        os.unlink(name, dir_fd=oldfd)
                finally:
                    os.close(oldfd)
                os.rmdir(PYCACHE, dir_fd=dirfd)
            else:
                kept = _displace(dirfd, PYCACHE, lambda st: False)
        os.rename(tmp, PYCACHE, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    finally:
        os.close(dirfd)
    return {"compiled": sorted(_pyc_name(m) for m in args["modules"]), "displaced": kept and f"{folder}/{kept}"}


ACTIONS.update({"compile_tools": compile_tools, "tools_bytecode": tools_bytecode})


# == The database plan, in the snapshot's command (issue #22) ==================================================
# Every check plans the database (files/bin/litellm_dbctl.py): root's snapshot forks a child at its start
# (``spawn``) that runs the plan as the service account while root reads the rest, and collects its bounded JSON
# at the end; ``plan`` runs the same child alone. The child runs root's interpreter on root's copy of dbctl's
# modules (bin/, checked against the runner's sha256 first) and nothing of the venv's packages: the venv gives only
# the migrations folder and libpq, which are data and a shared library.

PLAN_OUTPUT = 8 << 20  # bytes of the plan's JSON read (a plan names at most a few hundred items)
PLAN_PATH = "/usr/local/bin:/usr/bin:/bin"  # the account's PATH, as facts.as_account gives its commands
KEYCTL_JOIN_SESSION_KEYRING = 1
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}  # keyctl(2)'s number (asm/unistd.h)


def _sha256_of(path: str) -> str | None:
    """sha256 of the single regular file PATH, read as the tools' sources are (``_tool_source``: by handle, no link
    followed, bounded); None: not so."""
    try:
        dirfd, name = parent(path)
    except (OSError, Unsafe):
        return None
    try:
        data = _tool_source(dirfd, name, path)
    except OSError:
        return None
    finally:
        os.close(dirfd)
    return None if data is None else hashlib.sha256(data).hexdigest()


def _listing_of(path: str) -> list[str]:
    """The names in directory PATH, reached without following an untrusted link; [] when it is not one."""
    try:
        fd = walk(_split(path), path)
    except (OSError, Unsafe):
        return []
    try:
        return sorted(_names(fd))
    finally:
        os.close(fd)


def _site_packages(venv: str) -> str | None:
    """VENV's ``lib/python*/site-packages`` folder (the first), reached without following a link of the venv."""
    for py in (n for n in _listing_of(f"{venv}/lib") if n.startswith("python")):
        if _lkind(f"{venv}/lib/{py}/site-packages") == "directory":
            return f"{venv}/lib/{py}/site-packages"
    return None


def plan_venv(venvs: list[str]) -> dict | None:
    """What the plan takes from the first of VENVS whose ``bin/python`` leads to a file (as the account's shell
    tried them): ``{"migrations": LiteLLM's migrations folder, "libpq": psycopg-binary's libpq, else the
    system's}``, paths only; None when none is there."""
    for venv in venvs:
        if not _interpreter(venv)["exists"]:
            continue
        site = _site_packages(venv)
        if site is None:
            continue
        libs = [n for n in _listing_of(f"{site}/psycopg_binary.libs") if n.startswith("libpq-")]
        libpq = next((f"{site}/psycopg_binary.libs/{n}" for n in libs if ".so" in n), "libpq.so.5")
        return {"migrations": f"{site}/litellm_proxy_extras/migrations", "libpq": libpq}
    return None


def new_session_keyring() -> bool:
    """Join a new anonymous session keyring (keyctl(2)), so the child holds none of root's SSH session's keys;
    False when the kernel or a seccomp filter (podman's) refuses it."""
    number = SYS_KEYCTL.get(os.uname().machine)
    if number is None:
        return False
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None) >= 0
    except (ImportError, OSError, AttributeError):  # no ctypes, no libc symbol: the plan goes on without
        return False


def plan_child(args: dict, venv: dict, home: str):
    """The plan's target for ``spawn``: a small fixed environment (nothing of root's session, no ``PG*``) before
    libpq loads, root's ``bin/`` first on ``sys.path``, ``litellm_dbctl.plan``'s JSON on stdout; its exit code
    is 0, or Fail's code with ``{"error": line}`` (an unexpected exception: its class only, 1)."""

    def target() -> int:
        os.environ.clear()
        os.environ.update({"HOME": home, "PATH": PLAN_PATH, "LANG": "C.UTF-8"})
        sys.dont_write_bytecode = True  # root's bin/__pycache__ is read, never written
        sys.path.insert(0, args["bin"])
        try:
            import litellm_dbctl

            doc, code = (
                litellm_dbctl.plan(args["scopes"], args["desired_b64"], args["env_file"], args["timeout"], **venv),
                0,
            )
        except Exception as exc:  # noqa: BLE001 - the plan's failure is its answer
            fail = type(exc).__name__ == "Fail"
            code = int(getattr(exc, "code", 1)) if fail else 1
            doc = {"error": str(exc) if fail else f"litellm-dbctl plan failed: {type(exc).__name__}"}
        data = json.dumps(doc, default=str).encode()
        while data:
            data = data[os.write(1, data) :]
        return code

    return target


KEPT_FORMAT = 1  # litellm_migrations.KEPT_FORMAT: a kept replay of another form has another name
KEPT_PREFIX = "replay-"
KEPT_LIMIT = 16 << 20  # bytes of a kept replay (LiteLLM's 172 migrations: about 150 KB)


def _kept_name(migrations: str, module_sha: str) -> str:
    """The name of the kept replay of the migrations folder MIGRATIONS (as the venv link resolves now: a venv's
    folder is named by its lock and never changes) by the ``litellm_migrations.py`` whose sha256 is MODULE_SHA."""
    key = f"{KEPT_FORMAT}\0{os.path.realpath(migrations)}\0{module_sha}"
    return f"{KEPT_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}.json"


def _cache_folder() -> int | None:
    """A handle on root's cache folder (the one ``hostboot`` was given, else ``layout.HOSTSIDE_CACHE``), by the rules
    ``hostboot`` reads it with: every
    folder from ``/`` opened without following a link, root's and writable by nobody else (a sticky folder on
    the way, like ``/tmp``, allowed), the cache itself root's alone (0700); None otherwise: nothing is kept."""
    parts = _split(globals().get("ROOT_CACHE") or layout.HOSTSIDE_CACHE)
    try:
        fd = os.open("/", DIR_FLAGS | os.O_NOFOLLOW)
    except OSError:
        return None
    for i, name in enumerate(["", *parts]):
        try:
            if name:
                nxt = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nxt
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        last = i == len(parts)
        open_to_others = st.st_mode & WRITABLE and not (st.st_mode & stat.S_ISVTX and not last)
        if st.st_uid != 0 or open_to_others or (last and st.st_mode & 0o077):
            os.close(fd)
            return None
    return fd


def kept(name: str) -> str | None:
    """The text kept as NAME in root's cache (a migrations' replay, a venv's distributions): a single regular file
    of root's alone, at most ``KEPT_LIMIT`` bytes, whose first line is the sha256 of the rest (a torn file is not
    used); else None."""
    dirfd = _cache_folder()
    if dirfd is None:
        return None
    try:
        fd = _open_file(dirfd, name, name)
        try:
            st = os.fstat(fd)
            if st.st_uid != 0 or st.st_mode & 0o077:
                return None
            digest, _, body = _read_fd(fd, KEPT_LIMIT, name).partition(b"\n")
        finally:
            os.close(fd)
    except (OSError, Unsafe):
        return None
    finally:
        os.close(dirfd)
    return body.decode("utf-8", "replace") if digest == hashlib.sha256(body).hexdigest().encode() else None


def keep(name: str, text: str) -> None:
    """Keep TEXT as NAME in root's cache (root:root 0600, written under a temporary name and renamed); the others of
    its kind (their names' prefix up to the first ``-``: another venv's) are removed. Nothing is kept when the
    folder is not root's alone, or on any error."""
    body = text.encode()
    if len(body) > KEPT_LIMIT:
        return
    dirfd = _cache_folder()
    if dirfd is None:
        return
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dirfd)
        try:
            view = memoryview(hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        kind = name.split("-", 1)[0] + "-"
        for old in _names(dirfd):  # another venv's, and what a killed run left at a temporary name
            if old != name and old.lstrip(".").startswith(kind):
                os.unlink(old, dir_fd=dirfd)
    except OSError:
        try:
            os.unlink(tmp, dir_fd=dirfd)
        except OSError:
            pass
    finally:
        os.close(dirfd)


class Planning:
    """The database plan ARGS ask (``database.HostPlan``), started as the account at once; ``answer`` collects it.

    The migrations' replay (the schema they make, their names and checksums) is kept by root per venv
    (``kept``): the child gets it in memory and neither reads the migration files nor replays them. A
    child that had none returns the one it made, and root keeps it as text, never reading it itself. What it
    holds feeds only the plan, which the account can sway anyway: it has the database's password.

    ARGS: ``user``, ``group``, ``home`` (the account, as ``facts.as_account``), ``scopes``, ``desired_b64``,
    ``timeout`` (connect), ``env_file``, ``venvs`` (tried in order), ``bin`` and ``modules`` (``{path: sha256}`` of
    the plan's modules as the runner ships them), ``limit`` (seconds)."""

    def __init__(self, args: dict):
        self.child, self.limit = None, int(args["limit"])
        if any(_sha256_of(path) != digest for path, digest in args["modules"].items()):
            return  # not shipped yet, or another runner's: the converge ships them and plans again
        venv = plan_venv(args["venvs"])
        try:
            pw = pwd.getpwnam(args["user"])
            gid = grp.getgrnam(args["group"]).gr_gid
        except KeyError:
            return
        if venv is None:
            return
        pw = pwd.struct_passwd((pw.pw_name, "x", pw.pw_uid, gid, pw.pw_gecos, args["home"], pw.pw_shell))
        module = next((sha for path, sha in args["modules"].items() if path.endswith("/litellm_migrations.py")), "")
        self.kept_name = _kept_name(venv["migrations"], module)
        target = plan_child(args, {**venv, "kept": kept(self.kept_name)}, args["home"])
        try:
            self.child = spawn(target, self.limit, PLAN_OUTPUT, pw, before_drop=new_session_keyring)
        except OSError as exc:  # no process or pipe left: this item fails alone, the snapshot goes on
            self.failed = {"error": printable(f"the plan could not start: {exc}"), "code": 1}

    failed: dict | None = None
    kept_name: str | None = None

    def answer(self) -> dict | None:
        """``{"scopes", "max_connections"}``; None when the plan could not run here; ``{"error": line, "code"}``."""
        if self.child is None:
            return self.failed
        found = self.child.result()
        if found is None:
            return {
                "error": f"no answer within {self.limit} s, or more than {PLAN_OUTPUT} bytes (stopped)",
                "code": 124,
            }
        code, out = found
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        if code == 0 and isinstance(doc, dict) and isinstance(doc.get("scopes"), dict):
            if isinstance(doc.get("kept"), str) and self.kept_name:
                keep(self.kept_name, doc["kept"])
            return {"scopes": doc["scopes"], "max_connections": doc.get("max_connections")}
        error = doc.get("error") if isinstance(doc, dict) else None
        line = printable(error.splitlines()[-1] if isinstance(error, str) and error.strip() else "")[:2000]
        return {"error": line or f"litellm-dbctl exited {code}", "code": code}


ACTIONS["plan"] = lambda args: Planning(args).answer()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
