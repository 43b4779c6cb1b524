"""Hosts files: groups of hosts, clear errors for malformed ones."""

import pytest

from litellm_runner.inventory import InventoryError, load_hosts_file


def test_hosts_file_groups(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("litellm_hosts:\n  - a.example.net\n  - name: b.example.net\n    data: {ssh_user: deploy}\n"
                    "canary:\n  - c.example.net\n")
    assert load_hosts_file(str(path)) == {
        "litellm_hosts": ["a.example.net", ("b.example.net", {"ssh_user": "deploy"})],
        "canary": ["c.example.net"],
    }


@pytest.mark.parametrize("text, message", [
    ("[]", "expected a mapping of group name -> list of hosts"),
    ("litellm_hosts: a.example.net\n", "group 'litellm_hosts': expected an identifier mapped to a list of hosts"),
    ("litellm_hosts:\n  - {data: {}}\n", "litellm_hosts[0]: expected a host name or {name: ..., data: {...}}"),
    ("litellm_hosts:\n  - {name: a, data: [1]}\n", "litellm_hosts[0].data: expected a mapping"),
    ("litellm_hosts: [a\n", "not valid YAML"),
])
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
