"""The model-inventory and probe-capabilities jobs on a converged sandbox (issue #16 items 2 and 3).

Each job is started through its systemd user unit, as its timer starts it; what it
wrote is read with plain ssh, the status tool runs as the service account and the
metrics come from the running exporter. A model the proxy does not serve: the
rendered config gains one the running proxy has not loaded: a proxy of one worker
reads its config at its start only. (With several, uvicorn's supervisor replaces a
worker that misses its 5 s health ping, and the new worker reads the file again.
Seen in the sandbox: a worker stopped for 8 s was replaced, and 8 of 100 answers
listed the model. The likeliest cause of a CI run where the status, asked after the
inventory job, did not report the model missing.)
Probes: a converge whose litellm_model_list routes local-vllm to the stub model
server the sandbox runs as litellm-rerank (127.0.0.1:8079, it speaks OpenAI chat
completions) and adds a model whose upstream port nothing listens on: one probe
answered, one failed. The not-served model is added under that converge's proxy
of one worker.

Run: LITELLM_IT_SANDBOX=litellm-sandbox-h8 LITELLM_IT_PORT=2408 \
     .venv/bin/python -m pytest tests/integration/test_inventory.py -v -p no:cacheprovider
"""

import base64
import json
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from litellm_runner import envfile
from tests.support.fleet import inventory
from tests.support.hosts import pyinfra
from tests.unit.group_data import defaults

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
CONFIG = "/etc/litellm/config.generated.yaml"
CTL = "systemctl --user --machine=litellm@.host"
UNITS = "/etc/systemd/user"
AS_LITELLM = (
    f"runuser -u litellm -- env LITELLM_ROOT={ROOT} XDG_RUNTIME_DIR=/run/user/$(id -u litellm) "
    f"{CODE}/venv/bin/python {CODE}/bin/"
)
NOT_SERVED = "h8-not-loaded"
STUB: dict[
    str, Any
] = {  # local-vllm served by the sandbox's rerank stub (files/bin/litellm-stub-server answers chat completions)
    "model_name": "local-vllm",
    "litellm_params": {
        "model": "hosted_vllm/local-model",
        "api_base": "http://127.0.0.1:8079/v1",
        "api_key": "os.environ/VLLM_API_KEY",
    },
}
DEAD: dict[str, Any] = {  # a served model whose upstream never answers (nothing listens on the discard port)
    "model_name": "h8-dead-upstream",
    "litellm_params": {
        "model": "hosted_vllm/none",
        "api_base": "http://127.0.0.1:9/v1",
        "api_key": "os.environ/VLLM_API_KEY",
    },
}


def desired_names(models) -> list[str]:
    return sorted({m["model_name"] for m in models})


pytestmark = pytest.mark.usefixtures("back_to_the_sandbox_desired_state")


@pytest.fixture(scope="module")
def proxy(converged, host):
    """The converged host with its proxy answering."""
    host.wait_for("curl -sf http://127.0.0.1:4000/health/liveliness", timeout=300)
    return host


def job(host, name: str) -> int:
    """Start NAME.service as its timer does (a oneshot: systemctl waits for it); its exit status."""
    host.ssh(f"{CTL} reset-failed {name}.service", check=False)
    started = host.ssh(f"{CTL} start {name}.service", check=False, timeout=900)
    status = host.out(f"{CTL} show -P ExecMainStatus {name}.service")
    assert (started.returncode == 0) == (status == "0"), (started.stderr, status)
    return int(status)


def state(host, name: str) -> dict:
    return json.loads(host.out(f"cat {ROOT}/state/{name}"))


