"""Logs: JSON lines from a real worker carry the task's id, name and its own ids."""

from __future__ import annotations

import io
import json
from typing import Any

import structlog
from celery import Celery

from tests.fixtures.cli import json_lines
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker.constants import QUEUE_MAINTENANCE, TASK_HEARTBEAT
from worker.observability.logging import bind_task, configure_logging, unbind_task
from worker.settings import load_settings


def test_a_task_logs_json_lines_carrying_its_task_id(
    worker_process: WorkerFactory, control: Celery
) -> None:
    worker = worker_process((QUEUE_MAINTENANCE,), name="logs")
    task_id = control.send_task(TASK_HEARTBEAT).id

    def heartbeat_line() -> dict[str, Any] | None:
        for line in json_lines(worker.log()):
            if line.get("event") == "beat.heartbeat":
                return line
        return None

    line = wait_for(heartbeat_line, timeout=30, what="the task's log line")
    assert line["task_id"] == task_id
    assert line["task_name"] == TASK_HEARTBEAT
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")


def test_bound_ids_reach_every_line_and_are_cleared_after(monkeypatch: Any) -> None:
    monkeypatch.setenv("HERALD_LOG_FORMAT", "json")
    stream = io.StringIO()
    configure_logging(load_settings(), stream=stream)
    log = structlog.get_logger("test")
    bind_task("t-1", "posts.publish", {"post_id": "p-1", "platform": "instagram", "content": "x"})
    log.info("inside")
    unbind_task()
    log.info("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["task_id"] == "t-1"
    assert inside["post_id"] == "p-1"
    assert inside["platform"] == "instagram"
    assert "content" not in inside  # only ids are bound, never payloads
    assert "task_id" not in outside
