"""Traffic through the real LiteLLM proxy of a converged sandbox (issue #16 items 0 and 4).

The sandbox's model list routes local-vllm to the stub model server the sandbox
already runs as litellm-rerank (files/bin/litellm-stub-server on 127.0.0.1:8079,
no model weights): a chat completion with the master key gets 200 and the stub's
answer, one without a key gets 401 (not 500: the venv has LiteLLM's database
client, prisma, which the proxy's auth error handler imports). A change of
litellm_settings.request_timeout restarts the proxy (rolling restart, gated on
/health/readiness) and the completion works again; readiness probed all through that restart
always answers 200 (the proxy's socket, litellm.socket, queues connections while no proxy runs).

Requests are sent from inside the sandbox (the proxy listens on its loopback) with
curl; the master key, read from the sandbox's secret source, reaches curl on
standard input (`-H @-`), never on a command line or in any output.

Run: LITELLM_IT_SANDBOX=litellm-sandbox-h6 LITELLM_IT_PORT=2406 \
     .venv/bin/python -m pytest tests/integration/test_traffic.py -v -p no:cacheprovider
"""

import json
import shlex

import pytest
import yaml

from litellm_runner import sandbox
from litellm_runner.secrets import read_secrets_file
from tests.support.fleet import inventory
from tests.support.hosts import pyinfra
from tests.support.proxyload import Watch, ready_at, served_through_restart, stopped_at
from tests.unit.group_data import defaults

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
CTL = "systemctl --user --machine=litellm@.host"
PROXY = "http://127.0.0.1:4000"
STUB_MODELS = [  # local-vllm served by the sandbox's rerank stub (it answers every model name)
    {
        "model_name": "local-vllm",
        "litellm_params": {
            "model": "hosted_vllm/local-model",
            "api_base": "http://127.0.0.1:8079/v1",
            "api_key": "os.environ/VLLM_API_KEY",
        },
    }
]
ANSWER = "pong from rerank for local-model"  # the stub's documented answer
CHAT = {"model": "local-vllm", "messages": [{"role": "user", "content": "say pong"}], "max_tokens": 8}


def master_key() -> str:
    """The master key from the sandbox's secret source (never printed)."""
    return read_secrets_file(sandbox.secrets_file())["LITELLM_MASTER_KEY"]


def chat(host, key: str | None) -> tuple[int, dict]:
    """POST CHAT to the proxy from inside HOST, with KEY as the bearer token (None: no header): (status, JSON)."""
    curl = (
        f"curl -sS --max-time 120 -o /tmp/h6-answer.json -w '%{{http_code}}' -H @- "
        f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(CHAT))} {PROXY}/v1/chat/completions"
        " && echo && cat /tmp/h6-answer.json && rm -f /tmp/h6-answer.json"
    )
    proc = host.ssh(curl, timeout=180, check=False, input=f"Authorization: Bearer {key}\n" if key else "")
    assert proc.returncode == 0, proc.stderr
    status, _, body = proc.stdout.partition("\n")
    return int(status), json.loads(body)


def converge(host, tmp_path_factory, **overrides):
    """A converge of HOST with the stub-routed model list and OVERRIDES; the proxy's MainPID after it."""
    hosts = inventory(
        tmp_path_factory.mktemp("h6") / "hosts.yml",
        [host.name],
        {"litellm_model_list": STUB_MODELS, "litellm_num_workers": 1, **overrides},
    )
    run = pyinfra([host.name], "-y", env={"LITELLM_INVENTORY": str(hosts)})
    assert run.returncode == 0, run.why
    host.wait_for(f"curl -sf {PROXY}/health/readiness", timeout=600)
    return run, host.out(f"{CTL} show -P MainPID litellm.service")


pytestmark = pytest.mark.usefixtures("back_to_the_sandbox_desired_state")


@pytest.fixture(scope="module")
def first(host, tmp_path_factory):
    """The incident sandbox converged once, its proxy routing local-vllm to the stub."""
    return converge(host, tmp_path_factory)


@pytest.fixture(scope="module")
def restarted(first, host, tmp_path_factory):
    """A second converge that changes litellm_settings.request_timeout: the proxy restarts (rolling), its readiness
    probed all along (each probe waits up to 600 s, longer than the proxy's start): ``(run, pid, timeout, events)``."""
    timeout = defaults()["litellm_settings"]["request_timeout"] + 7
    with Watch(host, timeout=600) as watch:
        run, pid = converge(host, tmp_path_factory, litellm_settings={"request_timeout": timeout})
    return run, pid, timeout, watch.events


