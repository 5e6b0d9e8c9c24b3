"""Celery signal receivers, one concern each, registered when worker.app is imported.

A forked pool child forgets the parent's clients through worker.runtime's one
after-fork hook, not through a receiver here.
"""

from __future__ import annotations

import inspect
from typing import Any

import structlog
from celery import Task, signals

from worker.deadletter import receivers  # noqa: F401  (its receivers register)
from worker.deadletter.reasons import queue_of
from worker.observability import (
    correlation,
    task_metrics,  # noqa: F401  (its receivers register)
)
from worker.observability.logging import bind_task, configure_logging, unbind_task
from worker.observability.sentry import init_sentry
from worker.settings import get_settings


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    # Connecting this signal also stops Celery from configuring the root logger itself.
    configure_logging(get_settings())


@signals.celeryd_init.connect
def _start_sentry_in_worker(**_: Any) -> None:
    # The worker's main process, before the pool forks (see worker.observability.sentry).
    init_sentry(get_settings(), "worker")


@signals.beat_init.connect
def _start_sentry_in_beat(**_: Any) -> None:
    init_sentry(get_settings(), "beat")


@signals.task_prerun.connect
def _bind_task_context(
    task_id: str, task: Task[Any, Any], args: Any = (), kwargs: Any = None, **_: Any
) -> None:
    request = task.request
    bind_task(
        task_id,
        task.name,
        _arguments(task, args or (), kwargs or {}),
        queue=queue_of(request),
        attempt=int(getattr(request, "retries", 0) or 0) + 1,
        request_id=correlation.begin(request),
    )
    if (getattr(request, "delivery_info", None) or {}).get("redelivered"):
        structlog.contextvars.bind_contextvars(redelivered=True)


@signals.task_postrun.connect
def _unbind_task_context(**_: Any) -> None:
    unbind_task()
    correlation.end()


@signals.before_task_publish.connect
def _carry_request_id(headers: Any = None, **_: Any) -> None:
    # Whatever a task sends (retries, deferrals, fan-outs, dead letters) is the same request.
    correlation.stamp_headers(headers)


def _arguments(task: Task[Any, Any], args: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name; a call that does not fit the signature binds none."""
    try:
        return dict(inspect.signature(task.run).bind_partial(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        return dict(kwargs)
