"""Maintenance tasks fired by beat."""

from __future__ import annotations

import time

import structlog

from worker.app import app
from worker.constants import KEY_BEAT_HEARTBEAT, TASK_HEARTBEAT
from worker.coordination.redis_client import get_redis
from worker.settings import get_settings

log = structlog.get_logger(__name__)


@app.task(name=TASK_HEARTBEAT, acks_late=False)
def heartbeat() -> float:
    """Record that beat fired and a maintenance worker ran it (readiness reads this)."""
    now = time.time()
    get_redis().set(get_settings().key(KEY_BEAT_HEARTBEAT), now)
    log.info("beat.heartbeat", at=now)
    return now
