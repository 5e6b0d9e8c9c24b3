"""Circuit-breaker cost per guarded call: Herald's Redis breaker vs pybreaker's own.

Both guard a no-op in the closed state (the publish path's common case) on the same
Redis, one client, single calls in a loop. Herald's breaker makes one Lua call per
healthy guarded call (admit; a success with nothing to reset is not sent);
pybreaker's ``CircuitRedisStorage`` reads and writes field by field. Round trips per
call are counted on the client (``execute_command``), outside the timed loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pybreaker
import redis

from bench.context import Context
from bench.registry import Measure, benchmark, ratio_at_least

#: Untimed calls first: script loading and the connection are not what we measure.
WARMUP = 200


def _noop() -> None:
    return None


def _timed(call: Callable[[], object], client: redis.Redis, n: int) -> tuple[float, float]:
    """Calls per second of `call`, and round trips to Redis per call."""
    for _ in range(WARMUP):
        call()
    started = time.perf_counter()
    for _ in range(n):
        call()
    elapsed = time.perf_counter() - started
    return n / elapsed, _round_trips(call, client, WARMUP)


def _round_trips(call: Callable[[], object], client: redis.Redis, n: int) -> float:
    sent = 0
    execute: Callable[..., Any] = client.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        nonlocal sent
        sent += 1
        return execute(*args, **options)

    client.execute_command = counting  # type: ignore[method-assign]
    try:
        for _ in range(n):
            call()
    finally:
        del client.execute_command
    return sent / n


@benchmark("pybreaker_redis_baseline")
def pybreaker_redis_baseline(ctx: Context) -> dict[str, Measure]:
    """pybreaker 1.x CircuitBreaker + CircuitRedisStorage guarding a no-op (baseline)."""
    n = ctx.size(10_000, 1_000)
    client = redis.Redis.from_url(ctx.redis_url)  # its storage wants bytes replies
    ctx.stack.callback(client.close)
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, client, namespace=ctx.key("pybreaker")
    )
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30, state_storage=storage)
    per_s, commands = _timed(lambda: breaker.call(_noop), client, n)
    ctx.note("calls", n)
    ctx.note("round_trips_per_call", round(commands, 2))
    return {"guarded_calls_per_s": Measure(per_s, "calls/s")}


@benchmark(
    "breaker_redis",
    baseline="pybreaker_redis_baseline",
    target={"guarded_calls_per_s": ratio_at_least(1.0)},
)
def breaker_redis(ctx: Context) -> dict[str, Measure]:
    """Herald's PlatformBreaker guarding a no-op (one Lua call when healthy)."""
    from worker.resilience.breaker import PlatformBreaker

    n = ctx.size(10_000, 1_000)
    client = ctx.redis()
    breaker = PlatformBreaker(
        "facebook", client=lambda: client, key=lambda: ctx.key("breaker", "bench")
    )
    per_s, commands = _timed(lambda: breaker.call(_noop), client, n)
    admits_per_s, _ = _timed(breaker.admit, client, n)
    ctx.note("calls", n)
    ctx.note("round_trips_per_call", round(commands, 2))
    return {
        "guarded_calls_per_s": Measure(per_s, "calls/s"),
        "admits_per_s": Measure(admits_per_s, "decisions/s"),
    }
