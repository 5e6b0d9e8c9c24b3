"""The periodic schedule, built from settings. Beat runs redbeat: two beats, one fires."""

from __future__ import annotations

from typing import Any

from worker.constants import TASK_DISPATCH_DUE, TASK_HEARTBEAT
from worker.settings import Settings


def build_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Entry name -> Celery beat entry. Names are stable: redbeat keys derive from them."""
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
    }
