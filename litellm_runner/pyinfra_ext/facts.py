"""Facts this deploy needs and pyinfra does not ship.

Each fact is a class with ``command()`` and ``process()``; nothing else in the
runner reads a host. Commands never change the host.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import json
import shlex
import zlib

from pyinfra.api import FactBase

from litellm_runner import layout
from litellm_runner.pyinfra_ext import hostboot
from litellm_runner.resources import shipped


def as_account(user: str, group: str, home: str, limit: int | None = None) -> str:
    """The prefix that runs a command as the service account, with a clean environment.

    Whatever the account can write (its venv, ``bin/``, dbctl) runs only this
    way: as the account, the kernel refuses anything the account itself could
    not do, so a planted trojan gains nothing. With LIMIT (seconds: a fact's
    command) the command is stopped after LIMIT, with its whole process group
    (``timeout``; SIGKILL 5 s later), so a read the account made block (a FIFO
    where a file should be) fails that one fact and leaves no process behind.
    The command then follows directly (no ``VAR=value`` words of its own).
    """
    prefix = (
        f"cd / && runuser -u {shlex.quote(user)} -g {shlex.quote(group)} -- env -i HOME={shlex.quote(home)} "
        "PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8"
    )
    return prefix + (f" timeout -k 5 {int(limit)}" if limit else "")


def hostside(action: str, args: dict, cache: str | None = None, code: bool = True) -> str:
    """The command that runs ``litellm_runner.pyinfra_ext.hostside`` ACTION with ARGS on the host.

    The code travels inside the command and runs in root's own interpreter,
    isolated (``-I``): never the venv's, never a file the service account can write;
    without the ``site`` module (``-S``): it needs nothing but the standard library, so
    no ``.pth`` file of the system's site-packages runs, and the start costs less. Its
    compiled form is kept in root's cache CACHE (``hostboot``; default ``layout.HOSTSIDE_CACHE``): compiled once per
    version, not on every command. Without CODE the command carries only the code's key: where the cache has
    no usable file for it, the command prints ``hostboot.UNCACHED`` and runs nothing (``uncached``).
    """
    blob = base64.b64encode(zlib.compress(json.dumps(args, sort_keys=True).encode(), 9)).decode()
    return f"{layout.SYSTEM_PYTHON} -I -S -c {shlex.quote(_boot(cache or layout.HOSTSIDE_CACHE, code))} {action} {blob}"


def hostside_args(blob: str) -> dict:
    """The ARGS a ``hostside`` command carries as BLOB (its last word): what the host-side ``main`` reads."""
    return json.loads(zlib.decompress(base64.b64decode(blob)))


def uncached(output: list[str]) -> bool:
    """Whether OUTPUT is that of a ``hostside`` command sent without its code to a host whose cache lacks it."""
    return output == [hostboot.UNCACHED]


# Shipped ahead of the host-side code: ``litellm_runner.layout`` as a module of that name, so that
# hostside.py imports the constants both sides share (paths, the run lock, root's interpreter) from
# the one file that defines them, on the host as on the control machine.
SHARED = """
import sys as _sys, types as _types
_pkg, _layout = _types.ModuleType("litellm_runner"), _types.ModuleType("litellm_runner.layout")
exec(compile({source!r}, "litellm_runner/layout.py", "exec"), _layout.__dict__)
_pkg.__path__, _pkg.layout = [], _layout
_sys.modules.update({{"litellm_runner": _pkg, "litellm_runner.layout": _layout}})
"""


@functools.lru_cache(maxsize=1)
def source() -> str:
    """The host-side source every host-side command runs: the shared layout, the env-file codec, hostside.py."""
    parts = [SHARED.format(source=shipped("layout.py").read_text())]
    parts += [shipped(*name).read_text() for name in (("envfile.py",), ("pyinfra_ext", "hostside.py"))]
    return "from __future__ import annotations\n" + "\n".join(
        line for part in parts for line in part.splitlines() if line != "from __future__ import annotations"
    )


@functools.lru_cache(maxsize=8)
def _boot(cache: str, code: bool = True) -> str:
    """The program of every host-side command: ``hostboot.py`` without its docstrings and comments, then its
    ``run`` of the ``source()`` (compressed, with CODE; else an empty payload) keyed by its sha256, its compiled
    code kept in CACHE (root's; ``hostboot`` says when it is used)."""
    key = hashlib.sha256(source().encode()).hexdigest()
    payload = base64.b64encode(zlib.compress(source().encode(), 9)).decode() if code else ""
    boot = _bare(shipped("pyinfra_ext", "hostboot.py").read_text())
    return f"{boot}\nsys.exit(run({key!r}, {payload!r}, {cache!r}))\n"


def _bare(text: str) -> str:
    """Python source TEXT as the same code without docstrings or comments: what the host needs of it."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


class FileText(FactBase):
    """The text of a regular file, read without following a link (for diffs).

    With MARKS (``shown.mark`` of each secret the control machine knows), every value of the host's env
    file ENV_FILE among them is redacted on the host, before the text is printed anywhere (pyinfra shows
    a fact's output at -vvv): a secret written into the file by hand never leaves the host in clear.
    Returns ``None`` when PATH is not a single regular file reached safely, or when ENV_FILE cannot be read.
    """

    def command(self, path, env_file=None, marks=()):
        args = {"path": path, **({"env_file": env_file, "marks": sorted(marks)} if marks else {})}
        return hostside("read", args) + " 2>/dev/null || echo null"

    def process(self, output):
        doc = json.loads("\n".join(output))
        return doc and doc["text"]


class HostExposure(FactBase):
    """The services of UNITS scored by the host's own ``systemd-analyze security --offline --user``.

    Returns the output lines of ``unit_gate_script``: ``systemd-analyze --version``, the scores and
    ``unit-gate-exit N``; the unit hardening gate (``gates/units.check_host``) reads them.

    .. code:: python

        host.get_fact(HostExposure, units=render_units(host.data))
    """

    TIMEOUT = 60  # seconds for the host's systemd-analyze run

    def command(self, units):
        return unit_gate_script(units, self.TIMEOUT)

    def process(self, output):
        return list(output)


def unit_gate_script(units: dict[str, str], timeout: int) -> str:
    """POSIX sh that scores the services of UNITS with the host's own systemd-analyze (TIMEOUT seconds).

    Written for root on the host: the units go, base64-decoded (no text of
    theirs reaches the shell), into a fresh ``mktemp -d`` directory under /run (0700,
    root's), which is removed afterwards; nothing on the host changes. Prints
    ``systemd-analyze --version``, the scores, and ``unit-gate-exit N``; it
    always exits 0 so the fact sees a failure of systemd-analyze as text.
    """
    services = {n: t for n, t in units.items() if n.endswith(".service")}
    writes = "".join(
        f'printf %s {shlex.quote(base64.b64encode(text.encode()).decode())} | base64 -d > "$d"/units/{shlex.quote(n)}\n'
        for n, text in sorted(services.items())
    )
    paths = " ".join(f'"$d"/units/{shlex.quote(n)}' for n in sorted(services))
    return (
        # the units under /run (root's); systemd-analyze --offline makes its own /tmp/systemd-temporary-* (root, 0700)
        "d=$(mktemp -d /run/litellm-unit-gate.XXXXXX) && trap 'rm -rf \"$d\"' EXIT && "
        'mkdir -m 0700 "$d"/units "$d"/runtime && {\n'
        f"{writes}"
        "systemd-analyze --version | head -n 1\n"
        f'XDG_RUNTIME_DIR="$d"/runtime SYSTEMD_COLORS=0 timeout {timeout} systemd-analyze security '
        "--offline=yes "
        f"--user --no-pager {paths} 2>&1; echo unit-gate-exit $?\n"
        "}"
    )
