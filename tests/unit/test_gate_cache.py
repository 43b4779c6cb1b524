"""The gate cache: a result is reused only for the same inputs, and a changed advisory file is seen at once."""

import json
import shutil

import pytest

from litellm_runner.gates import GateError, cache, osv_server
from litellm_runner.gates import cve as cve_gate
from litellm_runner.gates.cve import audit_installed

CLEAN = {"urllib3": "2.8.0"}  # the locked urllib3: no advisory in the shipped file


def advisory(name, fixed, ident):
    """One OSV entry: NAME below FIXED is affected by IDENT."""
    return {
        "schema_version": "1.6.0",
        "id": ident,
        "aliases": [],
        "summary": f"{name}: {ident}",
        "affected": [
            {
                "package": {"name": name, "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }
        ],
    }


@pytest.fixture
def advisories(tmp_path):
    path = tmp_path / "osv.json"
    shutil.copy(osv_server.ADVISORIES, path)
    return path


def runs(monkeypatch):
    """Count real pip-audit runs."""
    seen = []
    real = cve_gate._run

    def counted(*args):
        seen.append(args[0])
        return real(*args)

    monkeypatch.setattr(cve_gate, "_run", counted)
    return seen


def test_a_changed_advisory_file_gives_the_new_refusal_at_once(advisories, monkeypatch):
    assert audit_installed(CLEAN, advisories=advisories) == []
    data = json.loads(advisories.read_text())
    data["vulns"].append(advisory("urllib3", "9.9.9", "CVE-2099-0001"))
    advisories.write_text(json.dumps(data))
    with pytest.raises(GateError, match=r"urllib3 2.8.0: CVE-2099-0001 \(fixed in 9.9.9\)"):
        audit_installed(CLEAN, advisories=advisories)


def test_the_same_inputs_run_pip_audit_once_across_runs(advisories, monkeypatch):
    seen = runs(monkeypatch)
    audit_installed(CLEAN, advisories=advisories)
    monkeypatch.setattr(cache, "_memory", {})  # a new run: only the folder remains
    audit_installed(CLEAN, advisories=advisories)
    assert len(seen) == 1
    audit_installed({**CLEAN, "idna": "3.10"}, advisories=advisories)  # another input: computed
    assert len(seen) == 2


def test_waivers_apply_to_a_cached_result(advisories, tmp_path, monkeypatch):
    data = json.loads(advisories.read_text())
    data["vulns"].append(advisory("urllib3", "9.9.9", "CVE-2099-0002"))
    advisories.write_text(json.dumps(data))
    with pytest.raises(GateError, match="CVE-2099-0002"):
        audit_installed(CLEAN, advisories=advisories)
    waivers = tmp_path / "ignored.yaml"
    waivers.write_text("- id: CVE-2099-0002\n  reason: test waiver\n  expires: 2999-01-01\n")
    assert audit_installed(CLEAN, advisories=advisories, ignored=waivers) == []


def test_online_results_are_never_cached(monkeypatch):
    assert cve_gate._advisory_key("pip-audit", "x==1\n", (), True, osv_server.ADVISORIES) is None


@pytest.mark.parametrize("damage", ["", "{", '{"other": 1}', "null"])
def test_a_damaged_entry_is_recomputed(damage, tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_GATE_CACHE", str(tmp_path))
    k = cache.key("t", "input")
    (tmp_path / f"{k}.json").write_text(damage)
    assert cache.cached(k, lambda: [1, 2]) == [1, 2]
    monkeypatch.setattr(cache, "_memory", {})
    assert cache.cached(k, lambda: pytest.fail("recomputed a stored result")) == [1, 2]


def test_keys_differ_for_every_input():
    keys = {cache.key("g", "a", "b"), cache.key("g", "ab", ""), cache.key("g", "a", "c"), cache.key("h", "a", "b")}
    assert len(keys) == 4


UNIT = "[Unit]\nDescription=t\n[Service]\nExecStart=/bin/true\n"


class ScoringHost:
    """A pyinfra host whose HostExposure fact runs the real host script here (this machine's systemd)."""

    name = "h1"

    def __init__(self):
        self.asked = 0

    def get_fact(self, fact, units, _timeout):
        import subprocess

        self.asked += 1
        proc = subprocess.run(["sh", "-c", fact().command(units)], capture_output=True, text=True, timeout=120)
        return proc.stdout.splitlines()


def test_a_hosts_unit_scores_are_asked_once_per_units_and_systemd(monkeypatch):
    from pyinfra.api.exceptions import DeployError

    from litellm_runner.tasks.units import check_exposure

    host = ScoringHost()
    units = {"t.service": UNIT}
    assert check_exposure(host, units, 10.0, "systemd 252 (252.39-1~deb12u1)")["t.service"] > 5
    monkeypatch.setattr(cache, "_memory", {})  # a new run: only the folder remains
    with pytest.raises(DeployError, match="t.service"):  # a lower threshold refuses from the same (cached) scores
        check_exposure(host, units, 1.0, "systemd 252 (252.39-1~deb12u1)")
    assert host.asked == 1
    check_exposure(host, units, 10.0, "systemd 257 (257.9-1~deb13u1)")  # another systemd: asked
    check_exposure(host, {"t.service": UNIT + "PrivateTmp=yes\n"}, 10.0, "systemd 252 (252.39-1~deb12u1)")
    check_exposure(host, units, 10.0, None)  # no version known: never cached
    assert host.asked == 4
