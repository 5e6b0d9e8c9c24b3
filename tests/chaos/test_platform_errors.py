"""Scenario 4: one platform answers half its publishes with 503 for a while. Its shared
breaker opens (deferring, not failing, its posts) and closes again once the platform
recovers; the other platforms publish throughout. Every post ends published or dead
with a reason, and none is published twice."""

from __future__ import annotations

import threading
import time

import pytest

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
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.settings import quick_breakers
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker.resilience.breaker import get_breakers

FAILING = "facebook"


class BreakerWatch:
    """Samples one breaker's shared state in a thread and keeps every change."""

    def __init__(self, platform: str) -> None:
        self.breaker = get_breakers()[platform]
        self.states: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            state = str(self.breaker.status()["state"])
            if not self.states or self.states[-1] != state:
                self.states.append(state)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(5)
        return self.states


def test_half_failing_platform_opens_and_closes_its_breaker_and_duplicates_nothing(
    chaos_env: dict[str, str],
    jittery_sandbox: SandboxServer,
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Short: 2 failures in a row open it. A short run makes only ~40 Facebook calls (20
    # posts, ~2 attempts each at 50 %); at 45 posts and 3 in a row, a run here never
    # opened the breaker before its posts ran out, and failed at the deadline.
    quick_breakers(monkeypatch, fail_max=sized(2, 3), reset_timeout=sized(1, 2))
    record = Record("platform_5xx")
    count, spread, fault_for = sized(60, 600), sized(3.0, 45.0), sized(3.0, 30.0)
    names = [f"b{i}" for i in range(sized(1, 2))]
    watch = BreakerWatch(FAILING)
    try:
        jittery_sandbox.set_faults(FAILING, error_rate=0.5, status=503)
        ids = insert_posts(count, due_in=1.0, spread=spread)
        workers, _ = side_by_side(
            lambda: start_workers(worker_process, names, concurrency=4),
            beat_process,  # type: ignore[arg-type]
        )
        storm(jittery_sandbox, watch, fault_for)
        record.faults = {
            "platform": FAILING,
            "error_rate": 0.5,
            "status": 503,
            "seconds": fault_for,
        }
        drain(ids, record, timeout=sized(120, 600))
        wait_for(
            lambda: watch.breaker.status()["state"] == "closed",
            timeout=30,
            what="the breaker to close",
        )
    finally:
        record.notes["breaker_states"] = watch.stop()
    record.notes["opened"] = record.notes["breaker_states"].count("open")
    assert record.notes["breaker_states"][-1] == "closed"
    audit(ids, jittery_sandbox, record, dead_allowed=True)
    assert statuses(ids).get("published", 0) > 0
    stop_workers(workers)


def storm(sandbox: SandboxServer, watch: BreakerWatch, fault_for: float) -> None:
    """Keep the 503s on for `fault_for` seconds and until the breaker has opened, then
    give the platform back its usual 0-1 s answers."""
    began = time.monotonic()
    wait_for(
        lambda: time.monotonic() - began >= fault_for and "open" in watch.states,
        timeout=fault_for + 60,
        interval=0.2,
        what="the fault window to pass with the breaker opened at least once",
    )
    sandbox.reset_faults(FAILING)
    sandbox.set_faults(FAILING, latency_ms=0, latency_jitter_ms=1000)
