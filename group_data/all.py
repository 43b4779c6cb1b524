"""This repository's settings for all its hosts: only what differs from the documented defaults.

Every setting, its default, its check and its description is in the settings spec
(litellm_runner/settings.py; the settings reference, docs/settings.md, is built from it). The deploy
takes each default from there (pyinfra's ``data_defaults`` of litellm_runner.deploy), so a setting
not named here, in a group's file (group_data/<group>.py) or in a host's data keeps its default.
Secrets never live here: only the *names* of the secrets (litellm_env_secrets), whose values come
from the operator's secret source on the control machine (see docs/real-hosts.md, Secrets).

A setting keeps one name everywhere: the LiteLLM settings use LiteLLM's own key names, which are
also the keys in config.generated.yaml, in the LiteLLM_Config rows and in the drift report.
"""
