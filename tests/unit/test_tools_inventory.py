"""The model inventory's and the capability probes' logic, as data: desired models from the rendered
config, served ones from /v1/models, the comparison, probe requests and results, the metrics; and the
two tools' records when the proxy does not answer."""

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
import types

import pytest
from prometheus_client.core import GaugeMetricFamily

from tests.support.services import BIN, free_port

sys.path.insert(0, str(BIN))
import litellm_tools as tools  # noqa: E402 (files/bin/ on sys.path first, as the tools run)


def load(name: str):
    """The host tool files/bin/NAME as a module (its main() not run)."""
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(BIN / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


PROBE = load("litellm-probe-capabilities")
METRICS = load("litellm-metrics")

CHAT = {"model_name": "chat-a", "litellm_params": {"model": "openai/a"}}


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, {}),
        ({}, {}),
        ({"model_list": None}, {}),
        ({"model_list": [CHAT]}, {"chat-a": "chat"}),
        (  # two deployments of one model name: one desired model; the first entry's mode counts
            {"model_list": [CHAT, {**CHAT, "model_info": {"mode": "embedding"}}]},
            {"chat-a": "chat"},
        ),
        (
            {"model_list": [{"model_name": "emb", "model_info": {"mode": "embedding"}}, CHAT]},
            {"emb": "embedding", "chat-a": "chat"},
        ),
        ({"model_list": [{"litellm_params": {}}, {"model_name": ""}, "text", {"model_name": 3}]}, {}),
        ({"model_list": [{"model_name": "m", "model_info": "not a mapping"}]}, {"m": "chat"}),
    ],
)
def test_desired_models(config, expected):
    assert tools.desired_models(config) == expected


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"data": []}, []),
        ({"data": [{"id": "b"}, {"id": "a"}, {"id": "b"}]}, ["a", "b"]),
        ({"object": "list", "data": [{"id": "m", "object": "model"}, {"no": "id"}, "x", {"id": 5}]}, ["m"]),
    ],
)
def test_served_ids(payload, expected):
    assert tools.served_ids(payload) == expected


@pytest.mark.parametrize("payload", [None, [], {"data": None}, {"detail": "nope"}, "text"])
def test_served_ids_refuses_an_answer_without_a_data_list(payload):
    with pytest.raises(tools.ProxyError, match="no 'data' list"):
        tools.served_ids(payload)


@pytest.mark.parametrize(
    "desired, served, missing, unexpected",
    [
        ([], [], [], []),
        (["a"], ["a"], [], []),
        (["a", "b"], ["a"], ["b"], []),
        (["a"], ["a", "z"], [], ["z"]),
        (["b", "a"], [], ["a", "b"], []),
        ([], ["a"], [], ["a"]),
        (["a", "b", "c"], ["c", "d", "a"], ["b"], ["d"]),
        ({"a": "chat", "b": "embedding"}, ["b"], ["a"], []),  # desired_models()'s mapping: its names count
    ],
)
def test_compare_models(desired, served, missing, unexpected):
    found = tools.compare_models(desired, served)
    assert found == {
        "desired": sorted(desired),
        "served": sorted(served),
        "missing": missing,
        "unexpected": unexpected,
    }


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"error": {"message": "Invalid model"}}, "Invalid model"),
        ({"error": "plain"}, "plain"),
        ({"detail": "Not Found"}, "Not Found"),
        (None, ""),
        ({"data": []}, ""),
    ],
)
def test_error_of(doc, message):
    assert tools.error_of(doc) == message


def test_short_error_masks_the_key_and_keeps_one_bounded_line():
    text = tools.short_error("bad key sk-secret-123\n  in header sk-secret-123 " + "x" * 500, "sk-secret-123", "")
    assert "sk-secret-123" not in text and "\n" not in text and len(text) == tools.ERROR_CHARS
    assert text.startswith("bad key *** in header ***")


@pytest.mark.parametrize(
    "models, counts",
    [
        ({}, {"ok": 0, "failed": 0, "skipped": 0}),
        ({"a": {"ok": True}, "b": {"ok": False}, "c": {"ok": None}}, {"ok": 1, "failed": 1, "skipped": 1}),
        ({"a": {"ok": True}, "b": {"ok": True}}, {"ok": 2, "failed": 0, "skipped": 0}),
        ({"a": "garbage"}, {"ok": 0, "failed": 1, "skipped": 0}),
    ],
)
def test_probe_counts(models, counts):
    assert tools.probe_counts(models) == counts


ARGS = types.SimpleNamespace(timeout=7.0, max_tokens=4)


@pytest.mark.parametrize(
    "mode, path, keys",
    [
        ("chat", "/v1/chat/completions", {"messages", "max_tokens"}),
        ("embedding", "/v1/embeddings", {"input"}),
    ],
)
def test_probe_request_is_small_bounded_and_without_retries(mode, path, keys):
    got = PROBE.request_for(mode, "m", ARGS)
    assert got is not None
    assert got[0] == path
    assert got[1]["model"] == "m" and got[1]["num_retries"] == 0 and got[1]["timeout"] == 7.0
    assert keys <= set(got[1])
    assert got[1].get("max_tokens", 4) == 4


@pytest.mark.parametrize("mode", ["rerank", "image_generation", "audio_transcription"])
def test_modes_without_a_probe_are_skipped(mode):
    assert PROBE.request_for(mode, "m", ARGS) is None
    assert PROBE.probe("m", mode, ARGS, "sk-x") == {
        "mode": mode,
        "ok": None,
        "status": None,
        "seconds": None,
        "error": f"mode {mode} is not probed",
    }


