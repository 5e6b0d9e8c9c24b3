"""Beat rides out a Redis outage: it waits (never exits), keeps or re-takes its leadership
lock when Redis returns, resumes firing, and two beats still never fire the same tick.

Given a worker and two real `celery beat` processes (Herald's redbeat scheduler) on a
private, append-only redis-server (the machine's Redis serves other tests and is never
stopped), when that Redis is SIGKILLed for ~8 s (longer than the lock timeout, so the
lock expires while nobody can extend it) and started again, then both beats are the same
processes, heartbeats reach the worker again within a bound, the beats logged the wait,
and no tick was sent twice.

Double fires are counted twice over: on the beats' side (every "Sending due task" line of
both beats: two sends of one entry closer than half an interval is one tick fired twice),
and on the worker's side once it is reconnected (`test_beat_ha`'s count). The worker's
count cannot judge the reconnect itself: messages queued while it was away arrive in a
burst, which looks like a double fire but is not one.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from schedules.leadership import MAX_WAIT_S
from tests.fixtures.beat import (
    BEAT_TIMINGS,
    DOUBLE_FIRE_GAP_S,
    INTERVAL_S,
    BeatFactory,
    assert_once_per_interval,
    runs_of,
)
from tests.fixtures.private_servers import PrivateRedis, private_redis_server
from tests.fixtures.services import reset_process_state
from tests.fixtures.waiting import wait_for, wait_until
from tests.fixtures.workers import WorkerFactory
from worker.constants import QUEUE_MAINTENANCE, QUEUE_POSTS, TASK_HEARTBEAT
from worker.coordination.redis_client import get_redis
from worker.local.processes import beat_argv
from worker.settings import get_settings
from worker.taskapp.config import celery_config

#: Longer than LOCK_TIMEOUT_S: the leader's lock expires during the outage.
DOWN_S = 8.0
#: Shorter than the default lock timeout: the leader keeps its lock.
SHORT_DOWN_S = 4.0
#: Seconds of steady firing watched before the outage and after the worker is back.
STEADY_S = 8.0
#: The worker reconnects on Celery's broker retry schedule (2, 4, 6 … s apart).
WORKER_RECONNECT_S = 8.0
#: A beat waiting for Redis stops within this after SIGTERM (its longest wait + slack).
STOP_BOUND_S = MAX_WAIT_S + 5.0
SEND_PREFIX = "Scheduler: Sending due task "


@pytest.fixture
def outage_redis(
    publish_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PrivateRedis]:
    """A private redis-server as REDIS_URL (broker, beat's lock, coordination) and the
    beat tests' timings (`BEAT_TIMINGS`). Request it before `worker_process` and
    `beat_process`."""
    with private_redis_server(tmp_path / "redis") as server:
        settings = {"REDIS_URL": server.url, **BEAT_TIMINGS}
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        reset_process_state()
        yield server


def spawn_beat(log_path: Path) -> subprocess.Popen[bytes]:
    """A beat not waited on (`beat_process` waits for its lock, on a Redis that is up)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(beat_argv(), env={**os.environ}, stdout=log, stderr=log)


def beat_records(log_text: str) -> list[dict[str, object]]:
    records = []
    for line in log_text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def sends(log_texts: list[str], entry: str) -> list[float]:
    """When any of the beats sent `entry` (epoch seconds), merged and sorted."""
    found = []
    for text in log_texts:
        for record in beat_records(text):
            event = str(record.get("event", ""))
            if event.startswith(f"{SEND_PREFIX}{entry} "):
                found.append(datetime.fromisoformat(str(record["timestamp"])).timestamp())
    return sorted(found)


def assert_never_twice(sent: list[float], entry: str) -> None:
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(sent)]
    doubles = [gap for gap in gaps if gap < DOUBLE_FIRE_GAP_S]
    assert not doubles, f"{entry} sent twice by the beats: gaps {doubles} s"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_beats_ride_out_a_redis_outage_and_never_fire_twice(
    outage_redis: PrivateRedis,
    worker_process: WorkerFactory,
    beat_process: BeatFactory,
    tmp_path: Path,
) -> None:
    # Given a worker and two beats on the private Redis, the first holding the lock
    worker = worker_process((QUEUE_POSTS, QUEUE_MAINTENANCE), concurrency=2)
    beats = [beat_process(), beat_process()]
    pids = [beat.pid for beat in beats]

    def all_alive() -> None:
        for process in [*beats, worker.process]:
            assert process.poll() is None, f"process {process.pid} exited {process.returncode}"

    def heartbeat_after(moment: float) -> float | None:
        all_alive()
        later = runs_of(worker.log(), TASK_HEARTBEAT, moment, time.time() + 1)
        return later[0] if later else None

    wait_for(lambda: heartbeat_after(0), timeout=30, what="the first heartbeat")
    wait_until(time.time() + STEADY_S, "a steady phase", all_alive)

    # When Redis is SIGKILLed and stays down longer than the lock lives, then returns
    outage_redis.kill()
    killed_at = time.time()
    wait_until(killed_at + DOWN_S, "the outage to last", all_alive)  # nobody exits meanwhile
    outage_redis.start()
    restarted_at = time.time()

    # Then the same beat processes send heartbeats that reach the worker within the bound
    poll_s = float(celery_config(get_settings())["beat_max_loop_interval"])
    bound = MAX_WAIT_S + poll_s + WORKER_RECONNECT_S + INTERVAL_S + 2.0  # 2 s: log latency
    first = wait_for(lambda: heartbeat_after(restarted_at), timeout=bound + 15, what="resume")
    resumed_s = first - restarted_at
    assert resumed_s <= bound, f"heartbeats resumed {resumed_s:.1f} s after Redis (> {bound})"
    assert [beat.pid for beat in beats] == pids

    # And once the worker is back, each tick runs once per interval
    counted_from = first + 2 * INTERVAL_S  # past the burst queued while it reconnected
    end = counted_from + STEADY_S
    wait_until(end, "the phase after the outage", all_alive)
    log_text = worker.log()
    runs = runs_of(log_text, TASK_HEARTBEAT, counted_from, end)
    assert_once_per_interval(runs, INTERVAL_S, counted_from, end)
    assert not runs_of(log_text, TASK_HEARTBEAT, killed_at + 1.0, restarted_at)

    # And across the whole run no beat sent a tick the other had sent (the beats' logs)
    logs = [(tmp_path / f"beat{i}.log").read_text(errors="replace") for i in range(2)]
    for entry in ("heartbeat", "dispatch-due"):
        assert_never_twice(sends(logs, entry), entry)
    events = [str(r.get("event")) for text in logs for r in beat_records(text)]
    assert "beat.redis_unavailable" in events, "the beats never logged waiting for Redis"
    print(f"heartbeats resumed {resumed_s:.2f} s after Redis came back (bound {bound:.1f} s)")


