"""The layout is declared once, and the host-side code finds and quarantines the account's plants (issue #22).

``account_plants`` and ``quarantine`` run here on a real file system: a temporary home stands in for the
account's (``pwd`` answers it), a temporary folder for root's quarantine.
"""

from __future__ import annotations

import json
import os
import pwd
from types import SimpleNamespace

import pytest

from litellm_runner import layout
from litellm_runner.pyinfra_ext import hostside
from litellm_runner.render import render_units
from tests.unit.group_data import defaults

UNITS = ["litellm.service", "litellm-metrics.service", "litellm-backup.timer", "litellm-backup.service"]


def test_the_host_side_code_takes_the_shared_names_from_layout_on_the_host_too(tmp_path):
    """layout.py travels with the host-side code (facts._boot): each name both sides use is defined once."""
    import subprocess

    from litellm_runner.pyinfra_ext import facts, lock, operations

    assert hostside.layout is layout and hostside.RUN_LOCK == lock.LOCK_PATH == layout.RUN_LOCK
    assert hostside.CREATED == operations.CREATED == layout.CREATED and hostside.MANAGED_UNITS == layout.UNITS
    assert hostside.SYSTEM_PYTHON == layout.SYSTEM_PYTHON and facts.hostside("read", {}).startswith(
        layout.SYSTEM_PYTHON
    )
    (tmp_path / "f").write_text("shipped\n")
    command = facts.hostside("read", {"path": str(tmp_path / "f")})  # runs alone, as on a host: no litellm_runner
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30, cwd="/")
    assert out.returncode == 0 and '"text": "shipped\\n"' in out.stdout, out.stderr


def test_root_owns_every_folder_of_code_and_config_and_the_units_name_them():
    for path, user, _group, mode in layout.root_dirs("litellm"):
        assert user == "root" and not int(mode, 8) & 0o022, path
    unit = render_units(defaults())["litellm-metrics.service"]
    assert f"ExecStart={layout.VENV}/bin/python {layout.BIN}/litellm-metrics " in unit
    assert f"EnvironmentFile={layout.ENV_FILE}" in unit and "ConditionUser=litellm" in unit


@pytest.fixture
def account(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".config" / "systemd" / "user" / "default.target.wants").mkdir(parents=True)
    fake = SimpleNamespace(pw_dir=str(home), pw_uid=os.getuid())
    monkeypatch.setattr(hostside.pwd, "getpwnam", lambda user: fake if user == "acct" else pwd.getpwnam(user))
    monkeypatch.setattr(hostside, "QUARANTINE", str(tmp_path / "quarantine"))
    return home


def test_only_the_managed_enablement_links_are_the_accounts_own(account):
    wants = account / ".config" / "systemd" / "user" / "default.target.wants"
    (wants / "litellm.service").symlink_to(f"{layout.UNITS}/litellm.service")
    (wants / "litellm-metrics.service").symlink_to("/etc/xdg/systemd/user/litellm-metrics.service")  # Debian's link
    assert hostside.account_plants("acct", UNITS) == []


def test_each_plant_is_named_with_its_evidence(account, tmp_path):
    user_dir = account / ".config" / "systemd" / "user"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.conf").write_text("[Service]\nExecStartPre=/bin/true\n")
    (user_dir / "litellm-metrics.service.d").symlink_to(tmp_path / "d")
    (user_dir / "litellm.service").write_text("[Service]\nExecStart=/bin/true\n")  # shadows the managed unit
    (user_dir / "litellm-extra.service").write_text("[Service]\nExecStart=/bin/true\n")
    (user_dir / "default.target.wants" / "litellm-extra.service").symlink_to(user_dir / "litellm-extra.service")
    (user_dir / "default.target.wants" / "litellm.service").symlink_to(user_dir / "litellm.service")  # old layout
    (account / ".config" / "environment.d").mkdir()
    (account / ".config" / "environment.d" / "50-x.conf").write_text("PYTHONPATH=/tmp/x\nexport LD_PRELOAD=/x.so\n")
    found = {item["path"]: item for item in hostside.account_plants("acct", UNITS)}
    base = str(user_dir)
    assert set(found) == {
        f"{base}/litellm-metrics.service.d",
        f"{base}/litellm.service",
        f"{base}/litellm-extra.service",
        f"{base}/default.target.wants/litellm-extra.service",
        f"{base}/default.target.wants/litellm.service",
        f"{account}/.config/environment.d/50-x.conf",
    }
    link = found[f"{base}/litellm-metrics.service.d"]
    assert link["type"] == "symlink" and link["target"] == str(tmp_path / "d") and "drop-in" in link["why"]
    assert "shadows" in found[f"{base}/litellm.service"]["why"]
    env = found[f"{account}/.config/environment.d/50-x.conf"]
    assert env["variables"] == ["LD_PRELOAD", "PYTHONPATH"] and len(env["sha256"]) == 64
    assert {"owner", "mode", "size", "mtime"} <= set(env)


