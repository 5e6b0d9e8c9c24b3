"""The periodic schedule, built from settings. Beat runs redbeat: two beats, one fires.

Entry names are stable (redbeat's keys derive from them). Every entry expires: a run
that waited in the queue past its usefulness is dropped, and the next one does the work.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from worker.constants import (
    TASK_ARCHIVE,
    TASK_BACKUP,
    TASK_DISPATCH_DUE,
    TASK_HEARTBEAT,
    TASK_REFRESH_EXPIRING,
)
from worker.settings import Settings, crontab_fields

#: A nightly job still waiting this long after its time is dropped; tomorrow's will run.
NIGHTLY_EXPIRES = 6 * 3600.0


def cron(expression: str) -> crontab:
    minute, hour, day_of_month, month, day_of_week = crontab_fields(expression)
    return crontab(minute, hour, day_of_week, day_of_month, month)


def build_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Entry name -> Celery beat entry."""
    return {
        "dispatch-due": {
            "task": TASK_DISPATCH_DUE,
            "schedule": settings.dispatch_interval,
            # A run that waited longer than an interval is superseded by the next one.
            "options": {"expires": settings.dispatch_interval * 2},
        },
        "heartbeat": {
            "task": TASK_HEARTBEAT,
            "schedule": float(settings.heartbeat_interval),
            # A heartbeat older than its interval says nothing: drop it rather than queue it.
            "options": {"expires": float(settings.heartbeat_interval)},
        },
        "refresh-expiring-tokens": {
            "task": TASK_REFRESH_EXPIRING,
            "schedule": settings.token_refresh_interval,
            "options": {"expires": settings.token_refresh_interval},
        },
        "backup": {
            "task": TASK_BACKUP,
            "schedule": cron(settings.backup_schedule),
            "options": {"expires": NIGHTLY_EXPIRES},
        },
        "archive": {
            "task": TASK_ARCHIVE,
            "schedule": cron(settings.archive_schedule),
            "options": {"expires": NIGHTLY_EXPIRES},
        },
    }
