"""SIGTERM to a busy worker: in-flight publishes finish within the deadline, the rest are
requeued; the worker exits 0; afterwards every post is published exactly once.

Real worker processes (prefork, 10 children, the environment `herald run` gives them),
real beat, the sandbox platform made slow, PostgreSQL and Redis.
"""

from __future__ import annotations

import collections
import signal
import time
import uuid
from collections.abc import Callable

import pytest
from celery import Celery
from sqlalchemy import text

from tests.fixtures.posting import InsertPosts, ledger_refs, post_rows, statuses, wait_all
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory, WorkerProcess
from worker.constants import PLATFORMS
from worker.coordination.redis_client import get_redis
from worker.db.session import unit_of_work
from worker.local.processes import WORKER_ENV
from worker.settings import get_settings

pytestmark = pytest.mark.slow

IN_FLIGHT = 10
#: What Celery needs beyond the deadline to cancel, requeue and exit (measured: ~3 s).
EXIT_MARGIN_S = 10.0


def slow_platforms(sandbox: SandboxServer, latency_ms: int) -> None:
    for platform in PLATFORMS:
        sandbox.set_faults(platform, latency_ms=latency_ms)


def normal_platforms(sandbox: SandboxServer) -> None:
    for platform in PLATFORMS:
        sandbox.reset_faults(platform)


#: Starts a busy worker: `(deadline=…, latency_ms=…)` → the worker and its posts' ids.
BusyWorker = Callable[..., tuple[WorkerProcess, list[uuid.UUID]]]


@pytest.fixture
def busy_worker(
    worker_process: WorkerFactory,
    beat_process: object,
    insert_posts: InsertPosts,
    sandbox: SandboxServer,
) -> BusyWorker:
    """Starts a worker with shutdown deadline `deadline` and IN_FLIGHT publishes running
    (their rows leased: 'publishing'), each taking the platforms `latency_ms` to answer."""

    def start(*, deadline: float, latency_ms: int) -> tuple[WorkerProcess, list[uuid.UUID]]:
        slow_platforms(sandbox, latency_ms=latency_ms)
        env = {k: v for k, v in WORKER_ENV.items() if v is not None}
        env["HERALD_SOFT_SHUTDOWN_TIMEOUT"] = str(deadline)
        worker = worker_process(concurrency=IN_FLIGHT, name="busy", env=env)
        beat_process()  # type: ignore[operator]
        ids = insert_posts(IN_FLIGHT)
        wait_for(
            lambda: statuses(ids).get("publishing", 0) == IN_FLIGHT,
            timeout=60,
            interval=0.1,
            what=f"{IN_FLIGHT} publishes in flight",
        )
        return worker, ids

    return start


def sigterm_and_expect_a_timely_exit(worker: WorkerProcess, deadline: float) -> None:
    """SIGTERM `worker`; it must exit 0 within `deadline` (plus Celery's margin)."""
    started = time.monotonic()
    worker.send(signal.SIGTERM)
    code = worker.process.wait(timeout=deadline + 60)
    took = time.monotonic() - started

    assert code == 0, worker.log()[-3000:]
    assert took <= deadline + EXIT_MARGIN_S


def drain_with_a_new_worker(
    worker_process: WorkerFactory, control: Celery, ids: list[uuid.UUID]
) -> None:
    """Start a fresh worker; wait until every post is published and the posts queue (and
    its unacked messages) is empty, so a late duplicate would have shown up by then."""
    rescuer = worker_process(concurrency=4, name="rescuer")
    wait_all(ids, "published", timeout=120)
    redis, prefix = get_redis(), f"{get_settings().namespace}:"

    def drained() -> bool:
        active = control.control.inspect([rescuer.hostname], timeout=1).active() or {}
        idle = not any(active.values())
        return idle and redis.llen(f"{prefix}posts") == 0 and redis.hlen(f"{prefix}unacked") == 0

    wait_for(drained, timeout=60, interval=0.5, what="the posts queue to drain")


def test_sigterm_lets_in_flight_publishes_finish_within_the_deadline(
    busy_worker: BusyWorker, worker_process: WorkerFactory, sandbox: SandboxServer, control: Celery
) -> None:
    deadline = 15.0
    worker, ids = busy_worker(deadline=deadline, latency_ms=3000)

    sigterm_and_expect_a_timely_exit(worker, deadline)

    # Finished before the worker exited: nothing had to be requeued.
    assert statuses(ids) == {"published": IN_FLIGHT}
    assert sorted(ledger_refs(sandbox)) == sorted(str(i) for i in ids)
    normal_platforms(sandbox)
    drain_with_a_new_worker(worker_process, control, ids)
    assert sorted(ledger_refs(sandbox)) == sorted(str(i) for i in ids)
    assert all(row["attempts"] == 1 for row in post_rows(ids))


def test_sigterm_requeues_publishes_that_outlive_the_deadline(
    busy_worker: BusyWorker, worker_process: WorkerFactory, sandbox: SandboxServer, control: Celery
) -> None:
    deadline = 2.0
    worker, ids = busy_worker(deadline=deadline, latency_ms=6000)

    sigterm_and_expect_a_timely_exit(worker, deadline)

    assert "publishing" in statuses(ids), "nothing was in flight at the deadline"
    assert "Restoring" in worker.log(), "the unfinished publishes were not requeued"
    # The sandbox may still accept calls the worker gave up on: their outcome is unknown,
    # and the next attempt must look them up instead of publishing them again.
    normal_platforms(sandbox)
    drain_with_a_new_worker(worker_process, control, ids)
    counts = collections.Counter(ledger_refs(sandbox))
    assert counts == {str(i): 1 for i in ids}
    assert all(row["attempts"] >= 2 for row in post_rows(ids))


def test_a_hung_platform_call_cannot_hold_a_worker(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
) -> None:
    """Given a platform that never answers (and an HTTP timeout longer than the task's time
    limit), the publish's soft time limit ends the call and frees the worker."""
    limit = 20  # hard limit; the soft one is 10 s earlier
    env = {"HERALD_PUBLISH_TIME_LIMIT": str(limit), "HERALD_HTTP_READ_TIMEOUT": "300"}
    sandbox.set_faults("facebook", latency_ms=300_000)
    worker = worker_process(concurrency=1, name="hung", env=env)
    beat_process()  # type: ignore[operator]
    (post,) = insert_posts(1, platforms=("facebook",))
    wait_for(lambda: statuses([post]).get("publishing"), timeout=30, what="the publish to start")
    started = time.monotonic()

    def attempt_ended() -> str | None:
        with unit_of_work() as session:
            return session.execute(
                text("SELECT outcome FROM post_attempts WHERE post_id = :p"), {"p": post}
            ).scalar()

    outcome = wait_for(attempt_ended, timeout=limit + 15, interval=0.5, what="the attempt to end")

    assert outcome == "unknown"  # no verdict from the platform: look it up before retrying
    assert time.monotonic() - started <= limit + 5
    assert worker.process.poll() is None
    assert collections.Counter(ledger_refs(sandbox))[str(post)] <= 1
