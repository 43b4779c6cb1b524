"""The proxy's database client (py-02): the Prisma client generated from the schema the pinned LiteLLM ships.

LiteLLM talks to PostgreSQL through prisma-client-py (pinned in the host's venv
lock). Its client code is generated from ``litellm/proxy/schema.prisma`` by
``prisma generate``, which runs Prisma's CLI (Node.js from the ``nodejs-bin``
package, the CLI itself from npm into root's ``/root/.cache/prisma-python``)
and needs Prisma's native engines (query and schema engine). The runner
generates it at converge, as root into root's venv (this run's, ``render.venv_target``: the account
only reads it, so it cannot change the generated client), right after the venv,
so the proxy's first start does not. Root then compiles it (``COMPILE``): the account cannot write root's
``__pycache__``, so an uncompiled client was compiled again at every start of the proxy, in each worker
(importing it cost 4.4 s of CPU, 2.0 s compiled; a restart of the proxy about 1 s less).

Whether the client is generated is read by the host snapshot (``hostside.prisma_client``, in the
snapshot's one command: the files of root's venv read as data, by root, as the snapshot reads the rest
of that venv); when it is not, the snapshot also probes the engines' download host (one TCP connect).

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

import logging
import pathlib
import shlex

from packaging.requirements import InvalidRequirement, Requirement
from pyinfra import host
from pyinfra.api import FunctionCommand, StringCommand, operation

from litellm_runner import layout
from litellm_runner.pyinfra_ext import drift, snapshot
from litellm_runner.pyinfra_ext.facts import as_account
from litellm_runner.pyinfra_ext.operations import failed, venv_replaces_prisma
from litellm_runner.render import (
    PRISMA_LOCAL_ENGINES,
    prisma_env,
    prisma_probe,
    uses_database,
    venv,
    venv_target,
)
from litellm_runner.resources import locate
from litellm_runner.run import compat

logger = logging.getLogger("litellm_runner")
GENERATE_TIMEOUT = 900  # seconds for `prisma generate` (CLI install and engine download on a first run)

# Compiles the prisma package as root (the generated client: 10.7 MB of Python pip did not compile), so that no start
# of the proxy compiles it again: the account cannot write root's __pycache__ (hostside.prisma_client, "compiled").
COMPILE = (
    'package="$("$1/bin/python" -I -c '
    '\'import importlib.util; print(importlib.util.find_spec("prisma").submodule_search_locations[0])\')" && '
    'exec "$1/bin/python" -I -m compileall -q "$package"'
)
# Generates the client as root (reset environment) with the venv's own prisma, from the schema its litellm ships, then
# compiles it. The Prisma CLI runs the schema's generator by name (provider "prisma-client-py", in the venv's bin/).
GENERATE = (
    'schema="$("$1/bin/python" -I -c '
    '\'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("litellm").origin), '
    '"proxy", "schema.prisma"))\')" && PATH="$1/bin:$PATH" && export PATH && '
    f'"$1/bin/python" -m prisma generate --schema "$schema" && {COMPILE}'
)


def unavailable(version: str | None, cause: str) -> str:
    """The one line that says why the client cannot be generated here."""
    return (
        f"Prisma client of litellm {version or '(not installed yet)'} not generated: Prisma's engines cannot be "
        f"downloaded ({cause}); set {' and '.join(PRISMA_LOCAL_ENGINES)} (or PRISMA_ENGINES_MIRROR) in litellm_env"
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
    settings: dict,
    sandbox: bool,
    python: str = layout.SYSTEM_PYTHON,
    python_version: str | None = None,
):
    """The venv at VENV_PATH holds a Prisma client generated from its litellm's schema.prisma.

    + pins: the pinned versions of litellm and prisma (a venv whose litellm or prisma changes is generated again)
    + settings: the PRISMA_* variables of litellm_env (``render.prisma_env``), passed to ``prisma generate``; the
      host snapshot probed the engines' download host they name (``render.prisma_probe``)
    + sandbox: a host whose proxy runs without a database: missing engines are a no-op there
    + python, python_version: the interpreter the venv is built with: a venv its operation rebuilds in this run
      (``venv_replaces_prisma``) holds no generated client, so it is generated again
    """
    installed = snapshot.current().venv_at(venv_path)["packages"] or {}
    changing = any(installed.get(name) != version for name, version in pins.items())
    changing = changing or venv_replaces_prisma(venv_path, "root", python, python_version)
    state = snapshot.current().prisma_at(venv_path, prisma_probe(settings))
    if state is None:  # this item fails alone: the host's other operations still run
        text = f"the Prisma client state of {venv_path} could not be read"
        drift.record("error", text, "read")
        yield FunctionCommand(_fail_alone, (text,), {})
        return
    if state["generated"] and not changing and state.get("compiled"):
        host.noop(f"the Prisma client in {venv_path} is generated from litellm {pins.get('litellm')}'s schema")
        return
    if state["generated"] and not changing:  # generated by an earlier runner, which did not compile it
        drift.record("prisma-client", "generated, not compiled", "generated and compiled")
        yield StringCommand(
            f"{as_account('root', 'root', '/root')} /bin/sh -c {shlex.quote(COMPILE)} prisma-compile "
            f"{shlex.quote(venv_path)}"
        )
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
            settings=prisma_env(d),
            sandbox=not uses_database(d),
            python=d.litellm_python,
            python_version=snapshot.current().python_at(d.litellm_python)["version"],
            _timeout=GENERATE_TIMEOUT,
        )
    ]
