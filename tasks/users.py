"""The service account and its lingering systemd manager (users-01, users-02)."""

from pyinfra import host

from litellm_runner.pyinfra_ext.operations import linger, service_account


def apply():
    d = host.data
    service_account(
        name=f"Service account {d.litellm_user} | users-01",
        user=d.litellm_user,
        group=d.litellm_group,
        home=d.litellm_home,
        manage=d.litellm_manage_account,
    )
    linger(name=f"Linger for {d.litellm_user} | users-02", user=d.litellm_user, present=d.litellm_linger)
