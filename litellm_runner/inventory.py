"""Where the hosts come from: a hosts file for real fleets, the sandbox otherwise.

Real hosts: set ``LITELLM_INVENTORY`` to a YAML file of groups::

    litellm_hosts:                 # group name -> hosts
      - proxy-1.example.net        # a bare name: SSH with your ~/.ssh/config
      - name: proxy-2.example.net  # or a name with host data
        data:
          ssh_user: deploy
          _sudo: true
          litellm_num_workers: 2

A sudo password never lives in a hosts file or group_data (a literal ``_sudo_password``
there is refused, its value masked): for a host with ``_sudo: true`` it comes from the
operator's secret source like every other secret, under the name in the host's
``litellm_sudo_password_secret`` (default ``LITELLM_SUDO_PASSWORD``): the environment, then
the secrets file (``LITELLM_SECRETS_FILE`` or the host's ``litellm_secrets_file``). Without
it pyinfra runs ``sudo -n`` (a NOPASSWD rule).

The password never enters host data nor any command line: pyinfra would pass it as
``env PYINFRA_SUDO_PASSWORD=... sudo -A`` on every command, readable by every user of
the host in ``/proc/PID/cmdline``. Host data carries only a marker (so pyinfra runs
``sudo -A -k``), and the askpass helper pyinfra creates once per connection is ours:
created by ``mktemp`` (0600, the connecting user's), its content (the password) sent on
stdin, then made executable for that user only; pyinfra removes it when it disconnects.

With no ``LITELLM_INVENTORY``, the inventory is the sandbox hosts named in
``LITELLM_SANDBOXES`` (comma separated, default ``litellm-sandbox``), started
by ``make sandbox-up``; each is reached over SSH on 127.0.0.1 like production.
"""

from __future__ import annotations

import ast
import os
import pathlib
import shlex

import yaml

from litellm_runner import sandbox, secrets, validate
from litellm_runner.resources import project

SUDO_PASSWORD_SECRET = "LITELLM_SUDO_PASSWORD"  # noqa: S105 (the NAME of the secret in the secret source)
SECRET_ARGUMENTS = ("_sudo_password", "_su_password")  # pyinfra arguments that carry a password
ASKPASS_MARKER = "private-askpass"  # host data's _sudo_password: only makes pyinfra use sudo -A
# pyinfra's SSH connect retries, for fleets: a connection refused, reset or dropped (sshd's MaxStartups limit
# on unauthenticated connections, a restarting host) is tried 3 more times, each after a random 0.5-2 s pause
# (jitter: hosts that failed together do not retry together); then the host is unreachable and fails alone.
CONNECT_DEFAULTS = {"ssh_connect_retries": 3, "ssh_connect_retry_min_delay": 0.5, "ssh_connect_retry_max_delay": 2.0}
PRIVATE_ASKPASS = (
    'umask 077 && f=$(mktemp /tmp/litellm-runner-askpass.XXXXXXXXXX) && cat > "$f" && chmod 0700 "$f" && echo "$f"'
)


class InventoryError(ValueError):
    pass


def load_hosts_file(path: str) -> dict[str, list]:
    """Groups from a hosts YAML file, as pyinfra inventory groups."""
    try:
        doc = yaml.safe_load(pathlib.Path(path).read_text())
    except FileNotFoundError:
        raise InventoryError(f"{path}: LITELLM_INVENTORY names a file that does not exist") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not doc:
        raise InventoryError(f"{path}: expected a mapping of group name -> list of hosts")
    groups = {}
    for group, hosts in doc.items():
        if not str(group).isidentifier() or not isinstance(hosts, list):
            raise InventoryError(f"{path}: group {group!r}: expected an identifier mapped to a list of hosts")
        entries: list[str | tuple[str, dict]] = []
        for index, entry in enumerate(hosts):
            if isinstance(entry, str):
                entries.append(entry)
            elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
                data = entry.get("data") or {}
                if not isinstance(data, dict):
                    raise InventoryError(f"{path}: {group}[{index}].data: expected a mapping")
                refuse_literal_passwords(data, f"{path}: {group}[{index}].data")
                entries.append((entry["name"], with_sudo_password(entry["name"], data, f"{path}: {group}[{index}]")))
            else:
                raise InventoryError(f"{path}: {group}[{index}]: expected a host name or {{name: ..., data: {{...}}}}")
        groups[group] = entries
    return groups


def refuse_literal_passwords(data: dict, where: str) -> None:
    """No sudo/su password written in host data: it belongs in the secret source (value never shown)."""
    for key in SECRET_ARGUMENTS:
        if key in data:
            raise InventoryError(
                f"{where}.{key} = ***: a password is never written in a hosts file or group_data; "
                "put it in the operator's secret source as "
                f"{data.get('litellm_sudo_password_secret') or SUDO_PASSWORD_SECRET} "
                "(environment or LITELLM_SECRETS_FILE; litellm_sudo_password_secret names another variable)"
            )


