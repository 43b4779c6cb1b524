"""The proxy's database client (tasks/prisma.py, py-02).

The state reader (``hostside.prisma_client``, part of the host snapshot) runs for real against venv
layouts on this machine and real sockets, and once through the snapshot's own command; the operation is
tested as data: facts in, commands or no-ops out.
"""

import dataclasses
import hashlib
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from litellm_runner.pyinfra_ext import hostside
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot, NotAsked
from litellm_runner.render import prisma_probe, probe_url
from litellm_runner.resources import shipped
from litellm_runner.tasks import prisma
from tests.unit.fakehost import run_op

SCHEMA = b'generator client {\n  provider = "prisma-client-py"\n}\n'
SCHEMA_SHA = hashlib.sha256(SCHEMA).hexdigest()


def layout(root, schema=SCHEMA, client=None, packaged=None):
    """A venv's site-packages with litellm's schema (None: no litellm) and a prisma package."""
    site = root / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "prisma").mkdir(parents=True)
    if schema is not None:
        (site / "litellm" / "proxy").mkdir(parents=True)
        (site / "litellm" / "proxy" / "schema.prisma").write_bytes(schema)
    if client is not None:
        (site / "prisma" / "client.py").write_text(client)
    if packaged is not None:
        (site / "prisma" / "schema.prisma").write_bytes(packaged)
    return root / "venv"


def read_state(venv, host="", port=0):
    return hostside.prisma_client(str(venv), {"host": host, "port": port, "timeout": 2} if host else None)


@pytest.mark.parametrize(
    "case,files,generated",
    [
        ("no venv", None, False),
        ("no litellm", {"schema": None}, False),
        ("not generated", {}, False),
        ("generated from litellm's schema", {"client": "# generated", "packaged": SCHEMA}, True),
        ("generated from another schema", {"client": "# generated", "packaged": b"model X {}"}, False),
        ("schema copied, no client code", {"packaged": SCHEMA}, False),
    ],
)
def test_state_reads_whether_the_client_is_generated(tmp_path, case, files, generated):
    venv = tmp_path / "missing" if files is None else layout(tmp_path, **files)
    state = read_state(venv)
    assert state["generated"] is generated and state["download"] is None  # no host named: nothing probed


def test_state_probes_the_download_host_only_when_not_generated(tmp_path):
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        up, down = listening.getsockname()[1], closed.getsockname()[1]
        missing = read_state(layout(tmp_path / "a"), "127.0.0.1", down)
        reachable = read_state(layout(tmp_path / "b"), "127.0.0.1", up)
        done = read_state(layout(tmp_path / "c", client="#", packaged=SCHEMA), "127.0.0.1", down)
    assert missing["download"] == f"127.0.0.1:{down} unreachable: Connection refused"
    assert reachable["download"] is None and done == {**done, "generated": True, "download": None}


@pytest.mark.parametrize(
    "case,plant,generated",
    [
        ("a FIFO at litellm's schema: never opened for reading", "fifo:litellm/proxy/schema.prisma", False),
        ("a FIFO at the generated schema", "fifo:prisma/schema.prisma", False),
        ("a link at the client code: not followed", "link:prisma/client.py", False),
        ("a link at the generated schema: not followed", "link:prisma/schema.prisma", False),
        ("a hard link at the client code", "hard:prisma/client.py", False),
        ("a folder at the client code", "dir:prisma/client.py", False),
        ("a client file larger than the limit", "huge:prisma/client.py", False),
        ("the prisma folder the account's link to a generated one elsewhere", "link:prisma", False),
        ("nothing planted", None, True),
    ],
)
def test_state_reads_files_as_data_and_never_blocks(tmp_path, case, plant, generated):
    """Root reads the client's files (``hostside.prisma_client``): whatever is not a single regular file reached
    without a link counts as absent, so the client is generated again; nothing is followed, blocked on or
    read whole."""
    venv = layout(tmp_path / "v", client="# generated", packaged=SCHEMA)
    site = venv / "lib" / "python3.11" / "site-packages"
    elsewhere = layout(tmp_path / "elsewhere", client="# generated", packaged=SCHEMA) / "lib/python3.11/site-packages"
    if plant:
        kind, rel = plant.split(":")
        target = site / rel
        if kind == "huge":
            with open(target, "wb") as sparse:
                sparse.truncate(hostside.PRISMA_LIMIT + 1)
        else:
            os.rename(target, tmp_path / "moved") if target.is_file() else os.rename(target, tmp_path / "moved-dir")
            {
                "fifo": lambda: os.mkfifo(target),
                "link": lambda: (target.symlink_to(elsewhere / rel), os.lchown(target, 65534, 65534)),
                "hard": lambda: os.link(tmp_path / "moved", target),
                "dir": lambda: target.mkdir(),
            }[kind]()
    state = read_state(venv)
    assert state["generated"] is generated and state["download"] is None
    assert state["schema"] == (None if "litellm/" in (plant or "") else SCHEMA_SHA)


