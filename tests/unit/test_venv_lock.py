"""The host's venv lock: made from the current pins, for every host Python; closure drift; the Python refusal."""

import hashlib
import re

import pytest
from pyinfra.context import ctx_host

from litellm_runner.gates import cve as cve_gate
from litellm_runner.gates.cve import PYTHONS, lock_path, lock_paths, lock_problems, locked_versions, read_lock
from litellm_runner.pyinfra_ext.operations import venv_drift
from tests.unit import fakehost
from tests.unit.group_data import REPO, defaults

PINS = REPO / defaults()["litellm_venv_requirements"]
HASH = "--hash=sha256:" + "ab" * 32


# -- the shipped locks ------------------------------------------------------------------------
@pytest.mark.parametrize("python", PYTHONS)
def test_shipped_lock_was_made_from_the_current_pins(python):
    """Fails when the pins were edited without `make lock` (or a lock was edited by hand)."""
    lock = lock_path(PINS, python)
    assert lock.is_file(), f"{lock} missing: run `make lock`"
    header = read_lock(lock.read_text())
    assert header["python"] == python
    assert header["pins-sha256"] == hashlib.sha256(PINS.read_bytes()).hexdigest(), "run `make lock`"
    assert lock_problems(PINS, lock) == []


@pytest.mark.parametrize("python", PYTHONS)
def test_shipped_lock_is_the_whole_closure_hashed_without_compromised_releases(python):
    text = lock_path(PINS, python).read_text()
    packages = read_lock(text)["packages"]
    assert len(packages) == len(re.findall(r"^[a-z0-9][^ ]*==", text, re.M)) > 50  # every line parsed
    assert all(version and hashes for version, hashes in packages.values())
    # transitive dependencies are there, not only the pins
    assert {"litellm", "urllib3", "pyasn1", "httpx", "pydantic", "openai"} <= set(packages)
    assert packages["litellm"][0] not in cve_gate.COMPROMISED["litellm"]


def test_the_default_pins_have_a_lock_for_each_host_python():
    assert sorted(lock_paths(PINS)) == sorted(PYTHONS) == ["3.11", "3.13"]


# -- lock vs pins: a table --------------------------------------------------------------------
def _lock(pins_text, python="3.11", body=None, sha=None):
    sha = sha or hashlib.sha256(pins_text.encode()).hexdigest()
    body = (
        body
        if body is not None
        else f"litellm==1.102.4 \\\n    {HASH}\nurllib3==2.8.0 \\\n    {HASH}\n    # via litellm\n"
    )
    return f"# pins: p.txt\n# pins-sha256: {sha}\n# python: {python}\n{body}"


PINS_TEXT = "litellm[proxy]==1.102.4  # the proxy\nurllib3>=2.7.0\n"
LOCK_CASES = [  # (case, pins text, lock text, expected problem fragments)
    ("current", PINS_TEXT, _lock(PINS_TEXT), []),
    (
        "pins-edited",
        PINS_TEXT + "redis>=5\n",
        _lock(PINS_TEXT),
        ["made from other pins than", "pin redis>=5 is not in the lock"],
    ),
    (
        "pin-unsatisfied",
        PINS_TEXT.replace(">=2.7.0", ">=2.9"),
        None,
        ["urllib3 2.8.0 does not satisfy the pin urllib3>=2.9"],
    ),
    ("python-mismatch", PINS_TEXT, _lock(PINS_TEXT, python="3.13"), ["header says python '3.13', its name says 3.11"]),
    (
        "unhashed",
        PINS_TEXT,
        _lock(PINS_TEXT, body=f"litellm==1.102.4 \\\n    {HASH}\nurllib3==2.8.0\n"),
        ["urllib3: expected name==version with --hash lines"],
    ),
    (
        "unpinned",
        PINS_TEXT,
        _lock(PINS_TEXT, body=f"litellm==1.102.4 \\\n    {HASH}\nurllib3>=2.8 \\\n    {HASH}\n"),
        ["pin urllib3>=2.7.0 is not in the lock", "urllib3: expected name==version"],
    ),
    (
        "compromised",
        "litellm>=1.80\n",
        _lock("litellm>=1.80\n", body=f"litellm==1.82.7 \\\n    {HASH}\n"),
        ["litellm 1.82.7 is a compromised release"],
    ),
]


@pytest.mark.parametrize("case, pins_text, lock_text, expected", LOCK_CASES, ids=[c[0] for c in LOCK_CASES])
def test_lock_problems(tmp_path, case, pins_text, lock_text, expected):
    pins = tmp_path / "p.txt"
    pins.write_text(pins_text)
    lock = lock_path(pins, "3.11")
    lock.parent.mkdir()
    lock.write_text(
        lock_text if lock_text is not None else _lock(PINS_TEXT, sha=hashlib.sha256(pins_text.encode()).hexdigest())
    )
    problems = lock_problems(pins, lock)
    assert len(problems) == len(expected), problems
    for fragment, problem in zip(expected, problems, strict=True):
        assert fragment in problem and problem.startswith(str(lock)), problem
    assert all("make lock" in p or "never install it" in p for p in problems)


