"""The coordination Redis: one client (and pool) per process, rebuilt after fork."""

from __future__ import annotations

import functools

import redis

from worker.settings import get_settings


@functools.cache
def get_redis() -> redis.Redis:
    """This process's client; short timeouts so a dead Redis fails fast, not forever."""
    settings = get_settings()
    assert settings.redis_url is not None
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
        decode_responses=True,
    )


def reset_redis(*, after_fork: bool = False) -> None:
    """Forget this process's client (after fork, or when settings changed)."""
    if get_redis.cache_info().currsize and not after_fork:
        get_redis().close()
    get_redis.cache_clear()


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