def test_the_snapshot_command_reads_the_client_state_and_answers_only_what_it_was_asked(tmp_path):
    """One command: the host snapshot (root's interpreter, the runner's exact command) carries the state."""
    venv = str(layout(tmp_path, client="# generated", packaged=SCHEMA))
    asked = {
        "paths": [],
        "user": "root",
        "group": "root",
        "units": [],
        "venv": venv,
        "venv_link": None,
        "venv_owner": "root",
        "venv_integrity": False,
        "env_files": [],
        "dirs": [],
        "python": "",
        "debs": [],
        "prisma": None,
    }
    proc = subprocess.run(
        ["sh", "-c", HostSnapshot().command(**asked, code=True)], capture_output=True, text=True, timeout=60, check=True
    )
    found = dataclasses.replace(HostSnapshot().process(proc.stdout.splitlines()), asked=asked)
    assert found.prisma_at(venv, None) == {
        "schema": SCHEMA_SHA,
        "generated": True,
        "compiled": False,  # generated, never compiled
        "download": None,
    }
    with pytest.raises(NotAsked):
        found.prisma_at("/usr/local/lib/litellm-runner/venvs/other", None)
    with pytest.raises(NotAsked):
        found.prisma_at(venv, {"host": "binaries.prisma.sh", "port": 443, "timeout": 5})


@pytest.mark.parametrize(
    "settings,probe",
    [
        ({}, {"host": "binaries.prisma.sh", "port": 443, "timeout": 5}),
        (
            {"PRISMA_ENGINES_MIRROR": "http://mirror.example.net:8080/p"},
            {"host": "mirror.example.net", "port": 8080, "timeout": 5},
        ),
        ({"PRISMA_QUERY_ENGINE_BINARY": "/opt/q", "PRISMA_SCHEMA_ENGINE_BINARY": "/opt/s"}, None),
    ],
)
def test_probe_the_snapshot_asks(settings, probe):
    assert prisma_probe(settings) == probe


@pytest.mark.parametrize(
    "settings,url",
    [
        ({}, "https://binaries.prisma.sh"),
        ({"PRISMA_ENGINES_MIRROR": "https://mirror.example.net/prisma"}, "https://mirror.example.net/prisma"),
        ({"PRISMA_QUERY_ENGINE_BINARY": "/opt/prisma/query-engine"}, "https://binaries.prisma.sh"),
        ({"PRISMA_QUERY_ENGINE_BINARY": "/opt/q", "PRISMA_SCHEMA_ENGINE_BINARY": "/opt/s"}, None),
    ],
)
def test_probe_url(settings, url):
    assert probe_url(settings) == url


def test_prisma_env_takes_only_prisma_settings():
    from types import SimpleNamespace

    env = {"REDIS_HOST": "127.0.0.1", "PRISMA_SCHEMA_ENGINE_BINARY": "/opt/s", "PRISMA_QUERY_ENGINE_BINARY": "/opt/q"}
    d = SimpleNamespace(litellm_env=env, litellm_query_engine=False)
    assert prisma.prisma_env(d) == {"PRISMA_QUERY_ENGINE_BINARY": "/opt/q", "PRISMA_SCHEMA_ENGINE_BINARY": "/opt/s"}


def test_prisma_env_with_the_shipped_engine_names_it_and_its_cli():
    """litellm_query_engine: generate downloads nothing (both engines set) and installs no CLI (its cache dir)."""
    from types import SimpleNamespace

    from litellm_runner import query_engine

    d = SimpleNamespace(litellm_env={"PRISMA_QUERY_ENGINE_BINARY": "/opt/q"}, litellm_query_engine=True)
    where = query_engine.install_dir()
    assert prisma.prisma_env(d) == {
        "PRISMA_BINARY_CACHE_DIR": where,
        "PRISMA_QUERY_ENGINE_BINARY": f"{where}/query-engine",
        "PRISMA_SCHEMA_ENGINE_BINARY": f"{where}/schema-engine",
    }
    assert probe_url(prisma.prisma_env(d)) is None


