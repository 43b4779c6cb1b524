"""Unit tests compute every gate result afresh: the gate cache points at a folder of this session."""

import pytest


@pytest.fixture(autouse=True)
def fresh_gate_cache(tmp_path_factory, monkeypatch):
    from litellm_runner.gates import cache

    monkeypatch.setenv("LITELLM_GATE_CACHE", str(tmp_path_factory.mktemp("gate-cache")))
    monkeypatch.setattr(cache, "_memory", {})
