"""structlog for Herald and for the libraries under it (Celery, kombu, SQLAlchemy).

Console lines in development, one JSON object per line elsewhere. Whatever a task
logs carries the task's id, name, queue, attempt, request id and its own ids (post,
account, platform): the task signals bind them into contextvars, which every line
picks up. Every line, ours or a library's (Celery's own "Task ... raised" lines with
their argument reprs), passes `redact_event` just before it is rendered.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.types import EventDict, Processor

from worker.observability.redaction import redact_event
from worker.settings import Settings

#: Name of the root handler Herald installs (so reconfiguring replaces only it).
HANDLER_NAME = "herald"

#: Task arguments whose values are bound to every log line of the task.
BOUND_ARGUMENTS = ("post_id", "account_id", "platform")


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        structlog.processors.format_exc_info,
    ]


def _drop_color_message(_: Any, __: str, event: EventDict) -> EventDict:
    # uvicorn duplicates its message with ANSI colours for its own formatter.
    event.pop("color_message", None)
    return event


def configure_logging(settings: Settings, *, stream: Any = None) -> None:
    """Route structlog and the standard library through one renderer."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if settings.json_logs
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared = _shared_processors()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color_message,
            redact_event,  # last before rendering: nothing is added after it
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    # Replace our own handler (configured again: new settings or stream); leave others
    # (a test runner's capture, an embedding application's) where they are.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != HANDLER_NAME] + [handler]
    root.setLevel(settings.log_level)
    for noisy in ("httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def bind_task(
    task_id: str,
    task_name: str,
    arguments: Mapping[str, Any],
    *,
    queue: str | None = None,
    attempt: int | None = None,
    request_id: str | None = None,
) -> None:
    """Bind a task's identity and its own ids (by argument name) for every line it logs.

    `attempt` counts this task id's runs (Celery retries + 1); a post's publish binds the
    post's own attempt number over it once it holds the row.
    """
    structlog.contextvars.clear_contextvars()
    bound: dict[str, Any] = {"task_id": task_id, "task_name": task_name}
    optional = {"queue": queue, "attempt": attempt, "request_id": request_id}
    bound.update({name: value for name, value in optional.items() if value is not None})
    bound.update({name: str(arguments[name]) for name in BOUND_ARGUMENTS if name in arguments})
    structlog.contextvars.bind_contextvars(**bound)


def unbind_task() -> None:
    structlog.contextvars.clear_contextvars()
