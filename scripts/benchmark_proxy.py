#!/usr/bin/env python3
"""Completions per second through the real LiteLLM proxy, with its database and without (issue #24).

    .venv/bin/python scripts/benchmark_proxy.py                          # 300 completions, 10 at a time
    .venv/bin/python scripts/benchmark_proxy.py --requests 600 --concurrency 20 --keep

On a fresh sandbox (``litellm-bench-proxy``, SSH port 2620; ``make images`` first), converged from
the incident state as ``make converge`` does it (4 workers, the query engine, the stub model server):

1. **With the database** (``DATABASE_URL`` through the query engine, docs/query-engine.md): the
   same burst with the master key, then with a virtual key generated through the proxy (looked up
   in ``LiteLLM_VerificationToken``, its spend written back).
2. **Without the database**: the sandbox converged again with ``litellm_query_engine=false`` (the
   proxy's unit then unsets ``DATABASE_URL``), the same burst with the master key.

Each burst runs inside the sandbox (where the proxy listens, on its loopback) as the service account
with the proxy's venv (tests/support/proxyload.py): REQUESTS completions, CONCURRENCY at a time,
each with a 60 s timeout, after 20 warm-up completions. The stub model server answers at once, so
the figures are the proxy's own cost per completion (auth, routing, logging, the database's share),
not a model's. The machine's load average is printed with each row: on a shared machine the
figures move with it. The sandbox is removed at the end (``--keep`` leaves it running).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from litellm_runner import sandbox  # noqa: E402
from litellm_runner.secrets import read_secrets_file  # noqa: E402
from tests.support import proxyload  # noqa: E402
from tests.support.hosts import Host  # noqa: E402

PYINFRA = str(pathlib.Path(sys.executable).parent / "pyinfra")
PROXY = "http://127.0.0.1:4000"
WARM_UP = 20


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def converge(name: str, *data: str) -> None:
    """``pyinfra inventory.py deploy.py -y`` on the sandbox NAME with ``--data`` DATA; exits on failure."""
    argv = [PYINFRA, "inventory.py", "deploy.py", "-y", *(a for d in data for a in ("--data", d))]
    env = {**os.environ, "LITELLM_SANDBOXES": name, "PYINFRA_PROGRESS": "off"}
    env.pop("LITELLM_INVENTORY", None)
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"converge of {name} {' '.join(data)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def ready(host: Host, database: bool) -> None:
    """Wait for readiness: with DATABASE, saying "db": "connected"; without, saying anything else."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        proc = host.ssh(f"curl -sf --max-time 10 {PROXY}/health/readiness", check=False, timeout=30)
        try:
            connected = json.loads(proc.stdout).get("db") == "connected"
        except ValueError:
            connected = None
        if proc.returncode == 0 and connected is database:
            return
        time.sleep(2)
    sys.exit(f"the proxy was not ready {'with' if database else 'without'} its database within 900 s")


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def measure(host: Host, label: str, key: str, requests: int, concurrency: int) -> dict:
    """Warm-up, then one burst; its row."""
    proxyload.burst(host, key, WARM_UP, min(concurrency, WARM_UP))
    before = load()
    row = proxyload.summary(proxyload.burst(host, key, requests, concurrency))
    row.update(label=label, load=f"{before}-{load()}")
    log(f"  {label}: {row['per_second']:.1f}/s, {row['ok']} ok, {row['failed']} failed")
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="litellm-bench-proxy")
    parser.add_argument("--port", type=int, default=2620)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    args = parser.parse_args(argv)
    began = time.monotonic()
    sandbox.down(args.name)
    log(f"sandbox {args.name}: up, converge from the incident state")
    sandbox.up(args.name, args.port)
    host = Host(args.name, args.port)
    rows = []
    try:
        converge(args.name)
        ready(host, database=True)
        master = read_secrets_file(sandbox.secrets_file())["LITELLM_MASTER_KEY"]
        log("with the database:")
        rows.append(measure(host, "with database, master key", master, args.requests, args.concurrency))
        made = proxyload.request(host, "POST", "/key/generate", master, {"key_alias": "bench-proxy"})
        if made["status"] != 200:
            sys.exit(f"/key/generate answered {made['status']}")
        key = made["body"]["key"]
        rows.append(measure(host, "with database, virtual key", key, args.requests, args.concurrency))
        proxyload.request(host, "POST", "/key/delete", master, {"keys": [key]})
        log("without the database: converge with litellm_query_engine=false")
        converge(args.name, "litellm_query_engine=false")
        ready(host, database=False)
        rows.append(measure(host, "without database, master key", master, args.requests, args.concurrency))
    finally:
        if not args.keep:
            sandbox.down(args.name)
    print(f"\n{args.requests} completions, {args.concurrency} at a time, 4 proxy workers, stub model server")
    print(f"{'run':32} {'completions/s':>14} {'p50':>8} {'p95':>8} {'failed':>7}  load average")
    for r in rows:
        print(
            f"{r['label']:32} {r['per_second']:14.1f} {r['p50'] * 1000:6.0f}ms {r['p95'] * 1000:6.0f}ms "
            f"{r['failed']:7d}  {r['load']}"
        )
    print(f"(whole run {time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
