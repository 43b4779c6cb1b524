"""A loopback OSV endpoint that answers ``POST /v1/query`` from a local advisory file.

pip-audit's OSV service (``pip-audit -s osv --osv-url URL``) sends
``{"package": {"name", "ecosystem"}, "version"}`` and trusts the answer, so the
matching happens here: PEP 440 ``ECOSYSTEM`` ranges (introduced / fixed /
last_affected events) and explicit ``versions`` lists, names normalised as in
PEP 503. Used by cve_gate in offline mode (the default) and on air-gapped sites.

    with Server("files/advisories/osv.json") as server:   # server.url: http://127.0.0.1:PORT/v1/query
        server.answer_until(ended, timeout)   # until ENDED reads: pip-audit has exited

Also runnable for a manual check: ``python -m litellm_runner.gates.osv_server [FILE]``.
"""

from __future__ import annotations

import http.server
import json
import pathlib
import re
import selectors
import subprocess
import sys
import threading
import time

from packaging.version import InvalidVersion, Version

from litellm_runner import exitcodes
from litellm_runner.resources import shipped

ADVISORIES = shipped("files", "advisories", "osv.json")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def load(path=ADVISORIES) -> list[dict]:
    """The advisories of PATH: an OSV list, or ``{"vulns": [...]}``."""
    doc = json.loads(pathlib.Path(path).read_text())
    vulns = doc["vulns"] if isinstance(doc, dict) else doc
    for v in vulns:
        if not v.get("id") or not isinstance(v.get("affected"), list):
            raise ValueError(f"{path}: advisory {v.get('id')!r} needs an id and an affected list")
    return vulns


def _in_range(version: Version, events: list[dict]) -> bool:
    """OSV semantics: walk the sorted events; introduced opens, fixed closes, last_affected closes after."""

    def key(e):
        ((kind, raw),) = e.items()
        return Version("0") if raw == "0" else Version(raw)

    affected = False
    for event in sorted(events, key=key):
        ((kind, raw),) = event.items()
        bound = Version("0") if raw == "0" else Version(raw)
        if kind == "introduced" and version >= bound:
            affected = True
        elif kind == "fixed" and version >= bound:
            affected = False
        elif kind == "last_affected" and version > bound:
            affected = False
    return affected


def matches(vulns: list[dict], name: str, version: str) -> list[dict]:
    """The advisories of VULNS that affect NAME at VERSION (PyPI only)."""
    try:
        ver = Version(version)
    except InvalidVersion:
        return []
    found = []
    for vuln in vulns:
        for aff in vuln["affected"]:
            pkg = aff.get("package", {})
            if pkg.get("ecosystem") != "PyPI" or _norm(pkg.get("name", "")) != _norm(name):
                continue
            listed = any(Version(v) == ver for v in aff.get("versions", []))
            ranged = any(
                _in_range(ver, r.get("events", [])) for r in aff.get("ranges", []) if r.get("type") == "ECOSYSTEM"
            )
            if listed or ranged:
                found.append(vuln)
                break
    return found


def _handler(vulns):
    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 30  # seconds a query's connection may take: the one thread that answers never waits longer

        def do_POST(self):  # noqa: N802 (http.server's naming)
            if self.path.rstrip("/") != "/v1/query":
                return self._send(404, {"error": "only /v1/query"})
            try:
                query = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                name, version = query["package"]["name"], query["version"]
            except (ValueError, KeyError, TypeError):
                return self._send(400, {"error": "expected {package: {name, ecosystem}, version}"})
            found = matches(vulns, name, version)
            self._send(200, {"vulns": found} if found else {})

        def _send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # quiet: pip-audit's output is what matters
            pass

    return Handler


class Server(http.server.HTTPServer):
    """The advisories of PATH on a free 127.0.0.1 port (``url``), answered by the thread that asks: no thread
    of its own, so a Ctrl-C meanwhile interrupts the caller (pyinfra's gevent makes every thread a greenlet
    of the main thread, and Python runs the SIGINT handler in whichever greenlet runs: in a server thread the
    KeyboardInterrupt ended that thread with a traceback, and pip-audit got no answer).
    """

    def __init__(self, path=ADVISORIES) -> None:
        super().__init__(("127.0.0.1", 0), _handler(load(path)))
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1/query"

    def answer_until(self, ended: int, timeout: float) -> None:
        """Answer queries until the file descriptor ENDED reads (the end of a pipe whose other end a process
        alone holds: it has exited); subprocess.TimeoutExpired after TIMEOUT seconds.

        One wait for the two, never a short poll: under gevent a timer that expires as Ctrl-C is handled can
        raise its Timeout later, in whatever waits next.
        """
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(ended, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                ready = [key.fileobj for key, _ in selector.select(left)]
                if ended in ready:
                    return
                if ready:
                    self._handle_request_noblock()  # type: ignore[attr-defined]  # serve_forever's own step
        raise subprocess.TimeoutExpired("osv-server", timeout)


def main(argv=None, prog: str = "python -m litellm_runner.gates.osv_server") -> int:
    """Serve ADVISORIES until interrupted, printing the URL: exit codes of litellm_runner.exitcodes."""
    parser = exitcodes.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument(
        "advisories", metavar="ADVISORIES.json", nargs="?", default=ADVISORIES, help=f"default {ADVISORIES}"
    )
    path = parser.parse_args(argv).advisories
    try:
        load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"osv-server: {path}: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    with Server(path) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        print(server.url, flush=True)
        try:
            # not one endless wait: the kernel may deliver Ctrl-C's SIGINT to the server's thread, which
            # leaves the main thread blocked and Python's handler never run; a short sleep returns and runs it
            while True:
                time.sleep(0.2)
        except KeyboardInterrupt:
            return exitcodes.INTERRUPTED
        finally:
            server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
