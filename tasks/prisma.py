"""The proxy's database client (py-02): the Prisma client generated from the schema the pinned LiteLLM ships.

LiteLLM talks to PostgreSQL through prisma-client-py (pinned in the host's venv
lock). Its client code is generated from ``litellm/proxy/schema.prisma`` by
``prisma generate``, which runs Prisma's CLI (Node.js from the ``nodejs-bin``
package, the CLI itself from npm into root's ``/root/.cache/prisma-python``)
and needs Prisma's native engines (query and schema engine). The runner
generates it at converge, as root into root's venv (this run's, ``render.venv_target``: the account
only reads it, so it cannot change the generated client), right after the venv,
so the proxy's first start does not.

Where the engines come from:

- By default the CLI downloads them from binaries.prisma.sh (production hosts
  with internet: the real code path, unchanged).
- Air-gapped hosts set Prisma's documented variables in ``litellm_env`` (they
  are written to env.litellm, so the proxy uses the same engines at run time):
  ``PRISMA_QUERY_ENGINE_BINARY`` and ``PRISMA_SCHEMA_ENGINE_BINARY`` (local engine
  files), or ``PRISMA_ENGINES_MIRROR`` (a mirror of binaries.prisma.sh), with
  ``PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING``, ``PRISMA_CLI_BINARY_TARGETS``,
  ``PRISMA_BINARY_CACHE_DIR`` (a CLI installed beforehand) as needed. Every
  ``PRISMA_*`` key of ``litellm_env`` is passed to ``prisma generate``.

Hosts that cannot download them may also opt in to the query engine the runner ships
(``litellm_query_engine``, tasks/query_engine.py): its variables are set for ``prisma
generate`` and in the proxy's unit, and its Prisma CLI is used from the engine's folder
(``PRISMA_BINARY_CACHE_DIR``), so ``prisma generate`` reaches no registry either.

A host that can neither download the engines nor has them set gets one line
naming the cause (``binaries.prisma.sh:443 unreachable: ...``). On a production
host that fails the host's run (the proxy could not use its database); in the
sandbox without ``litellm_query_engine`` (the proxy runs without a database) it is a no-op
that says so. The prisma package itself is importable either way, which is all
LiteLLM's auth error handler needs (a request without a key gets 401, not 500).
"""

from __future__ import annotations

import json
import logging
import pathlib
import shlex
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from pyinfra import host
from pyinfra.api import FactBase, FunctionCommand, StringCommand, operation

from litellm_runner import layout
from litellm_runner.pyinfra_ext import drift, snapshot
from litellm_runner.pyinfra_ext.facts import as_account
from litellm_runner.pyinfra_ext.operations import failed, venv_replaces_prisma
from litellm_runner.render import engine_environment, uses_database, venv, venv_target
from litellm_runner.resources import locate
from litellm_runner.run import compat

logger = logging.getLogger("litellm_runner")
ENGINES_HOST = "https://binaries.prisma.sh"  # Prisma's default download host (PRISMA_ENGINES_MIRROR replaces it)
LOCAL_ENGINES = ("PRISMA_QUERY_ENGINE_BINARY", "PRISMA_SCHEMA_ENGINE_BINARY")  # both set: nothing is downloaded
PROBE_TIMEOUT = 5  # seconds to connect to the engines' download host
STATE_TIMEOUT = 60  # seconds for the PrismaClientState command (pyinfra _timeout)
STATE_LIMIT = STATE_TIMEOUT - 15  # seconds it runs as the account before it is stopped (``as_account``)
GENERATE_TIMEOUT = 900  # seconds for `prisma generate` (CLI install and engine download on a first run)

