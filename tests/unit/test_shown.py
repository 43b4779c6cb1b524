"""What may be shown of a host's string: control characters escaped, known secrets redacted (issue #22)."""

from __future__ import annotations

import pytest

from litellm_runner import shown
from litellm_runner.cli import check

KEY = "sk-" + "0123456789abcdef" * 3

ESCAPES = [
    ("plain", "state/config.generated.yaml", "state/config.generated.yaml"),
    ("tab kept", "a\tb", "a\tb"),
    ("line break", "a\nfake line", "a\\x0afake line"),
    ("carriage return", "ok\rFAKE", "ok\\x0dFAKE"),
    ("window title", "\x1b]0;PWNED\x07", "\\x1b]0;PWNED\\x07"),
    ("clear screen", "\x1b[2J", "\\x1b[2J"),
    ("concealed text", "\x1b[8mhidden", "\\x1b[8mhidden"),
    ("C1 CSI", "\x9b2J", "\\x9b2J"),
    ("DEL and NUL", "\x7f\x00", "\\x7f\\x00"),
    ("bidi override", "abc\u202edcba", "abc\\u202edcba"),
    ("zero width", "pa\u200bth", "pa\\u200bth"),
    ("line separator", "a\u2028b", "a\\u2028b"),
    ("text kept", "naïve 日本 ✓", "naïve 日本 ✓"),
]


@pytest.mark.parametrize("case, text, expected", ESCAPES, ids=[c[0] for c in ESCAPES])
def test_escape(case, text, expected):
    assert shown.escape(text) == expected
    assert shown.escape(expected) == expected  # idempotent: escaped text holds nothing to escape


REDACTS = [
    ("literal in a config line", f"  master_key: {KEY}", [KEY], f"  master_key: {shown.mark(KEY)}"),
    ("twice", f"{KEY} {KEY}", [KEY], f"{shown.mark(KEY)} {shown.mark(KEY)}"),
    ("longest first", "pw=s3cr3tpass url=x://u:s3cr3tpass@h", ["s3cr3tpass", "x://u:s3cr3tpass@h"], None),
    ("too short to redact", "a b c", ["a", ""], "a b c"),
    ("absent", "nothing here", [KEY], "nothing here"),
]


@pytest.mark.parametrize("case, text, secrets, expected", REDACTS, ids=[c[0] for c in REDACTS])
def test_redact(case, text, secrets, expected):
    out = shown.redact(text, secrets)
    for secret in secrets:
        if len(secret) >= shown.MIN_SECRET:
            assert secret not in out
    if expected is not None:
        assert out == expected
    assert shown.mark(KEY).startswith("<secret sha256:") and KEY not in shown.mark(KEY)


def test_safe_walks_keys_values_and_lists():
    item = {
        "before": {f"\x1b[2J{KEY}": [f"x {KEY}", 3, None, ("\x07",)]},
        "diff": [f"-  master_key: {KEY}", "+  master_key: os.environ/LITELLM_MASTER_KEY"],
    }
    out = shown.safe(item, [KEY])
    text = repr(out)
    assert KEY not in text and "\x1b" not in text and "\x07" not in text
    assert out["diff"][0] == f"-  master_key: {shown.mark(KEY)}"
    assert out["before"] == {f"\\x1b[2J{shown.mark(KEY)}": [f"x {shown.mark(KEY)}", 3, None, ["\\x07"]]}


def test_the_checks_report_is_escaped_in_the_terminal_json_and_junit():
    bad = "/r/state/\x1b]0;PWNED\x07.tmp-litellm-runner"
    records = [{"id": "No leftovers | fs-02", "kind": "leftovers", "before": [bad], "after": []}]
    checked = {"host": "h\x1b[8m", "changes": ["No leftovers | fs-02"], "conditional": [], "records": records}
    report = check.build_report({"h\x1b[8m": checked}, ["h\x1b[8m", "gone"], {"gone": "ssh: \x1b[2J refused"})
    for text in (check.human(report), check.junit(report), repr(report)):
        assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;PWNED\\x07" in report["hosts"]["h\\x1b[8m"]["items"][0]["before"][0]
