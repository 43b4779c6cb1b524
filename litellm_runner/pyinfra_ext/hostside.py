"""Root's hands inside the service account's tree: run on the host by the system interpreter.

This module is the only code root runs on a host to read or write the
account's files. It is not installed on the host: ``command(action, args)``
sends its source (with the env-file codec) inline to ``/usr/bin/python3 -I``,
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

Actions (``python3 -I -c SOURCE ACTION ARGS_B64JSON``), each printing one JSON
document on stdout, or an error line on stderr with exit 1:

- ``snapshot``: ``paths`` (type, mode, owner, sha256 of regular files; env-file
  key fingerprints for ``env_files``), ``linger``, ``units``, ``venv``, the
  version of the system interpreter ``python`` (``python_version``: run only when
  it is root's alone) and the Debian packages ``debs`` (dpkg's status file as data)
- ``read``: a regular file's text (for diffs of non-secret files)
- ``mkdir``: a missing directory, created 0700, then chowned/chmodded by handle
- ``attrs``: owner and mode of an existing file or directory, by handle
- ``write``: replace a file with staged content (tmp + rename), backups kept
- ``restore``: put the newest backup of a file back
- ``adopt``: give whatever in a venv another user owns back to the account, by handle
- ``unit_clean``: remove foreign unit files and drop-ins of the account's units (``unit_sources``)
"""

from __future__ import annotations

import base64
import errno
import grp
import hashlib
import json
import os
import pwd
import re
import stat
import subprocess
import sys
import time

SYSTEM_PYTHON = "/usr/bin/python3"
TMP_SUFFIX = ".tmp-litellm-runner"
BACKUP_RE = r"\.bak-[0-9]{8}T[0-9]{6,}"
READ_LIMIT = 16 * 1024 * 1024
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


def walk(parts: list[str], shown: str) -> int:
    """A handle on the directory ``/parts...`` reached without following an untrusted link."""
    fd = os.open("/", DIR_FLAGS)
    try:
        for i, name in enumerate(parts):
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
        return fd
    except BaseException:
        os.close(fd)
        raise


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


def _name(lookup, ident) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


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


def _read_fd(fd: int, limit: int = READ_LIMIT) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise Unsafe(f"more than {limit} bytes")
        chunks.append(chunk)


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
                data = _read_fd(fd)
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


def _dist_info(venv: str) -> dict | None:
    """{normalized name: version} from the venv's *.dist-info METADATA, read as data (nothing executed)."""
    try:
        libfd = walk(_split(venv) + ["lib"], venv)
    except (FileNotFoundError, NotADirectoryError, Unsafe):
        return None
    try:
        pythons = sorted(n for n in os.listdir(libfd) if n.startswith("python"))
        if not pythons:
            return None
        found = {}
        for py in pythons:
            try:
                sitefd = walk(_split(venv) + ["lib", py, "site-packages"], venv)
            except (FileNotFoundError, NotADirectoryError, Unsafe):
                continue
            try:
                for entry in os.listdir(sitefd):
                    if not entry.endswith(".dist-info"):
                        continue
                    meta = _metadata(sitefd, entry)
                    if meta:
                        found[re.sub(r"[-_.]+", "-", meta[0]).lower()] = meta[1]
            finally:
                os.close(sitefd)
        return found
    finally:
        os.close(libfd)


def _metadata(sitefd: int, entry: str):
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
        head = _read_fd(fd, 1 << 20).decode("utf-8", "replace").split("\n\n", 1)[0]
    except Unsafe:
        return None
    finally:
        os.close(fd)
        os.close(dfd)
    fields = dict(line.split(": ", 1) for line in head.splitlines() if ": " in line)
    return (fields["Name"], fields["Version"]) if "Name" in fields and "Version" in fields else None


UNIT_PROPS = "Id,LoadState,UnitFileState,ActiveState,NextElapseUSecRealtime,FragmentPath,DropInPaths,NeedDaemonReload"


