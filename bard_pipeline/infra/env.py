"""Process environment defaults, applied before Prefect or Ray are imported (the `bard` CLI does it first).

Each value is a default only: a user's explicit setting wins.
"""

from __future__ import annotations

import os

DEFAULTS = {
    # Telemetry off: Prefect server and client, Ray usage stats, Hugging Face.
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # The ephemeral Prefect API runs SQLite migrations on first start: 20 s is too short on 2 cores.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Our loggers show up in the Prefect UI next to the task's own.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "bard_core,infra,tasks",
    # Ray Train patches print() in workers, which dumps datasets' bytecode inspection into the logs.
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_defaults() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
