"""This project's deploy: its LiteLLM hosts converged by the packaged deploy of litellm-runner.

pip install litellm-runner          # or, from a clone of the runner: pip install /path/to/clone
pyinfra inventory.py deploy.py --dry    # what would change
pyinfra inventory.py deploy.py          # converge
"""

from litellm_runner import deploy_litellm

# Other operations and deploys of this project may come before or after: the packaged deploy
# reads its settings from this project's inventory and group_data/, over its own defaults.
deploy_litellm()
