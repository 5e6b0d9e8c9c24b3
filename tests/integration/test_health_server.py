"""`herald health --serve`: /healthz, /readyz and the deployment-wide /metrics.

The health server runs as a real subprocess (as an operator starts it) against this
test's PostgreSQL database and Redis namespace; workers and beat are real processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from sqlalchemy import text

from tests.fixtures.metrics import scrape, value
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker.db.session import unit_of_work
from worker.resilience.breaker import get_breakers

HEALTH = [sys.executable, "-m", "worker.cli.health"]
ServerFactory = Callable[..., str]


@pytest.fixture
def health_server(herald_env: dict[str, str], tmp_path: Path) -> Iterator[ServerFactory]:
    """Start `herald health --serve` on a free port; return its base URL."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> str:
        port = free_port()
        log_path = tmp_path / f"health{len(started)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*HEALTH, "--serve", "--host", "127.0.0.1", "--port", str(port)],
                env={**os.environ, "HERALD_METRICS_PORT": "0", **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"health server exited:\n{log_path.read_text()}")
            try:
                return httpx.get(f"{base}/healthz", timeout=1.0, trust_env=False).is_success
            except httpx.TransportError:
                return False

        wait_for(up, timeout=30, what="the health server to answer /healthz")
        return base

    yield start
    for process in started:
        process.terminate()
        process.wait(20)


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=20.0, trust_env=False)


def readiness(base: str) -> tuple[int, dict[str, Any]]:
    response = get(f"{base}/readyz")
    body: dict[str, Any] = response.json()
    return response.status_code, body


