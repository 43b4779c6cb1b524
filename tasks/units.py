"""User systemd units and timers of the service user (svc-01, tmr-01).

Unit files first, then every other file systemd would read for a managed unit
(drop-ins, overriding or masking unit files: an operator's hand edits) removed,
one daemon-reload if anything changed or a unit changed on disk unreloaded, then
each unit enabled and running (or stopped and disabled), restarted once when an
input changed or it ran from something else than its managed file.
"""

from pyinfra import host

from litellm_runner.gates import units as unit_gate
from litellm_runner.pyinfra_ext import snapshot
from litellm_runner.pyinfra_ext.facts import SystemdVersion
from litellm_runner.pyinfra_ext.operations import directory, file, user_daemon_reload, user_unit, user_unit_sources
from litellm_runner.render import render_units, wanted_units


def apply(restart_inputs: dict[str, list], rollback: dict | None = None):
    """RESTART_INPUTS: unit name -> OperationMeta of its inputs (config, env, venv...).

    ROLLBACK: the proxy's config file (``user_unit``'s ``rollback``), restored
    when the restarted proxy fails readiness.
    """
    d = host.data
    unit_dir = f"{d.litellm_home}/.config/systemd/user"
    for rel in (".config", ".config/systemd", ".config/systemd/user"):
        directory(
            name=f"Directory {d.litellm_home}/{rel} | svc-01",
            path=f"{d.litellm_home}/{rel}",
            user=d.litellm_user,
            group=d.litellm_group,
            mode="0750",
        )
    # the exposure threshold as this host's own systemd scores the units (gates/units.py), before any unit is written
    systemd = snapshot.fact(SystemdVersion)
    unit_gate.refuse_on_host(host, render_units(d), d.litellm_unit_exposure_max, systemd)
    files = {}
    for unit, text in render_units(d).items():
        files[unit] = file(
            f"Unit file {unit} | svc-01",
            dest=f"{unit_dir}/{unit}",
            content=text,
            user=d.litellm_user,
            group=d.litellm_group,
            mode="0640",
        )
    sources = [
        user_unit_sources(
            name=f"Unit {unit} only from its managed file | {'tmr-01' if unit.endswith('.timer') else 'svc-01'}",
            user=d.litellm_user,
            unit=unit,
            path=f"{unit_dir}/{unit}",
        )
        for unit in files
    ]
    user_daemon_reload(
        name=f"Reload the user manager of {d.litellm_user} | svc-01",
        user=d.litellm_user,
        when=[*files.values(), *sources],
        units=list(files),
    )
    for unit, wanted in wanted_units(d).items():
        kind = "tmr-01" if unit.endswith(".timer") else "svc-01"
        inputs = [files[unit], *restart_inputs.get(unit, restart_inputs.get("*", []))]
        gate = {}
        if unit == "litellm.service":  # rolling restart, gated on readiness, rollback of the config
            gate = dict(
                ready_url=f"http://{d.litellm_bind}:{d.litellm_port}/health/readiness",
                ready_timeout=d.litellm_ready_timeout,
                rollback=rollback,
                _parallel=d.litellm_restart_batch_size,
            )
        user_unit(
            name=f"Unit {unit} {'enabled and running' if wanted else 'stopped and disabled'} | {kind}",
            user=d.litellm_user,
            unit=unit,
            enabled=wanted,
            running=wanted,
            restart_when=inputs if unit.endswith(".service") else [files[unit]],
            path=f"{unit_dir}/{unit}",
            **gate,
        )
