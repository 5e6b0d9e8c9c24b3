"""Scenario 4: one platform answers half its publishes with 503 for a while. Its shared
breaker opens (deferring, not failing, its posts) and closes again once the platform
recovers; the other platforms publish throughout. Every post ends published or dead
with a reason, and none is published twice."""

from __future__ import annotations

import threading
import time

import pytest

from tests.chaos.harness import Record, audit, drain, sized
from tests.fixtures.posting import InsertPosts, statuses
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.services import reset_process_state
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
    for name, value in {
        "HERALD_BREAKER_FAIL_MAX": "3",
        "HERALD_BREAKER_RESET_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(name, value)
    reset_process_state()
    record = Record("platform_5xx")
    count, spread, fault_for = sized(45, 600), sized(5.0, 45.0), sized(5.0, 30.0)
    for i in range(sized(1, 2)):
        worker_process(concurrency=4, name=f"b{i}")
    watch = BreakerWatch(FAILING)
    jittery_sandbox.set_faults(FAILING, error_rate=0.5, status=503)
    ids = insert_posts(count, spread=spread)
    beat_process()  # type: ignore[operator]

    began = time.monotonic()
    wait_for(
        lambda: time.monotonic() - began >= fault_for and "open" in watch.states,
        timeout=fault_for + 60,
        interval=0.2,
        what="the fault window to pass with the breaker opened at least once",
    )
    jittery_sandbox.reset_faults(FAILING)
    jittery_sandbox.set_faults(FAILING, latency_ms=0, latency_jitter_ms=1000)
    record.faults = {"platform": FAILING, "error_rate": 0.5, "status": 503, "seconds": fault_for}

    drain(ids, record, timeout=sized(120, 600))
    wait_for(
        lambda: watch.breaker.status()["state"] == "closed",
        timeout=30,
        what="the breaker to close",
    )
    record.notes["breaker_states"] = watch.stop()
    record.notes["opened"] = record.notes["breaker_states"].count("open")
    assert record.notes["breaker_states"][-1] == "closed"
    audit(ids, jittery_sandbox, record, dead_allowed=True)
    assert statuses(ids).get("published", 0) > 0