def test_healthz_answers_while_the_process_lives(health_server: ServerFactory) -> None:
    base = health_server()
    response = get(f"{base}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_with_a_worker_answering_and_beat_beating(
    health_server: ServerFactory,
    worker_process: WorkerFactory,
    beat_process: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a worker for posts and maintenance (which runs beat's heartbeat) and beat,
    # beating every 2 s (so /readyz allows 6 s)
    monkeypatch.setenv("HERALD_HEARTBEAT_INTERVAL", "2")
    worker = worker_process(("posts", "maintenance"))
    beat_process()
    base = health_server()

    # Then /readyz turns 200 once the first heartbeat landed, naming who answered
    def ready() -> dict[str, Any] | None:
        status, body = readiness(base)
        return body if status == 200 else None

    body = wait_for(ready, timeout=60, interval=0.5, what="/readyz to be 200")
    checks = body["checks"]
    assert body["status"] == "ok"
    assert set(checks) == {
        "database",
        "redis",
        "broker",
        "workers",
        "beat",
        "backlog",
        "dead_letters",
    }
    assert worker.hostname in checks["workers"]["workers"]
    assert checks["workers"]["answered"] >= 1
    assert checks["beat"]["age_s"] <= checks["beat"]["max_age_s"] == 6
    assert checks["backlog"]["queues"]["posts"] == 0
    assert checks["dead_letters"]["open"] == 0
    assert all(check["ok"] and check["latency_ms"] >= 0 for check in checks.values())


def test_not_ready_when_no_worker_answers(health_server: ServerFactory) -> None:
    base = health_server()
    status, body = readiness(base)
    assert status == 503
    assert body["status"] == "failing"
    workers = body["checks"]["workers"]
    assert workers["ok"] is False
    assert workers["answered"] == 0
    assert "no worker answered a ping" in workers["error"]
    assert body["checks"]["beat"]["error"] == "beat has never sent a heartbeat"
    assert body["checks"]["database"]["ok"] is True


def test_not_ready_when_redis_is_unreachable(health_server: ServerFactory) -> None:
    # A port nothing listens on: connection refused.
    base = health_server(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    status, body = readiness(base)
    assert status == 503
    redis_check = body["checks"]["redis"]
    assert redis_check["ok"] is False
    assert redis_check["error"].startswith("ConnectionError")
    assert body["checks"]["database"]["ok"] is True
    # /metrics still answers, saying which source is down.
    samples = scrape_base(base)
    assert value(samples, "herald_collector_up", source="redis") == 0
    assert value(samples, "herald_collector_up", source="database") == 1


def test_not_ready_when_a_backlog_or_dead_letters_pass_their_limits(
    health_server: ServerFactory, control: Celery
) -> None:
    for _ in range(3):
        control.send_task("posts.publish", args=[str(uuid.uuid4())])
    _insert_dead_letters(2)
    base = health_server(HERALD_READY_MAX_BACKLOG="2", HERALD_READY_MAX_DEAD_LETTERS="1")
    status, body = readiness(base)
    assert status == 503
    assert body["checks"]["backlog"]["error"] == "backlog over 2: posts holds 3"
    assert body["checks"]["dead_letters"]["error"] == "2 dead letters are open (> 1)"


def test_metrics_show_queue_depth_breakers_dead_letters_and_backup_age(
    health_server: ServerFactory, control: Celery
) -> None:
    # Given two waiting messages, an open breaker, three open dead letters, backups
    for _ in range(2):
        control.send_task("posts.publish", args=[str(uuid.uuid4())])
    get_breakers()["facebook"].force_open(600)
    _insert_dead_letters(3)
    with unit_of_work() as session:
        session.execute(
            text(
                "INSERT INTO backups (file, status, finished_at, verified_at, verify_ok) VALUES "
                "('old', 'succeeded', now() - interval '2 hours', now() - interval '2 hours', "
                "true), ('new', 'succeeded', now() - interval '1 hour', now(), false)"
            )
        )
    base = health_server()

    # When Prometheus scrapes the health server
    samples = scrape_base(base)

    # Then the deployment's state is there
    assert value(samples, "herald_queue_depth", queue="posts") == 2
    assert value(samples, "herald_queue_depth", queue="maintenance") == 0
    assert value(samples, "herald_breaker_state", platform="facebook") == 2
    assert value(samples, "herald_breaker_state", platform="instagram") == 0
    assert value(samples, "herald_dead_letters_open", task="posts.publish") == 3
    assert 3500 < value(samples, "herald_backup_age_seconds", kind="succeeded") < 3700
    assert 7100 < value(samples, "herald_backup_age_seconds", kind="verified") < 7300
    assert value(samples, "herald_backup_last_verify_ok") == 0
    assert value(samples, "herald_workers_responding") == 0
    for source in ("broker", "redis", "database"):
        assert value(samples, "herald_collector_up", source=source) == 1
    assert value(samples, "herald_db_pool_capacity", role="health") == 10


def test_serve_refuses_a_port_in_use_with_one_line(herald_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_herald_health("--serve", "--port", str(port), env=herald_env)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"herald: cannot listen on 127.0.0.1:{port}:")
    )


def test_host_without_serve_is_a_usage_error(herald_env: dict[str, str]) -> None:
    result = run_herald_health("--port", "9999", env=herald_env)
    assert result.returncode == 2
    assert "--host and --port only apply with --serve" in result.stderr


def test_one_shot_health_keeps_its_json_and_exit_status(herald_env: dict[str, str]) -> None:
    ok = run_herald_health(env=herald_env)
    assert ok.returncode == 0, ok.stderr
    assert '"status": "ok"' in ok.stdout
    down = run_herald_health(env={**herald_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}"})
    assert down.returncode == 1
    assert '"status": "failing"' in down.stdout


def run_herald_health(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEALTH, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def scrape_base(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return scrape(int(base.rsplit(":", 1)[1]))


def _insert_dead_letters(count: int) -> None:
    with unit_of_work() as session:
        for _ in range(count):
            session.execute(
                text(
                    "INSERT INTO dead_letters (task_id, task_name, reason, queue) "
                    "VALUES (:id, 'posts.publish', 'test', 'posts')"
                ),
                {"id": str(uuid.uuid4())},
            )
