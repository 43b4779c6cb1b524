"""Hosts files: groups of hosts, clear errors for malformed ones."""

import pytest

from litellm_runner.inventory import InventoryError, load_hosts_file


def test_hosts_file_groups(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(
        "litellm_hosts:\n  - a.example.net\n  - name: b.example.net\n    data: {ssh_user: deploy}\n"
        "canary:\n  - c.example.net\n"
    )
    assert load_hosts_file(str(path)) == {
        "litellm_hosts": ["a.example.net", ("b.example.net", {"ssh_user": "deploy"})],
        "canary": ["c.example.net"],
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("[]", "expected a mapping of group name -> list of hosts"),
        ("litellm_hosts: a.example.net\n", "group 'litellm_hosts': expected an identifier mapped to a list of hosts"),
        ("litellm_hosts:\n  - {data: {}}\n", "litellm_hosts[0]: expected a host name or {name: ..., data: {...}}"),
        ("litellm_hosts:\n  - {name: a, data: [1]}\n", "litellm_hosts[0].data: expected a mapping"),
        ("litellm_hosts: [a\n", "not valid YAML"),
    ],
)
def test_bad_hosts_file(tmp_path, text, message):
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    with pytest.raises(InventoryError) as err:
        load_hosts_file(str(path))
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_missing_hosts_file():
    with pytest.raises(InventoryError, match="/nope.yml: LITELLM_INVENTORY names a file that does not exist"):
        load_hosts_file("/nope.yml")


# -- sudo passwords: only from the secret source ---------------------------------------------
from pyinfra.api import State  # noqa: E402

from litellm_runner import inventory  # noqa: E402
from litellm_runner.inventory import refuse_group_data_passwords, with_sudo_password  # noqa: E402
from litellm_runner.run import compat  # noqa: E402
from litellm_runner.run import state as run_state  # noqa: E402

CANARY = "canary-Pw-4711"


@pytest.mark.parametrize("key", ["_sudo_password", "_su_password"])
def test_password_in_a_hosts_file_is_refused_masked(tmp_path, key):
    path = tmp_path / "hosts.yml"
    path.write_text(f"litellm_hosts:\n  - name: a\n    data: {{_sudo: true, {key}: {CANARY}}}\n")
    with pytest.raises(InventoryError) as err:
        load_hosts_file(str(path))
    assert str(err.value).startswith(f"{path}: litellm_hosts[0].data.{key} = ***: a password is never written")
    assert CANARY not in str(err.value)


@pytest.mark.parametrize("text", [f"_sudo_password = '{CANARY}'\n", f"x = 1\n_su_password: str = '{CANARY}'\n"])
def test_password_in_group_data_is_refused_masked(tmp_path, text):
    (tmp_path / "all.py").write_text("litellm_user = 'litellm'\n")
    (tmp_path / "web.py").write_text(text)
    with pytest.raises(InventoryError) as err:
        refuse_group_data_passwords(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'web.py'}:")
    assert "= ***: a password is never written in group_data" in str(err.value)
    assert CANARY not in str(err.value)


def test_sudo_password_secret_name_belongs_in_the_hosts_file(tmp_path):
    (tmp_path / "web.py").write_text("litellm_sudo_password_secret = 'OPS_SUDO'\n")
    with pytest.raises(InventoryError, match="web.py:1: litellm_sudo_password_secret is read before group_data"):
        refuse_group_data_passwords(tmp_path)


def test_shipped_group_data_has_no_password():
    refuse_group_data_passwords()


def _secrets(tmp_path, text, mode=0o600):
    path = tmp_path / "secrets.env"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


@pytest.mark.parametrize(
    "data, env, file_text, expected",
    [
        # no _sudo: nothing looked up
        ({"ssh_user": "deploy"}, {"LITELLM_SUDO_PASSWORD": CANARY}, None, None),
        # _sudo, the environment first
        ({"_sudo": True}, {"LITELLM_SUDO_PASSWORD": CANARY}, "LITELLM_SUDO_PASSWORD=other\n", CANARY),
        # then the secrets file of the host
        ({"_sudo": True}, {}, f"LITELLM_SUDO_PASSWORD={CANARY}\n", CANARY),
        # another name
        ({"_sudo": True, "litellm_sudo_password_secret": "OPS_SUDO"}, {}, f"OPS_SUDO='{CANARY}'\n", CANARY),
        # no secret: sudo -n (NOPASSWD)
        ({"_sudo": True}, {}, "OTHER=x\n", None),
    ],
)
def test_sudo_password_from_the_secret_source(tmp_path, monkeypatch, data, env, file_text, expected):
    for name in ("LITELLM_SUDO_PASSWORD", "OPS_SUDO", "LITELLM_SECRETS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if file_text is not None:
        data = {**data, "litellm_secrets_file": _secrets(tmp_path, file_text)}
    state = State()  # as pyinfra's CLI: its State is made, and in context, before it loads the inventory
    with compat.in_context(state):
        result = with_sudo_password("h", data, "h")
    # the value stays out of host data (pyinfra would put it on the command line): only a marker
    assert result.get("_sudo_password") == (inventory.ASKPASS_MARKER if expected else None)
    assert run_state.of(state).sudo_passwords.get("h") == expected  # that run's, for its askpass helper
    assert expected is None or expected not in repr(run_state.of(state))


@pytest.mark.parametrize(
    "file_text, mode, message",
    [
        ("LITELLM_SUDO_PASSWORD=x\n", 0o644, "lets others read secrets"),
        ("LITELLM_SUDO_PASSWORD=\n", 0o600, "empty or not one line (value not shown)"),
    ],
)
def test_bad_sudo_password_source_is_refused(tmp_path, monkeypatch, file_text, mode, message):
    monkeypatch.delenv("LITELLM_SUDO_PASSWORD", raising=False)
    monkeypatch.delenv("LITELLM_SECRETS_FILE", raising=False)
    data = {"_sudo": True, "litellm_secrets_file": _secrets(tmp_path, file_text, mode)}
    with pytest.raises(InventoryError) as err:
        with_sudo_password("h", data, "h")
    assert str(err.value).startswith("h: sudo password LITELLM_SUDO_PASSWORD") and message in str(err.value)
