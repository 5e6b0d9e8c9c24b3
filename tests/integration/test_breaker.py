"""Circuit breakers on real Redis: what trips them, deferral, one probe, shared state.

Thresholds are constructor arguments kept short; waits are on conditions with
deadlines, except a short sleep past a reset timeout or lease where that passing IS
the behaviour under test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pybreaker
import pytest
import redis
from celery.exceptions import Retry, SoftTimeLimitExceeded

from tests.fixtures.waiting import wait_for
from worker import runtime
from worker.coordination.redis_client import get_redis
from worker.platforms.errors import (
    AuthExpiredError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from worker.resilience import breaker as breaker_module
from worker.resilience import breaker_listeners
from worker.resilience.breaker import (
    Admission,
    BreakerConfig,
    BreakerOpen,
    PlatformBreaker,
    admit,
    record_failure,
    record_success,
)
from worker.resilience.breaker_storage import RedisBreakerStorage, Thresholds
from worker.settings import get_settings

MakeBreaker = Callable[..., PlatformBreaker]


def transient() -> TransientError:
    return TransientError("facebook", "HTTP 503", status=503)


class LogRecorder:
    """Stands in for the module's structlog logger: keeps (event, fields), thread-safe."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def _record(self, event: str, **fields: Any) -> None:
        with self._lock:
            self.events.append((event, fields))

    info = warning = error = _record

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for name, fields in self.events if name == event]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = LogRecorder()
    monkeypatch.setattr(breaker_listeners, "log", recorder)
    return recorder


@pytest.fixture
def make_breaker(namespace: str) -> MakeBreaker:
    """A breaker in this test's namespace: fail_max 3, reset 5 s unless told otherwise."""

    def make(platform: str = "facebook", **config: Any) -> PlatformBreaker:
        settings = {"fail_max": 3, "reset_timeout": 5.0, "probe_lease": 5.0, "probe_wait": 0.5}
        return PlatformBreaker(platform, BreakerConfig(**{**settings, **config}))

    return make


def open_with_probe_due(breaker: PlatformBreaker) -> None:
    """Open it so that its reset time has just passed: the next admission probes."""
    breaker.force_open(0.001)
    wait_for(lambda: breaker.status()["retry_after"] == 0, timeout=2, what="reset time")


def take_probe(breaker: PlatformBreaker) -> Admission:
    admission = breaker.admit()
    assert admission.allowed and admission.probe, admission
    return admission


# --- what counts -------------------------------------------------------------------


