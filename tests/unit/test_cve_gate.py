"""CVE gate with the real pip-audit against the loopback OSV endpoint (offline mode)."""

import datetime
import json
import subprocess
import sys

import pytest

from litellm_runner.gates import GateError, osv_server
from litellm_runner.gates import cve as cve_gate
from litellm_runner.gates.cve import (
    RELOCK,
    audit_installed,
    audit_lock,
    audit_requirements,
    load_ignored,
    lock_path,
    lock_problems,
    locked_versions,
)
from tests.unit.group_data import REPO

PINS = REPO / "files" / "litellm-venv-requirements.txt"
LOCK = lock_path(PINS, "3.11")
ASK = (  # python -c ASK URL QUERY: the OSV endpoint's answer to QUERY
    "import sys, urllib.request; request = urllib.request.Request(sys.argv[1], sys.argv[2].encode(), method='POST'); "
    "print(urllib.request.urlopen(request, timeout=30).read().decode())"
)

INCIDENT = {  # the incident's forced pins -> advisory ids and fixed versions
    "fastapi-users": ("14.0.2", {"CVE-2025-68481": "15.0.2"}),
    "urllib3": (
        "2.5.0",
        {
            "CVE-2025-66471": "2.6.0",
            "CVE-2025-66418": "2.6.0",
            "CVE-2026-21441": "2.6.3",
            "CVE-2026-44431": "2.7.0",
            "CVE-2026-44432": "2.7.0",
        },
    ),
    "pyasn1": ("0.6.1", {"CVE-2026-23490": "0.6.2", "CVE-2026-30922": "0.6.3"}),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("LITELLM_CVE_GATE", raising=False)


def write(tmp_path, text, name="requirements.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_incident_pins_are_refused_with_ids_and_fixed_versions(tmp_path):
    """Pins without a lock: refused for that, and their exact pins audited so the ids are named."""
    req = write(tmp_path, "".join(f"{n}=={v}\n" for n, (v, _) in INCIDENT.items()))
    with pytest.raises(GateError) as err:
        audit_requirements(req)
    text = str(err.value)
    assert text.startswith(f"CVE gate refuses {req}, known-vulnerable packages")
    assert "offline (files/advisories/osv.json)" in text
    assert f"and {req}, it has no current lock:\n  no lock of {req}" in text and RELOCK in text
    for name, (version, advisories) in INCIDENT.items():
        for advisory, fixed in advisories.items():
            assert f"{name} {version}: {advisory} (fixed in {fixed})" in text


def test_incident_venv_after_converge_is_refused():
    with pytest.raises(GateError, match="urllib3 2.5.0: CVE-2026-21441 \\(fixed in 2.6.3\\)"):
        audit_installed({"urllib3": "2.5.0", "requests": "2.32.3"})


def test_shipped_requirements_pass():
    assert audit_requirements(PINS) == []


def _copy_lock(tmp_path, name, version, lock=LOCK):
    """A copy of LOCK whose NAME entry (with its hashes) is replaced by NAME==VERSION."""
    text = lock.read_text()
    start = text.index(f"\n{name}==") + 1
    end = text.index("\n", text.index("# via", start))
    planted = f"{name}=={version} \\\n    --hash=sha256:{'0' * 64}\n    # via litellm"
    return write(tmp_path, text[:start] + planted + text[end:], "lock.txt")


def test_vulnerable_transitive_dependency_planted_in_the_lock_is_refused(tmp_path):
    """urllib3 comes in through requests/botocore too; 2.5.0 planted in a copy of the real lock."""
    with pytest.raises(GateError) as err:
        audit_lock(_copy_lock(tmp_path, "urllib3", "2.5.0"))
    assert "urllib3 2.5.0: CVE-2025-66471 (fixed in 2.6.0)" in str(err.value)
    assert "known-vulnerable packages [offline (files/advisories/osv.json)]" in str(err.value)


def test_advisory_on_a_purely_transitive_package_refuses_the_real_lock(tmp_path):
    """zipp is no pin (importlib-metadata's dependency): an advisory on its locked version refuses the lock."""
    version = next(
        line.split("==")[1].split()[0] for line in LOCK.read_text().splitlines() if line.startswith("zipp==")
    )
    advisories = write(
        tmp_path,
        json.dumps(
            {
                "vulns": [
                    {
                        "schema_version": "1.6.0",
                        "id": "TEST-ZIPP-1",
                        "aliases": [],
                        "summary": "zipp: test advisory",
                        "affected": [
                            {
                                "package": {"name": "zipp", "ecosystem": "PyPI"},
                                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99"}]}],
                            }
                        ],
                    }
                ]
            }
        ),
        "osv.json",
    )
    with pytest.raises(GateError, match=f"zipp {version}: TEST-ZIPP-1 \\(fixed in 99\\)"):
        audit_lock(LOCK, advisories=advisories)
    assert audit_lock(LOCK) == []


def test_compromised_release_planted_in_the_lock_is_refused(tmp_path):
    lock = _copy_lock(tmp_path, "litellm", "1.82.7")
    with pytest.raises(GateError, match="litellm 1.82.7: compromised release"):
        audit_lock(lock)
    pins = write(tmp_path, "litellm>=1.80\n", "p.txt")
    assert any("litellm 1.82.7 is a compromised release" in p for p in lock_problems(pins, lock))


def test_stale_lock_is_refused(tmp_path):
    """Pins edited after `make lock`: the gate refuses before auditing anything else."""
    pins = write(tmp_path, PINS.read_text() + "example-not-locked>=1.0\n", "litellm-venv-requirements.txt")
    (tmp_path / "locks").mkdir()
    for python in ("3.11", "3.13"):
        lock_path(pins, python).write_text(lock_path(PINS, python).read_text())
    with pytest.raises(GateError) as err:
        audit_requirements(pins)
    text = str(err.value)
    assert text.startswith(f"CVE gate refuses {pins}, it has no current lock")
    assert "made from other pins than" in text and "pin example-not-locked>=1.0 is not in the lock" in text


@pytest.mark.parametrize("version", ["1.82.7", "1.82.8"])
def test_compromised_litellm_is_refused(tmp_path, version):
    with pytest.raises(
        GateError, match=f"litellm {version}: LITELLM-RUNNER-2026-0001 \\(no fixed version: .*compromised"
    ):
        audit_requirements(write(tmp_path, f"litellm[proxy]=={version}\n"))


@pytest.mark.parametrize(
    "version, ids",
    [
        ("2.6.2", {"CVE-2026-21441", "CVE-2026-44431", "CVE-2026-44432"}),
        ("2.6.3", {"CVE-2026-44431", "CVE-2026-44432"}),
        ("2.7.0", set()),
    ],
)
def test_endpoint_does_pep440_range_matching(version, ids):
    """A client process asks; the server answers it until it exits, as the gate answers pip-audit."""
    query = json.dumps({"package": {"name": "URLLib3", "ecosystem": "PyPI"}, "version": version})
    with osv_server.Server() as server:
        answer = json.loads(cve_gate._pip_audit_run([sys.executable, "-c", ASK, server.url, query], server).stdout)
    assert {v["id"] for v in answer.get("vulns", [])} == ids


def test_a_process_that_outlives_the_timeout_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(cve_gate, "TIMEOUT", 0.5)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)]  # its own path names it in ps
    with osv_server.Server() as server, pytest.raises(subprocess.TimeoutExpired):
        cve_gate._pip_audit_run(sleeper, server)
    ps = subprocess.run(["ps", "-ww", "-eo", "args="], capture_output=True, text=True, timeout=30).stdout
    assert str(tmp_path) not in ps


