"""pyinfra inventory: real hosts from $LITELLM_INVENTORY, else the sandbox.

See litellm_runner/inventory.py for the hosts file format.
"""

from litellm_runner.inventory import groups as _groups

globals().update(_groups())
