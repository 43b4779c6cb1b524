"""Unit tests compute every gate result afresh: the gate cache points at a folder of this session.

``pyinfra_cli`` runs gevent's ``monkey.patch_all()`` when it is imported. The unit tests import it for its
functions and signatures (``test_compat.py``), never for its network I/O; patched, a pytest-xdist worker's
channel to its controller blocks forever (gevent's ``LoopExit``), and ``os.waitpid`` answers for children
gevent reaped. So the patch is left out of the unit tests' processes: ``make test`` runs them in 2 workers.
"""

import gevent.monkey
import pytest

gevent.monkey.patch_all = lambda *args, **kwargs: None  # before any test imports pyinfra_cli


@pytest.fixture(autouse=True)
def fresh_gate_cache(tmp_path_factory, monkeypatch):
    from litellm_runner.gates import cache

    monkeypatch.setenv("LITELLM_GATE_CACHE", str(tmp_path_factory.mktemp("gate-cache")))
    monkeypatch.setattr(cache, "_memory", {})
