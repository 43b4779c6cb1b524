"""A bounded burst of completions through a sandbox's proxy, from inside the sandbox.

Shared by tests/integration/test_proxy_database.py (the pool under load) and
scripts/benchmark_proxy.py (completions per second). The client runs on the host, where the
proxy listens (its loopback), as the service account with the proxy's own venv (httpx); the key
travels on standard input, never on a command line, and is never printed. The burst stops by
itself: a fixed number of requests, a fixed number at a time, each with a timeout.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess

from litellm_runner import layout

ACCOUNT_PYTHON = f"{layout.VENV}/bin/python"  # the proxy's venv (root's, read-only), run as the service account

# REQUESTS completions, CONCURRENCY at a time, each with TIMEOUT seconds; a JSON summary on stdout
# (status of each request, its response id, its latency; the wall time of the whole burst).
BURST = r"""
import concurrent.futures, json, sys, time
import httpx
job = json.load(sys.stdin)
headers = {"Authorization": "Bearer " + job["key"]}
body = {"model": job["model"], "messages": [{"role": "user", "content": job["prompt"]}], "max_tokens": 8}
limits = httpx.Limits(max_connections=job["concurrency"], max_keepalive_connections=job["concurrency"])
with httpx.Client(base_url=job["proxy"], timeout=job["timeout"], limits=limits) as client:
    def one(_):
        began = time.monotonic()
        try:
            r = client.post("/chat/completions", json=body, headers=headers)
            rid = r.json().get("id") if r.status_code == 200 else None
            return {"status": r.status_code, "id": rid, "seconds": time.monotonic() - began}
        except (httpx.HTTPError, ValueError) as exc:
            return {"status": type(exc).__name__, "id": None, "seconds": time.monotonic() - began}
    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(job["concurrency"]) as pool:
        results = list(pool.map(one, range(job["requests"])))
    wall = time.monotonic() - began
print(json.dumps({"results": results, "wall": wall}))
"""


def burst(
    host,
    key: str,
    requests: int,
    concurrency: int,
    model: str = "local-vllm",
    timeout: float = 60,
    prompt: str = "say pong",
    proxy: str = "http://127.0.0.1:4000",
) -> dict:
    """REQUESTS completions through HOST's proxy, CONCURRENCY at a time: ``{"results": [...], "wall": s}``.

    HOST is a ``tests.support.hosts.Host``; each result is ``{"status", "id", "seconds"}`` (status: the HTTP
    code, or the name of the client's exception on a timeout or a dropped connection)."""
    job = {
        "key": key,
        "requests": requests,
        "concurrency": concurrency,
        "model": model,
        "timeout": timeout,
        "prompt": prompt,
        "proxy": proxy,
    }
    # every request has its timeout; the whole burst has one more bound than the worst case
    bound = timeout * (requests // concurrency + 2) + 60
    proc = host.ssh(
        f"cd / && runuser -u litellm -- {ACCOUNT_PYTHON} -I -c {shlex.quote(BURST)}",
        input=json.dumps(job),
        timeout=bound,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:].replace(key, "[key]")
    return json.loads(proc.stdout)


def summary(run: dict) -> dict:
    """Completions per second and latencies of a ``burst``: ``{"ok", "failed", "per_second", "p50", "p95"}``."""
    results = run["results"]
    ok = sorted(r["seconds"] for r in results if r["status"] == 200)

    def quantile(q: float) -> float:
        return ok[min(len(ok) - 1, int(q * len(ok)))] if ok else float("nan")

    return {
        "ok": len(ok),
        "failed": len(results) - len(ok),
        "per_second": len(ok) / run["wall"] if run["wall"] else 0.0,
        "p50": quantile(0.5),
        "p95": quantile(0.95),
    }


# One HTTP request to the proxy (JSON body and answer); the key on stdin, as in BURST.
REQUEST = r"""
import json, sys
import httpx
job = json.load(sys.stdin)
headers = {"Authorization": "Bearer " + job["key"]} if job["key"] else {}
r = httpx.request(job["method"], job["proxy"] + job["path"], json=job["body"], headers=headers, timeout=job["timeout"])
try:
    body = r.json()
except ValueError:
    body = r.text[:2000]
print(json.dumps({"status": r.status_code, "body": body}))
"""


def request(
    host, method: str, path: str, key: str | None, body: dict | None = None, proxy: str = "http://127.0.0.1:4000"
) -> dict:
    """One request to HOST's proxy as the service account: ``{"status": code, "body": JSON or text}``."""
    job = {"method": method, "path": path, "key": key, "body": body, "timeout": 120, "proxy": proxy}
    proc = host.ssh(
        f"cd / && runuser -u litellm -- {ACCOUNT_PYTHON} -I -c {shlex.quote(REQUEST)}",
        input=json.dumps(job),
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:].replace(key or "\0", "[key]")
    return json.loads(proc.stdout)


# Readiness probed every EVERY seconds until the stop file appears (or LIMIT seconds pass), from the system's
# python3 (not the proxy's venv, which an upgrade replaces while this runs): one JSON line per probe, stamped
# with the host's clock, so the probes can be ordered against the host's own records (journal, database).
WATCH = r"""
import json, os, sys, time, urllib.error, urllib.request
job = json.loads(sys.argv[1])
end = time.time() + job["limit"]
while time.time() < end and not os.path.exists(job["stop"]):
    began = time.time()
    try:
        with urllib.request.urlopen(job["url"], timeout=job["timeout"]) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except Exception as exc:
        status = type(exc).__name__
    print(json.dumps({"t": began, "done": time.time(), "status": status}), flush=True)
    time.sleep(job["every"])
"""


class Watch:
    """Readiness of HOST's proxy probed in the background from inside the host (``WATCH``), as recorded events.

    ``with Watch(host) as watch: ...`` then ``watch.events``: ``[{"t": host epoch seconds it was sent, "done": when
    it was answered, "status": 200 or the error}, ...]`` in order. Every probe has a timeout (TIMEOUT: longer than
    the proxy's start, a probe sent during a restart waits in litellm.socket's queue for the next proxy), and the
    loop stops by itself after LIMIT seconds."""

    def __init__(
        self,
        host,
        every: float = 0.5,
        limit: float = 1500,
        timeout: float = 5,
        url: str = "http://127.0.0.1:4000/health/readiness",
    ):
        self.host, self.stop = host, f"/tmp/proxy-watch-stop-{os.getpid()}"
        self.job = {"url": url, "every": every, "limit": limit, "timeout": timeout, "stop": self.stop}
        self.events: list[dict] = []
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Watch:
        from tests.support.hosts import ssh_argv

        self.host.ssh(f"rm -f {self.stop}")
        job = shlex.quote(json.dumps(self.job))
        self.proc = subprocess.Popen(
            [
                *ssh_argv(self.host.name),
                "root@127.0.0.1",
                f"cd / && runuser -u nobody -- python3 -I -c {shlex.quote(WATCH)} {job}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc) -> None:
        assert self.proc is not None
        self.host.ssh(f"touch {self.stop}", check=False)
        try:
            out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=30)
        self.host.ssh(f"rm -f {self.stop}", check=False)
        self.events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]


CTL = "systemctl --user --machine=litellm@.host"


def stopped_at(host) -> float:
    """When litellm.service last left the active state (its restart began), epoch seconds (the host's clock)."""
    import datetime

    text = host.out(f"{CTL} show -P ActiveExitTimestamp --timestamp=us+utc litellm.service")
    return datetime.datetime.strptime(text, "%a %Y-%m-%d %H:%M:%S.%f UTC").replace(tzinfo=datetime.UTC).timestamp()


def ready_at(host, after: float) -> float:
    """When the runner's readiness gate last logged the proxy ready after AFTER (epoch seconds, the host's
    journal: ``journalctl -t litellm-runner``), the first answer of the restarted proxy the gate saw."""
    out = host.out(
        f"journalctl -t litellm-runner -o short-unix --no-pager --since @{int(after)} | grep -F 'litellm.service ready'"
    )
    return float(out.splitlines()[-1].split()[0])


def served_through_restart(events: list[dict], stop: float, ready: float) -> list[dict]:
    """The probes of EVENTS (``Watch``) sent while no proxy served (after the old one's STOP, before the new one
    was READY) and answered 200: each waited in litellm.socket's queue for the new proxy."""
    return [e for e in events if stop < e["t"] < ready and e["status"] == 200]
