"""An upgrade of the litellm pin on the session sandbox, in the right order (issue #25 item 4, docs/migrations.md).

The sandbox is taken back to the release before the pinned one: litellm 1.101.6 with litellm-proxy-extras
0.4.94 (tests/fixtures/upgrade: the same lock but for litellm, litellm-proxy-extras and litellm-enterprise).
0.4.97 adds six migrations to 0.4.94's (NEW); their columns are dropped and their records deleted, so the
database is what 0.4.94's migrations make, and the host is converged with the older pins (0.4.94's
migrations are all recorded: none is applied). Then the pinned release is rolled out twice, while
readiness is probed from inside the sandbox every half second:

1. with a planted conflict (a JWT key mapping whose key is gone, its foreign key dropped by hand, as on a
   database set up by hand): the first new migration re-adds that foreign key and fails on the row. The run
   exits 1 naming the migration and PostgreSQL's error; nothing of it is recorded; the old proxy (its PID)
   keeps running and answering; the switch of the link ``layout.VENV`` to the new release's venv (built beside
   the old one by the fixture's run, kept as the previous venv) is held, and with it the restart: the link
   still leads to the old venv, whose files nothing changed, and the proxy runs from it.
2. the conflict removed: the next run takes a verified backup, applies the new migrations, and only then
   restarts the proxy. Order is asserted from the host's own records: the backup's time, the migrations'
   started_at/finished_at, the unit's stop time, the gate's "ready" line, the probes' times (one clock, the
   host's). Every probe answered 200, before, through and after the restart: those sent while no proxy ran
   waited in litellm.socket's queue (each probe waits up to PROBE_TIMEOUT) and the new proxy answered them.
   The run after changes nothing.

The sandbox ends on the pinned release (a test that stops halfway converges it back), so the files after this
one find it converged.
"""

import datetime
import json
import shlex
import time

import pytest

from litellm_runner import layout
from tests.support.hosts import REPO, pyinfra
from tests.support.proxyload import Watch, ready_at, served_through_restart, stopped_at

OLD_PINS = REPO / "tests" / "fixtures" / "upgrade" / "litellm-venv-requirements.txt"
SCHEMA = "LiteLLM schema as its migrations make it | db-02"
PROXY = "Unit litellm.service enabled and running | svc-01"
CTL = "systemctl --user --machine=litellm@.host"
BACKUPS = "/home/litellm/litellm/state/archive/backups"  # <litellm_root>/state/archive/backups
NEW = {  # migration of 0.4.97 that 0.4.94 lacks: the columns it adds
    "20260717000000_cascade_delete_jwt_key_mapping_on_token_delete": [],  # a foreign key, re-made ON DELETE CASCADE
    "20260903230000_add_org_id_to_managed_object_table": [("LiteLLM_ManagedObjectTable", "org_id")],
    "20260905120000_add_per_server_oauth_discovery_to_mcp_servers": [
        ("LiteLLM_MCPServerTable", "per_server_oauth_discovery")
    ],
    "20260907000000_add_autorouter_classifier_cost": [
        ("LiteLLM_AutoRouterSession", "classifier_cost"),
        ("LiteLLM_AutoRouterSession", "classifier_cost_recorded_turns"),
    ],
    "20260910000000_add_autorouter_session_baseline_models": [("LiteLLM_AutoRouterSession", "baseline_models")],
    "20260910000000_skills_on_object_permission": [("LiteLLM_ObjectPermissionTable", "skills")],
}
FAILS = "20260717000000_cascade_delete_jwt_key_mapping_on_token_delete"
PROBE_TIMEOUT = 300  # seconds a readiness probe waits: longer than the proxy's start (it waits in the socket's queue)
ORPHAN = "it-upgrade-orphan"  # LiteLLM_JWTKeyMapping.id of the planted row


def sql(host, query: str) -> str:
    """QUERY as PostgreSQL's superuser on the sandbox (what an operator's hand does)."""
    return host.out(f"runuser -u postgres -- psql -p 5434 -d litellm -AtX -v ON_ERROR_STOP=1 -c {shlex.quote(query)}")


