"""Publishing tasks: thin bodies over worker.publishing.publish and schedules.dispatcher."""

from __future__ import annotations

from typing import Any

import structlog

from schedules.dispatcher import dispatch_due as run_dispatcher
from worker.app import app
from worker.constants import TASK_DISPATCH_DUE, TASK_PUBLISH
from worker.publishing.publish import InvalidPublishInputError, publish_post
from worker.settings import get_settings

log = structlog.get_logger(__name__)

_settings = get_settings()


@app.task(
    name=TASK_PUBLISH,
    bind=True,
    soft_time_limit=_settings.publish_soft_time_limit,
    time_limit=_settings.publish_time_limit,
)
def publish(self: Any, post_id: str, expected_at: str | None = None) -> str:
    """Publish one scheduled post (other languages send `posts.publish(post_id)`)."""
    try:
        outcome = publish_post(
            post_id, expected_at, task_id=self.request.id, worker=self.request.hostname
        )
    except InvalidPublishInputError as exc:
        # Not retried: the same input fails the same way. Dead-lettered by the resilience layer.
        log.error("publish.invalid_input", error=str(exc))
        raise
    return outcome.kind


@app.task(name=TASK_DISPATCH_DUE, acks_late=False, ignore_result=True)
def dispatch_due() -> dict[str, int]:
    """Beat, every few seconds: claim due posts and enqueue their publishes."""
    report = run_dispatcher(get_settings())
    return {"claimed": report.claimed, "recovered": report.recovered}
