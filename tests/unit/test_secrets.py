"""The secret source: values by name, placeholders blanked, no value in any message."""

import os

import pytest

from litellm_runner import secrets

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
        "LITELLM_MASTER_KEY": CANARY, "LITELLM_SALT_KEY": "sk-from-env"}


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


@pytest.mark.parametrize("value, written", [
    ("dummy", ""), ("DUMMY", ""), ("changeme", ""), ("sk-1234", ""), (CANARY, CANARY),
])
def test_placeholders_are_written_empty(value, written):
    text, blanked = secrets.render_env({"VLLM_API_KEY": value}, {"REDIS_HOST": "127.0.0.1"}, ["dummy", "changeme", "sk-1234"])
    assert f"\nVLLM_API_KEY={written}\n" in text
    assert "REDIS_HOST=127.0.0.1" in text
    assert blanked == ([] if written else ["VLLM_API_KEY"])


def test_fingerprint_does_not_reveal_the_value():
    fp = secrets.fingerprint(CANARY)
    assert fp.startswith("sha256:") and len(fp) == 15 and CANARY not in fp
    assert secrets.fingerprint("") == "(empty)"
