"""`maintenance.archive`: beat's nightly archival run (see worker/archival/)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import structlog

from worker.app import app
from worker.archival.archiver import LOCK_NAME, LOCK_TTL, run_archive
from worker.constants import TASK_ARCHIVE
from worker.coordination.locks import AlreadyRunningError, singleton
from worker.settings import get_settings

log = structlog.get_logger(__name__)


@app.task(
    name=TASK_ARCHIVE,
    # Acked on receipt: a run may outlast the Redis visibility timeout, and a lost run
    # costs nothing (every step is idempotent; tomorrow's run does it).
    acks_late=False,
    soft_time_limit=3300,
    time_limit=3600,
)
def archive() -> dict[str, Any]:
    """Archive under the singleton lock; a run that finds it held is skipped. Returns the
    run's `ArchiveReport` as JSON (Celery's serializer takes no dataclass)."""
    try:
        with singleton(LOCK_NAME, LOCK_TTL):
            report = run_archive(get_settings())
    except AlreadyRunningError:
        log.info("archive.skipped", reason="already running")
        return {"skipped": "already running"}
    log.info(
        "archive.done",
        posts_archived=report.posts.archived,
        partitions_exported=[e.partition for e in report.attempts.exported],
        partitions_created=report.attempts.created,
    )
    return asdict(report)