def metrics(host) -> dict:
    text = host.out("curl -sf http://127.0.0.1:9090/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def status_lines(host) -> tuple[int, list[str]]:
    proc = host.ssh(f"{AS_LITELLM}litellm-status", check=False, timeout=120)
    return proc.returncode, proc.stdout.splitlines()


def master_key(host) -> str:
    return envfile.loads(host.out("cat /etc/litellm/env.litellm"), "env.litellm")["LITELLM_MASTER_KEY"]


def write_config(host, text: str) -> None:
    """CONFIG replaced by hand as root would (root:litellm 0640, issue #22), without restarting anything."""
    data = base64.b64encode(text.encode()).decode()
    host.ssh(
        f"echo {data} | base64 -d > {CONFIG}.h8 && chmod 0640 {CONFIG}.h8 && chgrp litellm {CONFIG}.h8 "
        f"&& mv {CONFIG}.h8 {CONFIG}"
    )


def test_jobs_run_the_real_tools_and_knowledge_refresh_ships_disabled(converged, host):
    for name in ("litellm-model-inventory", "litellm-probe-capabilities"):
        assert f"{CODE}/bin/{name} --proxy-url http://127.0.0.1:4000" in host.out(f"cat {UNITS}/{name}.service")
        assert host.out(f"{CTL} is-enabled {name}.timer") == "enabled"
    assert host.out(f"{CTL} is-enabled litellm-knowledge-refresh.timer", check=False) == "disabled"
    assert host.out(f"{CTL} is-active litellm-knowledge-refresh.timer", check=False) == "inactive"
    assert "litellm-status" not in host.out(f"cat {UNITS}/litellm-knowledge-refresh.service")
    # the disabled timer's job, started by hand, says what is missing and fails
    assert job(host, "litellm-knowledge-refresh") == 1
    # (sh exits before journald reads its unit: matched by the account's uid, not by unit)
    assert "no site job: set litellm_timers" in host.out("journalctl _UID=$(id -u litellm) -o cat --no-pager -n 100")
    _, second = converged  # the disabled timer converges to no change
    assert [op for op in second.changed(host.name) if "knowledge-refresh" in op] == []


def test_inventory_job_lists_every_desired_model_as_served(proxy, host):
    wanted = desired_names(defaults()["litellm_model_list"])
    assert job(host, "litellm-model-inventory") == 0
    record = state(host, "model-inventory.json")
    assert record["ok"] is True and record["error"] is None
    assert record["desired"] == wanted and set(wanted) <= set(record["served"]) and record["missing"] == []
    assert host.out(f"stat -c '%U %a' {ROOT}/state/model-inventory.json") == "litellm 640"
    m = metrics(host)
    assert m[("litellm_models", (("state", "missing"),))] == 0
    assert m[("litellm_models", (("state", "desired"),))] == len(wanted)
    assert all(m[("litellm_model_served", (("model", name),))] == 1 for name in wanted)
    code, lines = status_lines(host)
    assert f"OK   models: {len(wanted)} desired, {len(record['served'])} served, 0 missing" in "\n".join(lines)


@pytest.fixture(scope="module")
def with_dead_model(proxy, host, tmp_path_factory):
    """A converge whose litellm_model_list is local-vllm on the stub and a model whose upstream never answers."""
    models = [STUB, DEAD]
    # one proxy worker: the restart this change makes is ready sooner on a busy 2-core machine
    data = {"litellm_model_list": models, "litellm_num_workers": 1}
    hosts = inventory(tmp_path_factory.mktemp("h8") / "hosts.yml", [host.name], data)
    run = pyinfra([host.name], "-y", env={"LITELLM_INVENTORY": str(hosts)})
    assert run.returncode == 0, run.why
    host.wait_for("curl -sf http://127.0.0.1:4000/health/liveliness", timeout=300)
    return models


def test_inventory_follows_the_desired_model_list(with_dead_model, host):
    assert job(host, "litellm-model-inventory") == 0
    record = state(host, "model-inventory.json")
    assert record["desired"] == desired_names(with_dead_model) and record["missing"] == []


def test_probe_records_which_model_answered_and_which_did_not(with_dead_model, host):
    assert job(host, "litellm-probe-capabilities") == 1  # a failed probe fails the job
    record = state(host, "capabilities.json")
    dead, stub = record["models"][DEAD["model_name"]], record["models"][STUB["model_name"]]
    assert record["error"] is None and sorted(record["models"]) == desired_names(with_dead_model)
    assert dead["ok"] is False and dead["status"] != 200 and dead["error"] and dead["seconds"] >= 0
    assert stub == {"mode": "chat", "ok": True, "status": 200, "seconds": stub["seconds"], "error": None}
    assert isinstance(stub["seconds"], float)
    assert (record["ok"], record["failed"], record["skipped"]) == (1, 1, 0)
    assert master_key(host) not in host.out(f"cat {ROOT}/state/capabilities.json")
    m = metrics(host)
    assert m[("litellm_probes", (("result", "failed"),))] == record["failed"]
    assert m[("litellm_model_probe_ok", (("model", DEAD["model_name"]),))] == 0
    assert m[("litellm_model_probe_ok", (("model", STUB["model_name"]),))] == 1
    assert m[("litellm_model_probe_seconds", (("model", STUB["model_name"]),))] == stub["seconds"]
    code, lines = status_lines(host)
    assert code == 1, lines
    assert [line for line in lines if line.startswith("FAIL probes: ") and DEAD["model_name"] in line], lines
    journal = host.out("journalctl _SYSTEMD_USER_UNIT=litellm-probe-capabilities.service -o cat --no-pager -n 50")
    assert f"FAIL {DEAD['model_name']}" in journal and f"OK   {STUB['model_name']}: answered" in journal
    assert master_key(host) not in journal


def test_a_desired_model_the_proxy_does_not_serve_is_missing(with_dead_model, host):
    original = host.out(f"cat {CONFIG}") + "\n"
    config = yaml.safe_load(original)
    config["model_list"].append({**DEAD, "model_name": NOT_SERVED})
    write_config(host, yaml.safe_dump(config, sort_keys=False))
    try:
        assert job(host, "litellm-model-inventory") == 1
        record = state(host, "model-inventory.json")
        assert record["ok"] is False and record["missing"] == [NOT_SERVED] and NOT_SERVED not in record["served"]
        m = metrics(host)
        assert m[("litellm_models", (("state", "missing"),))] == 1
        assert m[("litellm_model_served", (("model", NOT_SERVED),))] == 0
        assert m[("litellm_model_inventory_ok", ())] == 0
        code, lines = status_lines(host)
        assert code == 1, lines
        wanted = f"not served: {NOT_SERVED}"
        assert [line for line in lines if line.startswith("FAIL models: ") and wanted in line], lines
        assert "models" in lines[-1].rsplit(": ", 1)[1].split(", ")
    finally:
        write_config(host, original)
    assert job(host, "litellm-model-inventory") == 0
    assert metrics(host)[("litellm_models", (("state", "missing"),))] == 0
