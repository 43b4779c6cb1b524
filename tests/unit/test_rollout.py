"""The readiness gate of a proxy restart (operations._gated), run for real on this machine:
its commands go to a local shell, readiness is a real HTTP server (or a closed port), the
config and its backups are real files."""

import grp
import http.server
import os
import pwd
import subprocess
import threading
from types import SimpleNamespace

import pytest

from litellm_runner.pyinfra_ext import operations
from litellm_runner.run import state as run_state
from tests.unit.fakehost import FakeState, Meta


class LocalHost:
    """Runs the gate's commands in a local shell, as the SSH connector would on the host."""

    name = "host-a"
    current_op_global_arguments = None  # no sudo: commands run as they are

    def __init__(self):
        self.logs = []

    def run_shell_command(self, command, _timeout, **_connector_arguments):
        proc = subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=_timeout)
        return proc.returncode == 0, SimpleNamespace(stdout=proc.stdout, stderr=proc.stderr)

    def log_styled(self, message, **_):
        self.logs.append(message)


@pytest.fixture
def health():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture
def files(tmp_path):
    config = tmp_path / "config.generated.yaml"
    config.write_text("new: 1\n")
    (tmp_path / "config.generated.yaml.bak-20261101T000000000000000").write_text("oldest: 1\n")
    (tmp_path / "config.generated.yaml.bak-20261123T000000000000000").write_text("previous: 1\n")
    calls = tmp_path / "systemctl.log"
    return config, calls


def gate(state, files, url, changed=True, timeout=2):
    config, calls = files
    host = LocalHost()
    rollback = {
        "path": str(config),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "group": grp.getgrgid(os.getgid()).gr_name,
        "mode": "0640",
        "when": Meta(changed),
    }
    ctl = f"sh -c 'echo \"$*\" >> {calls}' systemctl"
    ok = operations._gated(state, host, ctl, "litellm.service", "restart", url, timeout, rollback)
    return ok, host.logs, calls.read_text().split("\n")[:-1] if calls.exists() else []


CLOSED = "http://127.0.0.1:9/"  # discard port: nothing answers


@pytest.mark.parametrize(
    "ready, changed, config, restarts, message",
    [
        (True, True, "new: 1\n", ["restart litellm.service"], None),
        (False, True, "previous: 1\n", ["restart litellm.service"] * 2, "previous config restored"),
        (False, False, "new: 1\n", ["restart litellm.service"] * 2, "the config was not changed by this run"),
    ],
)
def test_gate(health, files, ready, changed, config, restarts, message):
    state = FakeState()
    ok, logs, calls = gate(state, files, health if ready else CLOSED, changed)
    assert ok is ready
    assert files[0].read_text() == config
    assert calls == restarts
    if message:
        assert "failed readiness" in logs[0] and message in logs[0]
        assert run_state.of(state).rollout_failed == "host-a"
    else:
        assert logs == []
    if not ready and changed:  # restored with the managed mode, through a temporary file
        assert oct(files[0].stat().st_mode)[-3:] == "640"
        assert not list(files[0].parent.glob("*.tmp-litellm-runner"))


def test_after_a_failed_host_the_rest_are_not_restarted_and_keep_their_last_good_config(health, files):
    state = FakeState()
    run_state.of(state).rollout_failed = "host-z"
    ok, logs, calls = gate(state, files, health)
    assert ok is False and calls == []
    assert files[0].read_text() == "previous: 1\n"
    assert "rollout stopped after host-z" in logs[0]
