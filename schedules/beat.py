"""The periodic schedule, built from settings. Beat runs redbeat: two beats, one fires."""

from __future__ import annotations

from typing import Any

from worker.constants import TASK_HEARTBEAT
from worker.settings import Settings


def build_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Entry name -> Celery beat entry. Names are stable: redbeat keys derive from them."""
    return {
        "heartbeat": {
            "task": TASK_HEARTBEAT,
            "schedule": float(settings.heartbeat_interval),
            # A heartbeat older than its interval says nothing: drop it rather than queue it.
            "options": {"expires": float(settings.heartbeat_interval)},
        },
    }
