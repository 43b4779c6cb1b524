"""The service user and its lingering systemd manager."""

from pyinfra import host
from pyinfra.operations import server

from litellm_runner.operations import linger


def apply():
    d = host.data
    server.group(name=f"Service group {d.litellm_group} | users-01", group=d.litellm_group)
    server.user(
        name=f"Service user {d.litellm_user} | users-01",
        user=d.litellm_user, group=d.litellm_group, home=d.litellm_home,
        shell="/bin/bash", create_home=True,
    )
    linger(name=f"Linger for {d.litellm_user} | users-02", user=d.litellm_user, present=d.litellm_linger)
