"""A real prefork worker serves /metrics summing what its pool children recorded.

Real beat (the dispatcher), a real `celery worker` subprocess with HERALD_METRICS_PORT
set, the sandbox platform, PostgreSQL and Redis.
"""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.metrics import scrape, value
from tests.fixtures.ports import free_port
from tests.fixtures.posting import InsertPosts, wait_all
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory


def test_worker_metrics_sum_what_its_pool_children_recorded(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    # Given a prefork worker with two children serving /metrics from its own directory
    port, metrics_dir = free_port(), tmp_path / "metrics"
    env = {"HERALD_METRICS_PORT": str(port), "HERALD_METRICS_DIR": str(metrics_dir)}
    worker = worker_process(concurrency=2, env=env)
    own_dir = metrics_dir / str(worker.pid)
    assert own_dir.is_dir(), f"no multiprocess dir {own_dir}: {list(metrics_dir.glob('*'))}"

    # When six posts (two per platform) are published through beat's dispatcher
    ids = insert_posts(6, due_in=1.0)
    beat_process()  # type: ignore[operator]
    wait_all(ids, "published", timeout=60)

    # Then the main process's /metrics shows the children's samples
    def published_counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = scrape(port)
        done = value(samples, "herald_tasks_total", task="posts.publish", outcome="success")
        return samples if done >= 6 else None

    samples = wait_for(published_counted, timeout=20, what="6 successful posts.publish counted")
    assert value(samples, "herald_task_duration_seconds_count", task="posts.publish") >= 6
    assert value(samples, "herald_task_duration_seconds_sum", task="posts.publish") > 0
    for platform in ("instagram", "facebook", "youtube"):
        assert value(samples, "herald_schedule_lag_seconds_count", platform=platform) == 2
    # Lag is measured from scheduled_at: never negative, and small at this load.
    lag_sum = value(samples, "herald_schedule_lag_seconds_sum")
    assert 0 <= lag_sum < 6 * 30
    # Each child counts its pool; capacity is pool size + overflow (5 + 5 by default).
    assert value(samples, "herald_db_pool_capacity", role="worker") >= 10
    assert any(name == "herald_db_pool_checked_out" for name, _ in samples)
    # Samples come from more than one process file (children write their own).
    assert len(list(own_dir.glob("*.db"))) >= 2

    # And a warm shutdown removes the worker's directory (nothing stale is summed later)
    assert worker.stop() == 0
    assert not own_dir.exists()


def test_metrics_port_0_leaves_multiprocess_mode_off(
    worker_process: WorkerFactory, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    worker_process(env={"HERALD_METRICS_PORT": "0", "HERALD_METRICS_DIR": str(metrics_dir)})
    assert not metrics_dir.exists()
