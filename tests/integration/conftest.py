"""One sandbox host for the whole integration session, in the incident state,
converged once; removed at the end."""

import os
import time

import pytest

from tests.support.hosts import REPO, fresh_sandbox, pyinfra

NAME = os.environ.get("LITELLM_IT_SANDBOX", "litellm-sandbox-it")  # a second run side by side: another name
PORT = int(os.environ.get("LITELLM_IT_PORT", "2290"))
# pytest-xdist (`make test` runs the integration files in 2 workers, each file whole in one
# worker): every worker that needs the session host gets its own sandbox
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw"):
    NAME, PORT = f"{NAME}-{_WORKER}", PORT + 30 + int(_WORKER[2:])

# The files that take several minutes each, longest first (estimated from the slowest durations of the
# CI runs of 2026-12-05: own sandboxes, or rows that each break and repair the host). `make test` hands
# whole files to whichever of its two workers is free, in collection order (`--no-loadscope-reorder`;
# xdist's own order, most tests first, left test_fleet, test_rotate and test_upgrade to the end, where
# one worker idled while the other finished a long file). Longest first leaves the short files, in
# collection order, to fill both workers up to the end. A new long file belongs in this list.
LONGEST_FIRST = (
    "test_fleet.py",
    "test_recover.py",
    "test_trust.py",
    "test_unit_drift.py",
    "test_check.py",
    "test_repair.py",
    "test_proxy_database.py",
    "test_real_hosts.py",
    "test_interrupt.py",
    "test_refuse.py",
    "test_mcp.py",
    "test_rotate.py",
    "test_upgrade.py",
    "test_release.py",
    "test_inventory.py",
    "test_migrations.py",
)


def pytest_collection_modifyitems(items):
    """The integration files in LONGEST_FIRST's order, then the others; each file's tests keep their order."""
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def host():
    with fresh_sandbox(NAME, PORT) as sandbox_host:
        yield sandbox_host


@pytest.fixture(scope="session")
def dry_before(host):
    """A dry run on the untouched incident host, and what the host looked like right after it."""
    run = pyinfra([host.name], "--dry")
    run.host_after = {
        "state_files_mode": host.out("stat -c %a /home/litellm/litellm/state/files"),
        "linger": host.ssh("test -e /var/lib/systemd/linger/litellm", check=False).returncode == 0,
    }
    return run


@pytest.fixture(scope="session")
def check_before(host):
    """The drift check on the untouched incident host: (process, JSON report)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/drift.json"
        proc = subprocess.run(
            [sys.executable, "-m", "litellm_runner.cli.check", "--json", path],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "LITELLM_SANDBOXES": host.name},
        )
        report = json.loads(open(path).read()) if os.path.exists(path) else None
    return proc, report


@pytest.fixture(scope="session")
def converged(host, dry_before, check_before):
    """The first converge, then the second; both runs returned."""
    first = pyinfra([host.name], "-y")
    assert first.returncode == 0, first.why
    second = pyinfra([host.name], "-y")
    assert second.returncode == 0, second.why
    return first, second


@pytest.fixture
def converge(host):
    def run():
        result = pyinfra([host.name], "-y")
        assert result.returncode == 0, result.why
        return result

    return run


@pytest.fixture(scope="module")
def back_to_the_sandbox_desired_state(host):
    """After a file that converges the session host with its own data: the host converged back to the
    repository's desired state, so the files after it on the same worker (their order is not fixed)
    find it as they expect. A file asks for it with pytest.mark.usefixtures."""
    yield
    run = pyinfra([host.name], "-y")
    assert run.returncode == 0, run.why


TIMELINE = REPO / "reports" / "integration-timeline.tsv"  # worker, start, end (epoch s), phase, test


def pytest_configure(config):
    if not _WORKER:  # the run's first process: a new timeline
        TIMELINE.unlink(missing_ok=True)


def pytest_runtest_logreport(report):
    """Each test's phases as they end, one line per phase that took a second or more, by worker: which file
    held a worker how long, and when each worker went idle (docs/tests.md, CI time)."""
    if report.duration < 1 or (not _WORKER and hasattr(report, "node")):  # xdist's controller relays the workers'
        return
    end = time.time()
    TIMELINE.parent.mkdir(exist_ok=True)
    with TIMELINE.open("a", encoding="utf-8") as out:
        out.write(f"{_WORKER or 'main'}\t{end - report.duration:.1f}\t{end:.1f}\t{report.when}\t{report.nodeid}\n")
