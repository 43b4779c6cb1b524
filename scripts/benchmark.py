#!/usr/bin/env python3
"""Benchmark the runner on 1 and on N sandbox hosts (issue #7).

    .venv/bin/python scripts/benchmark.py            # N = 5
    .venv/bin/python scripts/benchmark.py --hosts 3 --workers 4

For 1 host, then for N hosts, it starts fresh sandbox hosts in the incident
state and times three runs of the real deploy over SSH:

    converge from the incident state   pyinfra inventory.py deploy.py -y
    no-op converge                     the same, right after
    no-op check                        python -m litellm_runner.cli.check

and prints the wall time of each run and the remote commands each host
received (shell commands + file uploads + downloads, counted by
litellm_runner.metering inside the run). The hosts run ``--workers`` proxy
workers each (default 1: several 4-worker LiteLLM proxies starting at once on
a 2-core machine spend minutes in uvicorn's start-up restarts, which would
measure the machine, not the runner). Sandboxes are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from litellm_runner import sandbox  # noqa: E402
from tests.support import fleet  # noqa: E402

RUNS = [
    ("converge from incident", ["pyinfra", "inventory.py", "deploy.py", "-y"]),
    ("no-op converge", ["pyinfra", "inventory.py", "deploy.py", "-y"]),
    ("no-op check", ["-m", "litellm_runner.cli.check"]),
]


def measure(names: list[str], workers: int, tmp: pathlib.Path) -> list[dict]:
    hosts_file = fleet.inventory(
        tmp / "hosts.yml", names, {"litellm_num_workers": workers, "litellm_restart_batch_size": len(names)}
    )
    rows = []
    for label, argv in RUNS:
        counts = tmp / f"counts-{len(names)}-{len(rows)}.json"
        env = {
            **os.environ,
            "LITELLM_INVENTORY": str(hosts_file),
            "LITELLM_COMMAND_COUNT": str(counts),
            "PYINFRA_PROGRESS": "off",
        }
        exe = (
            [str(pathlib.Path(sys.executable).parent / argv[0]), *argv[1:]]
            if argv[0] == "pyinfra"
            else [sys.executable, *argv]
        )
        start = time.monotonic()
        proc = subprocess.run(exe, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
        wall = time.monotonic() - start
        if proc.returncode != 0:  # every run converges, or finds no drift
            sys.exit(f"benchmark: {label} on {len(names)} hosts exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        per_host = json.loads(counts.read_text())
        total = [c["commands"] + c["uploads"] + c["downloads"] for c in per_host.values()]
        rows.append(
            {
                "hosts": len(names),
                "run": label,
                "wall_s": round(wall, 1),
                "commands_per_host_max": max(total),
                "commands_per_host_min": min(total),
            }
        )
        print(
            f"  {len(names)} host(s)  {label:<24} {wall:7.1f} s   {max(total):4d} remote commands/host", file=sys.stderr
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=5, help="N, the size of the fleet (default 5)")
    parser.add_argument("--workers", type=int, default=1, help="proxy workers per host (default 1)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="litellm-bench-") as tmp:
        for size in (1, args.hosts):
            names = {f"litellm-bench-{i}": 2400 + i for i in range(1, size + 1)}
            fleet.down_all(names)
            print(f"starting {size} fresh sandbox host(s) in the incident state...", file=sys.stderr)
            fleet.up_all(names)
            try:
                rows += measure(list(names), args.workers, pathlib.Path(tmp))
            finally:
                fleet.down_all(names)
    print(
        f"\nrunner benchmark: {os.cpu_count()} CPU cores, {args.workers} proxy worker(s) per host, image "
        f"{sandbox.image_ref()}"
    )
    print(f"{'hosts':>5}  {'run':<24} {'wall time':>10}  {'remote commands per host':>24}")
    for row in rows:
        print(f"{row['hosts']:>5}  {row['run']:<24} {row['wall_s']:>8.1f} s  {row['commands_per_host_max']:>24}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
