"""What to do after a platform call failed: retry (backoff, full jitter), defer, or give up.

Transient errors (timeouts, 5xx, connection errors, an unknown outcome) are retried
with exponential backoff and full jitter up to a maximum; the platform's Retry-After
wins when it is longer. Rate limiting defers without spending a retry. Permanent
errors and expired authorization are not retried: they go to dead letters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from worker.platforms.errors import (
    AuthExpiredError,
    PermanentError,
    PlatformError,
    RateLimitedError,
    TransientError,
)
from worker.settings import Settings

Action = Literal["retry", "defer", "dead"]


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed platform call: ``retry`` after ``delay`` seconds,
    ``defer`` that long without spending a retry, or ``dead`` (dead letters); ``reason``
    says why, for logs and the post's last error."""

    action: Action
    delay: float
    reason: str


def backoff(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**(failures - 1))) (AWS architecture blog)."""
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return (rng or random).uniform(0, ceiling)  # jitter, not cryptography


def decide(
    error: PlatformError,
    *,
    failures: int,
    max_failures: int,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> RetryDecision:
    """`failures` counts transient failures so far, this one included."""
    if isinstance(error, RateLimitedError):
        return RetryDecision("defer", max(error.retry_after, 0.0), "rate limited by the platform")
    if isinstance(error, AuthExpiredError):
        return RetryDecision("dead", 0.0, "authorization expired or revoked: account needs re-auth")
    if isinstance(error, PermanentError) or not isinstance(error, TransientError):
        return RetryDecision("dead", 0.0, "rejected by the platform (permanent)")
    if failures >= max_failures:
        return RetryDecision("dead", 0.0, f"gave up after {failures} transient failures")
    delay = backoff(failures, base, cap, rng)
    hinted = error.retry_after or 0.0
    return RetryDecision("retry", max(delay, min(hinted, cap)), "transient failure")


def decide_with_settings(error: PlatformError, failures: int, settings: Settings) -> RetryDecision:
    """`decide` with the deployment's retry policy (HERALD_PUBLISH_MAX_ATTEMPTS, …)."""
    return decide(
        error,
        failures=failures,
        max_failures=settings.publish_max_attempts,
        base=settings.retry_base_delay,
        cap=settings.retry_max_delay,
    )
