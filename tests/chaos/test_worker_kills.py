"""Scenarios 1 and 6: SIGKILL a random worker process (a main process or a pool child)
every few seconds while posts publish against a sandbox that answers in 0-1 s; a killed
worker is replaced as a supervisor would. Given Redis (or RabbitMQ) as broker: 0 lost,
0 published twice."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid

import pytest

from tests.chaos.harness import (
    Record,
    audit,
    drain,
    side_by_side,
    sized,
    start_workers,
)
from tests.fixtures.posting import InsertPosts, statuses
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory, WorkerProcess

WORKERS = 2


def published(ids: list[uuid.UUID]) -> int:
    return statuses(ids).get("published", 0)


def kill_one(
    rng: random.Random, pool: list[WorkerProcess], start: WorkerFactory, record: Record
) -> None:
    """SIGKILL a pool child or a main process (alternately, so a short run has both) of
    a random worker: a child is re-forked by its main process; a dead main process (and
    its children) is replaced by a new worker, as `herald run` would."""
    index = rng.randrange(len(pool))
    victim = pool[index]
    children = victim.children()
    kills_so_far = sum(record.faults.get(kind, 0) for kind in ("child_kills", "main_kills"))
    if children and kills_so_far % 2 == 0:
        os.kill(rng.choice(children), signal.SIGKILL)
        record.faults["child_kills"] = record.faults.get("child_kills", 0) + 1
        return
    victim.kill_all()
    record.faults["main_kills"] = record.faults.get("main_kills", 0) + 1
    concurrency = sized(4, 8)
    record.faults["restarts"] = record.faults.get("restarts", 0) + 1
    pool[index] = start(concurrency=concurrency, name=f"k{index}-{record.faults['restarts']}")


def kill_storm(
    scenario: str,
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
) -> None:
    record = Record(scenario)
    # Short: one child kill and one main-process kill, early, so the killed posts' leases
    # run out while the rest still publish (the lease, not N, sets the drain time).
    count = sized(60, 5000)
    kills = sized(2, 10_000)  # full: keep killing until the last tenth remains
    every = sized(0.5, 3.0)
    seed = int(os.environ.get("HERALD_CHAOS_SEED", "7"))
    rng = random.Random(seed)
    record.notes["seed"] = seed
    ids = insert_posts(count)
    names = [f"k{i}" for i in range(WORKERS)]
    pool, _ = side_by_side(
        lambda: start_workers(worker_process, names, concurrency=sized(4, 8)),
        beat_process,  # type: ignore[arg-type]
    )

    began = time.monotonic()
    while kills and published(ids) < count * 0.9:
        last, due = published(ids), time.monotonic() + every
        # Kill on a schedule, but only once the run has moved on since the last kill:
        # a kill storm that stops all progress would prove nothing.
        wait_for(
            lambda due=due, last=last: (
                time.monotonic() >= due and (published(ids) > last or published(ids) == count)
            ),
            timeout=120,
            interval=0.2,
            what="progress between kills",
        )
        if published(ids) >= count * 0.9:
            break
        kill_one(rng, pool, worker_process, record)
        kills -= 1
    record.notes["storm_seconds"] = round(time.monotonic() - began, 2)
    drain(ids, record, timeout=sized(120, 1200))
    audit(ids, sandbox, record)
    assert record.faults.get("child_kills") and record.faults.get("main_kills"), record.faults
    # The survivors go the way the storm sent the others (a graceful stop costs seconds
    # per worker and has its own scenario, test_shutdown.py).
    for worker in pool:
        worker.kill_all()


def test_sigkill_storm_on_redis_loses_and_duplicates_nothing(
    chaos_env: dict[str, str],
    jittery_sandbox: SandboxServer,
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
) -> None:
    kill_storm("sigkill_redis", insert_posts, worker_process, beat_process, jittery_sandbox)


@pytest.mark.amqp
def test_sigkill_storm_on_rabbitmq_loses_and_duplicates_nothing(
    rabbitmq_broker: str,
    jittery_sandbox: SandboxServer,
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    control: object,
    beat_process: object,
) -> None:
    control.control.purge()  # type: ignore[attr-defined]  # a vhost other runs share
    kill_storm("sigkill_rabbitmq", insert_posts, worker_process, beat_process, jittery_sandbox)
