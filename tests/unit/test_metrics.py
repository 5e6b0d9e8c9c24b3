"""Metrics recording: multiprocess mode across real forks, task signal receivers.

The multiprocess test runs in its own interpreter: switching prometheus_client's mode
is process-wide, and this test process must keep its ordinary registry.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from celery import Celery
from celery.exceptions import Retry
from prometheus_client import REGISTRY

import worker.observability.task_metrics  # noqa: F401  (its receivers register)
from worker.observability.metrics_server import serve_metrics

#: A worker's life in miniature: metrics imported first (as task modules do), then
#: multiprocess mode (celeryd_init), then forked children record, the parent sums.
FORKED = textwrap.dedent(
    """
    import multiprocessing, os, sys
    from pathlib import Path
    from worker.observability.metrics import TASKS, DB_POOL_CHECKED_OUT
    from worker.observability import metrics_server
    from worker.settings import load_settings
    from prometheus_client import generate_latest

    settings = load_settings(metrics_dir=Path(sys.argv[1]))
    stale = metrics_server.multiprocess_dir(settings, os.getpid()) / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an earlier run")
    path = metrics_server.use_multiprocess_dir(settings)

    def child(n):
        TASKS.labels("posts.publish", "success").inc(n)
        DB_POOL_CHECKED_OUT.labels("worker").set(n)
        metrics_server.process_exited(os.getpid())  # worker_process_shutdown

    context = multiprocessing.get_context("fork")
    for n in (2, 3):
        process = context.Process(target=child, args=(n,))
        process.start()
        process.join()
    print(generate_latest(metrics_server.multiprocess_registry()).decode())
    print("FILES", len(list(path.glob("counter_*.db"))))
    """
)


def test_children_counts_are_summed_and_dead_childrens_gauges_dropped(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORKED, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert 'herald_tasks_total{outcome="success",task="posts.publish"} 5.0' in out
    # liveall gauges of exited children are gone (mark_process_dead).
    assert "herald_db_pool_checked_out{" not in out
    # The stale file of an earlier run was wiped; one counter file per child remains.
    assert "FILES 2" in out


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def eager_app() -> Celery:
    app = Celery("metrics-test", set_as_current=False)
    app.conf.update(task_always_eager=True, task_eager_propagates=False)
    return app


def test_task_runs_are_counted_by_outcome_and_timed(eager_app: Celery) -> None:
    @eager_app.task(name="test.ok")
    def ok() -> int:
        return 1

    @eager_app.task(name="test.boom")
    def boom() -> None:
        raise ValueError("boom")

    @eager_app.task(name="test.again")
    def again() -> None:
        raise Retry("later")

    before = {
        "ok": sample("herald_tasks_total", task="test.ok", outcome="success"),
        "boom": sample("herald_tasks_total", task="test.boom", outcome="failure"),
        "timed": sample("herald_task_duration_seconds_count", task="test.ok"),
        "again": sample("herald_tasks_total", task="test.again", outcome="retry"),
    }
    ok.delay()
    ok.delay()
    boom.delay()
    again.delay()
    assert sample("herald_tasks_total", task="test.ok", outcome="success") == before["ok"] + 2
    assert sample("herald_tasks_total", task="test.boom", outcome="failure") == before["boom"] + 1
    assert sample("herald_task_duration_seconds_count", task="test.ok") == before["timed"] + 2
    assert sample("herald_tasks_total", task="test.again", outcome="retry") == before["again"] + 1


def test_rejected_messages_of_unknown_tasks_use_one_label() -> None:
    from celery import signals

    class Message:
        headers = {"task": "attacker.chosen.name.12345"}

    before = sample("herald_tasks_total", task="unknown", outcome="rejected")
    signals.task_rejected.send(sender=None, message=Message(), exc=None)
    assert sample("herald_tasks_total", task="unknown", outcome="rejected") == before + 1
    assert sample("herald_tasks_total", task="attacker.chosen.name.12345", outcome="rejected") == 0


def test_a_taken_port_is_logged_not_fatal() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert serve_metrics(taken.getsockname()[1]) is False
    assert serve_metrics(0) is False


FALLBACK = textwrap.dedent(
    """
    import os, shutil, sys, tempfile
    from pathlib import Path
    from worker.observability import metrics_server
    from worker.settings import load_settings

    path = metrics_server.use_multiprocess_dir(load_settings(metrics_dir=Path(sys.argv[1])))
    print(path)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(path)
    assert path == Path(tempfile.gettempdir()) / "herald-metrics" / str(os.getpid())
    shutil.rmtree(path)
    """
)


def test_an_unusable_metrics_dir_falls_back_to_the_temp_directory(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("a file where the directory should be")
    result = subprocess.run(
        [sys.executable, "-c", FALLBACK, str(not_a_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "metrics.dir_unusable" in result.stderr + result.stdout
