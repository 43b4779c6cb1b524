"""The gate cache: a result is reused only for the same inputs, and a changed advisory file is seen at once."""

import json
import shutil

import pytest

from litellm_runner.gates import cache, osv_server
from litellm_runner.gates import cve as cve_gate
from litellm_runner.gates.cve import CveGateError, audit_installed

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
    with pytest.raises(CveGateError, match=r"urllib3 2.8.0: CVE-2099-0001 \(fixed in 9.9.9\)"):
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
    with pytest.raises(CveGateError, match="CVE-2099-0002"):
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


def test_unit_scores_are_computed_once_per_distinct_units_and_threshold(monkeypatch):
    from litellm_runner.gates import preflight
    from litellm_runner.gates import units as unit_gate

    calls = []
    real = unit_gate.check_units

    def counted(units, threshold):
        calls.append((dict(units), threshold))
        return real(units, threshold)

    monkeypatch.setattr(unit_gate, "check_units", counted)
    refusal = preflight._unit_refusal({"t.service": UNIT}, 1.0)  # an unhardened unit: refused
    assert "t.service" in refusal
    monkeypatch.setattr(cache, "_memory", {})
    assert preflight._unit_refusal({"t.service": UNIT}, 1.0) == refusal  # from the folder
    assert len(calls) == 1
    assert preflight._unit_refusal({"t.service": UNIT}, 10.0) == ""  # another threshold: scored again
    assert preflight._unit_refusal({"t.service": UNIT + "PrivateTmp=yes\n"}, 1.0)  # other text: scored again
    assert len(calls) == 3
