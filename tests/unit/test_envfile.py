"""The env file codec: what dumps writes, loads (and systemd's EnvironmentFile=) reads back byte for byte.

The rows of READ are systemd's parse_env_file_internal (src/basic/env-file.c, 252 and 257) worked by
hand; tests/integration/test_secrets_roundtrip.py feeds VALUES through the real systemd.
"""

import pathlib
import subprocess
import sys

import pytest

from litellm_runner import envfile
from litellm_runner.envfile import EnvFileError
from litellm_runner.resources import host_tools
from tests.support.services import BIN

REPO = pathlib.Path(__file__).resolve().parents[2]
CANARY = "sk-canary-5e1f"

# (id, value): every one must come back exactly
VALUES = [
    ("backslash", "a\\b"),
    ("two-backslashes", "a\\\\b"),
    ("trailing-backslash", "abc\\"),
    ("only-backslash", "\\"),
    ("single-quote", "it's"),
    ("double-quote", 'say "hi"'),
    ("both-quotes", 'it\'s "x"'),
    ("quotes-and-backslashes", "'\\\"\\'\\"),
    ("leading-single-quote", "'abc"),
    ("dollar-var", "$HOME"),
    ("dollar-brace", "${X}"),
    ("dollar-with-quote", "it's $HOME and ${X}"),
    ("backtick", "`id` it's"),
    ("hash", "#not a comment"),
    ("semicolon", ";not a comment"),
    ("blanks-around", "  leading and trailing  "),
    ("tab", "\tab\t"),
    ("non-ascii", "päss€"),
    ("empty", ""),
    ("equals", "a=b=="),
    ("escape-lookalikes", "\\n\\t\\$ it's"),
    ("url", "postgresql://u:p%40ss@127.0.0.1:5434/litellm"),
]

# (id, bad value, what the message says)
BAD_VALUES = [
    ("newline", f"{CANARY}\nINJECTED=1", "a line break (\\n)"),
    ("carriage-return", f"{CANARY}\rINJECTED=1", "a line break (\\r)"),
    ("nul", f"{CANARY}\x00tail", "a NUL byte"),
    ("escape-char", f"{CANARY}\x1b[2J", "a control character or line separator (U+001B)"),
    ("delete-char", f"{CANARY}\x7f", "a control character or line separator (U+007F)"),
    ("next-line-c1", f"{CANARY}\x85", "a control character or line separator (U+0085)"),
    ("line-separator", f"{CANARY}\u2028", "a control character or line separator (U+2028)"),
    ("paragraph-separator", f"{CANARY}\u2029", "a control character or line separator (U+2029)"),
    ("not-utf8", f"{CANARY}\udcff", "not valid UTF-8"),
]

BAD_KEYS = ["", "1A", "A-B", "A B", "export A", "Ä", "A=B"]

# (id, text systemd reads, what it reads): hand-written files
READ = [
    ("plain", "A=plain\n", {"A": "plain"}),
    ("no-final-newline", "A=1", {"A": "1"}),
    ("blanks-dropped", "  A = spaced value  \n", {"A": "spaced value"}),
    ("escaped-blank-kept", "A=x\\ \n", {"A": "x "}),
    ("backslash-escapes-unquoted", "A=a\\b\\\\c\n", {"A": "ab\\c"}),
    ("quote-mid-value-is-literal", 'A=it\'s "x"\n', {"A": 'it\'s "x"'}),
    ("hash-mid-value-is-literal", "A=x # y\n", {"A": "x # y"}),
    ("double-quote-unescapes-four", 'A="\\"\\\\\\`\\$"\n', {"A": '"\\`$'}),
    ("double-quote-keeps-other-backslashes", 'A="a\\q\\n"\n', {"A": "a\\q\\n"}),
    ("single-quote-keeps-all", "A='a\\\"$b'\n", {"A": 'a\\"$b'}),
    ("quoted-pieces-join", "A='x' 'y'z\n", {"A": "xyz"}),
    ("empty", "A=\nB=''\nC=\"\"\n", {"A": "", "B": "", "C": ""}),
    ("comments", "# c\n; c\n  # c\nA=1\n", {"A": "1"}),
    ("crlf", "A=1\r\nB='2'\r\n", {"A": "1", "B": "2"}),
    ("last-wins", "A=1\nA=2\n", {"A": "2"}),
    ("blank-lines", "\n\nA=1\n\n", {"A": "1"}),
    ("key-blank-before-equals", "A =1\n", {"A": "1"}),
]

