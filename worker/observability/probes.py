"""Reads of the deployment's state, shared by /readyz and the scrape-time collector.

Each function makes the fewest round trips it can and raises on failure; the caller
decides whether that is a failed check or a missing metric.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import redis
from amqp.exceptions import NotFound
from celery import Celery
from kombu import Connection
from sqlalchemy import text
from sqlalchemy.engine import Connection as DbConnection

from worker.constants import ALL_QUEUES, KEY_BEAT_HEARTBEAT
from worker.settings import Settings

#: kombu's Redis transport keeps one list per priority step: "<queue>", then
#: "<queue>\x06\x16<step>" for steps 3, 6, 9 (kombu.transport.redis.PRIORITY_STEPS).
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


def queue_depths(settings: Settings, timeout: float) -> dict[str, int]:
    """Messages waiting in each of Herald's queues, on whichever broker is in use."""
    if settings.broker_is_redis:
        return _redis_queue_depths(settings, timeout)
    return amqp_queue_depths(settings, timeout)


def _redis_queue_depths(settings: Settings, timeout: float) -> dict[str, int]:
    # The broker prefixes every key with "<namespace>:" (global_keyprefix).
    client = redis.Redis.from_url(
        settings.effective_broker_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in ALL_QUEUES:
                key = settings.key(queue)
                pipe.llen(key)
                for step in _PRIORITY_STEPS:
                    pipe.llen(f"{key}{_PRIORITY_SEP}{step}")
            lengths = pipe.execute()
    finally:
        client.close()
    per_queue = 1 + len(_PRIORITY_STEPS)
    return {
        queue: int(sum(lengths[i * per_queue : (i + 1) * per_queue]))
        for i, queue in enumerate(ALL_QUEUES)
    }


def amqp_queue_depths(
    settings: Settings, timeout: float, queues: tuple[str, ...] = ALL_QUEUES
) -> dict[str, int]:
    depths: dict[str, int] = {}
    with Connection(settings.effective_broker_url, connect_timeout=timeout) as conn:
        for queue in queues:
            # Passive: ask about the queue without creating it. A queue no worker has
            # declared yet holds nothing; the error closes its channel, so one each.
            channel: Any = conn.channel()  # kombu's stubs omit queue_declare
            try:
                _, count, _ = channel.queue_declare(queue=queue, passive=True)
            except NotFound:
                count = 0
            finally:
                _close_quietly(channel)
            depths[queue] = int(count)
    return depths


def _close_quietly(channel: Any) -> None:
    with contextlib.suppress(Exception):  # already closed by the broker's NOT_FOUND
        channel.close()


#: Control apps by (broker URL, namespace): one connection pool each, made once.
_control_apps: dict[tuple[str, str], Celery] = {}


def control_app(settings: Settings) -> Celery:
    """A client app for control commands (ping) in this deployment's namespace."""
    from worker.taskapp.config import celery_config

    key = (settings.effective_broker_url, settings.namespace)
    if key not in _control_apps:
        app = Celery("herald-health", set_as_current=False)
        app.conf.update(celery_config(settings))
        _control_apps[key] = app
    return _control_apps[key]


def ping_workers(settings: Settings, timeout: float) -> list[str]:
    """Hostnames of the workers that answered a broadcast ping within `timeout`."""
    app = control_app(settings)
    with app.connection_for_write() as conn:
        # The app retries a lost broker forever (right for workers); a probe must not.
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=max(1, int(timeout)))
        replies: list[dict[str, Any]] = app.control.ping(timeout=timeout, connection=conn) or []
    return sorted(name for reply in replies for name in reply)


def heartbeat_age(settings: Settings, timeout: float, now: float | None = None) -> float | None:
    """Seconds since beat's heartbeat task last ran; None if it never did."""
    assert settings.redis_url is not None
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        raw = client.get(settings.key(KEY_BEAT_HEARTBEAT))
    finally:
        client.close()
    if raw is None:
        return None
    return max(0.0, (now if now is not None else time.time()) - float(raw))


def open_dead_letters(conn: DbConnection) -> dict[str, int]:
    """Open dead letters by task name."""
    rows = conn.execute(
        text(
            "SELECT coalesce(task_name, 'unknown'), count(*) FROM dead_letters "
            "WHERE status = 'open' GROUP BY 1"
        )
    ).all()
    return {str(name): int(count) for name, count in rows}
