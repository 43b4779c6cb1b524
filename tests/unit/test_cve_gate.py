"""CVE gate with the real pip-audit against the loopback OSV endpoint (offline mode)."""

import datetime
import json
import urllib.request

import pytest

from litellm_runner import osv_server
from litellm_runner.cve_gate import CveGateError, audit_installed, audit_requirements, load_ignored, pin_requirements
from tests.unit.group_data import REPO

INCIDENT = {  # the incident's forced pins -> advisory ids and fixed versions
    "fastapi-users": ("14.0.2", {"CVE-2025-68481": "15.0.2"}),
    "urllib3": ("2.5.0", {"CVE-2025-66471": "2.6.0", "CVE-2025-66418": "2.6.0", "CVE-2026-21441": "2.6.3",
                          "CVE-2026-44431": "2.7.0", "CVE-2026-44432": "2.7.0"}),
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
    req = write(tmp_path, "".join(f"{n}=={v}\n" for n, (v, _) in INCIDENT.items()))
    with pytest.raises(CveGateError) as err:
        audit_requirements(req)
    text = str(err.value)
    assert "offline (files/advisories/osv.json)" in text
    for name, (version, advisories) in INCIDENT.items():
        for advisory, fixed in advisories.items():
            assert f"{name} {version}: {advisory} (fixed in {fixed})" in text


def test_incident_venv_after_converge_is_refused():
    with pytest.raises(CveGateError, match="urllib3 2.5.0: CVE-2026-21441 \\(fixed in 2.6.3\\)"):
        audit_installed({"urllib3": "2.5.0", "requests": "2.32.3"})


def test_shipped_requirements_pass():
    assert audit_requirements(REPO / "files" / "litellm-venv-requirements.txt") == []


@pytest.mark.parametrize("version", ["1.82.7", "1.82.8"])
def test_compromised_litellm_is_refused(tmp_path, version):
    with pytest.raises(CveGateError, match=f"litellm {version}: LITELLM-RUNNER-2026-0001 \\(no fixed version: .*compromised"):
        audit_requirements(write(tmp_path, f"litellm[proxy]=={version}\n"))


@pytest.mark.parametrize("version, ids", [
    ("2.6.2", {"CVE-2026-21441", "CVE-2026-44431", "CVE-2026-44432"}),
    ("2.6.3", {"CVE-2026-44431", "CVE-2026-44432"}),
    ("2.7.0", set()),
])
def test_endpoint_does_pep440_range_matching(version, ids):
    with osv_server.serve() as url:
        body = json.dumps({"package": {"name": "URLLib3", "ecosystem": "PyPI"}, "version": version}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10) as resp:
            answer = json.load(resp)
    assert {v["id"] for v in answer.get("vulns", [])} == ids


@pytest.mark.parametrize("line, pinned", [
    ("urllib3>=2.7.0", {"urllib3": "2.7.0"}),
    ("psycopg[binary]>=3.2,<4", {"psycopg[binary]": "3.2"}),
    ("foo~=1.4.2", {"foo": "1.4.2"}),
    ("litellm[proxy]==1.102.4  # pinned", {"litellm[proxy]": "1.102.4"}),
])
def test_lowest_admitted_version_is_audited(tmp_path, line, pinned):
    assert pin_requirements(write(tmp_path, line + "\n")) == pinned


def test_lower_bound_is_what_gets_audited(tmp_path):
    """urllib3>=2.5 admits 2.5.0, so it is refused like the pin itself."""
    with pytest.raises(CveGateError, match="urllib3 2.5: CVE-2025-66471"):
        audit_requirements(write(tmp_path, "urllib3>=2.5\n"))


@pytest.mark.parametrize("line", ["redis", "foo<3", "foo>1.0", "foo!=2.0"])
def test_unbounded_specifiers_are_refused(tmp_path, line):
    with pytest.raises(CveGateError, match=f"requirements.txt:1: '{line}' has no lower bound.*expected NAME==VERSION or NAME>=VERSION"):
        audit_requirements(write(tmp_path, line + "\n"))


def test_waiver_with_expiry_skips_an_advisory(tmp_path):
    future = datetime.date.today() + datetime.timedelta(days=30)
    ignored = write(tmp_path, f"- id: CVE-2025-68481\n  reason: not reachable (ticket OPS-1)\n  expires: {future}\n", "ignored.yaml")
    assert audit_requirements(write(tmp_path, "fastapi-users==14.0.2\n"), ignored=ignored) == []


@pytest.mark.parametrize("entry, message", [
    ("- id: CVE-2025-68481\n  reason: r\n  expires: 2020-01-01\n", "entry 0 (CVE-2025-68481): waiver expired on 2020-01-01"),
    ("- id: CVE-2025-68481\n  expires: 2099-01-01\n", "entry 0: missing reason"),
    ("- id: CVE-2025-68481\n  reason: r\n", "entry 0: missing expires"),
    ("- reason: r\n  expires: 2099-01-01\n", "entry 0: missing id"),
    ("- id: X\n  reason: r\n  expires: soon\n", "entry 0 (X): expires = 'soon': expected YYYY-MM-DD"),
])
def test_bad_waivers_are_errors(tmp_path, entry, message):
    with pytest.raises(CveGateError, match=message.replace("(", "\\(").replace(")", "\\)")):
        load_ignored(write(tmp_path, entry, "ignored.yaml"))


def test_shipped_waivers_are_valid():
    assert load_ignored() == set()


# -- the deploy's after-converge audit (operations.venv_audit) --------------------------
def _venv_audit(installed, pins):
    from pyinfra.api import FunctionCommand
    from pyinfra.context import ctx_host

    from litellm_runner.facts import InstalledPackages
    from tasks.python_env import venv_audit
    from tests.unit import fakehost

    fake = fakehost.FakeHost({InstalledPackages: installed})
    with ctx_host.use(fake):
        commands = list(venv_audit._inner(venv_path="/r/venv", requirements_text=pins))
    assert all(isinstance(c, FunctionCommand) for c in commands)
    return commands, fake.noops


def test_clean_unchanged_venv_is_a_noop_without_commands():
    commands, noops = _venv_audit({"urllib3": "2.7.0", "pyasn1": "0.6.3"}, "urllib3>=2.7.0\npyasn1>=0.6.3\n")
    assert commands == [] and noops == ["/r/venv: no known vulnerability"]


def test_vulnerable_unchanged_venv_fails_the_host_with_ids():
    """A transitive package the pins do not name: the venv op changes nothing, the audit fails the host."""
    commands, noops = _venv_audit({"urllib3": "2.5.0", "pyasn1": "0.6.3"}, "pyasn1>=0.6.3\n")
    assert noops == [] and len(commands) == 1 and commands[0].function.__name__ == "_fail"
    text = commands[0].args[0]
    assert "urllib3 2.5.0: CVE-2025-66471 (fixed in 2.6.0)" in text and "the installed venv" in text

    logged = []

    class Host:
        def log_styled(self, message, **kwargs):
            logged.append(message)

    assert commands[0].function(None, Host(), *commands[0].args) is False
    assert "CVE-2026-44431" in logged[0] and "ignored.yaml" in logged[0]


def test_changing_venv_is_audited_at_execution():
    commands, noops = _venv_audit({"urllib3": "2.5.0"}, "urllib3>=2.7.0\n")
    assert noops == [] and [c.function.__name__ for c in commands] == ["_audit_now"]
    commands, _ = _venv_audit(None, "urllib3>=2.7.0\n")  # no venv yet
    assert [c.function.__name__ for c in commands] == ["_audit_now"]
