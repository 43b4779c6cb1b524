"""What the service account left outside the managed services: sshd keys, crontab, at jobs, shell start
files, processes and listeners, reported with evidence, quarantined or stopped (acct-01, docs/sweep.md).

Runs last: the managed units run (their processes and listeners are the account's own work), and
nothing else of the deploy runs as the account while the sweep looks.
"""

from pyinfra import host

from litellm_runner.pyinfra_ext import snapshot
from litellm_runner.pyinfra_ext.sweep import account_sweep, sweep_mode


def apply():
    d = host.data
    account = snapshot.current().for_user(d.litellm_user).account
    account_sweep(
        name=f"Nothing of {d.litellm_user}'s outside the managed services | acct-01",
        user=d.litellm_user,
        units=snapshot.managed_units(d),
        mode=sweep_mode(d.litellm_account_sweep, account, d.litellm_manage_account),
        allowed=list(d.litellm_account_allowed),
    )