def versions(host) -> dict[str, str]:
    """{distribution: version} of litellm, litellm-proxy-extras and litellm-enterprise in the host's venv."""
    code = (
        "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
        "('litellm', 'litellm-proxy-extras', 'litellm-enterprise')}))"
    )
    return json.loads(host.out(f"cd / && {layout.VENV}/bin/python -I -c {shlex.quote(code)}"))


def recorded(host) -> dict[str, tuple[float, float]]:
    """{migration of NEW: (started_at, finished_at) as epoch seconds} for the finished records."""
    names = ", ".join(f"'{n}'" for n in NEW)
    rows = sql(
        host,
        "SELECT migration_name, extract(epoch FROM started_at), extract(epoch FROM finished_at) FROM _prisma_migrations"
        f" WHERE migration_name IN ({names}) AND finished_at IS NOT NULL AND rolled_back_at IS NULL",
    )
    return {n: (float(s), float(f)) for n, s, f in (r.split("|") for r in rows.splitlines())}


def proxy_pid(host) -> str:
    return host.out(f"{CTL} show -P MainPID litellm.service")


def now(host) -> float:
    return float(host.out("date +%s.%N"))


def live_venv(host) -> str:
    """The versioned venv the link the units name leads to (docs/venv-switch.md)."""
    return host.out(f"readlink -e {layout.VENV}")


def proxy_venv(host) -> str:
    """The venv the running proxy's interpreter is from: its command line's first word (the script's shebang)."""
    return host.out(f"tr '\\0' '\\n' < /proc/{proxy_pid(host)}/cmdline | head -1").rsplit("/bin/", 1)[0]


def back_to_0_4_94(host) -> None:
    """The database as 0.4.94's migrations leave it: NEW's columns dropped, their records deleted."""
    drops = "; ".join(f'ALTER TABLE "{t}" DROP COLUMN IF EXISTS "{c}"' for cols in NEW.values() for t, c in cols)
    names = ", ".join(f"'{n}'" for n in NEW)
    sql(host, f"BEGIN; {drops}; DELETE FROM _prisma_migrations WHERE migration_name IN ({names}); COMMIT")


@pytest.fixture
def on_the_older_release(converged, host):
    """The sandbox on litellm 1.101.6 / litellm-proxy-extras 0.4.94; afterwards on the pinned release again."""
    pinned = versions(host)
    assert pinned["litellm-proxy-extras"] == "0.4.97"
    back_to_0_4_94(host)
    run = pyinfra([host.name], "-y", "--data", f"litellm_venv_requirements={OLD_PINS}")
    try:
        assert run.returncode == 0, run.why
        assert versions(host) == {
            "litellm": "1.101.6",
            "litellm-proxy-extras": "0.4.94",
            "litellm-enterprise": "0.1.65",
        }
        assert recorded(host) == {}  # 0.4.94's migrations: all recorded, all there; none of NEW
        yield pinned
    finally:
        sql(host, f"DELETE FROM \"LiteLLM_JWTKeyMapping\" WHERE id = '{ORPHAN}'")
        if versions(host) != pinned or set(recorded(host)) != set(NEW):  # the test stopped halfway
            again = pyinfra([host.name], "-y")
            assert again.returncode == 0, again.why


