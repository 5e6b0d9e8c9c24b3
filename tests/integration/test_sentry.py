"""Sentry: a real worker reports a failed task to a (local) Sentry, secrets withheld.

A thread in the test plays Sentry's ingestion endpoint (`/api/1/envelope/`) and keeps
every envelope it is sent, decompressed. The SDK in the worker sends there because its
DSN says so; nothing in Herald knows it is a test.
"""

from __future__ import annotations

import gzip
import json
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from celery import Celery
from celery.schedules import schedule
from redbeat import RedBeatSchedulerEntry  # type: ignore[import-untyped]

from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker.constants import (
    QUEUE_MAINTENANCE,
    QUEUE_POSTS,
    QUEUE_TOKENS,
    TASK_PUBLISH,
    TASK_REFRESH_EXPIRING,
)
from worker.observability.sentry import init_sentry
from worker.settings import load_settings

#: Secrets in the failing tasks' arguments: they must reach Sentry in no form.
TOKEN = "EAABsentrytok-5e4d3c2b1a"
URL_PASSWORD = "pw-sentry-9z8y7x"


class Envelopes:
    """What the fake Sentry received: raw (decompressed) bodies, in order."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def add(self, path: str, body: bytes) -> None:
        with self._lock:
            self.paths.append(path)
            self.bodies.append(body)

    def items(self, kind: str) -> list[dict[str, Any]]:
        """Every item of type `kind` of every envelope (JSON lines: header, then items)."""
        found = []
        with self._lock:
            bodies = list(self.bodies)
        for body in bodies:
            lines = body.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == kind:
                    found.append(json.loads(payload))
        return found

    def events(self) -> list[dict[str, Any]]:
        return self.items("event")


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding:
        raise AssertionError(f"the fake Sentry cannot read Content-Encoding {encoding!r}")
    return body


@pytest.fixture
def fake_sentry() -> Iterator[tuple[str, Envelopes]]:
    """A local ingestion endpoint; yields (DSN, what it received)."""
    received = Envelopes()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            received.add(self.path, _decompress(body, encoding))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: Any) -> None:  # quiet: pytest shows failures itself
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://public@127.0.0.1:{server.server_address[1]}/1", received
    finally:
        server.shutdown()
        server.server_close()


def _task_event(received: Envelopes, task_id: str) -> dict[str, Any] | None:
    for event in received.events():
        if event.get("tags", {}).get("celery_task_id") == task_id and event.get("exception"):
            return event
    return None


def test_a_failed_task_reaches_sentry_without_its_secrets(
    worker_process: WorkerFactory, control: Celery, fake_sentry: tuple[str, Envelopes]
) -> None:
    dsn, received = fake_sentry
    # Given: a worker whose SENTRY_DSN points at the fake Sentry.
    worker_process(
        (QUEUE_POSTS,),
        name="sentry",
        env={"SENTRY_DSN": dsn, "HERALD_SENTRY_ENVIRONMENT": "test", "HERALD_LOG_LEVEL": "DEBUG"},
    )
    # When: tasks fail on arguments holding a token and a URL with a password.
    with_token = control.send_task(
        TASK_PUBLISH,
        args=["7c9e6679-7425-40de-944b-e07fc1f90ae7"],
        kwargs={"access_token": TOKEN},
    ).id
    with_url = control.send_task(TASK_PUBLISH, args=[f"redis://:{URL_PASSWORD}@cache:6379/0"]).id

    # Then: each failure is an issue naming the task and its id ...
    for task_id in (with_token, with_url):
        event = wait_for(
            lambda task_id=task_id: _task_event(received, task_id),
            timeout=30,
            what=f"an exception event for task {task_id}",
        )
        assert event["extra"]["celery-job"]["task_name"] == TASK_PUBLISH
        assert event["environment"] == "test"
        assert event["release"].startswith("herald@")
        assert event["tags"]["component"] == "worker"
        assert "/api/1/envelope/" in received.paths
    # ... and no byte of anything sent holds a secret (extra, frames' vars, breadcrumbs).
    everything = b"\n".join(received.bodies)
    assert b"access_token" in everything  # the kwarg is named, its value withheld
    assert TOKEN.encode() not in everything
    assert URL_PASSWORD.encode() not in everything
    assert b"redis://:***@cache:6379/0" in everything


def test_beat_tasks_are_crons_monitors(
    publish_env: dict[str, str],
    worker_process: WorkerFactory,
    beat_process: Callable[[], object],
    fake_sentry: tuple[str, Envelopes],
    control: Celery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn, received = fake_sentry
    # Given: beat and a worker reporting to the fake Sentry.
    monkeypatch.setenv("SENTRY_DSN", dsn)
    worker_process((QUEUE_POSTS, QUEUE_TOKENS, QUEUE_MAINTENANCE), name="crons")
    # ... and a token sweep (every 5 minutes) that last ran 5 minutes ago, so due now.
    # (Sentry Crons takes whole minutes only: the dispatcher's and heartbeat's
    # second-intervals are not monitors.)
    with warnings.catch_warnings():
        # worker/taskapp/config.py sets no redbeat_redis_options yet (redbeat then warns once).
        warnings.filterwarnings("ignore", "RedBeat will stop falling back", DeprecationWarning)
        sweep = RedBeatSchedulerEntry(
            "refresh-expiring-tokens", TASK_REFRESH_EXPIRING, schedule(300.0), app=control
        )
        sweep.save().reschedule(last_run_at=datetime.now(UTC) - timedelta(seconds=300))
    # When: beat sends it and the worker runs it.
    beat_process()

    # Then: it checks in to its monitor, started by beat and finished by the worker.
    def sweep_check_ins() -> list[dict[str, Any]]:
        return [
            item
            for item in received.items("check_in")
            if item.get("monitor_slug") == "refresh-expiring-tokens"
        ]

    wait_for(
        lambda: {"in_progress", "ok"} <= {item["status"] for item in sweep_check_ins()},
        timeout=60,
        what="check-ins of the refresh-expiring-tokens monitor",
    )
    started = next(item for item in sweep_check_ins() if item["status"] == "in_progress")
    assert started["monitor_config"]["schedule"] == {
        "type": "interval",
        "value": 5,
        "unit": "minute",
    }
    assert started["environment"] == "development" and started["release"].startswith("herald@")


def test_without_a_dsn_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    assert init_sentry(load_settings(), "worker") is False


def test_an_unknown_component_is_refused() -> None:
    with pytest.raises(ValueError, match="component must be one of"):
        init_sentry(load_settings(), "flower")
