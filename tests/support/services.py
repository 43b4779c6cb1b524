"""Real local services for tool tests: Redis on a free port, a fake-free proxy
stand-in (the project's own stub server), and helpers to wait for ports."""

from __future__ import annotations

import atexit
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from litellm_runner.resources import host_tools

REPO = pathlib.Path(__file__).resolve().parents[2]


def _host_bin() -> pathlib.Path:
    """The host tools in a folder of their own, as the deploy ships them to <root>/bin (``host_tools``):
    files/bin and the env-file codec beside them, which they import."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="litellm-bin-"))
    atexit.register(shutil.rmtree, folder, True)
    for name, source in host_tools().items():
        shutil.copy2(source, folder / name)
    return folder


BIN = _host_bin()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


class Redis:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-")

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def tool(name: str, *args: str, env=None) -> subprocess.Popen:
    """Start a host tool from files/bin as the units do (python TOOL ARGS)."""
    return subprocess.Popen(
        [sys.executable, str(BIN / name), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
