"""The limiter's Lua script against real Redis: windows, scopes, penalties, overrides, TTLs."""

from __future__ import annotations

import hashlib

import pytest

from tests.fixtures.waiting import wait_for
from worker import runtime
from worker.coordination.redis_client import get_redis
from worker.platforms.errors import RateLimitedError
from worker.resilience import ratelimit
from worker.resilience.limits_config import LimitsConfig, LimitTarget, Windows, parse
from worker.resilience.ratelimit import RateLimiter, get_limiter
from worker.settings import get_settings


def make_limiter(account: str, app: str = "1000/h", cache_seconds: float = 2.0) -> RateLimiter:
    """A limiter on this test's namespace whose instagram defaults are the given specs."""
    prefix = get_settings().key("rl")
    config = LimitsConfig(
        get_redis(),
        f"{prefix}:config",
        account_defaults={"instagram": parse(account)},
        app_defaults={"instagram": parse(app)},
        cache_seconds=cache_seconds,
    )
    return RateLimiter(get_redis(), prefix, config)


def log_size(limiter: RateLimiter, *scope: str) -> int:
    log_key, _ = limiter.keys("instagram", "app" if not scope else "account", *scope)
    return int(get_redis().zcard(log_key))


@pytest.fixture(autouse=True)
def fresh(namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_RATE_LIMITS", raising=False)
    runtime.reset()


def test_five_per_minute_admits_five_then_says_when_the_first_expires(namespace: str) -> None:
    limiter = make_limiter("5/m,25/h")
    decisions = [limiter.acquire("instagram", "a1") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    refused, first = decisions[-1], decisions[0]
    assert refused.retry_after == pytest.approx((first.at_us + 60e6 - refused.at_us) / 1e6)


def test_the_hour_window_refuses_when_the_minute_window_would_admit(namespace: str) -> None:
    # Given 24 admissions spread over the last hour but none in the last minute
    limiter = make_limiter("5/m,25/h")
    log_key, _ = limiter.keys("instagram", "account", "a1")
    now_s, now_us = get_redis().time()
    now = int(now_s) * 1_000_000 + int(now_us)
    oldest = now - 3000 * 1_000_000
    get_redis().zadd(log_key, {f"old{i}": oldest + i * 100_000_000 for i in range(24)})
    # When two more are asked for
    admitted = limiter.acquire("instagram", "a1")
    refused = limiter.acquire("instagram", "a1")
    # Then the 25th is admitted (remaining 0) and the 26th waits for the oldest to leave the hour
    assert (admitted.allowed, admitted.remaining) == (True, 0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx((oldest + 3600 * 1_000_000 - refused.at_us) / 1e6)


def test_a_refused_request_is_admitted_no_earlier_than_its_retry_after(namespace: str) -> None:
    limiter = make_limiter("3/1s,5/4s")
    first = [limiter.acquire("instagram", "a1") for _ in range(3)]
    assert all(d.allowed for d in first)
    refused = limiter.acquire("instagram", "a1")
    assert not refused.allowed
    assert 0 < refused.retry_after <= 1.0
    admitted = wait_for(
        lambda: (d := limiter.acquire("instagram", "a1")).allowed and d,
        timeout=3,
        what="the 1 s window to admit again",
    )
    assert admitted.at_us >= refused.at_us + refused.retry_after * 1e6
    assert limiter.acquire("instagram", "a1").allowed  # the 5th in 4 s
    blocked = limiter.acquire("instagram", "a1")  # the 1 s window has room, the 4 s one not
    assert not blocked.allowed
    assert blocked.retry_after == pytest.approx((first[0].at_us + 4e6 - blocked.at_us) / 1e6)
    assert limiter.peek("instagram", "a1", only="account").remaining == 0


def test_refused_consumes_nothing_and_scopes_are_decided_together(namespace: str) -> None:
    limiter = make_limiter("2/h", app="3/h")
    assert limiter.acquire("instagram", "a1").allowed
    assert limiter.acquire("instagram", "a1").allowed
    assert not limiter.acquire("instagram", "a1").allowed  # a1's own limit
    assert limiter.acquire("instagram", "b2").allowed  # the app cap's third
    refused_by_app = limiter.acquire("instagram", "b2")  # b2 has room, the app has not
    assert not refused_by_app.allowed
    assert refused_by_app.remaining == 0
    assert (log_size(limiter), log_size(limiter, "a1"), log_size(limiter, "b2")) == (3, 2, 1)


def test_peek_takes_nothing(namespace: str) -> None:
    limiter = make_limiter("2/h")
    for _ in range(3):
        peeked = limiter.peek("instagram", "a1")
        assert (peeked.allowed, peeked.remaining) == (True, 2)
    assert log_size(limiter, "a1") == 0


def test_pipelined_decisions_are_each_atomic_and_in_order(namespace: str) -> None:
    limiter = make_limiter("3/h")
    decisions = limiter.acquire_many([("instagram", "a1")] * 5 + [("instagram", "b2")])
    assert [d.allowed for d in decisions] == [True, True, True, False, False, True]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]


def test_logs_expire_with_their_longest_window_and_blocks_with_their_length(
    namespace: str,
) -> None:
    limiter = make_limiter("5/m,25/h", app="200/h")
    limiter.acquire("instagram", "a1")
    limiter.penalize("instagram", "a1", 30.0)
    redis = get_redis()
    log_key, block_key = limiter.keys("instagram", "account", "a1")
    app_log, _ = limiter.keys("instagram", "app")
    assert 3_599_000 < int(redis.pttl(log_key)) <= 3_600_000
    assert 3_599_000 < int(redis.pttl(app_log)) <= 3_600_000
    assert 29_000 < int(redis.pttl(block_key)) <= 30_000


def test_a_penalty_blocks_its_scope_until_it_ends_and_a_shorter_one_does_not_shorten_it(
    namespace: str,
) -> None:
    limiter = make_limiter("25/h")
    assert limiter.penalize("instagram", "a1", 30.0) == pytest.approx(30.0)
    assert limiter.penalize("instagram", "a1", 5.0) == pytest.approx(30.0, abs=0.05)
    refused = limiter.acquire("instagram", "a1")
    assert not refused.allowed
    assert 29.0 < refused.retry_after <= 30.0
    assert limiter.acquire("instagram", "b2").allowed  # another account is not blocked
    assert log_size(limiter, "a1") == 0
    limiter.penalize("instagram", "b2", 0.3)
    assert wait_for(
        lambda: limiter.acquire("instagram", "b2").allowed, timeout=3, what="b2's block to end"
    )


def test_the_platform_saying_app_limit_blocks_every_account(namespace: str) -> None:
    limiter = make_limiter("25/h")
    error = RateLimitedError("instagram", "Application request limit reached", code=4)
    assert limiter.feedback("instagram", "a1", error=error) == pytest.approx(60.0)
    assert not limiter.acquire("instagram", "b2").allowed
    assert not limiter.peek("instagram", None).allowed


def test_an_override_reaches_other_processes_within_their_cache_time(namespace: str) -> None:
    here, elsewhere = (
        make_limiter("25/h", cache_seconds=0.5),
        make_limiter("25/h", cache_seconds=0.5),
    )
    assert elsewhere.acquire("instagram", "a1").remaining == 24
    here.config.set(LimitTarget("instagram", "account", "a1"), parse("2/h"))

    def sees_the_override() -> Windows | None:
        return elsewhere.config.windows("instagram", "a1")[1] == parse("2/h") or None

    wait_for(sees_the_override, timeout=3, what="the other limiter to read the override")
    assert elsewhere.acquire("instagram", "a1").remaining == 0  # 2 in the hour, 1 used
    assert not elsewhere.acquire("instagram", "a1").allowed


def test_the_process_limiter_uses_the_module_defaults_and_the_namespace(namespace: str) -> None:
    limiter = get_limiter()
    assert limiter is get_limiter()
    decision = limiter.acquire("youtube", "a1")
    assert (decision.allowed, decision.remaining) == (True, 9)  # 10/h per account
    assert limiter.peek("youtube", None).remaining == 59  # 60/h app-wide
    keys = set(get_redis().scan_iter(f"{namespace}:rl:*"))
    assert f"{namespace}:rl:{{youtube}}:acct:a1" in keys


@pytest.mark.parametrize("first", ["single", "pipelined"])
def test_a_server_without_the_script_gets_it_loaded(
    first: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a variant of the script no server has seen: the first call meets NOSCRIPT
    script = ratelimit.SCRIPT + f"\n-- {namespace} {first}\n"
    sha = hashlib.sha1(script.encode()).hexdigest()
    monkeypatch.setattr(ratelimit, "SCRIPT", script)
    assert get_redis().script_exists(sha) == [False]
    limiter = make_limiter("2/h")
    # When three are asked for, one by one or in one pipeline
    if first == "pipelined":
        allowed = [d.allowed for d in limiter.acquire_many([("instagram", "a1")] * 3)]
    else:
        allowed = [limiter.acquire("instagram", "a1").allowed for _ in range(3)]
    # Then the script was loaded and decided each exactly once
    assert allowed == [True, True, False]
    assert get_redis().script_exists(sha) == [True]
    assert not limiter.acquire("instagram", "a1").allowed
    assert log_size(limiter, "a1") == 2