@pytest.mark.timeout(120)
def test_a_beat_started_while_redis_is_down_waits_then_fires(
    outage_redis: PrivateRedis, worker_process: WorkerFactory, tmp_path: Path
) -> None:
    # Given a worker, and Redis down when beat starts
    worker = worker_process((QUEUE_POSTS, QUEUE_MAINTENANCE), concurrency=1)
    outage_redis.kill()
    log_path = tmp_path / "beat-late.log"
    beat = spawn_beat(log_path)
    try:
        # When it has waited a while (logging so), then Redis starts
        def waiting() -> bool:
            assert beat.poll() is None, f"beat exited {beat.returncode}:\n{log_path.read_text()}"
            return "beat.redis_unavailable" in log_path.read_text(errors="replace")

        wait_for(waiting, timeout=30, interval=0.2, what="beat to log that Redis is down")
        assert beat.poll() is None
        outage_redis.start()
        restarted_at = time.time()

        # Then the same beat takes the lock and its heartbeats reach the worker
        def fired() -> float | None:
            assert beat.poll() is None, f"beat exited {beat.returncode}"
            later = runs_of(worker.log(), TASK_HEARTBEAT, restarted_at, time.time() + 1)
            return later[0] if later else None

        first = wait_for(fired, timeout=60, interval=0.2, what="a heartbeat after Redis started")
        print(f"first heartbeat {first - restarted_at:.2f} s after Redis started")
    finally:
        beat.terminate()
        beat.wait(20)


@pytest.mark.timeout(120)
def test_a_short_outage_keeps_the_leaders_lock(
    outage_redis: PrivateRedis,
    worker_process: WorkerFactory,
    beat_process: BeatFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Given a beat whose lock outlives the outage (the append-only file keeps its TTL)
    monkeypatch.setenv("HERALD_BEAT_LOCK_TIMEOUT", "30")
    reset_process_state()
    worker = worker_process((QUEUE_POSTS, QUEUE_MAINTENANCE), concurrency=1)
    beat = beat_process()
    lock_key = get_settings().key("redbeat", ":lock")
    token = get_redis().get(lock_key)

    def beat_alive() -> None:
        assert beat.poll() is None, f"beat exited {beat.returncode}"

    def heartbeat_after(moment: float) -> float | None:
        beat_alive()
        later = runs_of(worker.log(), TASK_HEARTBEAT, moment, time.time() + 1)
        return later[0] if later else None

    wait_for(lambda: heartbeat_after(0), timeout=30, what="the first heartbeat")

    # When Redis is down for a few seconds, then back
    outage_redis.kill()
    wait_until(time.time() + SHORT_DOWN_S, "a short outage", beat_alive)
    outage_redis.start()
    restarted_at = time.time()

    # Then the same beat fires again, still holding the very lock it took (same token)
    wait_for(lambda: heartbeat_after(restarted_at), timeout=30, what="heartbeats to resume")
    assert get_redis().get(lock_key) == token, "the leader re-took (or lost) its lock"
    events = [str(r.get("event")) for r in beat_records((tmp_path / "beat0.log").read_text())]
    assert "beat.redis_unavailable" in events
    assert "beat.leadership_lost" not in events


@pytest.mark.timeout(120)
def test_a_beat_waiting_for_redis_stops_promptly_on_sigterm(
    outage_redis: PrivateRedis, tmp_path: Path
) -> None:
    # Given a beat that took its lock, then lost Redis and is waiting for it
    log_path = tmp_path / "beat-stop.log"
    beat = spawn_beat(log_path)
    try:
        lock_key = get_settings().key("redbeat", ":lock")
        wait_for(lambda: get_redis().exists(lock_key), timeout=60, what="beat to take its lock")
        outage_redis.kill()
        wait_for(
            lambda: "beat.redis_unavailable" in log_path.read_text(errors="replace"),
            timeout=30,
            interval=0.2,
            what="beat to log that Redis is down",
        )
        # When it is asked to stop
        beat.terminate()
        # Then it exits at once and cleanly: its lock is left to its TTL, not a traceback
        assert beat.wait(STOP_BOUND_S) == 0, log_path.read_text(errors="replace")
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