def test_waiver_with_expiry_skips_an_advisory(tmp_path):
    future = datetime.date.today() + datetime.timedelta(days=30)
    ignored = write(
        tmp_path, f"- id: CVE-2025-68481\n  reason: not reachable (ticket OPS-1)\n  expires: {future}\n", "ignored.yaml"
    )
    assert audit_installed({"fastapi-users": "14.0.2"}, ignored=ignored) == []
    with pytest.raises(GateError, match="CVE-2025-68481"):
        audit_installed({"fastapi-users": "14.0.2"})


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            "- id: CVE-2025-68481\n  reason: r\n  expires: 2020-01-01\n",
            "entry 0 (CVE-2025-68481): waiver expired on 2020-01-01",
        ),
        ("- id: CVE-2025-68481\n  expires: 2099-01-01\n", "entry 0: missing reason"),
        ("- id: CVE-2025-68481\n  reason: r\n", "entry 0: missing expires"),
        ("- reason: r\n  expires: 2099-01-01\n", "entry 0: missing id"),
        ("- id: X\n  reason: r\n  expires: soon\n", "entry 0 (X): expires = 'soon': expected YYYY-MM-DD"),
    ],
)
def test_bad_waivers_are_errors(tmp_path, entry, message):
    with pytest.raises(GateError, match=message.replace("(", "\\(").replace(")", "\\)")):
        load_ignored(write(tmp_path, entry, "ignored.yaml"))


