"""The runner as an installed package, used from another pyinfra project (issue #14 items 1 and 2).

The wheel holds real copies of the top-level tasks/, files/ and templates/ (no links); an empty
venv gets ``pip install <clone>``, and its Python, outside the clone, imports the tasks and finds
every host tool. Then the example project (examples/: its own inventory, group_data and deploy.py
that imports the packaged deploy), run with that venv's pyinfra, converges the session sandbox with
its own settings over the packaged defaults, and a second run changes nothing. The sandbox is then
converged by the repository's deploy again, as the other test files expect it.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest
import yaml

from litellm_runner import sandbox
from litellm_runner.settings import DEFAULTS
from tests.support.hosts import REPO, Run, pyinfra

ROOT = "/home/litellm/litellm"
SHIPPED = ("tasks", "files", "templates")  # top-level folders the build copies into the package
PIP = ["--disable-pip-version-check", "--no-input", "-q"]


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point a tool at the clone or its venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LITELLM_INVENTORY")}
    return {**env, **extra}


def _run(cmd: list[str], cwd: pathlib.Path, timeout: float, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_clean_env(**env), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd[:4])}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


def _clone_files(folder: str) -> set[str]:
    """Paths (relative to the clone) of the files under FOLDER the package must ship."""
    base = REPO / folder
    return {
        str(p.relative_to(REPO))
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """(the wheel built from the clone, an empty venv with ``pip install <clone>``)."""
    tmp = tmp_path_factory.mktemp("package")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp, 120)
    pip = str(venv / "bin" / "pip")
    _run([pip, "wheel", *PIP, "--no-deps", "-w", str(tmp / "dist"), str(REPO)], tmp, 600)
    _run([pip, "install", *PIP, str(REPO)], tmp, 900)
    _run([pip, "install", *PIP, "uv==0.13.9"], tmp, 300)  # litellm-runner lock: uv beside the runner's Python
    (wheel,) = (tmp / "dist").glob("litellm_runner-*.whl")
    return wheel, venv


def test_wheel_holds_copies_of_the_shipped_folders(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        entries = {i.filename: i for i in archive.infolist()}
    links = [name for name, info in entries.items() if stat.S_ISLNK(info.external_attr >> 16)]
    assert links == []
    for folder in SHIPPED:
        wanted = {f"litellm_runner/{path}" for path in _clone_files(folder)}
        assert wanted and wanted <= set(entries), sorted(wanted - set(entries))
    assert not [name for name in entries if "__pycache__" in name or name.endswith(".pyc")]


def test_installed_package_runs_outside_the_clone(built, tmp_path):
    _, venv = built
    probe = (
        "import json, sys, litellm_runner, litellm_runner.tasks.config\n"
        "from litellm_runner import deploy_litellm, resources\n"
        "tools = resources.host_tools()\n"
        "print(json.dumps({'package': litellm_runner.__file__, 'deploy': deploy_litellm.__name__,\n"
        "    'tasks': litellm_runner.tasks.config.__file__, 'tasks twice': 'tasks' in sys.modules,\n"
        "    'tools': sorted(tools), 'found': all(p.is_file() for p in tools.values()),\n"
        "    'links': [str(p) for p in resources.PACKAGE.rglob('*') if p.is_symlink()]}))\n"
    )
    found = json.loads(_run([str(venv / "bin" / "python"), "-c", probe], tmp_path, 120).stdout)
    assert pathlib.Path(found["package"]).is_relative_to(venv)
    assert found["deploy"] == "deploy_litellm"
    # the tasks under their one name, the package's own copy
    assert pathlib.Path(found["tasks"]).is_relative_to(venv) and found["tasks twice"] is False
    # every file of files/bin, and the env-file codec they import (litellm_runner/envfile.py)
    assert found["tools"] == sorted([*(pathlib.Path(p).name for p in _clone_files("files/bin")), "litellm_envfile.py"])
    assert found["found"] is True
    assert found["links"] == []
    # the console script of [project.scripts]
    assert "check" in _run([str(venv / "bin" / "litellm-runner"), "--help"], tmp_path, 120).stdout


@pytest.fixture(scope="module")
def example(host, tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """(a copy of the example project, the sandbox's host data file its inventory reads)."""
    tmp = tmp_path_factory.mktemp("example")
    project = tmp / "project"
    shutil.copytree(
        REPO / "examples", project, ignore=shutil.ignore_patterns(".secrets", ".litellm-runner", "__pycache__")
    )
    host_json = tmp / "host.json"
    data = sandbox.host_data(host.name)
    del data["litellm_num_workers"]  # the example's group_data sets its own (host data would win)
    host_json.write_text(json.dumps(data))
    return project, host_json


@pytest.fixture(scope="module")
def example_runs(built, host, example):
    """The example project (a copy) run twice with the installed venv's pyinfra; afterwards the
    repository's deploy converges the sandbox back to its own settings."""
    _, venv = built
    project, host_json = example

    def run() -> Run:
        proc = subprocess.run(
            [str(venv / "bin" / "pyinfra"), "inventory.py", "deploy.py", "-y", "--json"],
            cwd=project,
            env=_clean_env(LITELLM_EXAMPLE_SANDBOX=str(host_json), PYINFRA_PROGRESS="off"),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    yield run(), run()
    back = pyinfra([host.name], "-y")
    assert back.returncode == 0, back.why


def test_example_project_converges_then_changes_nothing(example_runs, host):
    first, second = example_runs
    assert first.returncode == 0, first.stderr[-3000:]
    # the example's request_timeout differs from the incident's and from the default: the config changes
    assert "Rendered config /etc/litellm/config.generated.yaml content | cfg-01" in first.changed(host.name)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.changed(host.name) == []


@pytest.mark.parametrize(
    "read, expected",
    [
        # the example's group_data/all.py over the packaged defaults
        (lambda config, unit: config["litellm_settings"]["request_timeout"], 60),
        (lambda config, unit: "--num_workers 1" in unit, True),
        # a setting the example leaves alone: the packaged default
        (
            lambda config, unit: config["general_settings"]["database_connection_pool_limit"],
            DEFAULTS["general_settings"]["database_connection_pool_limit"],
        ),
    ],
    ids=["group-data-request-timeout", "group-data-workers", "default-pool-limit"],
)
def test_example_settings_take_precedence_over_defaults(example_runs, host, read, expected):
    config = yaml.safe_load(host.out("cat /etc/litellm/config.generated.yaml"))
    unit = host.out("cat /etc/systemd/user/litellm.service")
    assert read(config, unit) == expected


def _runner(venv: pathlib.Path, args: list[str], cwd: pathlib.Path, timeout: float, **env: str):
    """``litellm-runner ARGS`` of the installed venv, run in CWD (outside the project and the clone)."""
    cmd = [str(venv / "bin" / "litellm-runner"), *args]
    return subprocess.run(cmd, cwd=cwd, env=_clean_env(**env), capture_output=True, text=True, timeout=timeout)


def test_example_project_validates_and_checks_from_outside_its_folder(built, example, example_runs, tmp_path):
    """The installed command, run from another folder with ``--project``: the example's desired state is
    valid (no host contacted), and after the example's converge the drift check finds nothing."""
    _, venv = built
    project, host_json = example
    valid = _runner(
        venv, ["validate", "--project", str(project)], tmp_path, 300, LITELLM_EXAMPLE_SANDBOX=str(host_json)
    )
    assert valid.returncode == 0, valid.stdout[-2000:] + valid.stderr[-2000:]
    assert "Traceback" not in valid.stdout + valid.stderr
    check = _runner(
        venv, ["check", "--project", str(project), "--quiet"], tmp_path, 900, LITELLM_EXAMPLE_SANDBOX=str(host_json)
    )
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert "0 of 1 hosts drifted" in check.stdout, check.stdout[-2000:]
    # and a project without a deploy file is named as such, not a traceback
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "inventory.py").write_text("hosts = []\n")
    nodeploy = _runner(venv, ["check", "--project", str(bare)], tmp_path, 120)
    assert nodeploy.returncode == 1 and "no deploy file" in nodeploy.stderr, nodeploy.stderr[-2000:]


def test_example_project_locks_its_own_pins(built, example, tmp_path):
    """``litellm-runner lock --project`` of the installed package locks a project's own pins file: the full
    closure with hashes, one lock per host Python, the pins' own versions kept."""
    _, venv = built
    project = tmp_path / "project"
    shutil.copytree(example[0], project)
    pins = project / "files" / "litellm-venv-requirements.txt"
    pins.parent.mkdir()
    shutil.copy(REPO / "files" / "litellm-venv-requirements.txt", pins)
    done = _runner(venv, ["lock", "--project", str(project)], tmp_path, 900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    locks = sorted((project / "files" / "locks").glob("litellm-venv-requirements.py3.*.txt"))
    assert [p.name for p in locks] == [
        "litellm-venv-requirements.py3.11.txt",
        "litellm-venv-requirements.py3.13.txt",
    ]
    for lock in locks:
        text = lock.read_text().lower()
        assert "--hash=sha256:" in text
        for pin in ("litellm==1.102.4", "litellm-proxy-extras==0.4.97", "prisma==0.11.0"):  # the pins' own
            assert f"\n{pin} " in text or f"\n{pin}\\" in text or f"\n{pin}\n" in text, (lock.name, pin)
