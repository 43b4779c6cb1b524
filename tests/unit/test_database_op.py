"""The database operation: plan in, apply command or noop out; a rotated key
is made on the control machine and only its hash reaches the host."""

import base64
import json
from types import SimpleNamespace

import pytest

from litellm_runner import layout
from litellm_runner.pyinfra_ext import database as db
from litellm_runner.pyinfra_ext.database import HostPlan, database, desired_state
from litellm_runner.pyinfra_ext.facts import as_account
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot
from tests.unit import fakehost
from tests.unit.fakehost import run_op
from tests.unit.group_data import defaults

ACCOUNT = ("litellm", "litellm", "/home/litellm")  # dbctl runs as the service account
PREFIX = as_account(*ACCOUNT)
DESIRED = desired_state(SimpleNamespace(**defaults(litellm_key_rotation=[{"alias": "ops-team"}])))


def answered(plan):
    """The host as the deploy's first question left it: the snapshot's command answered the plan (no HostPlan
    among the facts: a plan asked again would fail the test)."""
    return {HostSnapshot: fakehost.snap(plan=plan, plan_key=db.question(DESIRED, ACCOUNT)["key"])}


def decoded(command):
    return json.loads(base64.b64decode(command.rsplit("--desired-b64 ", 1)[1]))


def found(items, max_connections=100):
    """The plan's answer: one plan for every scope (the same ITEMS for each here)."""
    return {
        "scopes": {s: items for s in ("settings", "schema", "keys", "idle", "rotation")},
        "max_connections": max_connections,
    }


@pytest.mark.parametrize(
    "plan, applies",
    [
        ([], False),
        (None, True),  # dbctl not on the host yet: converge it when applying
        (
            [{"id": "general_settings.database_connection_pool_limit", "kind": "setting", "before": 10, "after": 25}],
            True,
        ),
    ],
)
def test_database_op(plan, applies):
    commands, noops = run_op(
        database,
        answered(None if plan is None else found(plan)),
        root="/r",
        scope="settings",
        desired=DESIRED,
        account=ACCOUNT,
    )
    assert bool(commands) == applies
    if applies:
        assert commands[0].startswith(
            f"{PREFIX} {layout.VENV}/bin/python {layout.BIN}/litellm-dbctl apply --scope settings "
            f"--env-file {layout.ENV_FILE}"
        )
        assert decoded(commands[0])["settings"]["general_settings"]["database_connection_pool_limit"] == 20
    else:
        assert noops == ["database settings: nothing differs"]
    if plan:
        assert fakehost.last_drift[0]["before"] == {"general_settings.database_connection_pool_limit": 10}


@pytest.mark.parametrize(
    "plan, expected",
    [
        (
            {"error": "database 127.0.0.1:5434/litellm unreachable: connection refused", "code": 3},
            "FAIL database settings: database 127.0.0.1:5434/litellm unreachable: connection refused",
        ),
        ({"error": "/r/env.litellm: No such file or directory", "code": 2}, f"{PREFIX} {layout.VENV}/bin/python"),
    ],
)
def test_database_op_when_the_plan_failed(plan, expected):
    """Unreachable (dbctl exit 3): this item fails, named, recorded as an error; anything else (the env
    file or venv being repaired in this run): applied, planned again while executing."""
    commands, _ = run_op(database, answered(plan), root="/r", scope="settings", desired=DESIRED, account=ACCOUNT)
    assert commands[0].startswith(expected)
    assert fakehost.last_drift[0]["kind"] == ("error" if plan["code"] == 3 else "database")


def test_desired_state_defaults():
    assert DESIRED["rotations"] == [{"alias": "ops-team", "min_days_left": 14, "valid_days": 90, "grace_hours": 24}]
    assert DESIRED["terminate_idle"] is False and DESIRED["block_expired"] is True
    assert DESIRED["settings"]["litellm_settings"] == {"request_timeout": 120}


def test_rotation_sends_only_the_hash(monkeypatch, tmp_path):
    delivered = {}

    def deliver(host_name, alias, raw, base=None):
        delivered[alias] = raw
        return tmp_path / "k"

    monkeypatch.setattr(db, "deliver_key", deliver)
    plan = [{"id": "rotate ops-team", "kind": "key-rotation", "before": "x", "after": "y"}]
    fake = fakehost.FakeHost(answered(found(plan)))
    fake.state.is_executing = True
    from pyinfra.context import ctx_host

    with ctx_host.use(fake):
        commands = [
            fakehost.as_text(c) for c in database._inner(root="/r", scope="rotation", desired=DESIRED, account=ACCOUNT)
        ]
    raw = delivered["ops-team"]
    assert raw.startswith("sk-") and raw not in commands[0]
    sent = decoded(commands[0])["rotations"][0]
    import hashlib

    assert sent["new_token"] == hashlib.sha256(raw.encode()).hexdigest()
    assert sent["new_key_name"] == f"sk-...{raw[-4:]}"


def test_rotation_plan_while_detecting_makes_no_key(monkeypatch):
    monkeypatch.setattr(db, "deliver_key", lambda *a, **k: pytest.fail("a key was made while detecting"))
    plan = [{"id": "rotate ops-team", "kind": "key-rotation", "before": "x", "after": "y"}]
    commands, _ = run_op(database, answered(found(plan)), root="/r", scope="rotation", desired=DESIRED, account=ACCOUNT)
    assert "new_token" not in decoded(commands[0])["rotations"][0]


def test_delivered_key_file_is_private(tmp_path):
    path = db.deliver_key("h", "ops/team", "sk-raw", base=tmp_path)
    assert path.parent == tmp_path / "h" and path.name.startswith("ops_team-")
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert path.read_text() == "sk-raw\n"


@pytest.mark.parametrize("replan, applies", [(False, False), (True, True)])
def test_schema_is_planned_again_when_the_venv_gets_another_release(replan, applies):
    """The plan read while preparing comes from the migrations installed then; a run that installs another
    litellm-proxy-extras (an upgrade of the pin) runs dbctl apply, which plans again from the new ones."""
    commands, noops = run_op(
        database,
        answered(found([])),
        root="/r",
        scope="schema",
        desired=DESIRED,
        account=ACCOUNT,
        replan=replan,
    )
    assert bool(commands) == applies
    if applies:
        assert " litellm-dbctl apply --scope schema " in commands[0].replace(f"{layout.BIN}/", " ")
        assert "--backup-root /r " in commands[0]
        assert fakehost.last_drift[0]["before"] == "schema: planned from the release the venv had"
    else:
        assert noops == ["database schema: nothing differs"]


@pytest.mark.parametrize(
    "case,first,again",
    [
        ("dbctl not shipped yet", None, found([])),
        ("the env file being repaired", {"error": "/r/env.litellm: No such file or directory", "code": 2}, found([])),
    ],
)
def test_a_plan_the_snapshot_could_not_read_is_asked_again_alone(case, first, again):
    """The snapshot's command answers the plan while preparing; where it could not be read, the next ask (while
    executing, after the deploy shipped dbctl) runs the plan alone (``HostPlan``); a plan read is kept."""
    from pyinfra.context import ctx_host

    fake = fakehost.FakeHost({**answered(first), HostPlan: again})
    with ctx_host.use(fake):
        assert db.plan("/r", "settings", DESIRED, ACCOUNT) == first, case
        assert db.plan("/r", "settings", DESIRED, ACCOUNT) == {"items": [], "max_connections": 100}, case
        fake.facts[HostPlan] = None  # kept: not asked a third time
        assert db.plan("/r", "keys", DESIRED, ACCOUNT) == {"items": [], "max_connections": 100}, case