def refuse_group_data_passwords(folder: pathlib.Path | None = None) -> None:
    """No group_data/*.py assigns a sudo/su password (read as Python syntax, never executed)."""
    folder = folder or project("group_data")
    for path in sorted(folder.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(), str(path))
        except SyntaxError:
            continue  # pyinfra reports it when it loads the file
        for node in tree.body:
            targets: list[object] = [*node.targets] if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                if isinstance(target, ast.Name) and target.id == "litellm_sudo_password_secret":
                    raise InventoryError(
                        f"{path}:{node.lineno}: litellm_sudo_password_secret is read before group_data "
                        "is loaded: set it per host in the hosts file"
                    )
                if isinstance(target, ast.Name) and target.id in SECRET_ARGUMENTS:
                    raise InventoryError(
                        f"{path}:{node.lineno}: {target.id} = ***: a password is never written in group_data; "
                        f"put it in the operator's secret source as {SUDO_PASSWORD_SECRET} "
                        "(environment or LITELLM_SECRETS_FILE)"
                    )


def with_sudo_password(host: str, data: dict, where: str) -> dict:
    """DATA, with a sudo password from the secret source when ``_sudo`` is set and the secret exists.

    The value is kept for HOST's private askpass helper in the Run of the pyinfra State that loads the
    inventory (``keep_sudo_password``); host data gets only ASKPASS_MARKER.
    """
    if not data.get("_sudo"):
        return data
    name = data.get("litellm_sudo_password_secret") or SUDO_PASSWORD_SECRET
    value: str | None
    source: str | None
    if name in os.environ:
        value, source = os.environ[name], "the environment"
    else:
        path = os.environ.get("LITELLM_SECRETS_FILE") or data.get("litellm_secrets_file")
        try:
            value, source = (secrets.read_secrets_file(path) if path else {}).get(name), path
        except secrets.SecretError as exc:
            raise InventoryError(f"{where}: sudo password {name}: {exc}") from None
        if value is None:
            return data  # no password: pyinfra runs sudo -n (a NOPASSWD rule)
    if not value or any(c in value for c in "\n\r\0"):
        raise InventoryError(f"{where}: sudo password {name} from {source}: empty or not one line (value not shown)")
    keep_sudo_password(host, value)
    _install_private_askpass()
    return {**data, "_sudo_password": ASKPASS_MARKER}


def keep_sudo_password(host: str, value: str) -> None:
    """Keep VALUE for HOST's private askpass helper, in the Run of the pyinfra State loading this inventory
    (pyinfra's CLI makes its State before it loads the inventory). Without one the inventory is only being
    checked (``litellm-runner validate``, the drift check before its dry run): nothing connects, nothing is kept."""
    from litellm_runner.run import compat
    from litellm_runner.run import state as run_state

    state = compat.current_state()
    if state is not None:
        run_state.of(state).sudo_passwords[host] = value


def _install_private_askpass() -> None:
    """Make pyinfra's askpass helper, for hosts with a password here, a private script holding it."""
    from pyinfra.api import StringCommand
    from pyinfra.api.exceptions import PyinfraError

    from litellm_runner.run import compat
    from litellm_runner.run import state as run_state

    def make(host) -> str | None:
        password = run_state.of(host.state).sudo_passwords.get(host.name)
        if password is None:
            return None  # pyinfra's own helper
        script = f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(password)}\n"
        ok, output = host.run_shell_command(StringCommand(PRIVATE_ASKPASS), _stdin=script, _timeout=60)
        if not ok or not output.stdout_lines:
            raise PyinfraError("could not create the private sudo askpass helper")
        return output.stdout_lines[0]

    compat.own_sudo_askpass(make)


def sandbox_groups(names: list[str]) -> dict[str, list]:
    hosts = []
    for name in names:
        try:
            data = sandbox.host_data(name)
        except FileNotFoundError:
            raise InventoryError(
                f"sandbox {name} is not running: start it with `make sandbox-up` "
                "or set LITELLM_INVENTORY to a hosts file"
            ) from None
        data.pop("name", None)
        hosts.append((name, with_sudo_password(name, data, f"sandbox {name}")))
    return {"litellm_hosts": hosts, "sandbox": hosts}


def groups() -> dict[str, list | tuple]:
    """The inventory's groups; in a pyinfra run, the desired state is validated before it connects
    (litellm_runner.validate.before_connect)."""
    validate.before_connect()
    refuse_group_data_passwords()
    path = os.environ.get("LITELLM_INVENTORY")
    if path:
        return with_connect_defaults(load_hosts_file(path))
    names = [n for n in os.environ.get("LITELLM_SANDBOXES", sandbox.DEFAULT_NAME).split(",") if n]
    return with_connect_defaults(sandbox_groups(names))


def with_connect_defaults(groups: dict[str, list]) -> dict[str, list | tuple]:
    """GROUPS plus pyinfra's group ``all`` carrying CONNECT_DEFAULTS (group_data/all.py, a group or a host overrides).

    Left alone when the hosts file defines its own ``all``.
    """
    if "all" in groups:
        return dict(groups)
    names = list(dict.fromkeys(h[0] if isinstance(h, tuple) else h for hosts in groups.values() for h in hosts))
    return {**groups, "all": (names, dict(CONNECT_DEFAULTS))}
