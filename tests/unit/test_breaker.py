"""Breaker logic that needs no Redis: what counts, configuration, failing open."""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any

import pybreaker
import pytest
import redis
import redis.retry
from celery.exceptions import Retry, SoftTimeLimitExceeded
from redis.backoff import NoBackoff

from worker.platforms.errors import (
    AuthExpiredError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from worker.resilience import breaker_storage
from worker.resilience.breaker import (
    Admission,
    BreakerConfig,
    BreakerOpen,
    Breakers,
    PlatformBreaker,
    classify,
)
from worker.resilience.breaker_storage import RedisBreakerStorage, Reply, Thresholds


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (TransientError("facebook", "HTTP 503", status=503), "failure"),
        (OutcomeUnknownError("facebook", "read timeout"), "failure"),
        (PermanentError("facebook", "invalid parameter", status=400), "success"),
        (RateLimitedError("facebook", "slow down", status=429), "success"),
        (AuthExpiredError("facebook", "token expired", status=401), "success"),
        (Retry("again"), "neutral"),
        (SoftTimeLimitExceeded(), "neutral"),
        (KeyError("bug"), "neutral"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value,
)
def test_only_transient_errors_count_as_failures(error: BaseException, verdict: str) -> None:
    assert classify(error) == verdict


def test_pybreakers_own_exclusion_agrees_with_classify() -> None:
    breaker = PlatformBreaker("facebook", client=_no_redis)
    assert breaker.is_system_error(TransientError("facebook", "HTTP 502"))
    assert not breaker.is_system_error(PermanentError("facebook", "HTTP 400"))
    assert not breaker.is_system_error(SoftTimeLimitExceeded())


@pytest.mark.parametrize(
    "bad",
    [{"fail_max": 0}, {"reset_timeout": 0}, {"probe_lease": -1}, {"probe_wait": float("nan")}],
)
def test_a_config_that_cannot_work_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="fail_max must be >= 1"):
        BreakerConfig(**bad)


def test_overrides_apply_per_platform_and_a_typo_is_refused() -> None:
    breakers = Breakers(
        BreakerConfig(fail_max=4), {"youtube": BreakerConfig(fail_max=9)}, client=_no_redis
    )
    assert breakers["youtube"].fail_max == 9
    assert breakers["instagram"].fail_max == 4
    assert breakers["instagram"] is breakers["instagram"]
    with pytest.raises(ValueError, match="unknown platforms: youtub"):
        Breakers(overrides={"youtub": BreakerConfig()})
    with pytest.raises(ValueError, match="unknown platform 'myspace'"):
        breakers["myspace"]


def test_breaker_open_is_a_pybreaker_error_that_survives_pickling() -> None:
    error = BreakerOpen("facebook", 12.5, "half-open")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, BreakerOpen)
    assert isinstance(error, pybreaker.CircuitBreakerError)
    assert (copy.platform, copy.retry_after, copy.state) == ("facebook", 12.5, "half-open")
    assert "retry in 12.5s" in str(copy)


def test_a_reply_reads_milliseconds_and_empty_fields() -> None:
    raw = [1, b"half-open", "open", 5, 0, 1_000_000, 1_030_000, "t1", 1_075_000, 1_030_001]
    reply = Reply.parse(raw)
    assert reply.applied
    assert (reply.state, reply.changed_from, reply.failures) == ("half-open", "open", 5)
    assert (reply.opened_at, reply.reset_at, reply.probe_until) == (1000.0, 1030.0, 1075.0)
    assert reply.held_by("t1") and not reply.held_by("t2") and not reply.held_by("")
    closed = Reply.parse([0, "closed", "", 0, 0, 0, 30_000, "", 0, 1_030_001])
    assert closed.changed_from is None and not closed.applied
    assert (closed.opened_at, closed.reset_at, closed.probe_until) == (None, None, None)


def test_opened_at_is_mapped_onto_this_hosts_clock() -> None:
    """pybreaker compares ``opened_at + reset_timeout`` with this host's clock; Redis's
    clock may be skewed. The reply's arrival time maps one onto the other."""
    storage = RedisBreakerStorage(
        "facebook",
        key=lambda: "unit:breaker",
        client=_no_redis,
        thresholds=Thresholds(reset_timeout=30, probe_lease=60),
    )
    # Redis says: it is 1000 s, a probe is allowed from 1012 s; here it is 5000 s.
    raw = [1, "open", "", 5, 0, 995_000, 1_012_000, "", 0, 1_000_000]
    storage.context.reply = Reply.parse(raw, received=5000.0)
    opened_at = storage.opened_at
    assert opened_at is not None
    assert opened_at.timestamp() + 30 == pytest.approx(5012.0)
    assert (storage.counter, storage.success_counter) == (5, 0)


class Warnings:
    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = threading.Lock()

    def warning(self, event: str, **_: Any) -> None:
        with self._lock:
            self.events.append(event)


def test_with_redis_down_it_fails_open_and_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings = Warnings()
    monkeypatch.setattr(breaker_storage, "log", warnings)
    attempts = []

    def dead() -> redis.Redis:
        attempts.append(time.monotonic())
        return redis.Redis(host="127.0.0.1", port=1, retry=redis.retry.Retry(NoBackoff(), 0))

    breaker = PlatformBreaker("facebook", client=dead, key=lambda: "unit:breaker")

    admissions = [breaker.admit() for _ in range(50)]
    for _ in range(10):
        breaker.record_failure(TransientError("facebook", "HTTP 503"))
    with breaker.guard() as guarded:
        pass

    assert all(a.allowed and a.degraded and not a.probe for a in admissions)
    assert guarded.degraded
    assert warnings.events == ["breaker.redis_unavailable"]
    assert len(attempts) == 1  # then Redis is left alone for a while
    assert breaker.current_state == "closed"


def test_operator_commands_say_when_redis_is_down() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, retry=redis.retry.Retry(NoBackoff(), 0))
    breaker = PlatformBreaker("facebook", client=lambda: dead, key=lambda: "unit:breaker")
    breaker.admit()  # fails open, and the fail-open path skips Redis for a while, but:
    with pytest.raises(redis.ConnectionError):
        breaker.force_open(60)
    with pytest.raises(redis.ConnectionError):
        breaker.status()


def test_a_healthy_success_needs_no_redis_call() -> None:
    breaker = PlatformBreaker("facebook", client=_no_redis)
    breaker.record_success(Admission(True, state="closed", failures=0))
    breaker.record_failure(PermanentError("facebook", "HTTP 400"), Admission(True))
    breaker.release(Admission(True))  # not the probe: nothing to give up


def _no_redis() -> redis.Redis:
    raise AssertionError("this test must not reach Redis")
