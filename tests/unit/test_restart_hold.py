"""The proxy's restart held while the schema item fails, and owed until a run converges it (user_unit's
``hold_when`` and ``held``), as data: facts and earlier operations' results in, commands out."""

import pytest

from litellm_runner.pyinfra_ext.operations import user_unit
from litellm_runner.pyinfra_ext.snapshot import HostSnapshot
from tests.unit.fakehost import Meta, run_op, snap

CTL = "systemctl --user --machine=litellm@.host"
UNIT = "/home/litellm/.config/systemd/user/litellm.service"
HELD = "/var/lib/litellm-runner/restart-held"  # litellm_runner.layout.RESTART_HELD
ACCOUNT = "runuser-as-litellm"
RUNNING = {"enabled": True, "active": True, "fragment": UNIT, "drop_ins": [], "sources": [UNIT]}


class Result(Meta):
    """An earlier operation's result: changed or not, failed or not."""

    def __init__(self, changed=False, failed=False):
        super().__init__(changed and not failed)
        self.failed = failed

    def did_error(self):
        return self.failed


@pytest.mark.parametrize(
    "case, inputs_changed, schema_failed, owed, commands",
    [
        ("nothing to do", False, False, False, []),
        ("inputs changed: restarted", True, False, False, [f"{CTL} restart litellm.service"]),
        ("inputs changed, schema failed: held, and owed", True, True, False, [f"{ACCOUNT} touch {HELD}"]),
        ("still failing, already owed: held, nothing written", False, True, True, []),
        (
            "owed, schema converged: restarted, then no longer owed",
            False,
            False,
            True,
            [f"{CTL} restart litellm.service", f"{ACCOUNT} rm -f {HELD}"],
        ),
    ],
)
def test_restart_held_while_the_schema_fails_and_owed_until_done(case, inputs_changed, schema_failed, owed, commands):
    found = snap(
        units={"litellm.service": RUNNING}, paths={UNIT: {"type": "file"}, HELD: {"type": "file"} if owed else None}
    )
    facts = {HostSnapshot: found}
    found, noops = run_op(
        user_unit,
        facts,
        user="litellm",
        unit="litellm.service",
        restart_when=[Result(changed=inputs_changed)],
        hold_when=[Result(failed=schema_failed)],
        held={"path": HELD, "account": ACCOUNT},
        path=UNIT,
    )
    assert found == commands
    if case.startswith("still failing"):
        assert noops == ["litellm.service: restart held, an item it needs failed in this run (see its error above)"]


@pytest.mark.parametrize(
    "socket, proxy, schema_failed, commands",
    [
        (  # the old layout: the proxy binds the port itself; its socket's first start stops it, in one command
            {},
            {"active": True},
            False,
            [f"{CTL} enable litellm.socket", f"{CTL} stop litellm.service && {CTL} start litellm.socket"],
        ),
        ({"enabled": True}, {"active": True}, True, []),  # the schema failed: the old proxy keeps serving, held
        ({}, {"active": False}, False, [f"{CTL} enable litellm.socket", f"{CTL} start litellm.socket"]),
        ({"enabled": True, "active": True}, {"active": True}, False, []),  # converged: nothing stops the proxy
    ],
)
def test_the_proxys_socket_takes_its_port_over_from_the_proxy_of_the_old_layout(socket, proxy, schema_failed, commands):
    found, noops = run_op(
        user_unit,
        {HostSnapshot: snap(units={"litellm.socket": socket, "litellm.service": proxy})},
        user="litellm",
        unit="litellm.socket",
        restart_when=[Result()],
        hold_when=[Result(failed=schema_failed)],
        takes_over="litellm.service",
    )
    assert found == commands
    assert bool(noops) == (not commands)
