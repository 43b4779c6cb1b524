"""User systemd units and timers of the service user (svc-01, svc-02, tmr-01, fs-03).

Unit files first, root's in /etc/systemd/user (``layout.UNITS``; the account's lingering user
manager loads them from there), then every other file systemd would read for a managed unit in
root's folders quarantined (svc-01), then everything of the account's own that would change a
managed unit or its environment quarantined with evidence (svc-02, ``no_account_plants``), one
daemon-reload if anything changed or a unit changed on disk unreloaded, then each unit enabled and
running (or stopped and disabled), restarted once when an input changed or it ran from something
else than its managed file. The proxy's socket (``litellm.socket``) comes right before the proxy: on a
host of the old layout, whose proxy binds the port itself, its first start stops that proxy first.
Last, once the units run root's code, the account's copies of it from the old layout are quarantined
(fs-03).
"""

import json

from pyinfra import host
from pyinfra.api.exceptions import DeployError

from litellm_runner import layout
from litellm_runner.gates import GateError, cache
from litellm_runner.gates import units as unit_gate
from litellm_runner.pyinfra_ext import snapshot
from litellm_runner.pyinfra_ext.facts import HostExposure
from litellm_runner.pyinfra_ext.operations import (
    file,
    no_account_plants,
    no_legacy_copies,
    user_daemon_reload,
    user_unit,
    user_unit_sources,
)
from litellm_runner.render import render_units, wanted_units


def exposure_lines(host, units: dict[str, str], systemd: str | None = None) -> list[str]:
    """HOST's ``HostExposure`` of UNITS, from the gate cache when this SYSTEMD scored these units before.

    SYSTEMD is the host snapshot's ``systemctl --version`` line (from PID 1's Version); without it nothing is cached.
    """
    key = cache.key("host-units", json.dumps(units, sort_keys=True), systemd) if systemd else None
    timeout = HostExposure.TIMEOUT + 60
    return cache.cached(key, lambda: list(host.get_fact(HostExposure, units=units, _timeout=timeout) or [])) or []


def check_exposure(host, units: dict[str, str], threshold: float, systemd: str | None = None) -> dict[str, float]:
    """The unit hardening gate for pyinfra's HOST, called while it prepares: its scores, or DeployError
    (pyinfra exits 1) before any operation runs on any host.

    The scores are the ``HostExposure`` fact (one remote command), kept in the gate cache by the
    rendered UNITS and the host's SYSTEMD version (``exposure_lines``): a host whose units and
    systemd were scored before costs no command. The refusal names the host, its systemd, each
    service above THRESHOLD and the setting to change.
    """
    try:
        return unit_gate.check_host(host.name, exposure_lines(host, units, systemd), units, threshold)
    except GateError as exc:
        raise DeployError(
            f"refusing to touch any host: litellm_unit_exposure_max = {threshold!r}: "
            f"{exc.message.replace(chr(10), chr(10) + '    ')}\n    expected every rendered service "
            f"(litellm_services, litellm_timers) at or below {threshold} as this host's systemd scores it"
        ) from None


def apply(restart_inputs: dict[str, list], rollback: dict | None = None, hold: list | None = None):
    """RESTART_INPUTS: unit name -> OperationMeta of its inputs (config, env, venv...).

    HOLD: OperationMeta whose failure holds the proxy's restart (the database schema): the old
    proxy keeps serving, and the restart stays owed (``layout.RESTART_HELD``, root's) until a run
    converges them.

    ROLLBACK: the proxy's config file (``user_unit``'s ``rollback``), restored
    when the restarted proxy fails readiness.
    """
    d = host.data
    # the exposure threshold as this host's own systemd scores the units (gates/units.py), before any unit is written
    check_exposure(host, render_units(d), d.litellm_unit_exposure_max, snapshot.current().systemd)
    files, paths, texts = {}, {}, render_units(d)
    for path, unit in snapshot.managed(d).units.items():
        paths[unit] = path
        files[unit] = file(
            f"Unit file {unit} | svc-01",
            dest=path,
            content=texts[unit],
            user="root",
            group="root",
            mode=layout.UNIT_MODE,
        )
    sources = [
        user_unit_sources(
            name=f"Unit {unit} only from its managed file | {'tmr-01' if unit.endswith('.timer') else 'svc-01'}",
            user=d.litellm_user,
            unit=unit,
            path=paths[unit],
            home=d.litellm_home,
        )
        for unit in files
    ]
    plants = no_account_plants(
        name=f"Nothing of {d.litellm_user}'s own changes a managed unit or its environment | svc-02",
        user=d.litellm_user,
        units=snapshot.managed_units(d),
    )
    user_daemon_reload(
        name=f"Reload the user manager of {d.litellm_user} | svc-01",
        user=d.litellm_user,
        when=[*files.values(), *sources, plants],
        units=list(files),
    )
    for unit, wanted in wanted_units(d).items():
        kind = "tmr-01" if unit.endswith(".timer") else "svc-01"
        inputs = [files[unit], plants, *restart_inputs.get(unit, restart_inputs.get("*", []))]
        gate = {}
        if unit == "litellm.service":  # rolling restart, gated on readiness, rollback of the config
            gate = dict(
                ready_url=f"http://{d.litellm_bind}:{d.litellm_port}/health/readiness",
                ready_timeout=d.litellm_ready_timeout,
                rollback=rollback,
                held={
                    "path": layout.RESTART_HELD,
                    "account": "",  # root's own state: the account can neither owe nor cancel a restart
                },
                _parallel=d.litellm_restart_batch_size,
            )
        user_unit(
            name=f"Unit {unit} {'enabled and running' if wanted else 'stopped and disabled'} | {kind}",
            user=d.litellm_user,
            unit=unit,
            enabled=wanted,
            running=wanted,
            restart_when=inputs if unit.endswith(".service") else [files[unit]],
            path=paths[unit],
            enable_when=[plants],
            # the proxy of the old layout binds the port itself: stopped before its socket takes the port
            takes_over="litellm.service" if unit == "litellm.socket" else "",
            # a failed schema holds the proxy's restart, and the socket's takeover of the old proxy's port
            hold_when=(hold or []) if unit in ("litellm.service", "litellm.socket") else [],
            **gate,
        )
    no_legacy_copies(
        name=f"No copy of root's code or config in {d.litellm_root} | fs-03",
        user=d.litellm_user,
        paths=snapshot.managed(d).legacy,
    )
