"""Bare Celery noop throughput on the same broker and concurrency as Herald's workers.

A real `celery worker -c 4 --pool prefork` subprocess runs `bench.noop`
(bench/celery_baseline.py); we enqueue N tasks and time from the first enqueue until
the Redis counter the tasks INCR reaches N. A warm-up batch runs first, untimed, so
pool children have imported and connected (Herald's figures get the same treatment).
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

from celery import Celery

from bench.celery_baseline import TASK_NOOP, make_app
from bench.context import Context
from bench.registry import Measure, benchmark

#: Pool size of the baseline worker: Herald's posts workers' default (HERALD_POSTS_CONCURRENCY).
CONCURRENCY = 4


def enqueue(app: Celery, count: int) -> None:
    """Send `count` noops over one producer (a loop of sends, as `apply_async` does)."""
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task(TASK_NOOP, producer=producer)


def _delete_amqp_queue(url: str, queue: str) -> None:
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(url, connect_timeout=5) as conn:
        channel: Any = conn.default_channel
        channel.queue_delete(queue)
        channel.exchange_delete(queue)


def noop_throughput(ctx: Context, broker_url: str, *, tasks: int) -> dict[str, Measure]:
    """Start the baseline worker on `broker_url`, run `tasks` noops, return the rates."""
    queue, keyprefix = f"{ctx.namespace}.noop", f"{ctx.namespace}:"
    counter = ctx.key("noop", "done")
    if broker_url.startswith("amqp"):
        # Registered before the worker starts, so it runs after the worker has stopped.
        ctx.stack.callback(_delete_amqp_queue, broker_url, queue)
    node = f"noop-{ctx.namespace}"
    worker = ctx.start(
        "noop-worker",
        [
            sys.executable, "-m", "celery", "-A", "bench.celery_baseline", "worker",
            "-c", str(CONCURRENCY), "--pool", "prefork", "--hostname", f"{node}@%h",
            "--without-mingle", "--without-gossip", "--loglevel", "WARNING",
        ],
        env={
            "BENCH_BROKER_URL": broker_url,
            "BENCH_QUEUE": queue,
            "BENCH_KEYPREFIX": keyprefix,
            "BENCH_REDIS_URL": ctx.redis_url,
            "BENCH_COUNTER_KEY": counter,
        },
    )  # fmt: skip
    app = make_app(broker_url, queue, keyprefix)
    ctx.stack.callback(app.close)
    ctx.wait_for_worker(app, worker, node)
    client = ctx.redis()

    def done(count: int) -> bool:
        worker.check_alive()
        return int(client.get(counter) or 0) >= count

    warmup = ctx.size(200, 50)
    enqueue(app, warmup)
    ctx.wait_for(lambda: done(warmup), timeout=60, what="the warm-up noops")
    client.delete(counter)

    started = time.perf_counter()
    enqueue(app, tasks)
    enqueued = time.perf_counter()
    ctx.wait_for(lambda: done(tasks), timeout=60 + tasks / 50, what=f"{tasks} noops", interval=0.01)
    finished = time.perf_counter()
    ctx.note("tasks", tasks)
    ctx.note("counted", int(client.get(counter) or 0))
    return {
        "tasks_per_s": Measure(tasks / (finished - started), "tasks/s"),
        "enqueue_per_s": Measure(tasks / (enqueued - started), "tasks/s"),
    }


@benchmark("celery_noop_redis")
def celery_noop_redis(ctx: Context) -> dict[str, Measure]:
    """Bare Celery noop throughput, Redis broker, prefork -c 4 (baseline)."""
    return noop_throughput(ctx, ctx.redis_url, tasks=ctx.size(5_000, 500))


@benchmark("celery_noop_amqp")
def celery_noop_amqp(ctx: Context) -> dict[str, Measure]:
    """Bare Celery noop throughput, RabbitMQ broker, prefork -c 4 (baseline)."""
    return noop_throughput(ctx, ctx.require_amqp(), tasks=ctx.size(5_000, 500))