def test_quarantine_moves_each_plant_with_a_manifest_and_deletes_nothing(account, tmp_path):
    user_dir = account / ".config" / "systemd" / "user"
    (user_dir / "litellm-extra.service").write_text("[Service]\nExecStart=/bin/true\n")
    (account / ".config" / "environment.d").mkdir()
    (account / ".config" / "environment.d" / "50-x.conf").write_text("PYTHONPATH=/tmp/x\n")
    legacy = tmp_path / "root-venv"
    legacy.mkdir()
    (legacy / "pyvenv.cfg").write_text("home = /usr/bin\n")
    done = hostside.quarantine({"user": "acct", "units": UNITS, "paths": [str(legacy)]})
    folder = tmp_path / "quarantine" / done["folder"].rsplit("/", 1)[1]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (
        {i["path"] for i in manifest["items"]}
        == set(done["moved"])
        == {
            f"{user_dir}/litellm-extra.service",
            f"{account}/.config/environment.d/50-x.conf",
            str(legacy),
        }
    )
    for item in manifest["items"]:
        moved = item["moved_to"].rsplit("/", 1)[1]
        assert (folder / moved).exists() and not os.path.lexists(item["path"])
    assert (tmp_path / "quarantine").stat().st_mode & 0o777 == 0o700
    assert hostside.account_plants("acct", UNITS) == []
    assert hostside.quarantine({"user": "acct", "units": UNITS, "paths": [str(legacy)]}) == {
        "folder": None,
        "moved": [],
    }


def test_a_linked_config_folder_is_one_plant_and_quarantined(account, tmp_path):
    """``~/.config/environment.d`` as a link elsewhere: systemd follows it, root does not; the link is the plant."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "50-x.conf").write_text("PYTHONPATH=/tmp/x\n")
    (account / ".config" / "environment.d").symlink_to(tmp_path / "elsewhere")
    for path in (account, account / ".config", account / ".config" / "environment.d"):
        os.lchown(path, 65534, 65534)  # the account's, as on a host: root does not follow its links
    found = hostside.account_plants("acct", UNITS)
    assert [(f["path"], f["type"]) for f in found] == [(f"{account}/.config/environment.d", "symlink")]
    hostside.quarantine({"user": "acct", "units": UNITS})
    assert hostside.account_plants("acct", UNITS) == []
    assert (tmp_path / "elsewhere" / "50-x.conf").exists()  # the target is never touched


def test_a_folder_no_rename_can_move_is_sealed_in_place(account, tmp_path, monkeypatch):
    """podman's overlay refuses to rename a lower layer's folder (EXDEV), in place too: sealed root:root 0700."""
    (account / ".config" / "environment.d").mkdir()
    real = os.rename

    def rename(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        if src == "environment.d":
            raise OSError(18, "Invalid cross-device link")
        return real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(hostside.os, "rename", rename)
    os.lchown(account / ".config" / "environment.d", 65534, 65534)
    (account / ".config" / "environment.d").chmod(0o755)
    home_link = account / ".config" / "systemd" / "user" / "x.service"
    home_link.write_text("[Service]\n")
    hostside.quarantine({"user": "acct", "units": UNITS, "paths": [str(account / ".config" / "environment.d")]})
    st = (account / ".config" / "environment.d").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700) and not home_link.exists()
    assert hostside.account_plants("acct", UNITS) == []  # sealed: not a plant again
    again = hostside.quarantine({"user": "acct", "units": UNITS, "paths": [str(account / ".config" / "environment.d")]})
    assert again == {"folder": None, "moved": []}
