"""The proxy's rendered config, its env file and the tools in bin/ (cfg-01, sec-01).

Returns the operations whose change must restart the proxy, and the config to roll back to.
"""

import yaml
from pyinfra import host
from pyinfra.api.exceptions import DeployError

from litellm_runner.pyinfra_ext import snapshot
from litellm_runner.pyinfra_ext.operations import file, file_attrs
from litellm_runner.render import render_compliance, render_config
from litellm_runner.secrets import env_file


def parsed(path: str, text: str) -> str:
    """TEXT when it is valid YAML; checked here, on the control machine, so no code of the
    account's venv runs as root to validate it (the same bytes are uploaded)."""
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeployError(f"host {host.name}: the rendered {path} is not valid YAML: {exc}") from None
    return text


def apply():
    d = host.data
    user, group = d.litellm_user, d.litellm_group
    env_path = f"{d.litellm_root}/env.litellm"
    env = env_file(name=f"Env file {env_path} content | sec-01", dest=env_path, user=user, group=group)
    file_attrs(
        name=f"Env file {env_path} 0600 {user}:{group} | sec-01", path=env_path, user=user, group=group, mode="0600"
    )
    config_path = f"{d.litellm_root}/state/config.generated.yaml"
    config = file(
        f"Rendered config {config_path} | cfg-01",
        dest=config_path,
        content=parsed(config_path, render_config(d)),
        user=user,
        group=group,
        mode="0640",
        backups_keep=d.litellm_config_backups_keep,
    )
    file(
        f"Compliance desired state {d.litellm_root}/state/compliance-desired.json | cmp-01",
        dest=f"{d.litellm_root}/state/compliance-desired.json",
        content=render_compliance(d),
        user=user,
        group=group,
        mode="0640",
    )
    tools = []
    for tool in snapshot.tools():
        tools.append(
            file(
                f"Tool {d.litellm_root}/bin/{tool.name} | cfg-02",
                dest=f"{d.litellm_root}/bin/{tool.name}",
                content=tool.read_text(),
                user=user,
                group=group,
                mode="0750",
            )
        )
    # what a proxy that fails readiness gets back (its newest backup), see tasks/units.py
    rollback = {"path": config_path, "user": user, "group": group, "mode": "0640", "when": config}
    return {"env": env, "config": config, "tools": tools, "rollback": rollback}
