"""This project's settings for all its hosts: only what differs from the packaged defaults.

Every setting, its default and its check: the runner's settings reference, docs/settings.md.
"""

litellm_num_workers = 1  # proxy worker processes of a small host (default 4)
litellm_settings = {"request_timeout": 60}  # seconds (default 120)
litellm_config_backups_keep = 3  # copies of a replaced config kept (default 5)
