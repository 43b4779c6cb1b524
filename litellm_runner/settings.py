"""The runner's settings: one spec of every group_data key.

``DEFAULTS`` holds the documented default of every setting (the values of the repository's
``group_data/all.py``): the packaged deploy passes it as pyinfra's ``data_defaults``, so an
inventory's own group data and host data take precedence.
"""

from __future__ import annotations

DEFAULTS: dict = {
    "litellm_user": "litellm",
    "litellm_group": "litellm",
    "litellm_home": "/home/litellm",
    "litellm_linger": True,
    "litellm_manage_account": None,
    "litellm_root": "/home/litellm/litellm",
    "litellm_dirs": [
        "state",
        "state/files",
        "state/redis",
        "state/archive",
        "state/archive/backups",
        "artifacts",
        "bin",
        "logs",
    ],
    "litellm_dir_mode": "0750",
    "litellm_python": "/usr/bin/python3",
    "litellm_system_packages": ["python3-venv", "postgresql-client-15", "iproute2", "curl"],
    "litellm_venv_requirements": "files/litellm-venv-requirements.txt",
    "general_settings": {
        "database_connection_pool_limit": 20,
        "store_prompts_in_spend_logs": False,
        "disable_error_logs": False,
        "store_model_in_db": True,
    },
    "litellm_settings": {"request_timeout": 120},
    "litellm_model_list": [
        {
            "model_name": "local-vllm",
            "litellm_params": {
                "model": "hosted_vllm/local-model",
                "api_base": "http://127.0.0.1:8000/v1",
                "api_key": "os.environ/VLLM_API_KEY",
            },
        }
    ],
    "litellm_config_backups_keep": 5,
    "litellm_mcp_servers": {},
    "litellm_env_secrets": ["LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "DATABASE_URL", "VLLM_API_KEY"],
    "litellm_env_placeholders": ["dummy", "changeme", "sk-1234", "placeholder", "xxx"],
    "litellm_env": {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    "litellm_bind": "127.0.0.1",
    "litellm_port": 4000,
    "litellm_num_workers": 4,
    "litellm_restart_batch_size": 1,
    "litellm_ready_timeout": 300,
    "litellm_services": {
        "litellm": {"enabled": True, "port": 4000},
        "litellm-health-server": {"enabled": True, "port": 8181},
        "litellm-metrics": {"enabled": True, "port": 9090},
        "litellm-rerank": {
            "enabled": True,
            "port": 8079,
            "command": "{python} {root}/bin/litellm-stub-server --name rerank --host {bind} --port {port}",
        },
        "litellm-embed-arctic": {
            "enabled": True,
            "port": 8082,
            "command": "{python} {root}/bin/litellm-stub-server --name embed-arctic --host {bind} --port {port}",
        },
    },
    "litellm_timers": {
        "litellm-backup": {
            "enabled": True,
            "on_calendar": "*-*-* 02:00:00",
            "randomized_delay": "15min",
            "command": "{python} {root}/bin/litellm-backup --keep-daily 7 --keep-weekly 4 --keep-monthly 3",
        },
        "litellm-compliance-check": {
            "enabled": True,
            "on_calendar": "hourly",
            "randomized_delay": "5min",
            "command": "{python} {root}/bin/litellm-compliance-check",
        },
        "litellm-knowledge-refresh": {
            "enabled": False,
            "on_calendar": "*-*-* 04:30:00",
            "randomized_delay": "10min",
            "command": "/bin/sh -c 'echo no site job: set "
            "litellm_timers.litellm-knowledge-refresh.command "
            ">&2; exit 1'",
        },
        "litellm-model-inventory": {
            "enabled": True,
            "on_calendar": "*-*-* 05:00:00",
            "randomized_delay": "10min",
            "command": "{python} {root}/bin/litellm-model-inventory --proxy-url http://{bind}:{port}",
        },
        "litellm-probe-capabilities": {
            "enabled": True,
            "on_calendar": "*-*-* 05:30:00",
            "randomized_delay": "10min",
            "command": "{python} {root}/bin/litellm-probe-capabilities --proxy-url http://{bind}:{port} --timeout 30",
        },
    },
    "litellm_db_host": "127.0.0.1",
    "litellm_db_port": 5434,
    "litellm_db_name": "litellm",
    "litellm_db_user": "litellm",
    "litellm_db_connect_timeout": 5,
    "litellm_db_block_expired_keys": True,
    "litellm_db_terminate_idle": False,
    "litellm_db_idle_minutes": 5,
    "litellm_key_rotation": [],
    "litellm_db_other_clients": 5,
    "litellm_db_reserve_connections": 10,
    "litellm_unit_exposure_max": 6.6,
    "litellm_lock_wait": 30,
    "litellm_lock_stale_after": 300,
    "litellm_sandbox": False,
}
