"""Unit tests compute every gate result afresh: the gate cache points at a folder of this session. Root's host-side
cache (``layout.HOSTSIDE_CACHE``: compiled host-side code, kept replays and distributions) is a folder of this
session too, so the tests, run as root, leave the machine's ``/var/cache/litellm-runner`` alone.

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


@pytest.fixture(scope="session")
def _root_cache_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("root-cache") / "litellm-runner"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture(autouse=True)
def root_cache(_root_cache_folder, monkeypatch):
    """Root's host-side cache, as the host's ``/var/cache/litellm-runner`` (0700), in this session's folder."""
    from litellm_runner import layout

    monkeypatch.setattr(layout, "HOSTSIDE_CACHE", str(_root_cache_folder))
    return _root_cache_folder
