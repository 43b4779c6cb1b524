"""pyinfra inventory: real hosts from $LITELLM_INVENTORY, else the sandbox.

See litellm_runner/inventory.py for the hosts file format. A malformed hosts
file (or a password written in one) stops the run with one line, exit 1.
"""

import sys

from litellm_runner.inventory import InventoryError
from litellm_runner.inventory import groups as _groups

try:
    globals().update(_groups())
except InventoryError as _exc:
    print(f"inventory: {_exc}", file=sys.stderr, flush=True)
    raise SystemExit(1) from None