# (id, text, source:line and key the message names)
REFUSED = [
    ("continuation", f"A=1\nB={CANARY}\\\nC=2\n", "f:2: B: a backslash ends the line"),
    ("continuation-at-end", f"B={CANARY}\\", "f:1: B: the file ends with a backslash"),
    ("quote-over-lines", f"A='{CANARY}\nB=2'\n", "f:1: A: a quote is not closed on its line"),
    ("double-quote-over-lines", f'A="{CANARY}\nB=2"\n', "f:1: A: a quote is not closed on its line"),
    ("double-quote-continuation", f'A="{CANARY}\\\nB"\n', "f:1: A: a backslash ends the line inside double quotes"),
    ("unclosed-quote", f"A=1\nB='{CANARY}", "f:2: B: a quote is not closed"),
    ("no-equals", f"A=1\n{CANARY}\n", "f:2: expected KEY=value, found no ="),
    ("bad-key", f"sk-{CANARY}=1\n", "f:1: expected KEY=value with a KEY of letters"),
    ("export-prefix", f"export A={CANARY}\n", "f:1: expected KEY=value with a KEY of letters"),
    ("comment-ends-in-backslash", f"# {CANARY} \\\nA=1\n", "f:1: a comment ends with a backslash"),
    ("nul", f"A=1\nB={CANARY}\x00\n", "f:2: the file contains a NUL byte"),
    (
        "control-char",
        f"A=1\nB={CANARY}\x1b\n",
        "f:2: B: the value contains a control character or line separator (U+001B)",
    ),
]


@pytest.mark.parametrize("case, value", VALUES, ids=[v[0] for v in VALUES])
def test_value_comes_back_exactly(case, value):
    text = envfile.dumps({"K": value, "AFTER": "next"})
    assert envfile.loads(text) == {"K": value, "AFTER": "next"}


def test_all_values_in_one_file_with_header():
    items = {f"V_{i}": value for i, (_, value) in enumerate(VALUES)}
    text = envfile.dumps(items, header="Managed by litellm-runner.\nSecond line.")
    assert text.startswith("# Managed by litellm-runner.\n# Second line.\n")
    assert envfile.loads(text) == items
    assert len(text.splitlines()) == len(items) + 2  # one line per variable: nothing spilled


@pytest.mark.parametrize(
    "value, written",
    [
        ("plain", "K='plain'"),
        ("a\\b $X #", "K='a\\b $X #'"),
        ("", "K=''"),
        ("it's", 'K="it\'s"'),
        ("it's \\ \" ` $", 'K="it\'s \\\\ \\" \\` \\$"'),
    ],
)
def test_quoting_rule(value, written):
    """No ' in the value: single quotes, nothing escaped. Else double quotes, \\ before " \\ ` $ only."""
    assert envfile.dumps({"K": value}) == written + "\n"


@pytest.mark.parametrize("case, value, what", BAD_VALUES, ids=[v[0] for v in BAD_VALUES])
def test_unrepresentable_value_is_refused_naming_the_key_only(case, value, what):
    with pytest.raises(EnvFileError) as err:
        envfile.dumps({"GOOD": "1", "VLLM_API_KEY": value})
    message = str(err.value)
    assert message.startswith("env file: VLLM_API_KEY: ") and what in message
    assert CANARY not in message and "INJECTED" not in message


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_key_is_refused(key):
    with pytest.raises(EnvFileError, match="expected a name of letters, digits and _"):
        envfile.check(key, "v")


def test_header_with_backslash_is_refused():
    with pytest.raises(EnvFileError, match="header"):
        envfile.dumps({"A": "1"}, header="ends in \\")


@pytest.mark.parametrize("case, text, expected", READ, ids=[r[0] for r in READ])
def test_reads_hand_written_files_as_systemd_does(case, text, expected):
    assert envfile.loads(text) == expected


@pytest.mark.parametrize("case, text, fragment", REFUSED, ids=[r[0] for r in REFUSED])
def test_what_systemd_would_misread_is_refused_by_line_without_the_value(case, text, fragment):
    with pytest.raises(EnvFileError) as err:
        envfile.loads(text, source="f")
    assert fragment in str(err.value)
    assert CANARY not in str(err.value)


def test_read_is_bytes_exact_and_names_bad_utf8_by_line(tmp_path):
    path = tmp_path / "env"
    path.write_bytes(b"A='x'\rB='y'\n")  # systemd ends a line at \r too; no newline translation
    assert envfile.read(path) == {"A": "x", "B": "y"}
    path.write_bytes(b"A=1\nB=" + CANARY.encode() + b"\xff\n")
    with pytest.raises(EnvFileError) as err:
        envfile.read(path)
    assert str(err.value).startswith(f"{path}:2: not valid UTF-8") and CANARY not in str(err.value)


def test_fingerprint_does_not_reveal_the_value():
    fp = envfile.fingerprint(CANARY)
    assert fp.startswith("sha256:") and len(fp) == 15 and CANARY not in fp
    assert envfile.fingerprint("") == "(empty)"


def test_hosts_get_the_same_file_and_it_needs_only_the_stdlib():
    """The deploy ships this module to <root>/bin/litellm_envfile.py, beside the host tools, and it
    imports with no site-packages and no litellm_runner, as the host tools import it."""
    assert host_tools()["litellm_envfile.py"] == REPO / "litellm_runner" / "envfile.py"
    shipped = BIN / "litellm_envfile.py"  # the host tools' folder as the deploy ships it
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import litellm_envfile as e; "
        "assert 'litellm_runner' not in sys.modules; print(e.loads(e.dumps({'K': sys.argv[2]}))['K'])"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code, str(shipped.parent), "it's \\ $X"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "it's \\ $X\n"
