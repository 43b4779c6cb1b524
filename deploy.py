"""Converge a LiteLLM host to the desired state in group_data/.

    pyinfra inventory.py deploy.py          # converge
    pyinfra inventory.py deploy.py --dry    # show drift, change nothing

The deploy itself is packaged (litellm_runner/deploy.py), so another pyinfra project can
run it against its own inventory (see examples/); this file only calls it.
"""

from litellm_runner import deploy_litellm

deploy_litellm()
