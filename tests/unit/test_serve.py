"""files/bin/litellm-serve takes the one listening socket systemd passes (litellm.socket) or refuses to start.

Each case runs the launcher's ``inherited`` in a child process whose fd 3 is a real socket (what systemd
passes), with the LISTEN_* variables of the case; the child prints what it got, or the refusal.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from litellm_runner.resources import shipped

TOOL = shipped("files", "bin") / "litellm-serve"

CHILD = r"""
import importlib.machinery, importlib.util, json, os, socket, sys
loader = importlib.machinery.SourceFileLoader("litellm_serve", sys.argv[1])
serve = importlib.util.module_from_spec(importlib.util.spec_from_loader("litellm_serve", loader))
loader.exec_module(serve)
env = {k: v.replace("SELF", str(os.getpid())) for k, v in json.loads(sys.argv[2]).items()}
sock = serve.inherited(env)
print(json.dumps({"family": sock.family.name, "type": sock.type.name, "name": list(sock.getsockname()),
                  "left": sorted(env), "accepting": sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)}))
"""


def child(passed: socket.socket, env: dict) -> subprocess.CompletedProcess:
    """CHILD with PASSED as its fd 3 and ENV (``SELF``: its own PID) as the environment ``inherited`` reads."""
    fd = passed.fileno()
    return subprocess.run(
        [sys.executable, "-I", "-c", CHILD, str(TOOL), json.dumps(env)],
        pass_fds=(fd, 3),  # 3: kept open once the dup2 made it the socket
        preexec_fn=lambda: os.dup2(fd, 3),  # noqa: PLW1509 (only dup2 in the child, before exec)
        capture_output=True,
        text=True,
        timeout=60,
    )


def listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize(
    ("kind", "env", "refused"),
    [
        ("tcp", {"LISTEN_PID": "SELF", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "litellm.socket", "KEEP": "x"}, None),
        ("tcp", {"LISTEN_PID": "1", "LISTEN_FDS": "1"}, "LISTEN_PID=1, LISTEN_FDS=1"),  # passed to another process
        ("tcp", {"LISTEN_PID": "SELF", "LISTEN_FDS": "2"}, "LISTEN_FDS=2"),  # not exactly ours
        ("tcp", {}, "LISTEN_PID=unset, LISTEN_FDS=unset"),  # started outside litellm.socket: never binds its own
        ("udp", {"LISTEN_PID": "SELF", "LISTEN_FDS": "1"}, "fd 3 is not a stream socket"),
    ],
)
def test_the_launcher_serves_only_on_the_socket_systemd_passed(kind, env, refused):
    if kind == "tcp":
        passed = listening()
    else:
        passed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with passed:
        proc = child(passed, env)
        if refused:
            assert proc.returncode == 1 and refused in proc.stderr and "litellm-serve:" in proc.stderr, proc.stderr
            assert proc.stdout == ""
            return
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout)
        # its family read from the socket itself (uvicorn's fd= would say AF_UNIX, and never set TCP_NODELAY)
        assert got == {
            "family": "AF_INET",
            "type": "SOCK_STREAM",
            "name": list(passed.getsockname()),
            "left": ["KEEP"],  # the proxy's children are not told of a socket that is not theirs
            "accepting": 1,
        }


def load():
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("litellm_serve", str(TOOL))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("litellm_serve", loader))
    loader.exec_module(module)
    return module


ARGS = ["--config", "/etc/litellm/config.generated.yaml", "--port", "4000"]


@pytest.mark.parametrize(
    ("prefix", "again"),
    [
        ("venv", ["venvs/aaaa/bin/python", "/bin/litellm-serve", *ARGS]),  # by root's link: again, by its own name
        ("venvs/aaaa", None),  # already by the versioned venv's own name
    ],
)
def test_the_launcher_runs_from_the_versioned_venv_the_link_leads_to(tmp_path, prefix, again):
    """Run by the link, a late import after a venv switch would come from the new release (docs/venv-switch.md)."""
    (tmp_path / "venvs" / "aaaa" / "bin").mkdir(parents=True)
    (tmp_path / "venv").symlink_to(tmp_path / "venvs" / "aaaa")
    got = load().pinned(str(tmp_path / prefix), ["/bin/litellm-serve", *ARGS])
    assert got == (None if again is None else [str(tmp_path / again[0]), *again[1:]])
