"""The converged venv is its lock, line for line; an extra package and another version are drift, repaired."""

from packaging.utils import canonicalize_name

from litellm_runner.gates.cve import lock_path, locked_versions, sha256_file
from tests.support.hosts import REPO, drift_check
from tests.unit.group_data import defaults

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
PINS = REPO / defaults()["litellm_venv_requirements"]
EXTRA = ("iniconfig", "2.0.0")  # a wheel no locked package needs


def lock_of(host):
    """The lock the host's system Python gets, as the deploy chooses it."""
    python = host.out("/usr/bin/python3 -I -c 'import sys;print(\"%d.%d\" % sys.version_info[:2])'")
    return lock_path(PINS, python)


def freeze(host) -> list[str]:
    """``pip freeze`` of the venv, run as the account, as normalized ``name==version`` lines."""
    out = host.out(
        f"runuser -u litellm -- {CODE}/venv/bin/pip freeze --disable-pip-version-check",
        timeout=120,
    )
    lines = []
    for line in out.splitlines():
        name, _, version = line.partition("==")
        lines.append(f"{canonicalize_name(name)}=={version}")
    return lines


def locked_lines(lock) -> list[str]:
    return sorted(f"{name}=={version}" for name, version in locked_versions(lock.read_text()).items())


check = drift_check


def packages(report, host) -> set[tuple]:
    return {
        (i["before"]["name"], i["before"]["version"], i["after"]["version"])
        for i in report["hosts"][host.name]["items"]
        if i["kind"] == "package"
    }


def test_converged_venv_equals_its_lock_line_for_line(converged, host):
    lock = lock_of(host)
    assert lock.name == "litellm-venv-requirements.py3.11.txt"  # the sandbox is Debian 12
    assert sorted(freeze(host)) == locked_lines(lock)
    # the host keeps the lock it was installed from
    assert host.out(f"sha256sum {CODE}/venv-requirements.txt").split()[0] == sha256_file(lock)


def test_extra_package_and_other_version_are_drift_then_repaired(converged, host, converge, tmp_path):
    lock = lock_of(host)
    locked = locked_versions(lock.read_text())
    assert EXTRA[0] not in locked
    pip = f"{CODE}/venv/bin/pip install -q --disable-pip-version-check --no-deps"
    host.ssh(f"{pip} {EXTRA[0]}=={EXTRA[1]} pyasn1==0.6.1", timeout=300)
    assert f"{EXTRA[0]}=={EXTRA[1]}" in freeze(host)

    proc, report = check(host, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    assert packages(report, host) == {(EXTRA[0], EXTRA[1], None), ("pyasn1", "0.6.1", locked["pyasn1"])}
    assert f"Venv {CODE}/venv satisfies its pins | py-01" in proc.stdout

    converge()
    assert sorted(freeze(host)) == locked_lines(lock)
    proc, report = check(host, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