def test_pins_name_the_client_litellm_needs():
    """The shipped pins: litellm and the prisma version its code works with (0.13+ lacks _Prisma__engine)."""
    assert prisma.pinned(shipped("files", "litellm-venv-requirements.txt")) == {
        "litellm": "1.102.4",
        "prisma": "0.11.0",
    }


PINS = {"litellm": "1.102.4", "prisma": "0.11.0"}
CAUSE = "binaries.prisma.sh:443 unreachable: Temporary failure in name resolution"


def op(state, installed=None, sandbox=False, settings=None, venv=None):
    """VENV: the venv's state (``Snapshot.venv_at``) before its own operation; by default a sound venv holding
    INSTALLED (and pip), or none when INSTALLED is None."""
    from tests.unit.fakehost import snap

    sound = {"python": "/usr/bin/python3", "exists": True, "home": "/usr/bin", "version": "3.11.2", "broken": {}}
    venv = venv or {**sound, "packages": None if installed is None else {**installed, "pip": "25.0"}}
    return run_op(
        prisma.prisma_client,
        facts={HostSnapshot: snap(venv=venv, prisma=state)},
        venv_path="/usr/local/lib/litellm-runner/venv",
        pins=PINS,
        settings=settings or {},
        sandbox=sandbox,
    )


def test_a_generated_client_of_the_installed_release_is_a_noop():
    commands, noops = op({"generated": True, "compiled": True, "download": None}, installed=dict(PINS))
    assert commands == [] and noops == [
        "the Prisma client in /usr/local/lib/litellm-runner/venv is generated from litellm 1.102.4's schema"
    ]


@pytest.mark.parametrize(
    "state,installed",
    [
        ({"generated": False, "download": None}, dict(PINS)),  # never generated, engines downloadable
        ({"generated": True, "download": None}, {**PINS, "litellm": "1.101.0"}),  # litellm changes in this run
        ({"generated": True, "download": None}, None),  # no venv yet
    ],
)
def test_generates_as_root_into_roots_venv_with_its_prisma(state, installed):
    commands, noops = op(state, installed, settings={"PRISMA_ENGINES_MIRROR": "https://m.example/p"})
    assert noops == [] and len(commands) == 1
    command = commands[0]
    assert command.startswith("cd / && runuser -u root -g root -- env -i HOME=/root ")  # a reset environment
    assert "PRISMA_ENGINES_MIRROR=https://m.example/p /bin/sh -c " in command
    assert command.endswith(" prisma-generate /usr/local/lib/litellm-runner/venv")
    assert '-m prisma generate --schema "$schema" && ' in prisma.GENERATE and "sudo" not in command
    assert prisma.GENERATE.endswith(prisma.COMPILE)  # then compiled, as root


def test_a_client_generated_but_not_compiled_is_compiled_alone():
    """A client an earlier runner generated and did not compile: root compiles it, nothing generated again."""
    from tests.unit import fakehost

    commands, noops = op({"generated": True, "compiled": False, "download": None}, installed=dict(PINS))
    assert noops == [] and len(commands) == 1
    assert commands[0].startswith("cd / && runuser -u root -g root -- env -i HOME=/root ")
    assert commands[0].endswith(" prisma-compile /usr/local/lib/litellm-runner/venv")
    assert "compileall" in commands[0] and "generate" not in commands[0]
    assert fakehost.last_drift[0]["kind"] == "prisma-client"


def compiled_layout(root):
    """A generated client whose PRISMA_COMPILED modules are compiled as ``prisma.COMPILE`` compiles them."""
    venv = layout(root, client="X = 1\n", packaged=SCHEMA)
    package = venv / "lib" / "python3.11" / "site-packages" / "prisma"
    for name in ("types.py", "models.py", "actions.py"):
        (package / name).write_text("Y = 2\n")
    subprocess.run([sys.executable, "-I", "-m", "compileall", "-q", str(package)], check=True, timeout=120)
    return venv, package


