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
from worker.constants import QUEUE_MAINTENANCE, QUEUE_POSTS, TASK_HEARTBEAT, TASK_PUBLISH
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


#: Secrets a caller put in task arguments; none may reach the worker's log.
ARG_TOKEN = "EAABtok-9f8e7d6c5b4a"
URL_PASSWORD = "pw-1a2b3c4d5e"
FERNET_TEXT = "gAAAAABmQ1x2y3z4_abcdefghijklmnopqrstuvwxyz0123456789-_=="


def test_secrets_in_task_arguments_never_reach_the_worker_log(
    worker_process: WorkerFactory, control: Celery
) -> None:
    # Given: a worker logging everything (DEBUG: Celery's own lines with argument reprs).
    worker = worker_process(
        (QUEUE_POSTS,),
        name="redact",
        env={"HERALD_LOG_FORMAT": "json", "HERALD_LOG_LEVEL": "DEBUG"},
    )
    # When: tasks fail on arguments that hold a token, a Fernet string and a URL password.
    bad_kwargs = control.send_task(
        TASK_PUBLISH,
        args=["7c9e6679-7425-40de-944b-e07fc1f90ae7"],
        kwargs={"access_token": ARG_TOKEN, "note": FERNET_TEXT},
    ).id
    bad_id = control.send_task(TASK_PUBLISH, args=[f"postgresql://u:{URL_PASSWORD}@db/x"]).id

    def both_failed() -> bool:
        lines = json_lines(worker.log())
        failed = {line.get("task_id") for line in lines if line.get("level") == "error"}
        return {bad_kwargs, bad_id} <= failed

    wait_for(both_failed, timeout=30, what="both tasks to fail and be logged")
    # Then: the lines are there, the secrets are not (in any line, JSON or not).
    log = worker.log()
    assert "publish.invalid_input" in log and "access_token" in log
    for secret in (ARG_TOKEN, URL_PASSWORD, FERNET_TEXT):
        assert secret not in log
    assert "postgresql://u:***@db/x" in log
