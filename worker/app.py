"""The Celery app. `celery -A worker.app worker|beat|flower` and `herald run` start it.

Importing this module starts nothing and reads no settings: it creates the app, wires
the signal receivers and registers the app for senders (`worker.taskapp.sending`).
Celery reads the configuration lazily, the first time something asks for it (a worker,
beat or Flower starting up, or this process sending its first task); that loads
`celeryconfig.py`, which validates the settings (a wrong one exits with status 2 and
one line per problem, before Celery prints a traceback) and, where no URL is set,
starts the embedded servers. Only task modules, `celeryconfig.py` and entry points
import this module; library code never does (an import-graph test checks it).
"""

from __future__ import annotations

from celery import Celery
from kombu import pools

from worker import runtime
from worker.taskapp import sending

#: Modules whose tasks every worker registers.
TASK_MODULES = (
    "tasks.maintenance",
    "tasks.posting",
    "tasks.deadletter",
    "tasks.tokens",
    "tasks.backup",
    "tasks.archival",
)

app = Celery("herald", include=list(TASK_MODULES))
app.config_from_object("celeryconfig")  # lazy: read on first use, see above
sending.register(app)

import worker.taskapp.signals  # noqa: E402, F401  (receivers register on import)


def _follow_settings() -> None:
    """Re-read settings into this process's app and drop its broker connections.

    Runs on every `runtime.reset()`: a process that changes settings while running
    (tests and benchmarks move to a fresh namespace) gets an app on the new broker
    keys. A worker never needs it.
    """
    # `configured`: a real attribute that celery-types does not declare.
    if not app.configured:  # type: ignore[attr-defined]
        return  # nothing read yet: the first use reads the current settings
    from worker.settings import get_settings
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


runtime.on_reset(_follow_settings)
