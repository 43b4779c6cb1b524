"""Several sandbox hosts at once, with per-host desired-state overrides.

``inventory(path, names, common, per_host)`` writes a LITELLM_INVENTORY hosts
file that reaches the sandboxes over SSH like real hosts and overrides
group_data keys, so a test can give one host a different (e.g. broken) value.
"""

from __future__ import annotations

import concurrent.futures
import pathlib

import yaml

from litellm_runner import sandbox


def up_all(hosts: dict[str, int]) -> None:
    """Start every sandbox NAME -> PORT (in parallel; ~20 s each alone)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        for future in [pool.submit(sandbox.up, name, port) for name, port in hosts.items()]:
            future.result()


def down_all(names) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(sandbox.down, names))


def inventory(path: pathlib.Path, names, common: dict | None = None, per_host: dict | None = None) -> pathlib.Path:
    hosts = []
    for name in names:
        data = {k: v for k, v in sandbox.host_data(name).items() if k != "name"}
        data.update(common or {})
        data.update((per_host or {}).get(name, {}))
        hosts.append({"name": name, "data": data})
    path.write_text(yaml.safe_dump({"litellm_hosts": hosts, "sandbox": hosts}, sort_keys=False))
    return path
