"""Request ids: one id per request through every message its job causes, in real workers.

Given a post sent with `x-request-id` and one sent without, a platform that fails (so
the posts are retried, then deferred by the open breaker) and then recovers, the
worker's JSON log lines of each post all carry one request id: the header's, or one
the first run made up and every later message carried.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import text

from tests.fixtures.cli import json_lines
from tests.fixtures.posting import InsertPosts, wait_all
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.settings import quick_breakers
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory, WorkerProcess
from worker.constants import HEADER_REQUEST_ID, QUEUE_DEAD_LETTER, QUEUE_POSTS, TASK_PUBLISH
from worker.db.session import unit_of_work

REQUEST_ID = "req-corr-7f3a"
JSON_LOGS = {"HERALD_LOG_FORMAT": "json", "HERALD_LOG_LEVEL": "INFO"}


def _lines_of(worker: WorkerProcess, post_id: uuid.UUID) -> list[dict[str, Any]]:
    return [line for line in json_lines(worker.log()) if line.get("post_id") == str(post_id)]


def _attempts(post_id: uuid.UUID) -> list[str]:
    with unit_of_work() as session:
        rows = session.execute(
            text("SELECT outcome FROM post_attempts WHERE post_id = :id ORDER BY id"),
            {"id": post_id},
        )
        return [row.outcome for row in rows]


def test_retries_and_deferrals_carry_the_request_id(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    sandbox: SandboxServer,
    control: Celery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given: a failing platform, a breaker that opens after two failures, many attempts.
    quick_breakers(monkeypatch, fail_max=2, reset_timeout=1, max_attempts=40)
    sandbox.set_faults("instagram", error_rate=1.0, status=503)
    with_header, without = insert_posts(2, platforms=("instagram",))
    worker = worker_process((QUEUE_POSTS,), concurrency=2, env=JSON_LOGS)

    # When: one is sent with the header, one without; both fail, retry and are deferred.
    control.send_task(
        TASK_PUBLISH, args=[str(with_header)], headers={HEADER_REQUEST_ID: REQUEST_ID}
    )
    control.send_task(TASK_PUBLISH, args=[str(without)])
    wait_for(
        lambda: all(
            any(line.get("event") == "publish.deferred" for line in _lines_of(worker, post))
            for post in (with_header, without)
        ),
        timeout=60,
        what="both posts to be retried and then deferred by the open breaker",
    )
    sandbox.reset_faults("instagram")
    wait_all([with_header, without], "published", timeout=60)

    # Then: every line of a post, over all its messages, carries the same request id.
    generated = None
    for post, expected in ((with_header, REQUEST_ID), (without, None)):
        lines = _lines_of(worker, post)
        events = {line["event"] for line in lines}
        assert {"publish.failed", "publish.deferred", "publish.done"} <= events, events
        assert len({line["task_id"] for line in lines}) >= 3  # first run, retry, deferral
        assert "transient" in _attempts(post)
        ids = {line.get("request_id") for line in lines}
        assert len(ids) == 1, f"post {post} logged under several request ids: {ids}"
        (request_id,) = ids
        if expected is not None:
            assert request_id == expected
        else:
            generated = request_id
        for line in lines:
            assert line["task_name"] == TASK_PUBLISH and line["queue"] == QUEUE_POSTS
            assert isinstance(line["attempt"], int) and line["attempt"] >= 1
    assert generated and generated != REQUEST_ID and len(generated) == 32


def test_a_dead_letter_is_recorded_under_the_request_id(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    sandbox: SandboxServer,
    control: Celery,
) -> None:
    # Given: a platform that rejects the post outright (permanent: straight to dead).
    sandbox.set_faults("instagram", error_rate=1.0, status=400)
    (post,) = insert_posts(1, platforms=("instagram",))
    worker = worker_process((QUEUE_POSTS, QUEUE_DEAD_LETTER), concurrency=2, env=JSON_LOGS)

    # When: it is sent with a request id and dies.
    sent = control.send_task(
        TASK_PUBLISH, args=[str(post)], headers={HEADER_REQUEST_ID: REQUEST_ID}
    )
    wait_all([post], "dead", timeout=60)

    # Then: the recorder's line (another task, another message) carries the same id.
    def recorded() -> dict[str, Any] | None:
        for line in json_lines(worker.log()):
            if (
                line.get("event") == "deadletter.recorded"
                and line.get("original_task_id") == sent.id
            ):
                return line
        return None

    line = wait_for(recorded, timeout=30, what="the dead letter to be recorded")
    assert line["request_id"] == REQUEST_ID
    assert line["task_id"] != sent.id
    dead = [line for line in _lines_of(worker, post) if line.get("event") == "publish.dead"]
    assert dead and dead[0]["request_id"] == REQUEST_ID
