"""The database plan root's snapshot runs as the account (``hostside.Planning``), run for real on this machine.

Each row ships a ``bin/`` folder (the runner's plan modules, or a stand-in ``litellm_dbctl.py`` whose sha256 the
question names), a venv and an env file, then runs the exact command the deploy sends (``facts.hostside``: root's
/usr/bin/python3, isolated) with ``nobody`` playing the account, and checks what the deploy would read.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from types import SimpleNamespace

import pytest

from litellm_runner.pyinfra_ext import database
from litellm_runner.pyinfra_ext.facts import hostside
from litellm_runner.resources import host_tools
from tests.unit.group_data import defaults

USER, GROUP, HOME = "nobody", "nogroup", "/nonexistent"
PASSWORD = "pw-never-shown-4711"
UNREACHABLE = f"postgresql://litellm:{PASSWORD}@127.0.0.1:1/litellm"  # nothing listens on port 1
ROOTS_KEYRING = "litellm-test-roots-session"
STAND_IN = """import os
def plan(scopes, desired_b64, env_file, connect_timeout=5, migrations=None, libpq=None, kept=None):
    {body}
"""


@pytest.fixture
def shipped():
    """A folder nobody can read into (the account's view of root's ``bin/``, venv and env file)."""
    top = tempfile.mkdtemp(prefix="litellm-hostplan-")
    os.chmod(top, 0o755)  # noqa: S103 - the account reads root's bin/ and venv as on a host
    venv = f"{top}/venv"
    os.makedirs(f"{venv}/bin")
    os.symlink("/usr/bin/python3", f"{venv}/bin/python")
    os.makedirs(f"{venv}/lib/python3/site-packages/litellm_proxy_extras/migrations")
    os.makedirs(f"{top}/bin")
    yield top
    shutil.rmtree(top)


def question(top: str, url: str = UNREACHABLE, dbctl: str | None = None, **over) -> dict:
    """The plan's question for the folder TOP: the runner's modules in its bin/ (or DBCTL, a stand-in's body)."""
    for name, source in host_tools().items():
        shutil.copy(source, f"{top}/bin/{name}")
    if dbctl is not None:
        with open(f"{top}/bin/litellm_dbctl.py", "w") as handle:
            handle.write(STAND_IN.format(body=dbctl))
    names = ["litellm_dbctl.py"] if dbctl is not None else list(database.PLAN_MODULES)
    modules = {
        f"{top}/bin/{n}": hashlib.sha256(open(f"{top}/bin/{n}", "rb").read()).hexdigest()  # noqa: SIM115
        for n in names
    }
    env = f"{top}/env.litellm"
    with open(env, "w") as handle:
        handle.write(f"DATABASE_URL={url}\n")
    os.chown(env, 0, 65534)  # root's, the account's group reads it (0640), as the deploy writes it
    os.chmod(env, 0o640)
    desired = database.desired_state(SimpleNamespace(**defaults()))
    args = {
        "user": USER,
        "group": GROUP,
        "home": HOME,
        "scopes": ["settings", "schema"],
        "desired_b64": database.encode(desired),
        "timeout": 2,
        "env_file": env,
        "venvs": [f"{top}/missing-venv", f"{top}/venv"],
        "bin": f"{top}/bin",
        "modules": modules,
        "limit": 20,
        "key": "k",
    }
    return {**args, **over}


def roots_session() -> None:
    """Root's command in a session keyring of its own, as pam_keyinit gives an SSH session."""
    ctypes.CDLL(None).syscall(250, 1, ROOTS_KEYRING.encode())  # KEYCTL_JOIN_SESSION_KEYRING, named


def plan(args: dict, env: dict | None = None):
    command = hostside("plan", args)
    proc = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=60, env=env, preexec_fn=roots_session
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def differs(top: str) -> dict:
    args = question(top)
    with open(f"{top}/bin/litellm_pq.py", "a") as handle:
        handle.write("# another runner's\n")
    return args


def missing(top: str) -> dict:
    args = question(top)
    os.unlink(f"{top}/bin/litellm_migrations.py")
    return args


def linked(top: str) -> dict:
    args = question(top)
    os.rename(f"{top}/bin/litellm_pq.py", f"{top}/litellm_pq.py")
    os.symlink(f"{top}/litellm_pq.py", f"{top}/bin/litellm_pq.py")  # the same content, through a link
    return args


@pytest.mark.parametrize(
    "case,make",
    [
        ("a plan module another runner shipped", differs),
        ("a plan module missing", missing),
        ("no venv", lambda top: question(top, venvs=[f"{top}/missing-venv"])),
        ("a plan module that is a link", linked),
    ],
)
def test_the_plan_cannot_run_yet(shipped, case, make):
    """The plan's modules as this runner ships them, and a venv, or no plan (None: the converge ships dbctl,
    repairs the venv and plans again); nothing is run."""
    assert plan(make(shipped)) is None, case


def test_an_unreachable_database_is_code_3_with_one_line_and_no_password(shipped):
    """The runner's own plan modules, run as the account in root's interpreter: the database is named
    (host:port/database) with the cause, never the password, exit code 3 (``database.UNREACHABLE``)."""
    found = plan(question(shipped))
    assert found["code"] == database.UNREACHABLE
    assert found["error"].startswith("database 127.0.0.1:1/litellm unreachable: ")
    assert PASSWORD not in json.dumps(found) and "\n" not in found["error"]


def test_the_child_has_the_accounts_ids_and_a_small_fixed_environment(shipped):
    """Nothing of root's session reaches the plan (PG* variables libpq would read, SSH's agent, its session
    keyring): the child has HOME, PATH and LANG only, a new session keyring, the account's uid and group, and
    root's bin/ first on its path."""
    body = (
        "import sys, ctypes\n    held = ctypes.create_string_buffer(256)\n"
        "    ctypes.CDLL(None).syscall(250, 6, -3, held, 256)\n"  # KEYCTL_DESCRIBE of the session keyring
        "    return {'scopes': {'env': dict(os.environ), 'ids': [os.getuid(), os.getgid(), "
        "os.getgroups()], 'path0': sys.path[0], 'dbctl': __file__, 'keyring': held.value.decode()}, "
        "'max_connections': 1}"
    )
    roots = {**os.environ, "PGPASSWORD": "root-leak", "PGHOST": "elsewhere", "SSH_AUTH_SOCK": "/tmp/agent"}
    found = plan(question(shipped, dbctl=body), env=roots)
    assert found["max_connections"] == 1
    seen = found["scopes"]
    assert seen["env"] == {"HOME": HOME, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    assert seen["ids"] == [65534, 65534, []]
    assert seen["path0"] == f"{shipped}/bin" and seen["dbctl"] == f"{shipped}/bin/litellm_dbctl.py"
    assert ROOTS_KEYRING not in seen["keyring"]  # root's session keyring (pam_keyinit's, under SSH) left behind


@pytest.mark.parametrize(
    "case,body,limit,expected",
    [
        ("the venv's migrations and libpq given", "return {'scopes': {'given': [migrations, libpq]}}", 20, None),
        ("more than the bound", "return {'scopes': {'x': 'y' * (9 << 20)}}", 20, 124),
        ("longer than its limit", "import time; time.sleep(30)", 1, 124),
        ("a failure of its own", "raise KeyError('DATABASE_URL=' + open(env_file).read())", 20, 1),
    ],
)
def test_the_plan_is_bounded(shipped, case, body, limit, expected):
    """Root reads at most PLAN_OUTPUT bytes within the plan's limit; a plan that fails unexpectedly is named by
    its class only (its message may hold anything it read)."""
    found = plan(question(shipped, dbctl=body, limit=limit))
    if expected is None:
        site = f"{shipped}/venv/lib/python3/site-packages"
        assert found["scopes"]["given"] == [f"{site}/litellm_proxy_extras/migrations", "libpq.so.5"], case
    else:
        assert found["code"] == expected, case
        assert PASSWORD not in found["error"] and len(found["error"]) < 200, case


def test_the_snapshot_answers_the_plan_beside_the_rest(shipped):
    """With ``plan`` the snapshot's own command answers it, under the question's key (one command)."""
    args = {"paths": [], "user": "root", "units": [], "venv": "/nonexistent", "plan": question(shipped)}
    proc = subprocess.run(["sh", "-c", hostside("snapshot", args)], capture_output=True, text=True, timeout=60)
    doc = json.loads(proc.stdout)
    assert doc["plan_key"] == "k" and doc["plan"]["code"] == database.UNREACHABLE


@pytest.mark.parametrize(
    "case,files,expected",
    [
        (
            "psycopg-binary's libpq",
            ["psycopg_binary.libs/libpq-1a2b3c.so.5.17"],
            "psycopg_binary.libs/libpq-1a2b3c.so.5.17",
        ),
        ("the system's libpq without it", ["psycopg_binary.libs/libssl-9f.so.3"], "libpq.so.5"),
    ],
)
def test_the_venv_gives_its_migrations_and_libpq_as_paths(shipped, case, files, expected):
    """The plan takes from the venv only paths (nothing of its packages is imported): the migrations folder and
    the libpq psycopg-binary ships, else the system's."""
    from litellm_runner.pyinfra_ext import hostside as host_code

    site = f"{shipped}/venv/lib/python3/site-packages"
    for rel in files:
        os.makedirs(os.path.dirname(f"{site}/{rel}"), exist_ok=True)
        open(f"{site}/{rel}", "w").close()  # noqa: SIM115
    found = host_code.plan_venv([f"{shipped}/missing-venv", f"{shipped}/venv"])
    libpq = expected if expected == "libpq.so.5" else f"{site}/{expected}"
    assert found == {"migrations": f"{site}/litellm_proxy_extras/migrations", "libpq": libpq}, case


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Root's cache folder (0700) in the test's folder, as the host's ``/var/cache/litellm-runner``."""
    from litellm_runner.pyinfra_ext import hostside as host_code

    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(host_code.layout, "HOSTSIDE_CACHE", str(folder))
    return host_code, folder


def test_a_kept_replay_is_read_back_and_the_others_go(cache):
    """``keep`` writes root's 0600 file (its sha256 first), ``kept`` reads it back; keeping another venv's replay
    removes this one, and leaves what is kept of another kind (a venv's distributions)."""
    host_code, folder = cache
    host_code.keep("dists-x.json", "{}")
    host_code.keep("replay-a.json", '{"format": 1}')
    assert host_code.kept("replay-a.json") == '{"format": 1}'
    st = (folder / "replay-a.json").stat()
    assert (st.st_uid, oct(st.st_mode & 0o777)) == (0, "0o600")
    host_code.keep("replay-b.json", "{}")
    assert sorted(p.name for p in folder.iterdir()) == ["dists-x.json", "replay-b.json"]


@pytest.mark.parametrize(
    "case",
    ["torn", "another owner", "readable by others", "a link", "a folder", "the folder open to others", "no folder"],
)
def test_a_kept_replay_root_could_not_have_written_alone_is_not_used(cache, case):
    """A kept replay is used only when root alone could have written it, whole; otherwise the plan replays."""
    host_code, folder = cache
    host_code.keep("replay-a.json", '{"format": 1}')
    path = folder / "replay-a.json"
    if case == "torn":
        path.write_bytes(path.read_bytes()[:-3])
    elif case == "another owner":
        os.chown(path, 65534, 65534)
    elif case == "readable by others":
        path.chmod(0o644)
    elif case == "a link":
        path.rename(folder / "elsewhere.json")
        path.symlink_to(folder / "elsewhere.json")
    elif case == "a folder":
        path.unlink()
        path.mkdir()
    elif case == "the folder open to others":
        folder.chmod(0o733)
    elif case == "no folder":
        shutil.rmtree(folder)
    assert host_code.kept("replay-a.json") is None, case
    host_code.keep("replay-c.json", "{}")  # and nothing is kept where root is not alone
    assert (folder / "replay-c.json").exists() is (
        case in ("torn", "another owner", "readable by others", "a link", "a folder")
    ), case