def test_venv_has_the_prisma_client_litellm_requires(first, host):
    """The database client is installed at the pinned version, importable by the account's venv."""
    out = host.out(
        f"runuser -u litellm -- {CODE}/venv/bin/python -c "
        '\'import importlib.metadata as m, prisma.errors; print(m.version("prisma"), m.version("litellm"))\''
    )
    assert out == "0.11.0 1.102.4"


def test_the_account_loads_the_generated_client_compiled_by_root(first, host):
    """The generated client's modules are loaded from root's bytecode (``python -v`` names the pyc it used), so no
    start of the proxy compiles its 10.7 MB again: the account cannot write root's ``__pycache__``."""
    out = host.ssh(
        f"cd /tmp && runuser -u litellm -- {CODE}/venv/bin/python -v -c 'import prisma.client, prisma.actions'",
        timeout=300,
    ).stderr
    code = "# code object from "  # what python -v says of each module: its pyc ('quoted') or its source
    loaded = [line[len(code) :] for line in out.splitlines() if line.startswith(code) and "/prisma/" in line]
    for module in ("client", "types", "models", "actions"):
        assert any(f"/prisma/__pycache__/{module}.cpython-" in line for line in loaded), (module, loaded)
        assert not any(line.endswith(f"/prisma/{module}.py") for line in loaded), (module, loaded)  # not compiled


def test_completion_with_the_master_key(first, host):
    status, body = chat(host, master_key())
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == ANSWER and body["model"] == "local-vllm"


def test_without_a_key_is_401(first, host):
    status, body = chat(host, None)
    assert status == 401, body
    assert body["error"]["type"] == "auth_error"


def test_the_proxy_answers_throughout_its_restart(first, restarted, host):
    """litellm.socket outlives the proxy: a probe sent while no proxy ran waited in its queue and the new proxy
    answered it; no probe was refused or failed, from before the restart until after the new proxy was ready."""
    _, _, _, events = restarted
    stop = stopped_at(host)
    assert [e for e in events if e["status"] != 200] == [], [e for e in events if e["status"] != 200]
    assert any(e["t"] < stop for e in events)  # the watch began before the old proxy stopped
    assert served_through_restart(events, stop, ready_at(host, stop)), events
    assert any(e["t"] > ready_at(host, stop) for e in events)


def test_rolling_restart_then_traffic_again(first, restarted, host):
    _, pid_before = first
    run, pid_after, timeout, _ = restarted
    assert pid_before != pid_after  # the proxy process was replaced by the converge
    assert [n for n in run.changed(host.name) if "litellm.service" in n], run.changed(host.name)
    config = yaml.safe_load(host.out("cat /etc/litellm/config.generated.yaml"))
    assert config["litellm_settings"]["request_timeout"] == timeout
    status, body = chat(host, master_key())
    assert status == 200 and body["choices"][0]["message"]["content"] == ANSWER, body
    assert chat(host, None)[0] == 401


def test_the_key_is_in_no_output(first, restarted, host):
    key = master_key()
    run, _, _, _ = restarted
    assert key not in first[0].stdout + first[0].stderr + run.stdout + run.stderr
    journal = host.out("journalctl _SYSTEMD_USER_UNIT=litellm.service -o cat --no-pager -n 300", check=False)
    assert key not in journal


SKIP_ALL_BUT_PRISMA = " ".join(
    f"--skip {c}"
    for c in (
        "services",
        "database",
        "backups",
        "health",
        "metrics",
        "keys",
        "config",
        "models",
        "probes",
        "proxy-database",
    )
)


def status_prisma(host, root: str = ROOT) -> tuple[int, str]:
    """litellm-status's prisma check as the service account, in the host's venv, for the deployment at ROOT."""
    proc = host.ssh(
        f"cd / && runuser -u litellm -- env LITELLM_ROOT={root} {CODE}/venv/bin/python {CODE}/bin/litellm-status "
        f"--root {root} --env-file /etc/litellm/env.litellm {SKIP_ALL_BUT_PRISMA}",
        check=False,
    )
    return proc.returncode, proc.stdout.splitlines()[0]


def test_status_reports_the_database_client(first, host):
    """The sandbox's proxy uses its database through the query engine the runner ships (litellm_query_engine):
    the client is generated from litellm's schema and Prisma's own lookup finds the engine the proxy's unit names."""
    from litellm_runner import query_engine

    assert status_prisma(host) == (
        0,
        "OK   prisma: prisma 0.11.0, client generated from litellm's schema, "
        f"query engine {query_engine.install_dir()}/query-engine",
    )
