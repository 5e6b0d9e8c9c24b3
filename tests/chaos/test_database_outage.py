"""Scenario 3: PostgreSQL becomes unreachable mid-run (open connections reset, new ones
refused) and comes back. Worker processes stay up (no crash loop), and afterwards every
post is published exactly once.

Herald's processes reach PostgreSQL through a cuttable TCP proxy; the machine's
PostgreSQL itself is never stopped (other tests use it).
"""

from __future__ import annotations

import time

from celery import Celery

from tests.chaos.harness import (
    Record,
    audit,
    drain,
    side_by_side,
    sized,
    start_workers,
    stop_workers,
)
from tests.fixtures.posting import InsertPosts, statuses
from tests.fixtures.private_servers import CuttableProxy, through
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory


def test_a_database_outage_neither_crashes_workers_nor_loses_posts(
    pg_proxy: CuttableProxy,
    database: str,
    jittery_sandbox: SandboxServer,
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    control: Celery,
) -> None:
    record = Record("database_outage")
    count, spread, outage = sized(30, 600), sized(3.0, 60.0), sized(2.0, 20.0)
    behind_proxy = {"DATABASE_URL": through(pg_proxy, database)}
    names = [f"d{i}" for i in range(sized(1, 2))]
    # Beat never touches PostgreSQL: it only sends the dispatcher's task to the workers.
    workers, _ = side_by_side(
        lambda: start_workers(worker_process, names, concurrency=4, env=behind_proxy),
        beat_process,  # type: ignore[arg-type]
    )
    ids = insert_posts(count, due_in=1.0, spread=spread)
    wait_for(
        lambda: statuses(ids).get("published", 0) >= count // 4,
        timeout=60,
        interval=0.2,
        what="a quarter of the posts published before the outage",
    )

    pg_proxy.cut()
    cut_at = time.monotonic()
    # Stay cut for the whole outage, checking all along that no worker dies of it.
    wait_for(
        lambda: (
            time.monotonic() - cut_at >= outage
            or any(worker.process.poll() is not None for worker in workers)
        ),
        timeout=outage + 5,
        interval=0.2,
        what="the outage to last",
    )
    pg_proxy.restore()
    record.faults = {"outage_s": outage, "cuts": pg_proxy.cuts}
    assert all(worker.process.poll() is None for worker in workers), "a worker died"
    record.notes["published_before_restore"] = statuses(ids).get("published", 0)

    drain(ids, record, timeout=sized(120, 600))
    audit(ids, jittery_sandbox, record)
    alive = [worker.hostname for worker in workers]
    assert all(worker.process.poll() is None for worker in workers)
    assert len(control.control.ping(alive, timeout=2.0) or []) == len(alive)
    stop_workers(workers)
