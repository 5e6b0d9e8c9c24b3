"""Herald's rate limiter: decisions/s next to the `limits` library, and a correctness check.

Same Redis and same shape as `limiter_baseline` (one key, one window, a limit so high
that every call is admitted; we check all were): `single_per_s` is a loop of
`acquire()`, `pipelined_per_s` is `acquire_many()` in batches of 100 (the `limits`
library has no batched call). `publish_shape_per_s` is what a publish asks: the
app-wide key and the account's key with two windows, in one call. Each is compared
with `limits`' moving window (the exact strategy, like ours); its fixed window is in
the baseline's row of the same run. The ≥ 2x target is on the pipelined figure: a
single call of either library is one round trip, and `roundtrip_per_s` (a PING loop on
the same client) shows that ceiling — on these machines under 2x `limits`' own rate.

`over_admissions` hammers a 50-per-second key from two threads for a few seconds and
counts admissions beyond 50 in any 1 s interval of Redis time (must be 0).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bench.context import Context
from bench.limiter_baseline import ADMIT_ALL, WARMUP
from bench.registry import Measure, at_most, benchmark, ratio_at_least
from worker.resilience import limits_config
from worker.resilience.limits_config import LimitsConfig, Window
from worker.resilience.ratelimit import RateLimiter

MOVING = "limits_baseline.moving_window_per_s"
BATCH = 100
#: The correctness check: its limit per window, window (s), and batch per call.
CHECK_LIMIT, CHECK_WINDOW_S, CHECK_BATCH = 50, 1, 10


def _limiter(ctx: Context, name: str, *, app: Window, account: tuple[Window, ...]) -> RateLimiter:
    if not limits_config.enabled():
        ctx.skip(f"{limits_config.ENV_SWITCH}=off: nothing to measure")
    client = ctx.redis()
    prefix = ctx.key("rl", name)
    config = LimitsConfig(
        client,
        f"{prefix}:config",
        app_defaults={"instagram": (app,)},
        account_defaults={"instagram": account},
    )
    return RateLimiter(client, prefix, config)


def _rate(decisions: int, run: Callable[[int], int]) -> float:
    """Decisions/s of `run(n) -> admitted` after an untimed warm-up; all must be admitted."""
    run(WARMUP)
    started = time.perf_counter()
    admitted = run(decisions)
    elapsed = time.perf_counter() - started
    if admitted != decisions:
        raise RuntimeError(f"{decisions - admitted} of {decisions} decisions were refused")
    return decisions / elapsed


def _singles(limiter: RateLimiter, account: str | None) -> Callable[[int], int]:
    def run(n: int) -> int:
        return sum(limiter.acquire("instagram", account).allowed for _ in range(n))

    return run


def _pings(limiter: RateLimiter) -> Callable[[int], int]:
    def run(n: int) -> int:
        return sum(bool(limiter.redis.ping()) for _ in range(n))

    return run


def _pipelined(limiter: RateLimiter) -> Callable[[int], int]:
    def run(n: int) -> int:
        admitted = 0
        for start in range(0, n, BATCH):
            batch = [("instagram", None)] * min(BATCH, n - start)
            admitted += sum(d.allowed for d in limiter.acquire_many(batch))
        return admitted

    return run


def most_in_any_window(stamps: list[int], width_us: int) -> int:
    """The largest number of stamps in any half-open interval [t, t + width)."""
    ordered, most, first = sorted(stamps), 0, 0
    for last, stamp in enumerate(ordered):
        while ordered[first] <= stamp - width_us:
            first += 1
        most = max(most, last - first + 1)
    return most


def _hammer(limiter: RateLimiter, seconds: float) -> list[int]:
    """Two threads ask in batches until `seconds` of Redis time passed; admission times."""
    admitted: list[int] = []
    lock = threading.Lock()
    end = limiter.peek("instagram", None).at_us + int(seconds * 1e6)

    def worker() -> None:
        while True:
            decisions = limiter.acquire_many([("instagram", None)] * CHECK_BATCH)
            with lock:
                admitted.extend(d.at_us for d in decisions if d.allowed)
            if decisions[-1].at_us >= end:
                return
            if not decisions[-1].allowed:
                time.sleep(min(decisions[-1].retry_after, 0.002))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return admitted


@benchmark(
    "limiter",
    baseline={"single_per_s": MOVING, "pipelined_per_s": MOVING, "publish_shape_per_s": MOVING},
    target={"pipelined_per_s": ratio_at_least(2.0), "over_admissions": at_most(0)},
)
def limiter(ctx: Context) -> dict[str, Measure]:
    """Herald's limiter decisions/s (single, pipelined, publish-shaped) vs `limits`."""
    decisions = ctx.size(20_000, 2_000)
    pipelined = ctx.size(100_000, 10_000)
    admit_all = Window(60, ADMIT_ALL)
    one_key = _limiter(ctx, "one", app=admit_all, account=(admit_all,))
    two_keys = _limiter(ctx, "two", app=admit_all, account=(admit_all, Window(3600, ADMIT_ALL)))
    checked = _limiter(ctx, "check", app=Window(CHECK_WINDOW_S, CHECK_LIMIT), account=(admit_all,))
    check_s = ctx.size(3, 2)
    admitted = _hammer(checked, check_s)
    over = max(0, most_in_any_window(admitted, CHECK_WINDOW_S * 1_000_000) - CHECK_LIMIT)
    ctx.note("decisions", decisions)
    ctx.note("pipelined_decisions", pipelined)
    ctx.note("batch", BATCH)
    ctx.note("check", f"{CHECK_LIMIT}/{CHECK_WINDOW_S}s for {check_s}s: {len(admitted)} admitted")
    return {
        "single_per_s": Measure(_rate(decisions, _singles(one_key, None)), "decisions/s"),
        "pipelined_per_s": Measure(_rate(pipelined, _pipelined(one_key)), "decisions/s"),
        "publish_shape_per_s": Measure(_rate(decisions, _singles(two_keys, "a1")), "decisions/s"),
        "over_admissions": Measure(float(over), "admissions"),
        "roundtrip_per_s": Measure(_rate(decisions, _pings(one_key)), "round trips/s"),
    }
