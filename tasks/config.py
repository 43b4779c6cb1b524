"""The proxy's rendered config, its env file and the host tools (cfg-01, sec-01): root's files (``layout``).

Config and env file are root:GROUP 0640 in /etc/litellm (the account's group reads them, only root
writes them); the tools are root:root 0755 in /usr/local/lib/litellm-runner/bin, the modules they import
compiled by root into its ``__pycache__`` (the account's interpreter cannot write one there).

Returns the operations whose change must restart the proxy, and the config to roll back to.
"""

import yaml
from pyinfra import host
from pyinfra.api.exceptions import DeployError

from litellm_runner import layout
from litellm_runner.pyinfra_ext.env_file import env_file
from litellm_runner.pyinfra_ext.operations import file, file_attrs, tools_bytecode
from litellm_runner.pyinfra_ext.snapshot import managed, tool_modules
from litellm_runner.render import render_compliance, render_config
from litellm_runner.resources import host_tools


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
    user, group, mode = "root", d.litellm_group, layout.CONFIG_FILE_MODE
    env_path = layout.ENV_FILE
    env = env_file(name=f"Env file {env_path} content | sec-01", dest=env_path, user=user, group=group, mode=mode)
    file_attrs(
        name=f"Env file {env_path} {mode} {user}:{group} | sec-01", path=env_path, user=user, group=group, mode=mode
    )
    config_path = layout.CONFIG_FILE
    config = file(
        f"Rendered config {config_path} | cfg-01",
        dest=config_path,
        content=parsed(config_path, render_config(d)),
        user=user,
        group=group,
        mode=mode,
        backups_keep=d.litellm_config_backups_keep,
    )
    file(
        f"Compliance desired state {layout.COMPLIANCE} | cmp-01",
        dest=layout.COMPLIANCE,
        content=render_compliance(d),
        user=user,
        group=group,
        mode=mode,
    )
    tools = {}
    sources = host_tools()
    for path, name in managed(d).tools.items():
        tools[name] = file(
            f"Tool {path} | cfg-02",
            dest=path,
            content=sources[name].read_text(),
            user="root",
            group="root",
            mode=layout.CODE_MODE,
        )
    # the modules the tools import, compiled by root once (the account cannot write root's bin/__pycache__)
    tools_bytecode(
        name=f"Tools' compiled modules {layout.BIN}/__pycache__ | cfg-02",
        folder=layout.BIN,
        modules={name: sources[name].read_text() for name in tool_modules()},
    )
    # what a proxy that fails readiness gets back (its newest backup), see tasks/units.py
    rollback = {"path": config_path, "user": user, "group": group, "mode": mode, "when": config}
    # serve: the proxy's launcher (litellm-serve), an input of the proxy's restart
    return {
        "env": env,
        "config": config,
        "tools": list(tools.values()),
        "serve": tools["litellm-serve"],
        "rollback": rollback,
    }
