"""The proof that the limit is global: real processes hammer one key, none over-admits.

Six interpreters, each with its own `RateLimiter` (reading the limit from the real
overrides hash, as every worker does), ask for one app-wide key limited to 20 per 2 s
for 6 s of Redis time. Each reports the Redis time of every admission it got. Then no interval
of 2 s may hold more than 20 of them, and the 6 s must have used (nearly) all
3 x 20 slots: a limiter that admits too little is as wrong as one that admits too much.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.waiting import wait_for
from worker.coordination.redis_client import get_redis
from worker.resilience.limits_config import LimitsConfig, LimitTarget, parse
from worker.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 6
LIMIT, WINDOW_S, PERIOD_S = 20, 2, 6.0
#: A refused caller asks again after min(retry_after, this): a hammer, not a spin.
PAUSE_S = 0.002

# Light imports (no settings, no SQLAlchemy): six start-ups share two cores.
HAMMER = """
import json, sys, time
import redis
from worker.resilience.ratelimit import RateLimiter

url, prefix, period_us, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
client = redis.Redis.from_url(url, decode_responses=True)
limiter = RateLimiter(client, prefix)
limiter.peek("instagram", None)  # script loaded, overrides read: the race starts warm
client.rpush(prefix + ":test:ready", 1)
_, start = client.blpop([prefix + ":test:go"], timeout=60)
end = int(start) + period_us
admitted, calls = [], 0
while True:
    decision = limiter.acquire("instagram", None)
    calls += 1
    if decision.allowed:
        admitted.append(decision.at_us)
    elif decision.at_us < end:
        time.sleep(min(decision.retry_after, pause))
    if decision.at_us >= end:
        break
print(json.dumps({"admitted": admitted, "calls": calls}))
"""


def most_in_any_window(stamps: list[int], width_us: int) -> int:
    """The largest number of stamps in any half-open interval [t, t + width)."""
    ordered = sorted(stamps)
    most, first = 0, 0
    for last, stamp in enumerate(ordered):
        while ordered[first] <= stamp - width_us:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_most_in_any_window_counts_half_open_intervals() -> None:
    assert most_in_any_window([0, 1, 2, 10, 11], 10) == 3
    assert most_in_any_window([0, 9, 10, 11], 10) == 3
    assert most_in_any_window([], 10) == 0


def redis_now_us() -> int:
    seconds, micros = get_redis().time()
    return int(seconds) * 1_000_000 + int(micros)


def test_processes_hammering_one_key_never_over_admit(namespace: str, tmp_path: Path) -> None:
    # Given the app-wide Instagram cap set to 20 per 2 s, as `herald limits set` would
    prefix = get_settings().key("rl")
    LimitsConfig(get_redis(), f"{prefix}:config").set(
        LimitTarget("instagram", "app"), parse(f"{LIMIT}/{WINDOW_S}s")
    )
    ready, go = f"{prefix}:test:ready", f"{prefix}:test:go"
    period_us = int(PERIOD_S * 1e6)
    url = str(get_settings().redis_url)
    argv = [sys.executable, "-c", HAMMER, url, prefix, str(period_us), str(PAUSE_S)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = [(tmp_path / f"hammer{i}.err").open("wb") for i in range(PROCESSES)]
    hammers = [
        subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
        for log in logs
    ]
    try:
        # When they all start at once and hammer for the period
        wait_for(
            lambda: int(get_redis().llen(ready)) == PROCESSES,
            timeout=60,
            interval=0.1,
            what=f"{PROCESSES} hammer processes to be ready",
        )
        start = redis_now_us()
        get_redis().rpush(go, *[start] * PROCESSES)
        outputs = [json.loads(hammer.communicate(timeout=60)[0]) for hammer in hammers]
    finally:
        for hammer in hammers:
            if hammer.poll() is None:
                hammer.kill()
                hammer.wait()
        for log in logs:
            log.close()
    assert all(hammer.returncode == 0 for hammer in hammers)
    # Then no 2 s interval holds more than 20 admissions, and the period used its slots
    admitted = [stamp for output in outputs for stamp in output["admitted"]]
    calls = sum(output["calls"] for output in outputs)
    in_period = [stamp for stamp in admitted if start <= stamp < start + period_us]
    assert most_in_any_window(admitted, WINDOW_S * 1_000_000) == LIMIT
    best_possible = LIMIT * int(PERIOD_S / WINDOW_S)
    assert len(in_period) >= 0.95 * best_possible, (len(in_period), calls)
    assert calls > 10 * best_possible  # they did hammer: most requests were refused
    assert sum(1 for output in outputs if output["admitted"]) >= 2  # and several won slots
