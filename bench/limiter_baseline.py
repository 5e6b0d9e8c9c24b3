"""The `limits` library's Redis rate limiters: decisions/s to compare Herald's limiter with.

One key, a limit high enough that every call is admitted (a rejected call would be
cheaper and flatter the figure; we check all were admitted), single calls in a loop
from one client. `limits` (5.x) has no batched or pipelined `hit`, so there is no
pipelined figure for it; Herald's limiter can report one of its own.

For a comparison inside another benchmark's run, call `limits_decisions_per_s()`.
"""

from __future__ import annotations

import time
from typing import Literal

from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from bench.context import Context
from bench.registry import Measure, benchmark

Strategy = Literal["moving_window", "fixed_window"]
#: High enough that no call in a run is refused.
ADMIT_ALL = 1_000_000_000
#: Untimed calls first: script loading and the connection are not what we measure.
WARMUP = 200


def limits_decisions_per_s(
    redis_url: str, key_prefix: str, strategy: Strategy, decisions: int
) -> float:
    """Time `decisions` single `hit()` calls of `limits`' `strategy` on one key."""
    storage = RedisStorage(redis_url, key_prefix=key_prefix)
    limiter = (
        MovingWindowRateLimiter(storage)
        if strategy == "moving_window"
        else FixedWindowRateLimiter(storage)
    )
    item = RateLimitItemPerMinute(ADMIT_ALL)
    try:
        for _ in range(WARMUP):
            limiter.hit(item, "bench", strategy)
        admitted = 0
        started = time.perf_counter()
        for _ in range(decisions):
            admitted += limiter.hit(item, "bench", strategy)
        elapsed = time.perf_counter() - started
    finally:
        storage.storage.close()
    if admitted != decisions:
        raise RuntimeError(f"limits {strategy}: {decisions - admitted} calls refused")
    return decisions / elapsed


@benchmark("limits_baseline")
def limits_baseline(ctx: Context) -> dict[str, Measure]:
    """`limits` MovingWindow / FixedWindow decisions/s, single calls, same Redis (baseline)."""
    decisions = ctx.size(20_000, 2_000)
    prefix = ctx.key("limits")
    ctx.note("decisions", decisions)
    ctx.note("pipelined", "not supported by the limits library")
    return {
        f"{strategy}_per_s": Measure(
            limits_decisions_per_s(ctx.redis_url, prefix, strategy, decisions), "decisions/s"
        )
        for strategy in ("moving_window", "fixed_window")
    }
