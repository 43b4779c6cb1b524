"""The burst's summary (tests/support/proxyload.py): completions per second and latencies from its results."""

import math

from tests.support.proxyload import summary


def test_summary_counts_only_completions_that_answered_200():
    run = {
        "wall": 2.0,
        "results": [
            {"status": 200, "id": "a", "seconds": 0.3},
            {"status": 200, "id": "b", "seconds": 0.1},
            {"status": 200, "id": "c", "seconds": 0.2},
            {"status": 500, "id": None, "seconds": 0.05},
            {"status": "ReadTimeout", "id": None, "seconds": 60.0},
        ],
    }
    assert summary(run) == {"ok": 3, "failed": 2, "per_second": 1.5, "p50": 0.2, "p95": 0.3}


def test_summary_of_a_burst_where_nothing_answered():
    row = summary({"wall": 1.0, "results": [{"status": "ConnectError", "id": None, "seconds": 0.01}]})
    assert row["ok"] == 0 and row["failed"] == 1 and row["per_second"] == 0.0 and math.isnan(row["p50"])
