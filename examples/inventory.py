"""This project's hosts: pyinfra groups, each a list of hosts with their host data.

The host data here takes precedence over group_data/, which takes precedence over the
packaged deploy's defaults. To try the example on a sandbox host of the runner's repository
(``make sandbox-up`` in the clone), name the sandbox's host data file::

    LITELLM_EXAMPLE_SANDBOX=/path/to/clone/.sandbox/litellm-sandbox/host.json pyinfra inventory.py deploy.py
"""

import json
import os
import pathlib

from litellm_runner.validate import before_connect

before_connect()  # every host's desired state is checked before pyinfra connects (the runner's docs/validate.md)

_sandbox = os.environ.get("LITELLM_EXAMPLE_SANDBOX")
if _sandbox:
    _data = json.loads(pathlib.Path(_sandbox).read_text())
    litellm_hosts = [(_data.pop("name"), _data)]
else:
    litellm_hosts = [
        # sudo without a password (a NOPASSWD rule); the runner's docs/real-hosts.md shows a sudo password
        # taken from the secret source instead, and where the secrets come from
        ("proxy-1.example.net", {"ssh_user": "deploy", "_sudo": True}),
    ]
