"""The pyinfra deploy ``litellm-runner rotate`` runs (docs/rotation.md): one phase per run, from its input.

    apply: rotate the database of each host (litellm-rotate apply, one transaction)
    prove: after the converge that rendered the new env file and restarted the proxy, prove the result

Not a deploy to run by hand: its values come from the pipe ``litellm-runner rotate`` opens
(``pyinfra_ext.rotation.given``); without one it refuses.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError

from litellm_runner.pyinfra_ext import rotation
from litellm_runner.pyinfra_ext.facts import as_account
from litellm_runner.settings import DEFAULTS


@deploy("Key rotation", data_defaults=DEFAULTS)  # a setting the project's data leaves out has its default
def rotate() -> None:
    """The phase ``litellm-runner rotate`` gives on its pipe, on the current host."""
    d = host.data
    account = as_account(d.litellm_user, d.litellm_group, d.litellm_home)
    phase = rotation.given().get("phase")
    if phase == "apply":
        rotation.rotate_database(
            name="Rotate the salt key's ciphertexts, virtual keys and database password in one transaction",
            selection=rotation.given()["keys"],
            keys_dir=rotation.given()["keys_dir"],
            account=account,
            connect_timeout=d.litellm_db_connect_timeout,
        )
    elif phase == "prove":
        rotation.prove_rotation(
            name="Prove the rotation through the proxy: new master key 200, old 401",
            url=f"http://{d.litellm_bind}:{d.litellm_port}",
            account=account,
        )
    else:
        raise DeployError("rotate_deploy.py is run by `litellm-runner rotate`, which gives it its input")


rotate()
