"""The Celery app. `celery -A worker.app worker|beat|flower` and `herald run` start it.

A wrong setting stops the process here with status 2 and one line per problem,
before Celery prints a traceback.
"""

from __future__ import annotations

import sys

from celery import Celery
from kombu import pools

from worker.settings import SettingsError, get_settings

#: Modules whose tasks every worker registers.
TASK_MODULES = (
    "tasks.maintenance",
    "tasks.posting",
    "tasks.deadletter",
    "tasks.tokens",
    "tasks.backup",
    "tasks.archival",
)


def _settings_or_exit() -> None:
    try:
        get_settings()
    except SettingsError as exc:
        print("herald: configuration error", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


_settings_or_exit()
app = Celery("herald", include=list(TASK_MODULES))
app.config_from_object("celeryconfig")

import worker.taskapp.signals  # noqa: E402, F401  (receivers register on import)


def reload_config() -> None:
    """Re-read settings into this process's app and drop its broker connections.

    For a process that changes settings while running (tests and benchmarks move to a
    fresh namespace); a worker never needs it.
    """
    from worker.taskapp.config import celery_config

    app.conf.update(celery_config(get_settings()))
    # Private attributes: Celery builds its pools lazily and offers no public reset.
    pool = app._pool  # type: ignore[attr-defined]
    if pool is not None:
        pool.force_close_all()
        app._pool = None  # type: ignore[attr-defined]
    # Apps share kombu's connection pools by broker URL: drop the closed one with ours.
    pools.reset()
    app.amqp._producer_pool = None  # type: ignore[attr-defined]  # rebuilt on next use