def test_read_lock_joins_continuations_and_reads_the_header():
    lock = read_lock(_lock(PINS_TEXT))
    assert lock["python"] == "3.11" and lock["pins"] == "p.txt"
    assert lock["packages"] == {
        "litellm": ("1.102.4", ("sha256:" + "ab" * 32,)),
        "urllib3": ("2.8.0", ("sha256:" + "ab" * 32,)),
    }
    assert locked_versions(_lock(PINS_TEXT)) == {"litellm": "1.102.4", "urllib3": "2.8.0"}


# -- closure drift: other version, missing, extra -----------------------------------------------
LOCKED = {"litellm": "1.102.4", "urllib3": "2.8.0", "zipp": "4.1.2"}
DRIFT_CASES = [  # (case, installed, expected (name, installed, locked))
    ("equal", {**LOCKED, "pip": "23.0.1", "setuptools": "66.1.1"}, []),
    ("other-version", {**LOCKED, "urllib3": "2.5.0"}, [("urllib3", "2.5.0", "2.8.0")]),
    ("transitive-missing", {"litellm": "1.102.4", "urllib3": "2.8.0"}, [("zipp", None, "4.1.2")]),
    ("extra", {**LOCKED, "requests-toolbelt": "1.0.0"}, [("requests-toolbelt", "1.0.0", None)]),
    (
        "all-three",
        {"litellm": "1.102.4", "urllib3": "2.6.3", "six": "1.17.0"},
        [("six", "1.17.0", None), ("urllib3", "2.6.3", "2.8.0"), ("zipp", None, "4.1.2")],
    ),
    ("no-venv", None, [("litellm", None, "1.102.4"), ("urllib3", None, "2.8.0"), ("zipp", None, "4.1.2")]),
    ("same-version-spelled-otherwise", {**LOCKED, "zipp": "4.1.2.0"}, []),
    ("compromised-release", {**LOCKED, "litellm": "1.82.7"}, [("litellm", "1.82.7", "1.102.4")]),
    ("wheel-is-an-extra", {**LOCKED, "wheel": "0.45.1"}, [("wheel", "0.45.1", None)]),
]


@pytest.mark.parametrize("case, installed, expected", DRIFT_CASES, ids=[c[0] for c in DRIFT_CASES])
def test_venv_drift(case, installed, expected):
    assert venv_drift(LOCKED, installed) == expected


def test_a_locked_setuptools_is_compared():
    assert venv_drift({"setuptools": "80.0.0"}, {"setuptools": "66.1.1"}) == [("setuptools", "66.1.1", "80.0.0")]


# -- the host's Python chooses the lock; none: refused before anything changes ------------------
@pytest.mark.parametrize("version, refused", [("3.11", False), ("3.13", False), ("3.12", True), (None, True)])
def test_host_python_without_a_lock_is_refused(version, refused):
    from pyinfra.api.exceptions import DeployError

    from litellm_runner.tasks.python_env import lock_for

    with ctx_host.use(fakehost.FakeHost({})):
        if not refused:
            assert lock_for(PINS, "/usr/bin/python3", version) == lock_path(PINS, version)
            return
        with pytest.raises(DeployError) as exc:  # pyinfra exits 1 with the message
            lock_for(PINS, "/usr/bin/python3", version)
    err = str(exc.value)
    assert (
        "refusing to touch any host: host fake-host: /usr/bin/python3 is "
        f"{'Python ' + version if version else 'missing'}" in err
    )
    assert "is locked for Python 3.11, 3.13 only" in err and "make lock" in err


# -- SBOM of a lock (CycloneDX, from pip-audit) --------------------------------------------------
def test_sbom_lists_exactly_the_locked_packages_and_is_reproducible(monkeypatch):
    import json

    from litellm_runner.gates import cache

    lock = lock_path(PINS, "3.11")
    text = cve_gate.sbom(lock)
    monkeypatch.setenv("LITELLM_GATE_CACHE", "off")
    monkeypatch.setattr(cache, "_memory", {})
    assert cve_gate.sbom(lock) == text  # no serial number, no timestamp, no random references
    bom = json.loads(text)
    assert bom["bomFormat"] == "CycloneDX"
    assert {(c["name"].lower().replace("_", "-"), c["version"]) for c in bom["components"]} == set(
        locked_versions(lock.read_text()).items()
    )
    assert all(c["purl"].startswith("pkg:pypi/") for c in bom["components"])
