"""The start of every host-side command: root's compiled host-side code, from root's cache or compiled anew.

``facts.hostside`` sends this file's text (without docstrings and comments) as the program of
``/usr/bin/python3 -I -S -c``, followed by one call of ``run(KEY, PAYLOAD, CACHE)``: PAYLOAD is the host-side
source (``layout.py``, ``envfile.py`` and ``hostside.py``), compressed; KEY the sha256 of that source.
Compiling its 120 KB costs the host about 18 ms of CPU on every command; loading the code compiled before
costs under 1 ms. So the compiled code is kept in CACHE (``layout.HOSTSIDE_CACHE``,
``/var/cache/litellm-runner``), one file per KEY and interpreter, and
used only when root alone could have written it:

- every directory from ``/`` down to CACHE is opened one at a time, never through a link (``O_NOFOLLOW``),
  and must be root's and writable by nobody else (a root-owned sticky directory, like ``/tmp``, is
  allowed on the way: others cannot rename or remove root's entries in it); CACHE itself is root's,
  mode 0700;
- the file is opened by name in that directory without following a link or blocking, and must be a
  single (one link) regular file, root's, writable by nobody else, at most ``LIMIT`` bytes;
- its first line is the sha256 of the rest, so a torn or damaged file is refused, not run;
- its name carries KEY, the interpreter's cache tag, version and marshal format: another source or
  another Python never loads it.

Anything else (no CACHE yet, a refused folder or file, an unreadable one) falls back to compiling
PAYLOAD, the same code as before the cache; the result is then written into CACHE (created root:root
0700 inside a folder that passed the same checks, a temporary file renamed into place, the other
versions' files removed) when that is possible, and silently not otherwise. The cache is a cache: it
may be deleted at any time, and nothing else of the host depends on it. It is the one thing a
host-side read, such as the drift check's snapshot, writes.

PAYLOAD may be empty: the drift check's snapshot is first sent without it, because carrying its 77 KB through
SSH, root's login shell and ``sh`` cost the host about 14 ms of CPU per command. Without PAYLOAD, and with no
usable file for KEY in CACHE, ``run`` prints ``UNCACHED``, runs nothing, and the runner sends the command again
with its code (``snapshot.ask``). A host whose CACHE cannot be kept (a read-only ``/var``) thus gets two
commands per check instead of one.

Standard library only, no imports of the runner: this text runs before anything else on the host.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys

LIMIT = 16 * 1024 * 1024  # bytes of a cached file read
PREFIX = "hostside-"
UNCACHED = "litellm-runner: host-side code not cached"  # the only output of a command sent without its code, on a miss
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def _root_dir(path: str, create: bool) -> int | None:
    """A handle on root's directory PATH, walked from ``/`` without following a link, each part root's and
    written by nobody else (a sticky part on the way excepted); PATH itself created root:root 0700 when
    CREATE and missing. None when any part is missing or fails."""
    parts = [p for p in path.split("/") if p]
    try:
        fd = os.open("/", DIR_FLAGS)
    except OSError:
        return None
    for i, name in enumerate(["", *parts]):
        last = i == len(parts)
        if name:
            try:
                if last and create:
                    try:
                        os.mkdir(name, 0o700, dir_fd=fd)
                    except FileExistsError:
                        pass
                nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                os.close(fd)
                return None
            os.close(fd)
            fd = nxt
        st = os.fstat(fd)
        sticky_on_the_way = st.st_mode & stat.S_ISVTX and not last
        if st.st_uid != 0 or (st.st_mode & OTHERS_WRITE and not sticky_on_the_way):
            os.close(fd)
            return None
    return fd


def _digest(data: bytes) -> bytes:
    import hashlib  # the host-side code imports it too: loaded once either way

    return hashlib.sha256(data).hexdigest().encode()


def _cached(dirfd: int, name: str):
    """The code object in root's cache file NAME, or None when it is missing or is not root's alone, intact."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != 0 or st.st_mode & OTHERS_WRITE:
            return None
        if st.st_size > LIMIT:
            return None
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > LIMIT:
                return None
            chunks.append(chunk)
    finally:
        os.close(fd)
    digest, _, data = b"".join(chunks).partition(b"\n")
    if digest != _digest(data):
        return None
    try:
        code = marshal.loads(data)  # noqa: S302 - a file root alone could write, intact: see the docstring
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, type(_cached.__code__)) else None


def _store(dirfd: int, name: str, code) -> None:
    """Write CODE into root's cache as NAME (a temporary file renamed into place); drop the other versions."""
    data = marshal.dumps(code)
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dirfd)
        try:
            view = memoryview(_digest(data) + b"\n" + data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        for old in os.listdir(dirfd):  # other versions' files, and what a killed run left at a temporary name
            if old != name and old.lstrip(".").startswith(PREFIX):
                os.unlink(old, dir_fd=dirfd)
    except OSError:
        try:
            os.unlink(tmp, dir_fd=dirfd)
        except OSError:
            pass


def code(key: str, payload: str, cache: str):
    """The host-side code whose source (sha256 KEY) is PAYLOAD (base64 of zlib), from CACHE when root's and
    intact, else compiled (and kept in CACHE when it can be); None when it is not in CACHE and PAYLOAD is empty."""
    name = f"{PREFIX}{key}-{sys.implementation.cache_tag}-{sys.hexversion:x}-m{marshal.version}"
    dirfd = _root_dir(cache, create=False)
    try:
        found = _cached(dirfd, name) if dirfd is not None else None
        if found is not None or not payload:
            return found
        import base64
        import zlib

        compiled = compile(zlib.decompress(base64.b64decode(payload)), "litellm_hostside", "exec")
        if dirfd is None:
            dirfd = _root_dir(cache, create=True)
        if dirfd is not None:
            _store(dirfd, name, compiled)
        return compiled
    finally:
        if dirfd is not None:
            os.close(dirfd)


def run(key: str, payload: str, cache: str) -> int:
    """Run the host-side code's ``main`` with this command's arguments (``ACTION ARGS``); its exit code. Without
    PAYLOAD and with nothing usable in CACHE: print ``UNCACHED``, run nothing, exit 0."""
    found = code(key, payload, cache)
    if found is None:
        print(UNCACHED)
        return 0
    namespace: dict = {
        "__name__": "litellm_hostside",
        "ROOT_CACHE": cache,
    }  # what the host-side code keeps goes there too
    exec(found, namespace)  # noqa: S102 - root's own code, see the module's docstring
    return namespace["main"](sys.argv)
