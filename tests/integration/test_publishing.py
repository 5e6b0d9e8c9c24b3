"""From a row in scheduled_posts to one post on the platform, on time, exactly once.

Real beat (redbeat), real worker processes, the sandbox platform, PostgreSQL, Redis.
"""

from __future__ import annotations

import collections
import os
import signal
import uuid
from datetime import UTC, datetime, timedelta

from celery import Celery
from sqlalchemy import text

from tests.fixtures.posting import InsertPosts, ledger_refs, post_rows, statuses, wait_all
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory, WorkerProcess
from worker.constants import TASK_DISPATCH_DUE
from worker.db.session import unit_of_work


def test_rows_inserted_by_sql_are_published_at_their_time_exactly_once(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
) -> None:
    ids = insert_posts(30, due_in=3.0, spread=3.0)
    worker_process(concurrency=4)
    beat_process()  # type: ignore[operator]
    wait_all(ids, "published", timeout=60)

    refs = ledger_refs(sandbox)
    assert sorted(refs) == sorted(str(i) for i in ids)  # each once, nothing else
    for row in post_rows(ids):
        assert row["external_post_id"]
        assert row["attempts"] == 1
        # Never early: published no sooner than its time (allowing for clock rounding).
        assert row["published_at"] >= row["scheduled_at"] - timedelta(milliseconds=50)
    with unit_of_work() as session:
        outcomes = session.execute(
            text("SELECT outcome, count(*) FROM post_attempts GROUP BY outcome")
        ).all()
    assert dict(outcomes) == {"published": 30}


def test_cancelled_posts_never_publish_and_rescheduled_ones_publish_at_the_new_time_only(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
) -> None:
    cancelled, moved, plain = insert_posts(3, due_in=2.0)
    with unit_of_work() as session:
        session.execute(
            text("UPDATE scheduled_posts SET status = 'cancelled' WHERE id = :id"),
            {"id": cancelled},
        )
    new_time = datetime.now(UTC) + timedelta(seconds=6)
    with unit_of_work() as session:
        session.execute(
            text("UPDATE scheduled_posts SET scheduled_at = :at WHERE id = :id"),
            {"id": moved, "at": new_time},
        )
    worker_process(concurrency=2)
    beat_process()  # type: ignore[operator]
    wait_all([moved, plain], "published", timeout=60)

    assert collections.Counter(ledger_refs(sandbox)) == {str(moved): 1, str(plain): 1}
    row = {r["id"]: r for r in post_rows([moved, cancelled])}
    assert row[moved]["published_at"] >= new_time - timedelta(milliseconds=50)
    assert row[cancelled]["status"] == "cancelled"


def test_two_dispatchers_and_two_workers_publish_each_post_once(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    control: Celery,
    sandbox: SandboxServer,
) -> None:
    ids = insert_posts(300, due_in=0.0, spread=2.0)
    worker_process(concurrency=3, name="a")
    worker_process(concurrency=3, name="b")
    # Many dispatcher runs at once, on both workers: they must claim disjoint rows.
    for _ in range(12):
        control.send_task(TASK_DISPATCH_DUE)

    def all_claimed() -> bool:
        control.send_task(TASK_DISPATCH_DUE)
        return statuses(ids).get("scheduled", 0) == 0

    wait_for(all_claimed, timeout=60, interval=0.5, what="every post to be claimed")
    wait_all(ids, "published", timeout=120)

    counts = collections.Counter(ledger_refs(sandbox))
    assert len(counts) == 300
    assert max(counts.values()) == 1


def start_a_slow_publish(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
    platform: str,
    *,
    worker_name: str,
) -> tuple[WorkerProcess, uuid.UUID]:
    """One post on `platform`, answering after 3 s, being published (leased) by a worker
    of one pool child named `worker_name`."""
    sandbox.set_faults(platform, latency_ms=3000)
    (post,) = insert_posts(1, platforms=(platform,))
    worker = worker_process(concurrency=1, name=worker_name)
    beat_process()  # type: ignore[operator]
    wait_for(lambda: statuses([post]).get("publishing"), timeout=30, what="the publish to start")
    return worker, post


def test_a_worker_killed_mid_publish_still_publishes_exactly_once(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
) -> None:
    victim, post = start_a_slow_publish(
        insert_posts, worker_process, beat_process, sandbox, "facebook", worker_name="victim"
    )

    victim.kill_all()  # the worker and its pool child, in the middle of the slow call
    sandbox.reset_faults("facebook")
    worker_process(concurrency=1, name="rescuer")
    wait_all([post], "published", timeout=90)

    assert collections.Counter(ledger_refs(sandbox))[str(post)] == 1
    (row,) = post_rows([post])
    assert row["attempts"] >= 2


def test_a_pool_child_killed_mid_publish_is_redelivered_and_publishes_once(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
) -> None:
    worker, post = start_a_slow_publish(
        insert_posts, worker_process, beat_process, sandbox, "youtube", worker_name="pool"
    )

    (child,) = worker.children()
    os.kill(child, signal.SIGKILL)  # the main process lives: reject_on_worker_lost requeues
    wait_all([post], "published", timeout=90)

    assert collections.Counter(ledger_refs(sandbox))[str(post)] == 1
    (row,) = post_rows([post])
    assert row["attempts"] >= 2
