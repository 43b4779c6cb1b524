"""The sandbox's real PostgreSQL after converge, read with psql on the host."""

import hashlib
import json

from tests.support.hosts import REPO, pyinfra

PSQL = "runuser -u postgres -- psql -p 5434 -d litellm -AtX -c"


def sql(host, query):
    return host.out(f"{PSQL} {json.dumps(query)}")


def test_settings_rows_converged_and_unmanaged_keys_kept(converged, host):
    general = json.loads(sql(host, "SELECT param_value FROM \"LiteLLM_Config\" WHERE param_name = 'general_settings'"))
    assert general["database_connection_pool_limit"] == 20
    assert general["store_prompts_in_spend_logs"] is False
    assert general["disable_error_logs"] is False
    assert general["maximum_spend_logs_retention_period"] == "30d"  # set from the UI, not managed: kept
    settings = json.loads(sql(host, "SELECT param_value FROM \"LiteLLM_Config\" WHERE param_name = 'litellm_settings'"))
    assert settings == {"request_timeout": 120, "drop_params": True}


def test_missing_table_created(converged, host):
    assert sql(host, "SELECT to_regclass('\"LiteLLM_SkillsTable\"')") == '"LiteLLM_SkillsTable"'


def test_expired_keys_blocked(converged, host):
    assert (
        sql(host, 'SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE expires < now() AND blocked IS NOT TRUE')
        == "0"
    )
    assert (
        sql(
            host,
            "SELECT string_agg(key_alias, ',' ORDER BY key_alias) FROM \"LiteLLM_VerificationToken\" WHERE blocked",
        )
        == "old-batch,old-ci"
    )


def test_listed_alias_rotated_once(converged, host):
    rows = sql(
        host,
        "SELECT token, key_name, expires > now() + interval '89 days' FROM \"LiteLLM_VerificationToken\" "
        "WHERE key_alias = 'ops-team' ORDER BY expires DESC",
    ).splitlines()
    assert len(rows) == 2
    token, key_name, fresh = rows[0].split("|")
    assert fresh == "t"
    delivered = sorted((REPO / ".secrets" / "keys" / host.name).glob("ops-team-*.key"))
    assert len(delivered) == 1 and delivered[0].stat().st_mode & 0o777 == 0o600
    raw = delivered[0].read_text().strip()
    assert hashlib.sha256(raw.encode()).hexdigest() == token and key_name == f"sk-...{raw[-4:]}"


def test_dry_run_showed_database_items(dry_before, host):
    would = dry_before.changed(host.name)
    assert "LiteLLM_Config settings rows | db-01" in would
    assert "Listed key aliases have a valid key | db-05" in would


def test_database_down_gives_clear_error_then_recovers(converged, host, converge):
    host.ssh("systemctl stop postgresql")
    try:
        run = pyinfra([host.name], "-y")
        assert run.returncode != 0
        assert "database 127.0.0.1:5434/litellm unreachable" in run.stderr
        password = (
            [
                line
                for line in (REPO / ".sandbox" / "secrets.env").read_text().splitlines()
                if line.startswith("DATABASE_URL=")
            ][0]
            .split(":")[2]
            .split("@")[0]
        )
        assert password not in run.stdout + run.stderr
    finally:
        host.ssh("systemctl start postgresql")
    host.wait_for("runuser -u postgres -- pg_isready -p 5434", timeout=60)
    converge()
    assert converge().changed(host.name) == []


def test_database_drift_reported_and_repaired(converged, host, converge, tmp_path):
    from tests.integration.test_check import check

    sql(
        host,
        'UPDATE "LiteLLM_Config" SET param_value = param_value || \'{"request_timeout": 600}\' '
        "WHERE param_name = 'litellm_settings'",
    )
    sql(host, "UPDATE \"LiteLLM_VerificationToken\" SET blocked = false WHERE key_alias = 'old-ci'")
    proc, report = check(host, tmp_path)
    assert proc.returncode == 2
    items = {i["id"]: i for i in report["hosts"][host.name]["items"] if i["status"] == "drift"}
    assert items["LiteLLM_Config settings rows | db-01"]["before"] == {"litellm_settings.request_timeout": 600}
    assert items["Expired virtual keys blocked | db-03"]["after"] == {"key old-ci (sk-...0001)": "blocked"}
    run = converge()
    assert "Unit litellm.service enabled and running | svc-01" in run.changed(host.name)  # reads rows at start
    assert check(host, tmp_path)[0].returncode == 0
