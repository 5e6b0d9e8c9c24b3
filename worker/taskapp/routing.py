"""Route a task to its queue by the prefix of its stable name (posts.*, tokens.*, ...)."""

from __future__ import annotations

from typing import Any

from worker.constants import QUEUE_MAINTENANCE, ROUTE_PREFIXES

#: Where a task that matches no prefix goes: a queue that is always consumed, so an
#: unknown name reaches a worker (and the dead-letter recorder) instead of vanishing.
FALLBACK_QUEUE = QUEUE_MAINTENANCE


def queue_for(task_name: str) -> str:
    for prefix, queue in ROUTE_PREFIXES.items():
        if task_name.startswith(prefix):
            return queue
    return FALLBACK_QUEUE


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
) -> dict[str, str]:
    """Celery router (task_routes entry)."""
    return {"queue": queue_for(name)}
