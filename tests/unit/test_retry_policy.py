"""Retry policy: full-jitter backoff within its cap; the right action for each error."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.platforms.errors import (
    AuthExpiredError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from worker.resilience.retry import backoff, decide

POLICY = {"max_failures": 5, "base": 1.0, "cap": 60.0}


@given(failures=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_backoff_stays_within_the_exponential_ceiling_and_the_cap(failures: int, seed: int) -> None:
    delay = backoff(failures, 1.0, 60.0, random.Random(seed))
    assert 0.0 <= delay <= min(60.0, 2 ** (failures - 1))


def test_backoff_is_jittered_not_constant() -> None:
    rng = random.Random(7)
    assert len({round(backoff(4, 1.0, 60.0, rng), 6) for _ in range(20)}) > 10


@pytest.mark.parametrize(
    "error", [TransientError("facebook", "503"), OutcomeUnknownError("x", "t")]
)
def test_transient_errors_are_retried_until_the_maximum(error: TransientError) -> None:
    assert decide(error, failures=4, **POLICY).action == "retry"
    final = decide(error, failures=5, **POLICY)
    assert final.action == "dead"
    assert "5 transient failures" in final.reason


def test_a_longer_retry_after_from_the_platform_wins_but_not_past_the_cap() -> None:
    error = TransientError("facebook", "503", retry_after=30.0)
    assert decide(error, failures=1, **POLICY).delay == 30.0
    error = TransientError("facebook", "503", retry_after=3600.0)
    assert decide(error, failures=1, **POLICY).delay == 60.0


def test_rate_limiting_defers_by_retry_after_without_counting_as_failure() -> None:
    decision = decide(
        RateLimitedError("instagram", "slow down", retry_after=42.0), failures=99, **POLICY
    )
    assert (decision.action, decision.delay) == ("defer", 42.0)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (PermanentError("youtube", "media rejected", status=400), "permanent"),
        (AuthExpiredError("instagram", "token revoked", status=401), "re-auth"),
    ],
)
def test_permanent_and_auth_errors_are_never_retried(error: Exception, words: str) -> None:
    decision = decide(error, failures=1, **POLICY)  # type: ignore[arg-type]
    assert decision.action == "dead"
    assert words in decision.reason