def test_upgrade_migrates_before_the_restart_and_a_failed_migration_keeps_the_old_proxy(on_the_older_release, host):
    # the conflict: a mapping whose key is gone, which the foreign key FAILS re-makes cannot accept
    sql(host, 'ALTER TABLE "LiteLLM_JWTKeyMapping" DROP CONSTRAINT IF EXISTS "LiteLLM_JWTKeyMapping_token_fkey"')
    sql(
        host,
        'INSERT INTO "LiteLLM_JWTKeyMapping" (id, jwt_claim_name, jwt_claim_value, token) '
        f"VALUES ('{ORPHAN}', 'sub', '{ORPHAN}', 'no-such-key')",
    )
    old_pid, old_venv = proxy_pid(host), live_venv(host)
    assert proxy_venv(host) == old_venv and old_venv.startswith(f"{layout.VENVS}/")  # the proxy runs from it
    host.ssh("touch /tmp/it-upgrade-mark && sleep 1")
    with Watch(host, timeout=PROBE_TIMEOUT) as watch:
        failed_from = now(host)
        failed = pyinfra([host.name], "-y")
        failed_until = now(host)

        assert failed.returncode == 1, failed.why
        line = next((ln for ln in failed.stderr.splitlines() if "database schema:" in ln), failed.stderr[-2000:])
        assert (
            f"schema: migration {FAILS} failed, it and what follows not applied: ForeignKeyViolation: "
            'insert or update on table "LiteLLM_JWTKeyMapping" violates foreign key constraint '
            '"LiteLLM_JWTKeyMapping_token_fkey"'
        ) in line, line
        assert recorded(host) == {}  # nothing of the new release's migrations
        assert proxy_pid(host) == old_pid  # the old proxy keeps serving
        # from its own venv, untouched; the switch to the new release's venv (kept beside it since the fixture's
        # run, so this run changed nothing else the proxy runs on) is held, and with it the proxy's restart: the
        # next run finds the link on the old venv, switches and restarts
        assert live_venv(host) == proxy_venv(host) == old_venv
        assert versions(host)["litellm"] == "1.101.6"
        assert host.out(f"find {old_venv} -newer /tmp/it-upgrade-mark -o -cnewer /tmp/it-upgrade-mark | head -3") == ""
        beside = host.out(f"ls -d {layout.VENVS}/*/lib/python3*/site-packages/litellm-1.102.4.dist-info")
        new_venv = beside.splitlines()[0].split("/lib/python3")[0]  # the new release's venv, built beside it

        sql(host, f"DELETE FROM \"LiteLLM_JWTKeyMapping\" WHERE id = '{ORPHAN}'")  # the operator's fix
        resumed = pyinfra([host.name], "-y")
        assert resumed.returncode == 0, resumed.why
        assert {SCHEMA, PROXY} <= set(resumed.changed(host.name))
        host.wait_for("curl -sf http://127.0.0.1:4000/health/readiness", timeout=PROBE_TIMEOUT)
        after_restart = now(host)
        time.sleep(3)  # a few probes of the new proxy before the watch stops

    assert versions(host) == on_the_older_release
    assert proxy_pid(host) != old_pid
    # switched by the link's rename before the restart; the old venv kept as the previous one (a rollback's)
    assert live_venv(host) == proxy_venv(host) == new_venv
    assert host.out(f"readlink -e {layout.VENV_PREVIOUS}") == old_venv
    assert host.ssh(f"test -e {layout.RESTART_HELD}", check=False).returncode != 0
    applied = recorded(host)
    assert set(applied) == set(NEW)

    # order, from the host's own records: verified backup, then the migrations, then the restart
    backup = json.loads(host.out(f"cat {BACKUPS}/last-backup.json"))
    assert backup["verified"] is True and backup["error"] is None
    backup_time = datetime.datetime.fromisoformat(backup["time"]).timestamp()
    stop = stopped_at(host)
    assert failed_until < backup_time < min(s for s, _ in applied.values())
    assert max(f for _, f in applied.values()) < stop

    # the proxy served throughout: every probe answered, through the failed run, the backup and migrations of
    # the next, the restart (sent while no proxy ran, it waited in litellm.socket's queue and the new proxy
    # answered it), until after the new proxy was ready
    assert [e for e in watch.events if e["status"] != 200] == [], [e for e in watch.events if e["status"] != 200]
    assert any(failed_from < e["t"] < failed_until for e in watch.events)
    assert served_through_restart(watch.events, stop, ready_at(host, stop)), watch.events
    assert any(e["t"] > after_restart for e in watch.events), watch.events[-5:]

    again = pyinfra([host.name], "-y")
    assert again.returncode == 0, again.why
    assert again.changed(host.name) == []
