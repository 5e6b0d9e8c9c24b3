"""A bare Celery app: the noop throughput Herald's publish pipeline is compared with.

The worker is `celery -A bench.celery_baseline worker -c 4 --pool prefork`, configured
by the environment (the harness sets it): `BENCH_BROKER_URL`, `BENCH_QUEUE`,
`BENCH_KEYPREFIX` (Redis broker keys), `BENCH_REDIS_URL` and `BENCH_COUNTER_KEY`.
Settings mirror Herald's where they change the cost of a message (JSON, acks_late,
prefetch 1, no result backend) and are Celery's defaults elsewhere. With no result
backend, each task INCRs a Redis counter so the harness sees when all are done.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import redis
from celery import Celery

#: The one task: it does nothing but count itself.
TASK_NOOP = "bench.noop"


def config(broker_url: str, queue: str, keyprefix: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        options["global_keyprefix"] = keyprefix
    return {
        "broker_url": broker_url,
        "broker_transport_options": options,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": queue,
        "worker_hijack_root_logger": False,
    }


def make_app(broker_url: str, queue: str, keyprefix: str) -> Celery:
    app = Celery("bench-noop", set_as_current=False)
    app.conf.update(config(broker_url, queue, keyprefix))
    return app


@functools.cache
def _counter() -> redis.Redis:
    # Created on first use in each pool child (after fork), so no socket is shared.
    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], socket_timeout=10)


app = make_app(
    os.environ.get("BENCH_BROKER_URL", "memory://"),
    os.environ.get("BENCH_QUEUE", "bench-noop"),
    os.environ.get("BENCH_KEYPREFIX", "bench:"),
)


@app.task(name=TASK_NOOP)
def noop() -> None:
    _counter().incr(os.environ["BENCH_COUNTER_KEY"])
