"""The rotation's control-machine part (litellm_runner/rotation.py, cli/rotate.py): the staged secrets
file, the new values, the operator's keys file, the refusals before any host is touched."""

import json
import os
import stat
import urllib.parse

import pytest

from litellm_runner import envfile, exitcodes, rotation
from litellm_runner.cli import rotate as cli

OLD = {
    "LITELLM_MASTER_KEY": "sk-old-master-canary",
    "LITELLM_SALT_KEY": "sk-old-salt-canary",
    "DATABASE_URL": "postgresql://litellm:old-pass-canary@127.0.0.1:5434/litellm",
}
FILE = (
    "# the operator's secrets\n"
    "LITELLM_MASTER_KEY=sk-old-master-canary\n"
    "LITELLM_SALT_KEY='sk-old-salt-canary'\n"
    'DATABASE_URL="postgresql://litellm:old-pass-canary@127.0.0.1:5434/litellm"\n'
    "VLLM_API_KEY=dummy\n"
)


@pytest.fixture
def secrets_file(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text(FILE)
    path.chmod(0o600)
    return path


def test_new_values_replace_the_secrets_and_keep_the_database_address():
    new = rotation.new_values(OLD)
    assert set(new) == set(rotation.NAMES)
    assert all(new[n] != OLD[n] for n in rotation.NAMES)
    assert new["LITELLM_MASTER_KEY"].startswith("sk-") and len(new["LITELLM_MASTER_KEY"]) > 40
    old_url, new_url = urllib.parse.urlsplit(OLD["DATABASE_URL"]), urllib.parse.urlsplit(new["DATABASE_URL"])
    assert (new_url.username, new_url.hostname, new_url.port, new_url.path) == (
        "litellm",
        "127.0.0.1",
        5434,
        "/litellm",
    )
    assert new_url.password != old_url.password and len(new_url.password) == 48
    assert rotation.new_values(OLD) != new  # random every time


@pytest.mark.parametrize(
    "old, message",
    [
        ({**OLD, "LITELLM_SALT_KEY": ""}, "LITELLM_SALT_KEY: not set"),
        ({**OLD, "DATABASE_URL": "postgresql://127.0.0.1/litellm"}, "DATABASE_URL: expected postgresql://USER:PASS"),
    ],
)
def test_new_values_refuse_what_they_cannot_rotate(old, message):
    with pytest.raises(rotation.RotationError, match=message) as caught:
        rotation.new_values(old)
    assert "canary" not in str(caught.value)


def test_replace_values_keeps_every_other_line():
    new = rotation.new_values(OLD)
    text = rotation.replace_values(FILE, new, "secrets.env")
    assert text.splitlines()[0] == "# the operator's secrets" and text.splitlines()[-1] == "VLLM_API_KEY=dummy"
    assert envfile.loads(text, "secrets.env") == {**new, "VLLM_API_KEY": "dummy"}


def test_stage_writes_a_0600_file_once_and_resumes_with_it(secrets_file):
    staged, made = rotation.stage(secrets_file)
    assert made and staged == secrets_file.with_name("secrets.env.rotating")
    assert stat.S_IMODE(staged.stat().st_mode) == 0o600
    assert secrets_file.read_text() == FILE  # the old secrets stay in force
    first = rotation.values(staged)
    again, made = rotation.stage(secrets_file)
    assert (again, made) == (staged, False) and rotation.values(again) == first  # an interrupted one resumes
    rotation.complete(secrets_file)
    assert not staged.exists() and rotation.values(secrets_file) == first
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_keys_file_is_pending_until_published(tmp_path):
    rows = [
        {"alias": "ci", "key_name": "sk-...abcd", "raw": "sk-raw-canary-abcd"},
        {"alias": None, "key_name": "k", "raw": "r"},
    ]
    pending = rotation.write_keys(rotation.keys_file(tmp_path, "host-1"), rows)
    assert pending.name.endswith(".keys.pending") and stat.S_IMODE(pending.stat().st_mode) == 0o600
    assert stat.S_IMODE(pending.parent.stat().st_mode) == 0o700
    final = rotation.publish_keys(pending)
    assert final.name.endswith(".keys") and not pending.exists()
    assert final.read_text().splitlines()[1:] == ["ci sk-...abcd sk-raw-canary-abcd", "- k r"]


@pytest.mark.parametrize(
    "selection, aliases",
    [("all", ["ci", None, "ops"]), ("none", []), ("ci, ops", ["ci", "ops"]), ("nobody", [])],
)
def test_selected_keys(selection, aliases):
    keys = [{"token": "t1", "key_alias": "ci"}, {"token": "t2", "key_alias": None}, {"token": "t3", "key_alias": "ops"}]
    assert [k["key_alias"] for k in rotation.selected(keys, selection)] == aliases


def test_secrets_from_the_environment_are_refused_with_the_steps_and_no_value(monkeypatch, secrets_file, capsys):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-env-canary")
    monkeypatch.setenv("LITELLM_SECRETS_FILE", str(secrets_file))
    assert cli.main([]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "unset LITELLM_MASTER_KEY" in err and str(secrets_file) in err and "sk-env-canary" not in err
    assert not rotation.staged_path(secrets_file).exists()


def test_dry_is_refused(secrets_file, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--secrets-file", str(secrets_file), "--dry"])
    assert exited.value.code == exitcodes.USAGE and "--dry" in capsys.readouterr().err
    assert not rotation.staged_path(secrets_file).exists()


def test_no_secrets_file_is_a_usage_error(monkeypatch, capsys):
    for name in (*rotation.NAMES, "LITELLM_SECRETS_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main([]) == exitcodes.USAGE
    assert "--secrets-file" in capsys.readouterr().err


def test_a_secrets_file_others_can_read_is_refused_before_anything(monkeypatch, secrets_file, capsys):
    for name in (*rotation.NAMES, "LITELLM_SECRETS_FILE"):
        monkeypatch.delenv(name, raising=False)
    secrets_file.chmod(0o644)
    assert cli.main(["--secrets-file", str(secrets_file)]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "expected 0600" in err and "canary" not in err
    assert not rotation.staged_path(secrets_file).exists()


def test_the_pipe_carries_the_values_and_nothing_else_does(monkeypatch, tmp_path):
    """cli.pyinfra: the values reach the child on the pipe INPUT_FD names, not in its argv or environment."""
    seen = {}

    def fake_run(command, cwd, env, timeout, check, pass_fds=()):
        assert int(env[cli.INPUT_FD]) in pass_fds
        seen["argv"], seen["env"] = command, env
        with os.fdopen(os.dup(int(env[cli.INPUT_FD])), "r") as pipe:
            seen["given"] = json.loads(pipe.read())

        class Done:
            returncode = 0

        return Done()

    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    given = {"phase": "apply", "new": {"LITELLM_MASTER_KEY": "sk-new-canary"}}
    assert cli.pyinfra(["x.py", "-y"], [], given, tmp_path / "s.env", 60) == 0
    assert seen["given"] == given
    assert "sk-new-canary" not in json.dumps(seen["argv"]) + json.dumps(seen["env"])
    assert seen["env"]["LITELLM_SECRETS_FILE"] == str(tmp_path / "s.env")
