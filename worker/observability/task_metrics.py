"""Celery signal receivers that record metrics, one concern each.

`worker.taskapp.signals` imports this module; importing registers the receivers. Order of a
worker's life: ``celeryd_init`` (main process, before tasks are imported and the pool
forks: multiprocess mode on), ``worker_init`` (serve /metrics), per child
``worker_process_init`` (count its DB pool) and ``worker_process_shutdown`` (drop its
live gauges), per task ``task_prerun``/``task_postrun`` (duration, outcome by Celery's
final state: success, failure, retry, rejected, ignored), ``task_rejected`` /
``task_unknown`` in the main process (messages that never became a task run).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Task, signals
from sqlalchemy import event
from sqlalchemy.pool import Pool

from worker.observability import metrics_server
from worker.observability.metrics import (
    DB_POOL_CAPACITY,
    DB_POOL_CHECKED_OUT,
    TASK_DURATION,
    TASKS,
)
from worker.settings import get_settings

#: Label for a task name that is not one of ours: a sender controls the name, and
#: every distinct label value is a new series kept forever.
UNKNOWN_TASK = "unknown"

#: perf_counter at task_prerun, by task id (a child runs one task at a time; the dict
#: only bridges prerun and postrun of the same task).
_started: dict[str, float] = {}

_pool_role = {"role": ""}


@signals.celeryd_init.connect
def _multiprocess_mode(**_: Any) -> None:
    if get_settings().metrics_port:
        metrics_server.use_multiprocess_dir(get_settings())


@signals.worker_init.connect
def _serve_worker_metrics(**_: Any) -> None:
    port = get_settings().metrics_port
    if port and os.environ.get(metrics_server.MULTIPROC_ENV):
        metrics_server.serve_metrics(port, metrics_server.multiprocess_registry())


@signals.beat_init.connect
def _serve_beat_metrics(**_: Any) -> None:
    # Beat is one process: its own registry. The cluster-wide gauges are served by the
    # health server only (beat may run twice; one collector means one set of series).
    metrics_server.serve_metrics(get_settings().metrics_port)


@signals.worker_process_init.connect
def _count_child_pool(**_: Any) -> None:
    instrument_db_pool("worker")


@signals.worker_process_shutdown.connect
def _forget_child(pid: int | None = None, **_: Any) -> None:
    metrics_server.process_exited(pid or os.getpid())


@signals.worker_shutdown.connect
def _remove_metrics_dir(**_: Any) -> None:
    metrics_server.remove_multiprocess_dir()


@signals.task_prerun.connect
def _task_started(task_id: str, **_: Any) -> None:
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task_id: str, task: Task[Any, Any], state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        TASK_DURATION.labels(task.name).observe(time.perf_counter() - started)
    TASKS.labels(task.name, (state or "unknown").lower()).inc()


@signals.task_rejected.connect
def _message_rejected(sender: Any = None, message: Any = None, **_: Any) -> None:
    # The sender is the worker's consumer: its app knows the registered task names.
    headers = getattr(message, "headers", None) or {}
    TASKS.labels(_known(getattr(sender, "app", None), headers.get("task")), "rejected").inc()


@signals.task_unknown.connect
def _task_unknown(**_: Any) -> None:
    TASKS.labels(UNKNOWN_TASK, "rejected").inc()


def _known(app: Any, name: object) -> str:
    tasks = getattr(app, "tasks", None) or {}
    return name if isinstance(name, str) and name in tasks else UNKNOWN_TASK


def instrument_db_pool(role: str) -> None:
    """Count this process's checked-out connections (every SQLAlchemy pool in it).

    Called once per process; the gauge moves on each checkout/checkin (a memory-mapped
    write in multiprocess mode, no round trip)."""
    settings = get_settings()
    DB_POOL_CAPACITY.labels(role).set(settings.db_pool_size + settings.db_max_overflow)
    DB_POOL_CHECKED_OUT.labels(role).set(0)
    if _pool_role["role"]:
        _pool_role["role"] = role
        return
    _pool_role["role"] = role
    event.listen(Pool, "checkout", _checked_out)
    event.listen(Pool, "checkin", _checked_in)


def _checked_out(*_: Any) -> None:
    DB_POOL_CHECKED_OUT.labels(_pool_role["role"]).inc()


def _checked_in(*_: Any) -> None:
    DB_POOL_CHECKED_OUT.labels(_pool_role["role"]).dec()
