"""The limiter's Python side: script calls it builds, replies it reads, the off switch,
and which scope a platform's throttling answer blocks. The script itself runs against
real Redis in tests/integration/test_ratelimit.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from worker import runtime
from worker.platforms.errors import PlatformUsage, RateLimitedError, TransientError
from worker.resilience import limits_config, ratelimit
from worker.resilience.limits_config import LimitsConfig, parse
from worker.resilience.ratelimit import Call, RateDecision, RateLimiter, decision_from_reply


class NoRedis:
    """A client that must not be used."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Redis was used ({name}) but should not have been")


class Recording(RateLimiter):
    """A limiter whose script calls are recorded and answered with `reply`."""

    def __init__(self, reply: list[int]) -> None:
        config = LimitsConfig(
            cast(Any, NoRedis()),
            "ns:rl:config",
            account_defaults={"instagram": parse("5/m,25/h")},
            app_defaults={"instagram": parse("200/h")},
        )
        config.overrides = lambda: {}
        super().__init__(cast(Any, NoRedis()), "ns:rl", config)
        self.reply = reply
        self.calls: list[Call] = []

    def _eval(self, call: Call) -> list[Any]:
        self.calls.append(call)
        return self.reply


@pytest.fixture(autouse=True)
def limits_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(limits_config.ENV_SWITCH, raising=False)
    runtime.reset()
    yield
    monkeypatch.undo()
    runtime.reset()


def test_acquire_sends_both_scopes_keys_and_every_window_in_microseconds() -> None:
    limiter = Recording([1, 4, 0, 1_700_000_000_123_456])
    decision = limiter.acquire("instagram", "a1")
    assert decision == RateDecision(True, 4, 0.0, 1_700_000_000_123_456)
    (call,) = limiter.calls
    numkeys, *rest = call
    assert numkeys == 4
    assert rest[:4] == [
        "ns:rl:{instagram}:app",
        "ns:rl:{instagram}:app:block",
        "ns:rl:{instagram}:acct:a1",
        "ns:rl:{instagram}:acct:a1:block",
    ]
    mode, tag, *windows = rest[4:]
    assert (mode, bool(tag)) == ("acquire", True)
    assert windows == ["1", "200", "3600000000", "2", "5", "60000000", "25", "3600000000"]


def test_every_acquire_gets_its_own_log_member_tag() -> None:
    limiter = Recording([1, 0, 0, 1])
    limiter.acquire("instagram", "a1")
    limiter.acquire("instagram", "a1")
    assert limiter.calls[0][6] != limiter.calls[1][6]


def test_peek_of_one_scope_sends_only_that_scope_and_no_tag() -> None:
    limiter = Recording([0, 0, 1_500_000, 1])
    decision = limiter.peek("instagram", "a1", only="account")
    assert (decision.allowed, decision.retry_after) == (False, 1.5)
    (call,) = limiter.calls
    assert call[:4] == (2, "ns:rl:{instagram}:acct:a1", "ns:rl:{instagram}:acct:a1:block", "peek")
    assert call[4] == ""


def test_a_reply_becomes_a_decision_with_seconds_and_redis_time() -> None:
    decision = decision_from_reply([0, 0, 2_250_000, 1_700_000_000_500_000])
    assert decision == RateDecision(False, 0, 2.25, 1_700_000_000_500_000)
    assert decision.at == pytest.approx(1_700_000_000.5)


def test_off_switch_admits_everything_without_touching_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(limits_config.ENV_SWITCH, "off")
    runtime.reset()
    limiter = RateLimiter(cast(Any, NoRedis()), "ns:rl", cast(Any, NoRedis()))
    assert limiter.acquire("instagram", "a1").allowed
    assert limiter.acquire("instagram", "a1").remaining == ratelimit.UNLIMITED
    assert all(d.allowed for d in limiter.acquire_many([("facebook", None)] * 3))
    assert limiter.penalize("instagram", None, 30.0) == 0.0


def test_penalize_blocks_the_account_or_the_platform_and_is_capped() -> None:
    limiter = Recording([1_000_000 + 5_000_000, 1_000_000])
    assert limiter.penalize("instagram", "a1", 5.0) == 5.0
    assert limiter.calls[-1] == (
        2,
        "ns:rl:{instagram}:acct:a1",
        "ns:rl:{instagram}:acct:a1:block",
        "penalize",
        "5000000",
    )
    limiter.penalize("instagram", None, 10 * 86400.0)
    assert limiter.calls[-1][1] == "ns:rl:{instagram}:app"
    assert limiter.calls[-1][-1] == str(int(ratelimit.MAX_PENALTY_S * 1e6))
    calls = len(limiter.calls)
    assert limiter.penalize("instagram", "a1", 0.0) == 0.0
    assert len(limiter.calls) == calls


def blocked_scope(limiter: Recording) -> tuple[str, str]:
    """(app|account, µs) of the last penalty sent."""
    call = limiter.calls[-1]
    assert call[3] == "penalize"
    return ("app" if str(call[1]).endswith(":app") else "account"), str(call[4])


@pytest.mark.parametrize(
    ("code", "scope"),
    [
        (4, "app"),
        ("quotaExceeded", "app"),
        (17, "account"),
        (32, "account"),
        (80002, "account"),
        ("userRateLimitExceeded", "account"),
        (None, "account"),
    ],
)
def test_feedback_blocks_the_scope_the_platform_throttled(code: object, scope: str) -> None:
    limiter = Recording([2_000_000, 0])
    error = RateLimitedError("instagram", "slow down", retry_after=2.0, status=429, code=code)
    limiter.feedback("instagram", "a1", error=error)
    assert blocked_scope(limiter) == (scope, "2000000")


def test_feedback_obeys_usage_at_100_percent_and_ignores_lower_usage() -> None:
    limiter = Recording([90_000_000, 0])
    limiter.feedback("facebook", "a1", usage=PlatformUsage(call_count=95))
    assert limiter.calls == []
    limiter.feedback("facebook", "a1", usage=PlatformUsage(total_time=100, regain_access_s=90.0))
    assert blocked_scope(limiter) == ("account", "90000000")
    error = TransientError("facebook", "503", usage=PlatformUsage(call_count=101))
    limiter.feedback("facebook", "a1", error=error)
    assert blocked_scope(limiter) == ("account", "60000000")
    limiter.calls.clear()
    limiter.feedback("facebook", "a1", error=TransientError("facebook", "503"))
    assert limiter.calls == []