def unit_dirs(user: str) -> list[str]:
    """USER's systemd search paths that hold hand edits (systemd.unit(5)), the fourth the managed one.

    The vendor directories under /usr are left out (packages', never an operator's edit);
    ``~/.config/systemd/user`` holds the managed unit files themselves. /etc/systemd/user comes
    before /etc/xdg/systemd/user, Debian's link to it: a file there is named by its own path.
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
        return (st.st_dev, st.st_ino), sorted(os.listdir(fd))
    finally:
        os.close(fd)


def unit_sources(user: str, unit: str) -> list[str]:
    """Every file on disk systemd would read for UNIT besides the managed one, loaded or not yet.

    A directory reached twice (Debian's /etc/xdg/systemd/user is a link to /etc/systemd/user) counts once.
    """
    try:
        dirs = unit_dirs(user)
    except KeyError:
        return []
    managed, found, seen = dirs[3], [], set()
    for base in dirs:
        listed = _listing(base)
        if listed is None or listed[0] in seen:
            continue
        seen.add(listed[0])
        names = listed[1]
        if unit in names and base != managed:
            found.append(f"{base}/{unit}")
        for sub in dropin_dirs(unit):
            if sub in names:
                found += [
                    f"{base}/{sub}/{n}" for n in (_listing(f"{base}/{sub}") or ((), []))[1] if n.endswith(".conf")
                ]
    return found


def _units(user: str, units: list[str]) -> list[str]:
    """``systemctl show`` of UNITS, then per unit ``X-Sources=`` the files on disk besides the managed one."""
    try:
        proc = subprocess.run(
            ["systemctl", "--user", f"--machine={user}@.host", "show", f"--property={UNIT_PROPS}", *units],
            capture_output=True,
            text=True,
            timeout=30,
        )
        lines = proc.stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        lines = []
    for unit in units:
        lines += ["", f"Id={unit}", f"X-Sources={json.dumps(unit_sources(user, unit))}"]
    return lines


def _removable(user: str, path: str) -> bool:
    """PATH is a unit file or drop-in in one of USER's hand-edit search paths, never a managed unit file."""
    dirs = unit_dirs(user)
    head, _, name = path.rpartition("/")
    if head in dirs:
        return head != dirs[3] and name.endswith((".service", ".timer"))
    base, _, sub = head.rpartition("/")
    return base in dirs and sub.endswith(".d") and name.endswith(".conf")


def unit_clean(args: dict) -> dict:
    """Remove ARGS.paths (foreign unit files and drop-ins of USER's units) by handle; empty ``.d`` dirs too."""
    removed = []
    for path in args["paths"]:
        if not _removable(args["user"], path):
            raise Unsafe(f"{path}: not a unit file or drop-in of {args['user']}'s hand-edit search paths")
        try:
            dirfd, name = parent(path)
        except FileNotFoundError:
            continue
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise Unsafe(f"{path} is a directory")
            os.unlink(name, dir_fd=dirfd)  # a link itself is removed, never its target
            removed.append(path)
        except FileNotFoundError:
            pass
        finally:
            os.close(dirfd)
        head = path.rpartition("/")[0]
        if head.endswith(".d"):
            try:
                pfd, sub = parent(head)
            except (FileNotFoundError, Unsafe):
                continue
            try:
                os.rmdir(sub, dir_fd=pfd)
            except OSError:
                pass  # not empty, or gone
            finally:
                os.close(pfd)
    return {"removed": removed}


VENV_SAMPLE = 5  # paths named per problem in the venv report


def _tree(dirfd: int, rel: str, out: dict) -> None:
    """``{relative path: (type, uid, size)}`` of everything under DIRFD, from lstat; real directories are
    entered by handle with O_NOFOLLOW, a symlink is recorded and never followed."""
    for entry in os.listdir(dirfd):
        path = f"{rel}/{entry}" if rel else entry
        try:
            st = os.stat(entry, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        out[path] = (_kind(st), st.st_uid, st.st_size)
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(entry, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
            except OSError:
                continue
            try:
                _tree(sub, path, out)
            finally:
                os.close(sub)


def _interpreter(venv: str, tree: dict) -> dict:
    """Where bin/python leads: links inside bin/ read as data (readlink, never followed by the kernel);
    ``{"python": first target outside bin/ or None, "exists": whether that target exists}``."""
    name = "python"
    for _ in range(8):
        kind = tree.get(f"bin/{name}", ("missing",))[0]
        if kind != "symlink":
            return {"python": f"{venv}/bin/{name}" if kind == "file" else None, "exists": kind == "file"}
        dirfd = walk(_split(venv) + ["bin"], venv)
        try:
            target = os.readlink(name, dir_fd=dirfd)
        finally:
            os.close(dirfd)
        if "/" in target:
            found = path_state(target) if target.startswith("/") else None
            return {"python": target, "exists": found is not None and found["type"] in ("file", "symlink")}
        name = target
    return {"python": None, "exists": False}


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
            return _read_fd(fd).decode("utf-8", "replace")
        finally:
            os.close(fd)
    except (OSError, Unsafe):
        return None
    finally:
        os.close(dirfd)


def _half_installed(venv: str, tree: dict) -> dict:
    """``{distribution: first problem}`` for what a pip killed midway leaves: a dist-info without METADATA or
    RECORD, or a file its RECORD lists that is missing or of another size."""
    import csv

    broken = {}
    for path in sorted(
        p for p, v in tree.items() if v[0] == "directory" and p.endswith(".dist-info") and p.count("/") == 3
    ):
        dist = re.sub(r"[-_.]+", "-", path.rsplit("/", 1)[1].split("-", 1)[0]).lower()
        record = _small_file(venv, f"{path}/RECORD")
        if record is None or tree.get(f"{path}/METADATA", ("",))[0] != "file":
            broken[dist] = f"{path}: no METADATA or RECORD"
            continue
        site = path.rsplit("/", 1)[0]
        for row in csv.reader(record.splitlines()):
            if len(row) < 3 or not row[2]:
                continue
            rel = os.path.normpath(f"{site}/{row[0]}")
            have = tree.get(rel)
            if not rel.startswith("..") and (have is None or (have[0] == "file" and str(have[2]) != row[2])):
                broken[dist] = f"{rel}: " + ("missing" if have is None else f"{have[2]} bytes, RECORD says {row[2]}")
                break
    return broken


def venv_state(venv: str, user: str) -> dict:
    """The venv as data, nothing of it run: ``packages`` ({name: version} | None), ``python`` (where bin/python
    leads) and whether it ``exists``, ``home`` and ``version`` of pyvenv.cfg, ``foreign`` (paths not owned by
    USER: the first few, and ``foreign_count``), ``broken`` ({distribution: problem}, see _half_installed)."""
    out: dict = {
        "packages": _dist_info(venv),
        "python": None,
        "exists": False,
        "home": None,
        "version": None,
        "foreign": [],
        "foreign_count": 0,
        "broken": {},
    }
    try:
        uid = pwd.getpwnam(user).pw_uid
        venvfd = walk(_split(venv), venv)
    except (KeyError, OSError, Unsafe):
        return out
    try:
        tree = {"": (_kind(os.fstat(venvfd)), os.fstat(venvfd).st_uid, 0)}
        _tree(venvfd, "", tree)
    finally:
        os.close(venvfd)
    foreign = sorted(p for p, v in tree.items() if v[1] != uid)
    cfg = dict(line.split("=", 1) for line in (_small_file(venv, "pyvenv.cfg") or "").splitlines() if "=" in line)
    cfg = {k.strip(): v.strip() for k, v in cfg.items()}
    out.update(
        _interpreter(venv, tree),
        home=cfg.get("home"),
        version=cfg.get("version") or cfg.get("version_info"),
        foreign=[f"{venv}/{p}".rstrip("/") for p in foreign[:VENV_SAMPLE]],
        foreign_count=len(foreign),
        broken=_half_installed(venv, tree),
    )
    return out


def _adopt(dirfd: int, uid: int, gid: int, shown: str) -> int:
    """Give every entry under DIRFD not owned by UID to UID:GID by handle (links themselves, never followed)."""
    count = 0
    for entry in os.listdir(dirfd):
        st = os.stat(entry, dir_fd=dirfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(entry, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
            try:
                count += _adopt(sub, uid, gid, f"{shown}/{entry}")
                if os.fstat(sub).st_uid != uid:
                    os.fchown(sub, uid, gid)
                    count += 1
            finally:
                os.close(sub)
        elif st.st_uid == uid:
            continue
        elif stat.S_ISLNK(st.st_mode):
            os.chown(entry, uid, gid, dir_fd=dirfd, follow_symlinks=False)
            count += 1
        else:
            fd = _open_file(dirfd, entry, f"{shown}/{entry}")  # a hard link or a device is refused
            try:
                os.fchown(fd, uid, gid)  # the kernel drops setuid/setgid bits
            finally:
                os.close(fd)
            count += 1
    return count


def adopt(args: dict) -> dict:
    """Give the venv ARGS.path back to the account: whatever in it another user owns (a ``sudo pip install``)."""
    uid, gid = _ids(args["user"], args["group"])
    fd = walk(_split(args["path"]), args["path"])
    try:
        count = _adopt(fd, uid, gid, args["path"])
        if os.fstat(fd).st_uid != uid:
            os.fchown(fd, uid, gid)
            count += 1
    finally:
        os.close(fd)
    return {"adopted": count}


CREATED = "/var/lib/litellm-runner/created-accounts"  # root's record of the accounts the runner made


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
    """Whether USER's systemd manager (``user@UID.service``) runs."""
    try:
        uid = pwd.getpwnam(user).pw_uid
        proc = subprocess.run(["systemctl", "is-active", "--quiet", f"user@{uid}.service"], timeout=30)
    except (KeyError, OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def leftovers(paths: list[str]) -> list[str]:
    """Temporary files a killed run left in the managed directories PATHS (names matched as data)."""
    found = []
    for path in paths:
        try:
            dirfd = walk(_split(path), path)
        except (OSError, Unsafe):
            continue
        try:
            found += [f"{path}/{n}" for n in os.listdir(dirfd) if re.search(re.escape(TMP_SUFFIX) + r"(-bak)?\Z", n)]
        finally:
            os.close(dirfd)
    return sorted(found)


def unlink(args: dict) -> dict:
    """Remove ARGS.paths, each a leftover temporary file (its name says so), never through a link."""
    for path in args["paths"]:
        if not re.search(re.escape(TMP_SUFFIX) + r"(-bak)?\Z", path):
            raise Unsafe(f"{path}: not a temporary file of the runner")
        dirfd, name = parent(path)
        try:
            os.unlink(name, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        finally:
            os.close(dirfd)
    return {"removed": len(args["paths"])}


RUN_LOCK = "/run/litellm-runner.lock"  # litellm_runner.pyinfra_ext.lock.LOCK_PATH (root's)


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
    try:
        proc = subprocess.run(
            [real, "-I", "-c", "import sys;print(*sys.version_info[:2],sep='.')"],
            capture_output=True,
            text=True,
            timeout=30,
            env={},
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"version": None, "refused": f"{path}: {exc}"}
    found = re.fullmatch(r"(\d+\.\d+)\n?", proc.stdout) if proc.returncode == 0 else None
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
    """The host's systemd as ``systemctl --version`` names it in its first line, e.g.
    ``systemd 257 (257.9-1~deb13u1)``; None when it cannot be asked."""
    try:
        proc = subprocess.run(["systemctl", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = proc.stdout.splitlines()[:1]
    return first[0].strip() if proc.returncode == 0 and first else None


def snapshot(args: dict) -> dict:
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
        "venv": venv_state(args["venv"], args["user"]),
    }


def read(args: dict) -> dict:
    dirfd, name = parent(args["path"])
    try:
        fd = _open_file(dirfd, name, args["path"])
        try:
            return {"text": _read_fd(fd).decode("utf-8", "replace")}
        finally:
            os.close(fd)
    finally:
        os.close(dirfd)


# -- changes -------------------------------------------------------------------------------------
def _ids(user: str, group: str) -> tuple[int, int]:
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


def _settle(fd: int, uid: int, gid: int, mode: int) -> None:
    os.fchown(fd, uid, gid)
    os.fchmod(fd, mode)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"


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
    try:
        os.unlink(tmp, dir_fd=dirfd)
    except FileNotFoundError:
        pass
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
    return sorted((n for n in os.listdir(dirfd) if pattern.match(n)), reverse=True)


def write(args: dict) -> dict:
    """Replace ARGS.dest with the staged ARGS.src; keep ``backups_keep`` copies of the old content."""
    uid, gid = _ids(args["user"], args["group"])
    mode, keep = int(args["mode"], 8), int(args.get("backups_keep", 0))
    with open(args["src"], "rb") as staged:  # the operator's own upload, in a private directory
        data = staged.read()
    dirfd, name = parent(args["dest"])
    try:
        aside = _displace(dirfd, name, lambda st: stat.S_ISREG(st.st_mode) and st.st_nlink == 1)
        if keep:
            try:
                fd = _open_file(dirfd, name, args["dest"])
            except FileNotFoundError:
                fd = None
            except Unsafe:
                fd = None  # a planted link or device is replaced, never copied
            if fd is not None:
                try:
                    old = _read_fd(fd)
                finally:
                    os.close(fd)
                _replace(dirfd, f"{name}.bak-{_stamp()}", old, uid, gid, mode, f"{name}{TMP_SUFFIX}-bak")
            for extra in _backups(dirfd, name)[keep:]:
                os.unlink(extra, dir_fd=dirfd)
        _replace(dirfd, name, data, uid, gid, mode, f"{name}{TMP_SUFFIX}")
    finally:
        os.close(dirfd)
    return {"displaced": aside}


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


ACTIONS = {
    "snapshot": snapshot,
    "read": read,
    "mkdir": mkdir,
    "attrs": attrs,
    "write": write,
    "restore": restore,
    "unit_clean": unit_clean,
    "adopt": adopt,
    "unlink": unlink,
}


def main(argv: list[str]) -> int:
    action, args = argv[1], json.loads(base64.b64decode(argv[2]))
    try:
        result = ACTIONS[action](args)
    except (Unsafe, OSError, KeyError) as exc:
        print(f"litellm-runner {action}: refused: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
