"""The query engine for hosts that cannot download Prisma's (``litellm_query_engine``), assembled here.

Prisma's own query engine compiled to WebAssembly (npm ``@prisma/query-engine-wasm``), driven
over PostgreSQL by ``@prisma/adapter-pg`` and ``pg``, behind a small Node server
(``files/query-engine/server.mjs``) that speaks the protocol prisma-client-py speaks to a
query-engine program (``translate.mjs``). docs/query-engine.md says what it supports.

Trust, as for the venv: every npm package is pinned with its integrity hash in
``files/query-engine/package-lock.json``; ``npm ci`` installs exactly that lock (it refuses a
package whose hash differs, and a lock that disagrees with package.json) and runs no package's
install scripts. This happens on the control machine, the one place that reaches the registry;
the assembled tree travels to the host as one tar.gz whose sha256 the host checks before
unpacking it (tasks/query_engine.py), so an air-gapped host never reaches a registry.

The tree is built once per content of ``files/query-engine`` and kept under the operator's
project, ``.litellm-runner/query-engine/<digest>/`` (``LITELLM_QUERY_ENGINE_CACHE`` names
another folder); the tar.gz is byte-for-byte the same for the same tree (sorted, owner root,
mtime 0, modes 0755/0644). On the host the version's folder is named by the digest of the sources
(the lock among them), so rendering the proxy's unit needs no assembly.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile

from litellm_runner.resources import project, shipped

DEBIAN_PACKAGES = ["nodejs"]  # Debian's Node.js (18 on Debian 12, 20 on 13) runs server.mjs
ENGINE_ROOT = "/usr/local/lib/litellm-query-engine"  # on the host: root-owned, one folder per version
SOURCES = ("package.json", "package-lock.json", "server.mjs", "translate.mjs", "query-engine", "schema-engine")
EXECUTABLES = ("query-engine", "schema-engine")
MANIFEST = "MANIFEST.sha256"  # in the tar.gz and on the host: sha256 of every other file (written last)
NPM_TIMEOUT = 600  # seconds for `npm ci`


class AssemblyError(RuntimeError):
    """The engine could not be assembled on the control machine (the message says why and what to do)."""


def source_dir() -> pathlib.Path:
    return shipped("files", "query-engine")


def digest() -> str:
    """sha256 over the engine's sources (name and bytes of each): the version of the assembled tree."""
    h = hashlib.sha256()
    for name in SOURCES:
        data = (source_dir() / name).read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def cache_dir() -> pathlib.Path:
    where = os.environ.get("LITELLM_QUERY_ENGINE_CACHE")
    return pathlib.Path(where) if where else project(".litellm-runner", "query-engine")


@contextlib.contextmanager
def _locked(folder: pathlib.Path):
    """One assembly at a time per cache folder (pyinfra prepares hosts at once; tests run in workers)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def tree() -> pathlib.Path:
    """The assembled tree (sources + node_modules from ``npm ci``), built when this version has none yet."""
    version = digest()
    done = cache_dir() / version
    if (done / MANIFEST).is_file():
        return done
    with _locked(cache_dir()):
        if (done / MANIFEST).is_file():
            return done
        work = pathlib.Path(tempfile.mkdtemp(prefix=f".{version[:12]}-", dir=cache_dir()))
        try:
            for name in SOURCES:
                shutil.copy(source_dir() / name, work / name)
            _npm_ci(work)
            (work / MANIFEST).write_text(manifest(work))
            shutil.rmtree(done, ignore_errors=True)
            work.rename(done)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return done


def _npm_ci(work: pathlib.Path) -> None:
    npm = shutil.which("npm")
    if not npm:
        raise AssemblyError(
            "litellm_query_engine: npm not found on the control machine (it assembles the engine from "
            "files/query-engine/package-lock.json): install Node.js and npm, e.g. `apt-get install npm`"
        )
    cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev", "--no-bin-links"]
    try:
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise AssemblyError(f"litellm_query_engine: `npm ci` took more than {NPM_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise AssemblyError(
            f"litellm_query_engine: `npm ci` with files/query-engine/package-lock.json failed "
            f"({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-1500:]}"
        )


def _files(root: pathlib.Path) -> list[pathlib.Path]:
    """Every regular file under ROOT but the manifest, sorted; anything else than files and folders is refused."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise AssemblyError(f"litellm_query_engine: {rel} in the assembled tree is not a file or folder")
        if path.is_file() and str(rel) != MANIFEST and not rel.parts[0].startswith("."):
            found.append(path)
    return found


def manifest(root: pathlib.Path) -> str:
    """``sha256  relative/path`` of every file of the tree, sorted (``sha256sum -c`` reads it)."""
    return "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root)}\n" for p in _files(root))


def _mode(rel: pathlib.PurePath, is_dir: bool) -> int:
    return 0o755 if is_dir or str(rel) in EXECUTABLES else 0o644


def archive(root: pathlib.Path) -> bytes:
    """The tree ROOT as a reproducible tar.gz: sorted entries, owner root, mtime 0, modes 0755/0644."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        files = [*_files(root), root / MANIFEST]
        dirs = {d for p in files for d in p.relative_to(root).parents if str(d) != "."}
        entries = sorted([(d, None) for d in dirs] + [(p.relative_to(root), p) for p in files], key=lambda e: str(e[0]))
        for rel, path in entries:
            info = tarfile.TarInfo(str(rel))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            if path is None:
                info.type, info.mode = tarfile.DIRTYPE, _mode(rel, True)
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), _mode(rel, False)
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def manifest_sha256() -> str:
    """sha256 of the assembled engine's MANIFEST: what a host's engine is compared with. Reads the cached
    tree's MANIFEST only; the tar.gz (0.8 s of CPU to compress) is made only when a host needs it."""
    return hashlib.sha256((tree() / MANIFEST).read_bytes()).hexdigest()


def bundle() -> tuple[bytes, str]:
    """``(tar.gz bytes, sha256 of its MANIFEST)`` of the assembled engine; built once per version and process."""
    key = digest()
    if key not in _bundles:
        _bundles[key] = (archive(tree()), manifest_sha256())
    return _bundles[key]


_bundles: dict[str, tuple[bytes, str]] = {}  # a pure function's answers, for the process (not run state)


def install_dir(version: str | None = None) -> str:
    """Where the engine of VERSION (``digest()``, the default) is unpacked on a host."""
    return f"{ENGINE_ROOT}/{(version or digest())[:16]}"


def environment(version: str | None = None) -> dict[str, str]:
    """The proxy's environment for the engine of VERSION (its unit file; ``prisma generate``'s too).

    Both engine variables set: ``prisma generate`` downloads nothing; ``PRISMA_BINARY_CACHE_DIR``: the
    Prisma CLI shipped in the bundle (no npm install on the host); ``DISABLE_SCHEMA_UPDATE``: LiteLLM
    does not run ``prisma migrate`` at start (there is no schema engine; db-02 creates the tables).
    """
    where = install_dir(version)
    return {
        "PRISMA_QUERY_ENGINE_BINARY": f"{where}/query-engine",
        "PRISMA_SCHEMA_ENGINE_BINARY": f"{where}/schema-engine",
        "PRISMA_BINARY_CACHE_DIR": where,
        "DISABLE_SCHEMA_UPDATE": "true",
    }