@pytest.mark.parametrize(
    "mode, status, doc, ok",
    [
        ("chat", 200, {"choices": [{"message": {"content": "OK"}}]}, True),
        ("chat", 200, {"choices": []}, False),
        ("chat", 200, None, False),
        ("chat", 500, {"choices": [{}]}, False),
        ("chat", 401, {"error": {"message": "auth"}}, False),
        ("embedding", 200, {"data": [{"embedding": [0.1]}]}, True),
        ("embedding", 200, {"choices": [{}]}, False),
    ],
)
def test_what_counts_as_an_answer(mode, status, doc, ok):
    assert PROBE.answered(mode, status, doc) is ok


def samples(families) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


INVENTORY = {
    "time": "2026-01-01T00:00:00+00:00",
    "ok": False,
    "desired": ["a", "b"],
    "served": ["a", "z"],
    "missing": ["b"],
    "unexpected": ["z"],
}


@pytest.mark.parametrize(
    "name, labels, value",
    [
        ("litellm_model_inventory_ok", {}, 0),
        ("litellm_models", {"state": "desired"}, 2),
        ("litellm_models", {"state": "served"}, 2),
        ("litellm_models", {"state": "missing"}, 1),
        ("litellm_models", {"state": "unexpected"}, 1),
        ("litellm_model_served", {"model": "a"}, 1),
        ("litellm_model_served", {"model": "b"}, 0),
        ("litellm_model_served", {"model": "z"}, 1),
    ],
)
def test_inventory_metrics(name, labels, value):
    families = list(METRICS.inventory_metrics(INVENTORY))
    assert all(isinstance(f, GaugeMetricFamily) for f in families)
    assert samples(families)[(name, tuple(sorted(labels.items())))] == value


PROBES = {
    "time": "2026-01-01T00:00:00+00:00",
    "error": None,
    "ok": 1,
    "failed": 1,
    "skipped": 1,
    "models": {
        "a": {"mode": "chat", "ok": True, "status": 200, "seconds": 0.25, "error": None},
        "b": {"mode": "chat", "ok": False, "status": 500, "seconds": 1.5, "error": "HTTP 500"},
        "r": {"mode": "rerank", "ok": None, "status": None, "seconds": None, "error": "mode rerank is not probed"},
    },
}


@pytest.mark.parametrize(
    "name, labels, value",
    [
        ("litellm_probes", {"result": "ok"}, 1),
        ("litellm_probes", {"result": "failed"}, 1),
        ("litellm_probes", {"result": "skipped"}, 1),
        ("litellm_model_probe_ok", {"model": "a"}, 1),
        ("litellm_model_probe_ok", {"model": "b"}, 0),
        ("litellm_model_probe_seconds", {"model": "a"}, 0.25),
        ("litellm_model_probe_seconds", {"model": "b"}, 1.5),
    ],
)
def test_probe_metrics(name, labels, value):
    assert samples(METRICS.probe_metrics(PROBES))[(name, tuple(sorted(labels.items())))] == value


def test_a_skipped_probe_has_no_per_model_sample():
    found = samples(METRICS.probe_metrics(PROBES))
    assert not [k for k in found if ("model", "r") in k[1]]


@pytest.mark.parametrize("record", [None, [], "text"])
def test_no_record_no_metrics(record):
    assert list(METRICS.inventory_metrics(record)) == [] and list(METRICS.probe_metrics(record)) == []


KEY = "sk-unit-master-0123456789"


@pytest.mark.parametrize(
    "tool, state",
    [("litellm-model-inventory", "model-inventory.json"), ("litellm-probe-capabilities", "capabilities.json")],
)
def test_a_proxy_that_does_not_answer_is_a_recorded_failure(tmp_path, tool, state):
    """Nothing listens on the port: exit 1, the record names the error class, the key appears nowhere."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "config.generated.yaml").write_text(json.dumps({"model_list": [CHAT]}))
    env = tmp_path / "env.litellm"
    env.write_text(f"LITELLM_MASTER_KEY={KEY}\n")
    env.chmod(0o600)
    proc = subprocess.run(
        [sys.executable, str(BIN / tool), "--root", str(tmp_path), "--env-file", str(env)]
        + ["--proxy-url", f"http://127.0.0.1:{free_port()}", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LITELLM_CONFIG_DIR": str(tmp_path / "state")},
    )
    record = json.loads((tmp_path / "state" / state).read_text())
    assert proc.returncode == 1, proc.stderr
    assert record["error"] == "URLError" and proc.stderr.strip().endswith(": URLError")
    assert KEY not in proc.stdout + proc.stderr + (tmp_path / "state" / state).read_text()
    assert [p.name for p in (tmp_path / "state").iterdir() if p.name.startswith(f".{state}")] == []  # no temp file


@pytest.mark.parametrize(
    "tool, state",
    [("litellm-model-inventory", "model-inventory.json"), ("litellm-probe-capabilities", "capabilities.json")],
)
def test_no_master_key_is_a_recorded_failure(tmp_path, tool, state):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "config.generated.yaml").write_text(json.dumps({"model_list": [CHAT]}))
    env = tmp_path / "env.litellm"
    env.write_text("LITELLM_MASTER_KEY=\n")
    proc = subprocess.run(
        [sys.executable, str(BIN / tool), "--root", str(tmp_path), "--env-file", str(env), "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LITELLM_CONFIG_DIR": str(tmp_path / "state")},
    )
    assert proc.returncode == 1
    assert json.loads((tmp_path / "state" / state).read_text())["error"] == "LITELLM_MASTER_KEY is not set"