def test_shipped_waivers_are_valid():
    assert load_ignored() == set()


# -- the deploy's after-converge audit (operations.venv_audit) --------------------------
def _lock_text(**versions):
    return "".join(f"{name}=={version} \\\n    --hash=sha256:{'ab' * 32}\n" for name, version in versions.items())


def _venv_audit(installed, lock):
    from pyinfra.api import FunctionCommand
    from pyinfra.context import ctx_host

    from litellm_runner.pyinfra_ext.snapshot import HostSnapshot
    from litellm_runner.tasks.python_env import cve_findings, venv_audit
    from tests.unit import fakehost

    fake = fakehost.FakeHost({HostSnapshot: fakehost.snap(venv={"packages": installed})})
    with ctx_host.use(fake):
        commands = list(venv_audit._inner(venv_path="/r/venv", locked=locked_versions(lock), audit=cve_findings))
    assert all(isinstance(c, FunctionCommand) for c in commands)
    return commands, fake.noops


def test_clean_unchanged_venv_is_a_noop_without_commands():
    commands, noops = _venv_audit(
        {"urllib3": "2.7.0", "pyasn1": "0.6.3", "pip": "23.0.1"}, _lock_text(urllib3="2.7.0", pyasn1="0.6.3")
    )
    assert commands == [] and noops == ["/r/venv: no known vulnerability"]


def test_vulnerable_unchanged_venv_fails_the_host_with_ids():
    """A venv equal to its lock (a lock made before the advisory was known): the audit fails the host."""
    commands, noops = _venv_audit(
        {"urllib3": "2.5.0", "pyasn1": "0.6.3", "pip": "23.0.1"}, _lock_text(urllib3="2.5.0", pyasn1="0.6.3")
    )
    assert noops == [] and len(commands) == 1 and commands[0].function.__name__ == "_cve_refused"
    text = commands[0].args[0]
    assert "urllib3 2.5.0: CVE-2025-66471 (fixed in 2.6.0)" in text and "the installed venv" in text

    logged = []

    class Host:
        def log_styled(self, message, **kwargs):
            logged.append(message)

    assert commands[0].function(None, Host(), *commands[0].args) is False
    assert "CVE-2026-44431" in logged[0] and "ignored.yaml" in logged[0]


def test_changing_venv_is_audited_at_execution():
    for installed in (
        {"urllib3": "2.5.0", "pip": "23.0.1"},  # another version
        {"urllib3": "2.7.0", "six": "1.17.0", "pip": "23.0.1"},  # an extra
        None,
    ):  # no venv yet
        commands, noops = _venv_audit(installed, _lock_text(urllib3="2.7.0"))
        assert noops == [] and [c.function.__name__ for c in commands] == ["_audit_now"], installed