def test_fail_max_consecutive_transient_failures_open_it(
    make_breaker: MakeBreaker, logs: LogRecorder
) -> None:
    breaker = make_breaker(fail_max=3)
    for _ in range(2):
        breaker.record_failure(transient())
    assert breaker.status()["state"] == "closed"
    assert breaker.admit().allowed

    breaker.record_failure(OutcomeUnknownError("facebook", "read timeout"))

    status = breaker.status()
    assert status["state"] == "open"
    assert status["failures"] == 3
    assert not breaker.admit().allowed
    (opened,) = logs.named("breaker.opened")
    assert opened["platform"] == "facebook"
    assert opened["failures"] == 3
    assert opened["reset_at"] == status["half_open_at"]


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("facebook", "invalid parameter", status=400),
        RateLimitedError("facebook", "too many calls", retry_after=30, status=429),
        AuthExpiredError("facebook", "token expired", status=401),
        Retry("deferred"),
        SoftTimeLimitExceeded(),
        ValueError("a bug of ours"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_that_are_not_transient_do_not_count(
    make_breaker: MakeBreaker, error: BaseException
) -> None:
    breaker = make_breaker(fail_max=3)
    for _ in range(10):
        breaker.record_failure(error)
    assert breaker.status()["state"] == "closed"
    assert breaker.status()["failures"] == 0
    assert breaker.admit().allowed


def test_a_success_resets_the_consecutive_count(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=3)
    for _ in range(2):
        breaker.record_failure(transient())
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure(transient())
    status = breaker.status()
    assert (status["state"], status["failures"]) == ("closed", 2)


def test_a_success_resets_the_count_its_admission_saw(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=3)
    for _ in range(2):
        breaker.record_failure(transient())
    admission = breaker.admit()
    assert admission.failures == 2

    breaker.record_success(admission)

    assert breaker.status()["failures"] == 0


def test_an_answer_from_the_platform_resets_the_count_like_a_success(
    make_breaker: MakeBreaker,
) -> None:
    breaker = make_breaker(fail_max=3)
    for _ in range(2):
        breaker.record_failure(transient())
    breaker.record_failure(PermanentError("facebook", "media rejected", status=400))
    assert breaker.status()["failures"] == 0


# --- open: deferred, not failed ---------------------------------------------------


def test_open_defers_callers_until_the_half_open_time(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=1, reset_timeout=5.0)
    breaker.record_failure(transient())

    admission = breaker.admit()

    assert not admission.allowed
    assert admission.state == "open"
    assert 4.0 < admission.retry_after <= 5.0
    with pytest.raises(BreakerOpen) as raised, breaker.guard():
        pytest.fail("the guarded block must not run while open")
    assert isinstance(raised.value, pybreaker.CircuitBreakerError)
    assert 4.0 < raised.value.retry_after <= 5.0


def test_state_and_ttl_live_under_the_namespace_key(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=2, reset_timeout=5.0)
    key = get_settings().key("breaker", "facebook")
    breaker.record_failure(transient())
    assert 0 < get_redis().pttl(key) <= 24 * 3600 * 1000
    breaker.record_failure(transient())
    assert get_redis().hget(key, "state") == "open"
    assert get_redis().pttl(key) > 24 * 3600 * 1000  # reset time + idle TTL
    breaker.reset()
    assert not get_redis().exists(key)


# --- half-open: one probe decides ---------------------------------------------------


def test_probe_success_closes_it(make_breaker: MakeBreaker, logs: LogRecorder) -> None:
    breaker = make_breaker(fail_max=1, reset_timeout=0.2)
    breaker.record_failure(transient())
    time.sleep(0.25)  # the reset timeout passing is the behaviour under test

    probe = take_probe(breaker)
    assert not breaker.admit().allowed  # the probe is out: others wait for its verdict
    breaker.record_success(probe)

    assert breaker.status()["state"] == "closed"
    assert breaker.admit().allowed
    assert [name for name, _ in logs.events] == [
        "breaker.opened",
        "breaker.half_opened",
        "breaker.closed",
    ]


def test_probe_failure_reopens_it_for_another_reset_timeout(
    make_breaker: MakeBreaker, logs: LogRecorder
) -> None:
    breaker = make_breaker(fail_max=1, reset_timeout=0.2)
    breaker.record_failure(transient())
    first = breaker.status()["half_open_at"]
    time.sleep(0.25)
    probe = take_probe(breaker)

    breaker.record_failure(transient(), probe)

    status = breaker.status()
    assert status["state"] == "open"
    assert status["half_open_at"] > first
    assert not breaker.admit().allowed
    assert len(logs.named("breaker.reopened")) == 1


def test_while_half_open_only_the_probe_decides(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=1)
    open_with_probe_due(breaker)
    probe = take_probe(breaker)

    # Calls admitted before it opened report late: neither closes nor re-opens it.
    breaker.record_success()
    breaker.record_failure(transient())
    assert breaker.status()["state"] == "half-open"

    breaker.record_success(probe)
    assert breaker.status()["state"] == "closed"


def test_a_probe_that_never_reports_loses_its_lease(
    make_breaker: MakeBreaker, logs: LogRecorder
) -> None:
    breaker = make_breaker(fail_max=1, probe_lease=0.3, probe_wait=0.1)
    open_with_probe_due(breaker)
    dead_probe = take_probe(breaker)
    deferred = breaker.admit()
    assert not deferred.allowed
    assert 0 < deferred.retry_after <= 0.1  # come back soon to see the verdict

    def a_new_probe() -> Admission | None:
        admission = breaker.admit()
        return admission if admission.probe else None

    second = wait_for(a_new_probe, timeout=3, what="a new probe after the lease")

    assert second.ticket != dead_probe.ticket
    assert len(logs.named("breaker.probe_expired")) == 1
    breaker.record_success(dead_probe)  # it was not dead after all, only late: ignored
    assert breaker.status()["state"] == "half-open"
    breaker.record_success(second)
    assert breaker.status()["state"] == "closed"


def test_a_probe_ending_without_a_verdict_gives_the_probe_up(
    make_breaker: MakeBreaker, logs: LogRecorder
) -> None:
    breaker = make_breaker(fail_max=1)
    open_with_probe_due(breaker)
    probe = take_probe(breaker)

    breaker.record_failure(SoftTimeLimitExceeded(), probe)

    assert breaker.status()["state"] == "half-open"
    assert take_probe(breaker).ticket != probe.ticket
    assert logs.named("breaker.probe_expired") == []  # given up, not expired


def test_exactly_one_probe_among_many_threads(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=1)
    open_with_probe_due(breaker)
    start = threading.Barrier(16)
    admissions: list[Admission] = []

    def call() -> None:
        start.wait(timeout=10)
        admissions.append(breaker.admit())

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(admissions) == 16
    assert sum(a.probe for a in admissions) == 1
    assert sum(a.allowed for a in admissions) == 1
    assert all(0 < a.retry_after <= 0.5 for a in admissions if not a.allowed)


def test_many_threads_failing_at_once_log_the_opening_once(
    make_breaker: MakeBreaker, logs: LogRecorder
) -> None:
    breaker = make_breaker(fail_max=5)
    start = threading.Barrier(8)

    def fail_twice() -> None:
        start.wait(timeout=10)
        for _ in range(2):
            breaker.record_failure(transient())

    threads = [threading.Thread(target=fail_twice) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert breaker.status()["state"] == "open"
    assert len(logs.named("breaker.opened")) == 1
    assert [name for name, _ in logs.events] == ["breaker.opened"]


def test_guard_records_the_outcome_of_its_block(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=2)
    for _ in range(2):
        with pytest.raises(TransientError), breaker.guard():
            raise transient()
    assert breaker.status()["state"] == "open"
    breaker.reset()
    with breaker.guard() as admission:
        assert admission.allowed and not admission.probe


def test_pybreakers_call_and_open_work_on_the_shared_state(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=2)
    assert breaker.call(lambda x: x * 2, 21) == 42
    breaker.open()
    assert breaker.current_state == "open"
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(lambda: None)
    breaker.close()
    assert breaker.current_state == "closed"


def test_a_stock_pybreaker_runs_on_the_storage_too(namespace: str) -> None:
    storage = RedisBreakerStorage(
        "youtube",
        key=lambda: get_settings().key("breaker", "youtube"),
        client=get_redis,
        thresholds=Thresholds(reset_timeout=60, probe_lease=60),
    )
    stock = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=60, state_storage=storage)

    def failing() -> None:
        raise transient()

    with pytest.raises(TransientError):
        stock.call(failing)
    assert storage.counter == 1
    with pytest.raises(pybreaker.CircuitBreakerError):
        stock.call(failing)
    assert storage.state == "open"
    assert storage.opened_at is not None
    # Ours reads the same hash: it defers too.
    assert not PlatformBreaker("youtube").admit().allowed


def test_module_functions_use_this_process_breakers(namespace: str) -> None:
    runtime.reset()
    try:
        assert admit("instagram").allowed
        for _ in range(breaker_module.FAIL_MAX):
            record_failure("instagram", transient())
        assert not admit("instagram").allowed
        assert admit("youtube").allowed  # one breaker per platform
        record_success("youtube")
        with pytest.raises(ValueError, match="unknown platform"):
            admit("myspace")
    finally:
        runtime.reset()


# --- pybreaker's state machine decides ------------------------------------------------


class CountingRedis(redis.Redis):
    """A client of its own (like another process's) that counts script calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scripts = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if args and str(args[0]).upper() in ("EVAL", "EVALSHA"):
            self.scripts += 1
        return super().execute_command(*args, **options)


def own_client() -> CountingRedis:
    pool = redis.ConnectionPool.from_url(get_settings().redis_url, decode_responses=True)
    return CountingRedis(connection_pool=pool)


def test_pybreakers_state_machine_decides_across_two_clients(namespace: str) -> None:
    # Given two breakers for one platform, each with its own Redis connection
    clients = own_client(), own_client()
    config = BreakerConfig(fail_max=3, reset_timeout=0.3, probe_lease=5, probe_wait=0.5)
    here, there = (PlatformBreaker("facebook", config, client=lambda c=c: c) for c in clients)
    changes: list[tuple[str, str]] = []

    class Spy(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old: Any, new: Any) -> None:
            changes.append((old.name if old else "", new.name))

    there.add_listener(Spy())

    def failing() -> None:
        raise transient()

    # When fail_max failures go through pybreaker's own `call`, alternating between them
    with pytest.raises(TransientError):
        here.call(failing)
    with pytest.raises(TransientError):
        there.call(failing)
    # Then the third trips it: pybreaker's closed state counts and decides
    with pytest.raises(pybreaker.CircuitBreakerError, match="Failures threshold reached"):
        here.call(failing)
    # and the other one's open state refuses, on the shared state
    with pytest.raises(pybreaker.CircuitBreakerError, match="Timeout not elapsed"):
        there.call(lambda: None)
    assert isinstance(there.state, pybreaker.CircuitOpenState)
    assert changes == [("closed", "open")]  # it noticed; pybreaker notified its listeners

    # When the reset timeout passes, one call becomes the probe
    time.sleep(0.35)  # the reset timeout passing is the behaviour under test
    seen_by_other: list[BaseException] = []

    def probe() -> str:
        assert isinstance(here.state, pybreaker.CircuitHalfOpenState)
        with pytest.raises(BreakerOpen) as raised:  # the probe is out: the other waits
            there.call(lambda: None)
        seen_by_other.append(raised.value)
        return "answered"

    assert here.call(probe) == "answered"

    # Then its success closed it for both
    assert seen_by_other and seen_by_other[0].state == "half-open"
    assert 0 < seen_by_other[0].retry_after <= 0.5
    assert there.call(lambda: 42) == 42
    assert there.current_state == here.current_state == "closed"
    assert changes[-1] == ("half-open", "closed")


def test_a_healthy_call_is_one_script_call(namespace: str) -> None:
    # Given a closed breaker with no failures
    client = own_client()
    breaker = PlatformBreaker("facebook", BreakerConfig(fail_max=3), client=lambda: client)

    # When calls are admitted and succeed (split, pybreaker's call, or guard)
    breaker.record_success(breaker.admit())
    assert breaker.call(lambda: 1) == 1
    with breaker.guard():
        pass

    # Then each cost one script call: the admission's read; success had nothing to reset
    assert client.scripts == 3
    # and a counted failure costs one more
    breaker.record_failure(transient(), breaker.admit())
    assert client.scripts == 5


def test_noticing_a_close_late_keeps_failures_counted_since(make_breaker: MakeBreaker) -> None:
    # Given a breaker that saw itself open, then closed by an operator elsewhere
    stale, elsewhere = make_breaker(fail_max=3), make_breaker(fail_max=3)
    stale.open()
    elsewhere.reset()
    # and failures counted since, in another process
    for _ in range(2):
        elsewhere.record_failure(transient())

    # When the stale one admits a call (pybreaker notices the close)
    assert stale.admit().allowed

    # Then the failures counted since still stand: one more opens it
    assert elsewhere.status()["failures"] == 2
    stale.record_failure(transient(), stale.admit())
    assert elsewhere.status()["state"] == "open"
