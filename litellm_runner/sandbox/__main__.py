"""``python -m litellm_runner.sandbox``: see litellm_runner.sandbox."""

import sys

from litellm_runner.sandbox import main

sys.exit(main())
