"""One front door: in a clone the shipped folders are the top-level ones, found without links, and the
tasks import under one name (tests/integration/test_package.py checks the same from an installed wheel)."""

import json
import subprocess
import sys

from litellm_runner.resources import DATA, PACKAGE, shipped
from tests.unit.group_data import REPO

SHIPPED = ("tasks", "files", "templates")


def test_the_shipped_folders_are_the_clones_top_level_ones():
    assert (PACKAGE, DATA) == (REPO / "litellm_runner", REPO)
    assert [shipped(folder) for folder in SHIPPED] == [REPO / folder for folder in SHIPPED]
    assert shipped("files/locks") == REPO / "files" / "locks"
    assert shipped("envfile.py") == REPO / "litellm_runner" / "envfile.py"
    assert shipped("templates", "litellm.service.j2").is_file()  # every template in templates/
    folders = [REPO / "litellm_runner", *(REPO / folder for folder in SHIPPED)]
    assert [str(p) for folder in folders for p in folder.rglob("*") if p.is_symlink()] == []


def test_the_tasks_import_under_one_name(tmp_path):
    probe = (
        "import json, sys, litellm_runner.tasks.config as c\n"
        "print(json.dumps([c.__file__, sorted(m for m in sys.modules if m.split('.')[0] == 'tasks')]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == [str(REPO / "tasks" / "config.py"), []]