# Reads the venv as data (root's own interpreter, isolated and without site, run as the account): whether
# its prisma package holds a client generated from the schema of its litellm; if not, whether the engines'
# host answers. Prints one JSON object. It runs in every check: socket is imported only to probe, and the
# site-packages folder is found with scandir, not glob (whose imports alone cost the host about 5 ms).
STATE = r"""
import hashlib, json, os, stat, sys
venv, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def sha(path):
    # never blocks (a FIFO), never reads more than 64 MB: anything but such a regular file counts as absent
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 64 << 20:
            return None
        digest = hashlib.sha256()
        for chunk in iter(lambda: os.read(fd, 1 << 16), b""):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)
lib = venv + "/lib"
try:  # what glob.glob(LIB + "/python3*/site-packages") finds
    found = [e.name for e in os.scandir(lib) if e.name.startswith("python3") and e.is_dir()]
except OSError:
    found = []
sites = sorted(f"{lib}/{n}/site-packages" for n in found if os.path.lexists(f"{lib}/{n}/site-packages"))
site = sites[-1] if sites else ""
schema = sha(site + "/litellm/proxy/schema.prisma")
state = {"schema": schema, "generated": bool(schema) and sha(site + "/prisma/client.py") is not None
         and sha(site + "/prisma/schema.prisma") == schema, "download": None}
if not state["generated"] and host:
    import socket
    try:
        socket.create_connection((host, port), timeout=float(sys.argv[4])).close()
    except OSError as exc:
        state["download"] = f"{host}:{port} unreachable: {exc.strerror or exc.__class__.__name__}"
print(json.dumps(state))
"""

# Generates the client as root (reset environment) with the venv's own prisma, from the schema its litellm ships. The
# Prisma CLI runs the schema's generator by name (provider "prisma-client-py", a script in the venv's bin/).
GENERATE = (
    'schema="$("$1/bin/python" -I -c '
    '\'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("litellm").origin), '
    '"proxy", "schema.prisma"))\')" && PATH="$1/bin:$PATH" && export PATH && '
    'exec "$1/bin/python" -m prisma generate --schema "$schema"'
)


class PrismaClientState(FactBase):
    """``{"generated": bool, "schema": sha256 or None, "download": None or why the engines' host is unreachable}``.

    Read as USER with root's interpreter (``-I``): the venv is only read. The
    download host is probed (one TCP connect, PROBE_TIMEOUT) only when the
    client is not generated and PROBE names a host.
    """

    def command(self, venv_path, user, group, home, probe):
        parts = urlsplit(probe) if probe else None
        target = [parts.hostname or "", str(parts.port or 443)] if parts else ["", "0"]
        args = " ".join(shlex.quote(a) for a in [venv_path, *target, str(PROBE_TIMEOUT)])
        return (
            f"{as_account(user, group, home, STATE_LIMIT)} {layout.SYSTEM_PYTHON} -I -S -c {shlex.quote(STATE)} {args} "
            "|| echo null"
        )

    def process(self, output):
        """The state, or None when it could not be read (stopped after STATE_LIMIT, or it failed)."""
        try:
            return json.loads("\n".join(output))
        except ValueError:
            return None


def state_question(
    venv_path: str, user: str, group: str, home: str, settings: dict
) -> tuple[tuple[str, str], type, dict]:
    """The PrismaClientState fact ``prisma_client`` asks, under its key (``snapshot.prefetch``, ``snapshot.answer``)."""
    return (
        ("prisma-client", venv_path),
        PrismaClientState,
        {
            "venv_path": venv_path,
            "user": user,
            "group": group,
            "home": home,
            "probe": probe_url(settings),
            "_timeout": STATE_TIMEOUT,
        },
    )


def question(d) -> tuple[tuple[str, str], type, dict]:
    """The Prisma client state this host's run asks (``snapshot.prefetch``)."""
    return state_question(venv_target(d), d.litellm_user, d.litellm_group, d.litellm_home, prisma_env(d))


def prisma_env(d) -> dict[str, str]:
    """The PRISMA_* settings of litellm_env (engine paths, mirror, ...), and the shipped query engine's
    (``litellm_query_engine``: they win, as in the proxy's unit)."""
    env = {**d.litellm_env, **engine_environment(d)}
    return {k: str(v) for k, v in sorted(env.items()) if k.startswith("PRISMA_")}


def probe_url(settings: dict[str, str]) -> str | None:
    """Where the engines would be downloaded from, or None when local engine files are set."""
    if all(settings.get(name) for name in LOCAL_ENGINES):
        return None
    return settings.get("PRISMA_ENGINES_MIRROR") or ENGINES_HOST


def unavailable(version: str | None, cause: str) -> str:
    """The one line that says why the client cannot be generated here."""
    return (
        f"Prisma client of litellm {version or '(not installed yet)'} not generated: Prisma's engines cannot be "
        f"downloaded ({cause}); set {' and '.join(LOCAL_ENGINES)} (or PRISMA_ENGINES_MIRROR) in litellm_env"
    )


