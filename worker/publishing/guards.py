"""What stands between a publish and the platform: its circuit breaker, then its rate limits.

`enter` asks the platform's shared breaker and then the global limiter (app-wide cap
and the account's windows, one atomic call); either may say "not now, in N seconds",
and the job is deferred that long without spending an attempt. The limiter is asked
second so a throttled job never holds the breaker's single half-open probe. `leave`
tells the breaker how the call went and feeds the platform's own throttling signals
(429 / Retry-After, Graph codes, usage headers) back into the limiter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from worker.observability.metrics import RATE_LIMIT_DEFERRALS
from worker.platforms.errors import PlatformError, PlatformUsage
from worker.resilience import breaker
from worker.resilience.breaker import Admission
from worker.resilience.ratelimit import get_limiter
from worker.settings import get_settings

#: Deferred jobs come back spread over this fraction of their wait (at most a second),
#: so a crowd deferred to the same instant does not arrive at once.
JITTER_FRACTION = 0.1


@dataclass(frozen=True)
class Guard:
    platform: str
    account_id: str
    admission: Admission | None = None
    defer_for: float | None = None
    reason: str = ""


def enter(platform: str, account_id: str) -> Guard:
    """Admit the call, or say how long to defer it and why."""
    if not get_settings().breakers:
        return _limit(Guard(platform, account_id))
    admission = breaker.admit(platform)
    if not admission.allowed:
        reason = f"{platform} circuit breaker is {admission.state}"
        RATE_LIMIT_DEFERRALS.labels(platform, "breaker").inc()
        return Guard(platform, account_id, defer_for=_spread(admission.retry_after), reason=reason)
    guard = _limit(Guard(platform, account_id, admission=admission))
    if guard.defer_for is not None:
        breaker.release(platform, admission)
    return guard


def _limit(guard: Guard) -> Guard:
    decision = get_limiter().acquire(guard.platform, guard.account_id)
    if decision.allowed:
        return guard
    reason = f"rate limit reached ({decision.remaining} left)"
    RATE_LIMIT_DEFERRALS.labels(guard.platform, "limit").inc()
    return replace(guard, defer_for=_spread(decision.retry_after), reason=reason)


def leave(guard: Guard, error: BaseException | None, usage: PlatformUsage | None) -> None:
    """Report the call's outcome to the breaker and the platform's signals to the limiter."""
    if guard.admission is None:
        pass  # breakers off
    elif error is None:
        breaker.record_success(guard.platform, guard.admission)
    else:
        breaker.record_failure(guard.platform, error, guard.admission)
    platform_error = error if isinstance(error, PlatformError) else None
    get_limiter().feedback(guard.platform, guard.account_id, error=platform_error, usage=usage)


def _spread(delay: float) -> float:
    return delay + random.uniform(0, min(1.0, delay * JITTER_FRACTION))  # noqa: S311 - jitter
