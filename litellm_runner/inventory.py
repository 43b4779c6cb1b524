"""Where the hosts come from: a hosts file for real fleets, the sandbox otherwise.

Real hosts: set ``LITELLM_INVENTORY`` to a YAML file of groups::

    litellm_hosts:                 # group name -> hosts
      - proxy-1.example.net        # a bare name: SSH with your ~/.ssh/config
      - name: proxy-2.example.net  # or a name with host data
        data:
          ssh_user: deploy
          _sudo: true
          litellm_num_workers: 2

With no ``LITELLM_INVENTORY``, the inventory is the sandbox hosts named in
``LITELLM_SANDBOXES`` (comma separated, default ``litellm-sandbox``), started
by ``make sandbox-up``; each is reached over SSH on 127.0.0.1 like production.
"""

from __future__ import annotations

import os
import pathlib

import yaml

from . import sandbox


class InventoryError(ValueError):
    pass


def load_hosts_file(path: str) -> dict[str, list]:
    """Groups from a hosts YAML file, as pyinfra inventory groups."""
    try:
        doc = yaml.safe_load(pathlib.Path(path).read_text())
    except FileNotFoundError:
        raise InventoryError(f"{path}: LITELLM_INVENTORY names a file that does not exist")
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML ({exc})")
    if not isinstance(doc, dict) or not doc:
        raise InventoryError(f"{path}: expected a mapping of group name -> list of hosts")
    groups = {}
    for group, hosts in doc.items():
        if not str(group).isidentifier() or not isinstance(hosts, list):
            raise InventoryError(f"{path}: group {group!r}: expected an identifier mapped to a list of hosts")
        entries = []
        for index, entry in enumerate(hosts):
            if isinstance(entry, str):
                entries.append(entry)
            elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
                data = entry.get("data") or {}
                if not isinstance(data, dict):
                    raise InventoryError(f"{path}: {group}[{index}].data: expected a mapping")
                entries.append((entry["name"], data))
            else:
                raise InventoryError(f"{path}: {group}[{index}]: expected a host name or {{name: ..., data: {{...}}}}")
        groups[group] = entries
    return groups


def sandbox_groups(names: list[str]) -> dict[str, list]:
    hosts = []
    for name in names:
        try:
            data = sandbox.host_data(name)
        except FileNotFoundError:
            raise InventoryError(f"sandbox {name} is not running: start it with `make sandbox-up` "
                                 "or set LITELLM_INVENTORY to a hosts file")
        data.pop("name", None)
        hosts.append((name, data))
    return {"litellm_hosts": hosts, "sandbox": hosts}


def groups() -> dict[str, list]:
    path = os.environ.get("LITELLM_INVENTORY")
    if path:
        return load_hosts_file(path)
    names = [n for n in os.environ.get("LITELLM_SANDBOXES", sandbox.DEFAULT_NAME).split(",") if n]
    return sandbox_groups(names)
