"""The account sweep (acct-01; issue #27, item 1): what the service account left running or scheduled
outside the managed services, as a fact and an operation.

The account could log in with its own key (``~/.ssh/authorized_keys``), schedule itself (its crontab,
``at`` jobs), run at every login (its shell start files), keep a process running outside the managed
units (``nohup``: it outlives every restart) and listen on a port no managed unit owns. The fact reads
all of it on the host, in root's own interpreter (``hostside.sweep``), every read of the account's
files bounded and by handle; the operation reports each foreign item as drift with its evidence, and
in ``quarantine`` mode stops the foreign processes after recording them, then moves the foreign files
into root's quarantine folder with a manifest (``hostside.sweep_apply``). Nothing is deleted: it is
evidence. docs/sweep.md describes the items, the evidence and the settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, operation

from litellm_runner.pyinfra_ext import drift
from litellm_runner.pyinfra_ext.facts import hostside

SWEEP_TIMEOUT = 120  # seconds for the sweep (it reads every process's /proc entries and hashes executables)
ACTIONS = {"quarantine": {"process": "stopped", "listener": "closed (its process stopped)"}, "report": {}}


class AccountSweep(FactBase):
    """USER's foreign items outside the managed UNITS, the declared ones (ALLOWED) left out.

    Returns ``{"items": [item], "checked": {"files": N, "processes": N, "listeners": N, "declared": N}}``;
    each item has ``kind`` (``authorized_keys``, ``crontab``, ``at_job``, ``shell_file``, ``process``,
    ``listener``), ``key`` (its identity for ``sweep_apply``: a path, ``pid:PID:START``,
    ``listen:PROTO:ENDPOINT``), ``path``, ``why`` and its evidence (a file: ``type, owner, mode, size,
    mtime, sha256``; a process: ``pid, ppid, cmdline, exe, exe_sha256, started, cgroup, unit, sockets``;
    a listener: ``proto, endpoint, uid, inode, pids``). Every value read from the host is escaped.
    """

    def command(self, user, units, allowed=()):
        return hostside("sweep", {"user": user, "units": list(units), "allowed": list(allowed)})

    def process(self, output):
        return json.loads("\n".join(output))


def sweep_mode(setting: str | None, account: Mapping[str, Any] | None, manage: bool | None) -> str:
    """The sweep's mode: SETTING (``litellm_account_sweep``) when set; else ``quarantine`` for an account
    the runner manages (MANAGE true, or MANAGE None and the runner created it or is about to: ACCOUNT is
    ``Snapshot.account``), ``off`` for an adopted login account."""
    if setting is not None:
        return setting
    if manage is not None:
        return "quarantine" if manage else "off"
    dedicated = account is None or account.get("user") is None or bool(account.get("created"))
    return "quarantine" if dedicated else "off"


def _evidence(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in ("key", "kind", "why", "path")}  # the path is "item"


@operation()
def account_sweep(user: str, units: list[str], mode: str = "quarantine", allowed: list[str] | None = None):
    """Ensure nothing of USER's runs or waits outside the managed UNITS: no sshd key, crontab, ``at`` job,
    shell start file (other than root's skel copy), process or listener that is not declared.

    + user: the service account
    + units: the managed user units (their processes and listeners are the account's own work)
    + mode: ``quarantine`` (stop the foreign processes, move the foreign files into root's quarantine
      with a manifest), ``report`` (drift only: every run lists them), ``off`` (not looked at)
    + allowed: declared items (``litellm_account_allowed``): ``PATH``, ``PATH sha256:HEX``, ``exe:PATH``,
      ``port:N``

    .. code:: python

        account_sweep(name="Nothing of litellm's outside the managed services | acct-01",
                      user="litellm", units=["litellm.service"], mode="quarantine")
    """
    if mode == "off":
        host.noop(f"the account sweep of {user} is off (litellm_account_sweep)")
        return
    found = host.get_fact(
        AccountSweep, user=user, units=list(units), allowed=list(allowed or []), _timeout=SWEEP_TIMEOUT
    )
    items, checked = found["items"], found["checked"]
    if not items:
        counts = ", ".join(f"{n} {what}" for what, n in checked.items()) or "no such account"
        host.noop(f"nothing of {user}'s outside the managed services (looked at {counts})")
        return
    for item in items:
        after = ACTIONS[mode].get(item["kind"], "quarantined") if mode == "quarantine" else "reported"
        drift.record(f"sweep {item['kind']}", {"item": item["path"], **_evidence(item)}, after)
    args = {"user": user, "units": list(units), "allowed": list(allowed or [])}
    if mode == "report":
        yield hostside("sweep", args)  # reads again, changes nothing: the items stay drift until declared
        return
    yield hostside("sweep_apply", {**args, "keys": [item["key"] for item in items]})