def _fail_alone(state, host, text):
    """Fail this item only: logged in red, the host counted failed (pyinfra exits 1), its other operations run."""
    failed(host, text)
    compat.mark_host_failed(state, host)  # not fail_hosts(): that would stop the host's remaining operations
    return True


def _refuse(state, host, text):
    return failed(host, text)


@operation()
def prisma_client(
    venv_path: str,
    pins: dict,
    user: str,
    group: str,
    home: str,
    settings: dict,
    sandbox: bool,
    python: str = layout.SYSTEM_PYTHON,
    python_version: str | None = None,
):
    """The venv at VENV_PATH holds a Prisma client generated from its litellm's schema.prisma.

    + pins: the pinned versions of litellm and prisma (a venv whose litellm or prisma changes is generated again)
    + user, group, home: the service account, which reads the venv (``prisma generate`` runs as root: the venv is
      root's)
    + settings: the PRISMA_* variables of litellm_env, passed to ``prisma generate``
    + sandbox: a host whose proxy runs without a database: missing engines are a no-op there
    + python, python_version: the interpreter the venv is built with: a venv its operation rebuilds in this run
      (``venv_replaces_prisma``) holds no generated client, so it is generated again
    """
    installed = snapshot.current().venv_at(venv_path)["packages"] or {}
    changing = any(installed.get(name) != version for name, version in pins.items())
    changing = changing or venv_replaces_prisma(venv_path, "root", python, python_version)
    key, cls, kwargs = state_question(venv_path, user, group, home, settings)
    state = snapshot.answer(key, cls, **kwargs)
    if state is None:  # this item fails alone: the host's other operations still run
        text = f"the Prisma client state of {venv_path} could not be read as {user} within {STATE_LIMIT} s"
        drift.record("error", text, "read")
        yield FunctionCommand(_fail_alone, (text,), {})
        return
    if state["generated"] and not changing:
        host.noop(f"the Prisma client in {venv_path} is generated from litellm {pins.get('litellm')}'s schema")
        return
    if state["generated"] is False and state["download"]:
        text = unavailable(pins.get("litellm"), state["download"])
        if sandbox:  # said at every verbosity (a noop alone shows only with -v)
            logger.warning("[%s] %s (sandbox: the proxy runs without a database)", host.name, text)
            host.noop(f"{text} (sandbox: the proxy runs without a database)")
            return
        drift.record("prisma-client", "not generated", text)
        yield FunctionCommand(_refuse, (f"{text}: the proxy cannot use its database",), {})
        return
    drift.record("prisma-client", "not generated" if not state["generated"] else "stale", "generated")
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in settings.items())
    yield StringCommand(
        f"{as_account('root', 'root', '/root')} {assignments} /bin/sh -c {shlex.quote(GENERATE)} prisma-generate "
        f"{shlex.quote(venv_path)}"
    )


def pinned(pins: pathlib.Path) -> dict[str, str]:
    """``{name: version}`` of the ``==`` pins of litellm and prisma in PINS (the same in every lock of them)."""
    found = {}
    for line in pins.read_text().splitlines():
        try:
            req = Requirement(line.split("#", 1)[0].strip())
        except InvalidRequirement:
            continue
        spec = [s.version for s in req.specifier if s.operator == "=="]
        if req.name in ("litellm", "prisma") and spec:
            found[req.name] = spec[0]
    return found


def apply():
    """After python_env.apply(): the client generated by root into root's venv. Returns the operations whose
    change restarts the services that run from the venv."""
    d = host.data
    return [
        prisma_client(
            name=f"Prisma client in {venv(d)} generated from litellm's schema | py-02",
            venv_path=venv_target(d),  # the venv this run installs, before the switch
            pins=pinned(locate(d.litellm_venv_requirements)),
            user=d.litellm_user,
            group=d.litellm_group,
            home=d.litellm_home,
            settings=prisma_env(d),
            sandbox=not uses_database(d),
            python=d.litellm_python,
            python_version=snapshot.current().python_at(d.litellm_python)["version"],
            _timeout=GENERATE_TIMEOUT,
        )
    ]