@pytest.mark.parametrize(
    "case,change,compiled",
    [
        ("every module compiled as it is", None, True),
        ("a module changed after", lambda p: (p / "types.py").write_text("Y = 3333\n"), False),
        ("a compiled module missing", lambda p: next((p / "__pycache__").glob("models.*.pyc")).unlink(), False),
        ("no __pycache__", lambda p: subprocess.run(["rm", "-rf", str(p / "__pycache__")], check=True), False),
        (
            "a link in place of a compiled module",
            lambda p: (lambda pyc: (pyc.unlink(), pyc.symlink_to("/dev/null")))(
                next((p / "__pycache__").glob("client.*.pyc"))
            ),
            False,
        ),
        ("a FIFO in place of a module", lambda p: ((p / "actions.py").unlink(), os.mkfifo(p / "actions.py")), False),
    ],
)
def test_state_reads_whether_roots_compiled_client_is_current(tmp_path, case, change, compiled):
    """``compiled``: each of the largest generated modules has this interpreter's pyc made from it as it is now
    (its mtime and size), read from the headers alone, no link followed, nothing blocking."""
    venv, package = compiled_layout(tmp_path)
    if change is not None:
        os.utime(package / "types.py", (1, 1)) if case == "a module changed after" else None
        change(package)
    state = read_state(venv)
    assert state["generated"] is True and state["compiled"] is compiled, case


@pytest.mark.parametrize(
    "venv",
    [
        {"hostile": True, "packages": dict(PINS), "broken": {}},  # displaced and built again: its client is gone
        {"hostile": False, "packages": None, "broken": {}},  # no venv: built in this run
    ],
)
def test_a_venv_its_operation_builds_again_gets_its_client_generated_again(venv):
    """The client's state was read before the venv's operation: a generated client in a venv that is rebuilt in
    this run is gone after it (issue #22's repairs of root's venv), so it is generated again."""
    commands, noops = op({"generated": True, "download": None}, installed=dict(PINS), venv=venv)
    assert (
        noops == []
        and len(commands) == 1
        and commands[0].endswith(" prisma-generate /usr/local/lib/litellm-runner/venv")
    )


def test_missing_engines_in_the_sandbox_say_so_in_one_line(caplog):
    with caplog.at_level("WARNING", logger="litellm_runner"):
        commands, noops = op({"generated": False, "download": CAUSE}, sandbox=True)
    assert commands == [] and len(noops) == 1 and "\n" not in noops[0]
    assert [r.getMessage() for r in caplog.records] == [f"[fake-host] {noops[0]}"]  # shown without -v too
    assert noops[0] == (
        "Prisma client of litellm 1.102.4 not generated: Prisma's engines cannot be downloaded "
        f"({CAUSE}); set PRISMA_QUERY_ENGINE_BINARY and PRISMA_SCHEMA_ENGINE_BINARY (or PRISMA_ENGINES_MIRROR) "
        "in litellm_env (sandbox: the proxy runs without a database)"
    )


def test_a_state_that_could_not_be_read_fails_this_item_alone():
    from tests.unit import fakehost

    commands, noops = op(None, installed=dict(PINS))
    assert noops == [] and len(commands) == 1 and "_fail_alone" in commands[0]
    assert fakehost.last_drift[0]["after"] == "read"


def test_missing_engines_fail_a_production_host():
    from tests.unit import fakehost

    commands, noops = op({"generated": False, "download": CAUSE})
    assert noops == [] and len(commands) == 1 and "_refuse" in commands[0]
    assert fakehost.last_drift[0]["kind"] == "prisma-client" and CAUSE in fakehost.last_drift[0]["after"]


def test_engine_settings_are_accepted_in_litellm_env():
    """Air-gapped hosts set Prisma's variables in litellm_env: the desired-state check takes them as they are."""
    from litellm_runner import schema
    from tests.unit.group_data import defaults

    data = defaults()
    data["litellm_env"] = {
        **data["litellm_env"],
        "PRISMA_QUERY_ENGINE_BINARY": "/opt/prisma/query-engine-debian-openssl-3.0.x",
        "PRISMA_SCHEMA_ENGINE_BINARY": "/opt/prisma/schema-engine-debian-openssl-3.0.x",
        "PRISMA_ENGINES_MIRROR": "https://mirror.example.net/prisma",
        "PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING": "1",
    }
    assert schema.validate(data) == []
    assert probe_url(prisma.prisma_env(SimpleNamespace(**data))) is None
