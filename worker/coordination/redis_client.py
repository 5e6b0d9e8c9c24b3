"""The coordination Redis: one client (and pool) per process, held by worker.runtime."""

from __future__ import annotations

import redis

from worker import runtime
from worker.settings import get_settings, required_url


def _connect() -> redis.Redis:
    """Short timeouts, so a dead Redis fails fast, not forever."""
    return redis.Redis.from_url(
        required_url(get_settings(), "redis_url"),
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
        decode_responses=True,
    )


#: This process's client (worker.runtime: closed on reset; after fork the child drops
#: it untouched, since its sockets are the parent's).
get_redis = runtime.cached("redis", _connect, close=redis.Redis.close)


def delete_namespace(redis_url: str, namespace: str) -> int:
    """Delete every key under `namespace:` (a test's or a benchmark run's); return how many."""
    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    deleted = 0
    try:
        batch: list[str | bytes] = []
        for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.delete(*batch))
                batch = []
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted
