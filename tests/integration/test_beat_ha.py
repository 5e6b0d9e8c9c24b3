"""Two beats (redbeat), one fires: each periodic task runs once per interval, counted
from the worker's side (its log of received tasks), before and after the active beat is
SIGKILLed and the standby takes over.

Given two real `celery beat` processes and a real worker, with one-second intervals,
when they run for a while, then every interval has one run and none has two; when the
beat holding redbeat's lock is SIGKILLed, then the standby takes the lock and fires within
the lock timeout + redbeat's lock poll + an interval, and still never twice.

Default run ≈ 60 s; `HERALD_CHAOS=full` (`make chaos`) runs each phase 5 minutes.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.beat import (
    BEAT_TIMINGS,
    DOUBLE_FIRE_GAP_S,
    INTERVAL_S,
    LOCK_TIMEOUT_S,
    BeatFactory,
    assert_once_per_interval,
    runs_of,
)
from tests.fixtures.waiting import wait_for, wait_until
from tests.fixtures.workers import WorkerFactory
from worker.constants import QUEUE_MAINTENANCE, QUEUE_POSTS, TASK_DISPATCH_DUE, TASK_HEARTBEAT
from worker.coordination.redis_client import get_redis
from worker.settings import get_settings
from worker.taskapp.config import celery_config

FULL = os.environ.get("HERALD_CHAOS") == "full"
#: Seconds each phase (both beats up; the standby alone) is watched.
PHASE_S = 300.0 if FULL else 22.0
ENTRIES = {TASK_HEARTBEAT: INTERVAL_S, TASK_DISPATCH_DUE: INTERVAL_S}


@pytest.fixture
def ha_env(publish_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """One-second intervals for the entries we count; the smallest lock timeout."""
    for name, value in BEAT_TIMINGS.items():
        monkeypatch.setenv(name, value)
    from worker import runtime

    runtime.reset()


def beat_log(tmp_path: Path, index: int) -> str:
    return (tmp_path / f"beat{index}.log").read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(2 * PHASE_S + 240)
def test_two_beats_fire_each_tick_once_and_the_standby_takes_over(
    ha_env: None,
    worker_process: WorkerFactory,
    beat_process: BeatFactory,
    tmp_path: Path,
) -> None:
    # Given a worker for both entries' queues and two beats, the first holding the lock
    worker = worker_process((QUEUE_POSTS, QUEUE_MAINTENANCE), concurrency=2)
    active = beat_process()  # returns once it holds redbeat's lock
    standby = beat_process()
    lock_key = get_settings().key("redbeat", ":lock")

    def all_alive() -> None:
        for process in (active, standby, worker.process):
            assert process.poll() is None, f"process {process.pid} exited {process.returncode}"

    # Let the first ticks pass (entries are created in Redis on start) before counting.
    wait_for(
        lambda: runs_of(worker.log(), TASK_HEARTBEAT, 0, time.time() + 1),
        timeout=30,
        what="the first heartbeat to reach the worker",
    )
    start = time.time()
    end = start + PHASE_S

    # When both run for a phase
    wait_until(end, "the first phase to pass", all_alive)

    # Then each entry ran once per interval, and only the lock holder sent anything
    log_text = worker.log()
    for task, interval in ENTRIES.items():
        assert_once_per_interval(runs_of(log_text, task, start, end), interval, start, end)
    assert "Sending due task" not in beat_log(tmp_path, 1), "the standby fired"

    # When the active beat is SIGKILLed (its lock stays until the TTL ends it)
    os.kill(active.pid, signal.SIGKILL)
    active.wait(10)
    killed_at = time.time()
    assert get_redis().exists(lock_key), "the lock vanished with its holder"

    # Then the standby takes over within the lock timeout + its lock poll + an interval
    poll_s = float(celery_config(get_settings())["beat_max_loop_interval"])
    bound = LOCK_TIMEOUT_S + poll_s + INTERVAL_S + 2.0  # 2 s: worker and log latency

    def standby_alive() -> None:
        for process in (standby, worker.process):
            assert process.poll() is None, f"process {process.pid} exited {process.returncode}"

    def standby_fired() -> float | None:
        standby_alive()
        later = runs_of(worker.log(), TASK_HEARTBEAT, killed_at + INTERVAL_S, time.time() + 1)
        return later[0] if later else None

    first = wait_for(standby_fired, timeout=bound + 10, what="the standby's first heartbeat")
    takeover_s = first - killed_at
    assert takeover_s <= bound, f"standby took {takeover_s:.1f} s (bound {bound:.1f} s)"
    assert "Sending due task" in beat_log(tmp_path, 1)

    # And it fires once per interval from then on, with no double fire at the hand-over
    resumed = first + INTERVAL_S
    end2 = resumed + PHASE_S
    wait_until(end2, "the second phase to pass", standby_alive)
    log_text = worker.log()
    for task, interval in ENTRIES.items():
        across = runs_of(log_text, task, start, end2)
        gaps = [b - a for a, b in itertools.pairwise(across)]
        assert min(gaps) >= DOUBLE_FIRE_GAP_S, f"{task} fired twice around the hand-over"
        assert_once_per_interval(runs_of(log_text, task, resumed, end2), interval, resumed, end2)
    print(f"takeover {takeover_s:.2f} s after SIGKILL (bound {bound:.1f} s)")


def _log_line(task: str, at: float) -> str:
    stamp = datetime.fromtimestamp(at, UTC).isoformat()
    return json.dumps({"event": f"Task {task}[x] received", "timestamp": stamp})


@pytest.mark.parametrize(
    ("runs", "caught"),
    [
        ([0.1, 1.1, 2.1, 2.102, 3.1], "fired twice"),  # one tick sent by both beats
        ([0.1, 0.6, 1.1, 1.6, 2.1, 2.6, 3.1, 3.6], "8 runs in 4 intervals"),  # unlocked beats
        ([0.1, 3.1], "only 2 runs"),  # beats stopped firing
    ],
)
def test_the_worker_side_count_catches_double_and_missing_fires(
    runs: list[float], caught: str
) -> None:
    # Given a worker log with these heartbeat runs (and noise it must ignore)
    base = 1_700_000_000.0
    lines = [_log_line(TASK_HEARTBEAT, base + at) for at in runs]
    lines += [_log_line(TASK_DISPATCH_DUE, base + 0.5), "not json", '{"event": "other"}']
    # When they are counted over [0, 4) s, then the checker fails naming what it saw
    counted = runs_of("\n".join(lines), TASK_HEARTBEAT, base, base + 4)
    assert len(counted) == len(runs)
    with pytest.raises(AssertionError, match=caught):
        assert_once_per_interval(counted, INTERVAL_S, base, base + 4)
