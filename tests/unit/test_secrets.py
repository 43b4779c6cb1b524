"""The secret source: values by name, placeholders blanked, no value in any message; the env file
operation as data (fingerprints in, commands and --diff lines out, no value anywhere)."""

import hashlib

import pytest

from litellm_runner import envfile, secrets
from litellm_runner.pyinfra_ext.env_file import env_file
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot
from tests.unit import fakehost

CANARY = "sk-canary-7f3e9a1b2c4d"


def write(tmp_path, text, mode=0o600):
    path = tmp_path / "secrets.env"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_environment_wins_over_file(tmp_path, monkeypatch):
    path = write(tmp_path, f"LITELLM_MASTER_KEY={CANARY}\nLITELLM_SALT_KEY=sk-salt\n")
    monkeypatch.setenv("LITELLM_SALT_KEY", "sk-from-env")
    monkeypatch.delenv("LITELLM_SECRETS_FILE", raising=False)
    assert secrets.load(["LITELLM_MASTER_KEY", "LITELLM_SALT_KEY"], str(path)) == {
        "LITELLM_MASTER_KEY": CANARY,
        "LITELLM_SALT_KEY": "sk-from-env",
    }


def test_missing_secret_names_key_and_source_only(tmp_path, monkeypatch):
    path = write(tmp_path, f"LITELLM_MASTER_KEY={CANARY}\n")
    monkeypatch.delenv("LITELLM_SECRETS_FILE", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(secrets.SecretError) as err:
        secrets.load(["LITELLM_MASTER_KEY", "DATABASE_URL"], str(path))
    assert str(err.value) == f"secret(s) DATABASE_URL not found in the environment or {path}"
    assert CANARY not in str(err.value)


def test_readable_secrets_file_is_refused(tmp_path):
    path = write(tmp_path, f"X={CANARY}\n", mode=0o644)
    with pytest.raises(secrets.SecretError, match="mode 0644 lets others read secrets; expected 0600"):
        secrets.read_secrets_file(path)


def test_malformed_line_is_located_but_not_shown(tmp_path):
    path = write(tmp_path, f"GOOD=1\n{CANARY}\n")
    with pytest.raises(secrets.SecretError) as err:
        secrets.read_secrets_file(path)
    assert f"{path}:2: expected KEY=value" in str(err.value)
    assert CANARY not in str(err.value)


@pytest.mark.parametrize(
    "value, written",
    [
        ("dummy", ""),
        ("DUMMY", ""),
        ("changeme", ""),
        ("sk-1234", ""),
        (CANARY, CANARY),
    ],
)
def test_placeholders_are_written_empty(value, written):
    text, blanked = secrets.render_env(
        {"VLLM_API_KEY": value}, {"REDIS_HOST": "127.0.0.1"}, ["dummy", "changeme", "sk-1234"]
    )
    assert f"\nVLLM_API_KEY='{written}'\n" in text
    assert envfile.loads(text) == {"VLLM_API_KEY": written, "REDIS_HOST": "127.0.0.1"}
    assert blanked == ([] if written else ["VLLM_API_KEY"])


# (id, secrets file text, what load() returns for K): the file is read as systemd reads an env file
FILE_VALUES = [
    ("quotes-kept-inside", 'K=it\'s "x"\n', 'it\'s "x"'),
    ("single-quoted", "K='a\\b $X #'\n", "a\\b $X #"),
    ("double-quoted", 'K="it\'s \\$"\n', "it's $"),
    ("one-quote-is-not-stripped", "K=abc'\n", "abc'"),
    ("blanks-trimmed-unquoted", "K=  v  \n", "v"),
    ("blanks-kept-quoted", "K='  v  '\n", "  v  "),
]


@pytest.mark.parametrize("case, text, value", FILE_VALUES, ids=[r[0] for r in FILE_VALUES])
def test_secrets_file_is_read_as_systemd_reads_it(tmp_path, monkeypatch, case, text, value):
    monkeypatch.delenv("LITELLM_SECRETS_FILE", raising=False)
    monkeypatch.delenv("K", raising=False)
    assert secrets.load(["K"], str(write(tmp_path, text))) == {"K": value}


# (id, where the secret comes from, what the message says): refused at load, before any host command
LINE_BREAKS = [
    (
        "env-newline",
        {"VLLM_API_KEY": f"{CANARY}\nINJECTED=1"},
        "",
        "the environment: VLLM_API_KEY: the value contains a line break",
    ),
    (
        "env-carriage-return",
        {"VLLM_API_KEY": f"{CANARY}\rINJECTED=1"},
        "",
        "the environment: VLLM_API_KEY: the value contains a line break",
    ),
    (
        "file-quote-over-lines",
        {},
        f"VLLM_API_KEY='{CANARY}\nINJECTED=1'\n",
        "{path}:1: VLLM_API_KEY: a quote is not closed",
    ),
    (
        "file-continuation",
        {},
        f"VLLM_API_KEY={CANARY}\\\nINJECTED=1\n",
        "{path}:1: VLLM_API_KEY: a backslash ends the line",
    ),
    (
        "file-control-char",
        {},
        f"VLLM_API_KEY={CANARY}\x1b\n",
        "{path}:1: VLLM_API_KEY: the value contains a control character",
    ),
]


@pytest.mark.parametrize("case, environ, text, fragment", LINE_BREAKS, ids=[r[0] for r in LINE_BREAKS])
def test_value_the_env_file_cannot_carry_is_refused_at_load(tmp_path, monkeypatch, case, environ, text, fragment):
    path = write(tmp_path, text or "OTHER=1\n")
    monkeypatch.delenv("LITELLM_SECRETS_FILE", raising=False)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(secrets.SecretError) as err:
        secrets.load(["VLLM_API_KEY"], str(path))
    assert fragment.format(path=path) in str(err.value)
    assert CANARY not in str(err.value) and "INJECTED" not in str(err.value)


def test_plain_setting_that_cannot_be_carried_is_refused():
    with pytest.raises(secrets.SecretError, match="env file: REDIS_HOST: the value contains a line break"):
        secrets.render_env({}, {"REDIS_HOST": "127.0.0.1\nX=1"}, [])


def test_masked_env_reads_as_systemd_and_shows_no_value():
    text, _ = secrets.render_env({"VLLM_API_KEY": f"it's {CANARY}"}, {"REDIS_HOST": "127.0.0.1"}, [])
    masked = secrets.masked_env(text.splitlines())
    assert masked == {
        "VLLM_API_KEY": secrets.fingerprint(f"it's {CANARY}"),
        "REDIS_HOST": secrets.fingerprint("127.0.0.1"),
    }
    assert CANARY not in repr(secrets.masked_env([f"K='{CANARY}"]))


def test_fingerprint_does_not_reveal_the_value():
    fp = secrets.fingerprint(CANARY)
    assert fp.startswith("sha256:") and len(fp) == 15 and CANARY not in fp
    assert secrets.fingerprint("") == "(empty)"


# -- the env_file operation: the host's fingerprints in, commands, drift and --diff out ----------------------
OLD = "sk-canary-old-5d1e0b7a9c"
NEW = "sk-canary-new-3a8f2c6e1b"


def env_host_data(tmp_path, value):
    return {
        "litellm_env_secrets": ["LITELLM_MASTER_KEY"],
        "litellm_env": {"REDIS_HOST": "127.0.0.1"},
        "litellm_env_placeholders": ["dummy"],
        "litellm_secrets_file": str(write(tmp_path, f"LITELLM_MASTER_KEY={value}\n")),
    }


def on_host(value):
    """The snapshot's path state of an env file on the host that holds VALUE (the snapshot's per-key fingerprints)."""
    text, _ = secrets.render_env({"LITELLM_MASTER_KEY": value}, {"REDIS_HOST": "127.0.0.1"}, ["dummy"])
    return {
        "type": "file",
        "mode": "0600",
        "user": "litellm",
        "group": "litellm",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "env": secrets.masked_env(text.splitlines()),
    }


WRITE = "write /r/env.litellm 0600 litellm:litellm"
TITLE = "[fake-host] Will {} /r/env.litellm (secrets shown as fingerprints)"
# (id, the env file on the host, the value in the secret source, commands, what --diff prints)
ENV_FILE = [
    ("current", on_host(OLD), OLD, [], []),
    (
        "secret-changed",
        on_host(OLD),
        NEW,
        [WRITE],
        [
            TITLE.format("modify"),
            f"  - LITELLM_MASTER_KEY={secrets.fingerprint(OLD)}",
            f"  + LITELLM_MASTER_KEY={secrets.fingerprint(NEW)}",
            "",
        ],
    ),
    (
        "missing",
        None,
        NEW,
        [WRITE],
        [
            TITLE.format("create"),
            f"  + LITELLM_MASTER_KEY={secrets.fingerprint(NEW)}",
            f"  + REDIS_HOST={secrets.fingerprint('127.0.0.1')}",
            "",
        ],
    ),
    (
        "same-values-other-layout",
        {**on_host(OLD), "sha256": "0" * 64},
        OLD,
        [WRITE],
        [TITLE.format("modify"), "  (the same keys and values, laid out differently)", ""],
    ),
]


@pytest.mark.parametrize("diff", [False, True], ids=["plain", "diff"])
@pytest.mark.parametrize("case, fact, value, expected, printed", ENV_FILE, ids=[r[0] for r in ENV_FILE])
def test_env_file(tmp_path, monkeypatch, case, fact, value, expected, printed, diff):
    from tests.unit.test_operations import run_diff

    monkeypatch.delenv("LITELLM_SECRETS_FILE", raising=False)
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)
    commands, noops, lines = run_diff(
        env_file,
        {HostSnapshot: fakehost.snap(paths={"/r/env.litellm": fact})},
        diff=diff,
        data=env_host_data(tmp_path, value),
        dest="/r/env.litellm",
        user="litellm",
        group="litellm",
    )
    assert commands == expected
    assert noops == ([] if expected else ["/r/env.litellm holds the current secrets"])
    assert lines == (printed if diff else [])
    shown = repr((commands, noops, lines, fakehost.last_drift))
    assert OLD not in shown and NEW not in shown


def test_env_file_without_its_secret_fails_the_operation_naming_the_key_only(tmp_path, monkeypatch):
    """pyinfra's OperationError (the run exits 1 with pyinfra's message), never the process exiting."""
    from pyinfra.api.exceptions import OperationError

    monkeypatch.delenv("LITELLM_SECRETS_FILE", raising=False)
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)
    data = {**env_host_data(tmp_path, OLD), "litellm_env_secrets": ["LITELLM_MASTER_KEY", "VLLM_API_KEY"]}
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(OperationError) as err:
        fakehost.run_op(
            env_file,
            {HostSnapshot: fakehost.snap(paths={"/r/env.litellm": None})},
            data=data,
            dest="/r/env.litellm",
            user="u",
            group="g",
        )
    assert (
        str(err.value)
        == f"/r/env.litellm: secret(s) VLLM_API_KEY not found in the environment or {tmp_path}/secrets.env"
    )
    assert OLD not in str(err.value)
