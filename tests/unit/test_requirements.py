"""The package's runtime dependencies (pyproject.toml) are pinned exactly as in requirements.in,
and requirements.txt (the hash-locked closure CI installs) locks each at that version."""

import pathlib
import tomllib

from packaging.requirements import Requirement

REPO = pathlib.Path(__file__).resolve().parents[2]


def requirements(text: str) -> dict[str, Requirement]:
    reqs = [Requirement(line.split("#")[0].strip()) for line in text.splitlines() if line.split("#")[0].strip()]
    return {r.name.lower(): r for r in reqs}


def test_pyproject_dependencies_are_those_of_requirements_in():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    project = {r.name.lower(): r for r in map(Requirement, declared)}
    dev = requirements((REPO / "requirements.in").read_text())
    assert project, "pyproject.toml declares no dependencies"
    for name, req in project.items():
        assert name in dev, f"{name} is a dependency of the package but not in requirements.in"
        assert str(req.specifier) == str(dev[name].specifier), name
        assert req.extras == dev[name].extras, name


def test_requirements_txt_locks_every_pin_of_requirements_in_with_hashes():
    text = (REPO / "requirements.txt").read_text()
    locked = {}
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.split(" ")[0].partition("==")
            locked[name.split("[")[0].lower()] = version
    for name, req in requirements((REPO / "requirements.in").read_text()).items():
        assert name in locked, f"{name} is not in requirements.txt: run make requirements"
        assert req.specifier.contains(locked[name]), f"{name}: {locked[name]} does not satisfy {req.specifier}"
    assert text.count("--hash=sha256:") >= len(locked)
