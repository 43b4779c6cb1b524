"""The remediation report (litellm_runner.cli.report) as data: JSON fixtures in, the report's JSON and Markdown out.

Each case in tests/unit/report_cases/ holds what a run reads (``check``: this run's drift report, ``facts``:
report_facts' record, ``plan``: the dry run's plan, and the optional ``before`` check, ``converge`` and ``second``
pyinfra --json outputs), the advisory lines the CVE gate would find, the hosts' known ``secrets``, and what the
report must say (``expect``, ``markdown_has``). Canaries (``never``) and escape codes planted in the input
appear in neither output.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from litellm_runner import exitcodes
from litellm_runner.cli import report
from litellm_runner.cli.report_facts import parse_status, sbom_components

CASES = sorted((pathlib.Path(__file__).parent / "report_cases").glob("*.json"))
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def built(case: dict) -> tuple[dict, str]:
    out = report.build(
        case["check"],
        case["facts"],
        case["plan"],
        case["before"],
        case["converge"],
        case["second"],
        audit=lambda components: case["advisories"],
        secrets=case["secrets"],
    )
    return out, report.markdown(out)


@pytest.fixture(params=CASES, ids=[c.stem for c in CASES])
def case(request) -> dict:
    return json.loads(request.param.read_text())


def test_the_report_says_what_the_case_expects(case):
    out, _ = built(case)
    want = case["expect"]
    assert out["schema"] == report.SCHEMA and out["status"] == want["status"]
    assert report.verdict(out) == want["exit"]
    assert out["totals"] == {**out["totals"], **want["totals"]}
    for name, expected in want["hosts"].items():
        got = out["hosts"][name]
        assert got["status"] == expected["status"]
        if "open" in expected:
            assert got["open"] == expected["open"]
        if "open_what" in expected:
            assert [i["what"] for i in got["open"]] == expected["open_what"]
        if "errors" in expected:
            assert sorted(got["errors"]) == expected["errors"]
        if "changed" in expected:
            run = got["changed"]["converge"]
            assert (run and len(run["changed"])) == expected["changed"]
        if "second_changes" in expected:
            assert len(got["verified"]["second_run"]["changed"]) == expected["second_changes"]
        if "db_in_sync" in expected:
            assert got["verified"]["database"]["controls_in_sync"] == expected["db_in_sync"]
        if "db_drifted" in expected:
            assert got["verified"]["database"]["controls_drifted"] == expected["db_drifted"]
        if "venv" in expected:
            assert got["found"]["venv"] == expected["venv"]


def test_the_markdown_says_it(case):
    _, text = built(case)
    for fragment in case["markdown_has"]:
        assert fragment in text, fragment


def test_no_canary_and_no_escape_code_reaches_either_output(case):
    out, text = built(case)
    dumped = json.dumps(out, ensure_ascii=False)
    for canary in case["never"]:
        assert canary not in dumped and canary not in text
    assert not RAW_CONTROL.search(dumped), RAW_CONTROL.search(dumped)
    assert not RAW_CONTROL.search(text.replace("\n", "")), RAW_CONTROL.search(text.replace("\n", ""))


def test_every_table_like_character_from_a_host_is_escaped_in_markdown():
    assert report.md("a|b`c`*d*_e_[f](g)<h>#i\\") == "a\\|b\\`c\\`\\*d\\*\\_e\\_\\[f\\](g)\\<h\\>\\#i\\\\"
    assert report.md("\x1b[31m\u202e") == "\\\\x1b\\[31m\\\\u202e"  # Markdown shows \x1b[31m\u202e


@pytest.mark.parametrize(
    "name, want",
    [
        ("Directory /home/litellm/litellm | fs-01", "fs-01"),
        ("Nothing of litellm's outside the managed services | acct-01", "acct-01"),
        ("Restart litellm.service", None),
        ("a | b | db-05 ", "db-05"),
    ],
)
def test_control_ids_come_from_operation_names(name, want):
    assert report.control(name) == want


@pytest.mark.parametrize(
    "text, kind, fragment",
    [
        ("not json", "run", "not JSON"),
        ('{"plan": [], "results": null}', "run", 'key "results": expected an object'),
        ('{"results": {"operations": 3}}', "run", 'key "results.operations": expected a list'),
        ('{"schema": "x", "hosts": {}}', "check", 'key "schema": expected "litellm-runner/drift-report"'),
    ],
)
def test_an_unusable_input_file_is_named_with_its_key(tmp_path, text, kind, fragment):
    path = tmp_path / "in.json"
    path.write_text(text)
    with pytest.raises(report.InputError, match=re.escape(fragment)) as exc:
        report.load_input(str(path), kind)
    assert str(path) in str(exc.value)


def test_a_missing_input_file_stops_the_report_before_any_host(tmp_path, capsys):
    code = report.main(["--converge", str(tmp_path / "missing.json")], prog="litellm-runner report")
    assert code == exitcodes.FAILED
    assert "missing.json: cannot be read (No such file or directory): no host was contacted" in capsys.readouterr().err


def test_status_lines_are_parsed_with_the_exit_code():
    lines = [
        "OK   services: 3 active",
        "FAIL database: 127.0.0.1:5432/litellm: refused",
        "status: 1 check(s) failed: database",
    ]
    assert parse_status([*lines, "litellm-status-exit 1"]) == {
        "exit": 1,
        "checks": [
            {"check": "services", "ok": True, "detail": "3 active"},
            {"check": "database", "ok": False, "detail": "127.0.0.1:5432/litellm: refused"},
        ],
    }


def test_sbom_components_are_name_and_version():
    bom = {"components": [{"name": "litellm", "version": "1.82.7"}, {"name": "no-version"}]}
    assert sbom_components(json.dumps(bom)) == {"litellm": "1.82.7"}
    with pytest.raises(ValueError, match="absent or not a single regular file"):
        sbom_components(None)


def test_quarantine_manifests_are_read_each_folder_alone(tmp_path, monkeypatch):
    """The host-side read, for real: a good manifest (its moved items checked to exist), a manifest that is a
    symlink and one that is not a manifest each fail alone."""
    from litellm_runner.pyinfra_ext import hostside

    quarantine = tmp_path / "quarantine"
    monkeypatch.setattr(hostside, "SWEEP_QUARANTINE", str(quarantine))
    assert hostside.quarantine_manifests({}) == {"folders": [], "more": 0}  # none yet
    good, linked, other = (quarantine / n for n in ("20261205T1", "20261205T2", "20261205T3"))
    for folder in (good, linked, other):
        folder.mkdir(parents=True)
    (good / "000-keys").write_text("ssh-ed25519 AAAA")
    items = [
        {"path": "/home/litellm/.ssh/authorized_keys", "moved_to": str(good / "000-keys")},
        {"path": "/home/litellm/.profile", "moved_to": str(good / "001-gone")},
        {"path": "/proc/4242", "moved_to": None, "stopped": "SIGTERM"},
    ]
    (good / "manifest.json").write_text(json.dumps({"time": "20261205T1", "source": "account sweep", "items": items}))
    (linked / "manifest.json").symlink_to(good / "manifest.json")
    (other / "manifest.json").write_text("[1, 2]")
    found = hostside.quarantine_manifests({})
    assert [f["folder"] for f in found["folders"]] == [str(good), str(linked), str(other)]
    first, second, third = found["folders"]
    assert [i.get("present") for i in first["items"]] == [True, False, None]
    assert "symlink: not followed" in second["error"] and "not a manifest" in third["error"]


def test_readiness_is_one_bounded_request(monkeypatch):
    """The host-side GET, for real, against a loopback server: its status and fields escaped; no answer is a
    failure named by its class."""
    import http.server
    import threading

    from litellm_runner.pyinfra_ext import hostside

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = json.dumps({"status": "unhealthy", "db": "Not connected\x1b[2J"}).encode()
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/health/readiness"
        assert hostside.readiness({"url": url}) == {
            "url": url,
            "status": 503,
            "status_field": "unhealthy",
            "db": "Not connected\\x1b[2J",
        }
    finally:
        server.shutdown()
        server.server_close()
    closed = f"http://127.0.0.1:{server.server_port}/health/readiness"
    assert hostside.readiness({"url": closed, "timeout": 2}) == {"url": closed, "status": None, "failure": "URLError"}
