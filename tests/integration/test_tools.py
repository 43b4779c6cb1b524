"""The host tools in the converged sandbox, against its real PostgreSQL and Redis."""

import json

import pytest

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
CTL = "systemctl --user --machine=litellm@.host"
PSQL = "runuser -u postgres -- psql -p 5434 -d litellm -AtX -c"
AS_LITELLM = (
    f"runuser -u litellm -- env LITELLM_ROOT={ROOT} XDG_RUNTIME_DIR=/run/user/$(id -u litellm) "
    f"{CODE}/venv/bin/python {CODE}/bin/"
)


@pytest.fixture(scope="module")
def backed_up(converged, host):
    """The backup timer's service, run once; then an old set of dumps planted for retention."""
    host.ssh(f"{CTL} start litellm-backup.service", timeout=600)
    return json.loads(host.out(f"cat {ROOT}/state/archive/backups/last-backup.json"))


def test_backup_service_makes_a_verified_dump(backed_up, host):
    assert backed_up["verified"] is True and backed_up["tables"] > 50 and backed_up["error"] is None
    folder = backed_up["file"].rsplit("/", 1)[0]
    assert host.out(f"head -c 5 {backed_up['file']}") == "PGDMP"
    assert host.out(f"stat -c %a {folder}/env.litellm") == "600"
    assert host.out(f"{PSQL} \"SELECT count(*) FROM pg_database WHERE datname LIKE 'litellm_restore_check%'\"") == "0"


def test_retention_prunes_planted_dumps(backed_up, host):
    plant = " ".join(f"$(date -u -d '-{d} days' +%Y%m%dT020000Z)" for d in range(1, 100))
    host.ssh(f"cd {ROOT}/state/archive/backups && for n in {plant}; do install -d -o litellm -g litellm $n; done")
    host.ssh(f"{AS_LITELLM}litellm-backup --prune-only")
    sets = host.out(f"ls {ROOT}/state/archive/backups | grep -c '^2'")
    assert 7 <= int(sets) <= 14  # 7 daily + up to 4 weekly + 3 monthly, overlapping


def test_health_endpoints(backed_up, host):
    assert host.out("curl -s http://127.0.0.1:8181/healthz") == '{"status": "ok"}'
    host.wait_for("curl -sf http://127.0.0.1:4000/health/liveliness", timeout=240)
    ready = json.loads(host.wait_for("curl -sf http://127.0.0.1:8181/readyz", timeout=60))
    assert ready["status"] == "ready" and all(c["ok"] for c in ready["checks"].values())
    assert "<h1>LiteLLM host: ready</h1>" in host.out("curl -s http://127.0.0.1:8181/")


def test_readyz_turns_unready_without_postgres(backed_up, host):
    host.ssh("systemctl stop postgresql")
    try:
        # the health server shares one probe among requests for a few seconds (--probe-every):
        # the next probe after the stop reports it
        body = host.wait_for("curl -s -w ' %{http_code}' http://127.0.0.1:8181/readyz | grep ' 503$'", timeout=60)
        doc = json.loads(body.rsplit(" ", 1)[0])
        assert doc["checks"]["database"]["ok"] is False
        assert host.wait_for("curl -s http://127.0.0.1:9090/metrics | grep '^litellm_db_up 0.0$'", timeout=60)
    finally:
        host.ssh("systemctl start postgresql")
    host.wait_for("runuser -u postgres -- pg_isready -p 5434", timeout=60)


def test_metrics_match_the_database(backed_up, host):
    from prometheus_client.parser import text_string_to_metric_families

    text = host.out("curl -s http://127.0.0.1:9090/metrics")
    m = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    blocked = int(host.out(f"{PSQL} 'SELECT count(*) FROM \"LiteLLM_VerificationToken\" WHERE blocked'"))
    spend = int(host.out(f"{PSQL} 'SELECT count(*) FROM \"LiteLLM_SpendLogs\"'"))
    assert m[("litellm_db_up", ())] == 1
    assert m[("litellm_virtual_keys", (("state", "blocked"),))] == blocked
    assert m[("litellm_spend_log_rows", ())] == spend
    assert m[("litellm_db_connection_pool_limit", ())] == 20
    assert m[("litellm_backup_verified", ())] == 1
    assert m[("litellm_unit_active", (("unit", "litellm.service"),))] == 1


# the proxy's own readiness says its database is connected (an earlier test stopped PostgreSQL: the proxy's
# engine connects again on its own, and litellm-status's proxy-database check reads this)
PROXY_DB_READY = (
    "curl -sf --max-time 5 http://127.0.0.1:4000/health/readiness | "
    'python3 -c \'import json, sys; sys.exit(json.load(sys.stdin).get("db") != "connected")\''
)


def test_status_report(backed_up, host):
    host.wait_for("curl -sf http://127.0.0.1:8181/readyz", timeout=240)
    host.wait_for(PROXY_DB_READY, timeout=300)
    proc = host.ssh(f"{AS_LITELLM}litellm-status", check=False)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.strip().endswith("status: all checks passed")
    host.ssh(f"{CTL} stop litellm-metrics.service")
    try:
        proc = host.ssh(f"{AS_LITELLM}litellm-status --quiet", check=False)
        assert proc.returncode == 1
        assert (
            "FAIL metrics: no answer" in proc.stdout
            and "FAIL services: inactive: litellm-metrics.service" in proc.stdout
        )
    finally:
        host.ssh(f"{CTL} start litellm-metrics.service")
