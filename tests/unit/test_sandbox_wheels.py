"""The sandbox's wheelhouse holds what its pip is asked for: its pip reads no index (docs/sandbox.md)."""

import re

import pytest

from litellm_runner import sandbox
from litellm_runner.gates import cve as cve_gate
from tests.unit.group_data import defaults

INTEGRATION = sandbox.REPO / "tests" / "integration"
PIN = re.compile(r"\b([A-Za-z0-9_.-]+)==(\d[\w.]*)")


@pytest.mark.parametrize("codename", sorted(sandbox.RELEASES))
def test_the_deploys_lock_is_in_the_wheelhouse_of_each_release(codename):
    pins = sandbox.REPO / defaults()["litellm_venv_requirements"]
    lock = cve_gate.lock_paths(pins)[sandbox.RELEASES[codename]["python"]]
    assert lock in sandbox.venv_locks(codename)


def test_every_version_a_test_installs_by_hand_is_in_the_wheelhouse():
    locked = {
        (name, version)
        for lock in {path for codename in sandbox.RELEASES for path in sandbox.venv_locks(codename)}
        for name, version in cve_gate.locked_versions(lock.read_text()).items()
    }
    planted = {tuple(wheel.split("==")) for wheel in sandbox.PLANTED_WHEELS}
    source = {path.name: path.read_text() for path in INTEGRATION.glob("test_*.py")}
    installed = {
        (name.lower(), version)
        for text in source.values()
        for line in text.splitlines()
        if re.search(r"pip\}? install|\{pip\}", line)
        for name, version in PIN.findall(line)
    }
    assert installed, "no pip install found in the integration tests"
    assert installed <= locked | planted, "add these to PLANTED_WHEELS: " + str(installed - locked - planted)
    for name, version in planted:  # none kept that no test installs any more
        assert any(name in text and version in text for text in source.values()), (name, version)
