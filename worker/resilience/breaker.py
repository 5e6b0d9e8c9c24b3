"""Circuit breakers, one per platform, shared by every worker process and host.

The publish path asks before calling a platform and reports after::

    admission = admit(platform)
    if not admission.allowed:
        ...  # defer the job by admission.retry_after: not a failure, no retry spent
    try:
        result = client.publish(...)
    except BaseException as exc:
        record_failure(platform, exc, admission)
        raise
    record_success(platform, admission)

or ``with guard(platform):``, which raises :class:`BreakerOpen` instead of admitting.
Each is at most one Redis call (one Lua script); a healthy publish costs one in all:
reporting a success with nothing to reset makes no call.

States are pybreaker's. **closed**: ``fail_max`` consecutive transient failures,
counted across all processes, open it. **open**: callers are deferred until
``reset_timeout`` has passed; then exactly one caller (atomic in Redis) becomes the
probe: **half-open**. Others are deferred (at most ``probe_wait``, to look again).
The probe decides: success closes, a transient failure re-opens for ``reset_timeout``.
A probe that never reports (its worker died) loses its lease after ``probe_lease``;
one that ends without a verdict (:func:`classify`) gives it up at once. While open or
half-open, reports from anyone but the current probe are ignored.

Each transition is logged once, by the process whose call made it: ``breaker.opened``,
``breaker.half_opened``, ``breaker.probe_expired``, ``breaker.closed``,
``breaker.reopened``; operators' ``breaker.forced_open`` / ``breaker.reset``.

**Redis down: fail open.** Every call is admitted (``Admission.degraded``) and outcomes
are dropped, with a throttled ``breaker.redis_unavailable`` warning (see
:mod:`~worker.resilience.breaker_storage`). Failing closed would stop all publishing
on a coordination blip; failing open costs at worst calls to a failing platform,
which the retry policy still bounds.
"""

from __future__ import annotations

import contextlib
import functools
import math
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import pybreaker
import redis
import structlog
from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from worker.constants import PLATFORMS
from worker.coordination.redis_client import get_redis
from worker.platforms.errors import PlatformError, TransientError
from worker.resilience.breaker_storage import (
    DEFERRED,
    PROBE,
    Op,
    RedisBreakerStorage,
    Reply,
    Thresholds,
)
from worker.settings import get_settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: Consecutive transient failures, across all processes, that open a platform's breaker.
FAIL_MAX = 5
#: Seconds an opened breaker defers every call before it lets one probe through.
RESET_TIMEOUT_S = 30.0
#: Seconds the probe has to report before it is presumed dead and another caller probes;
#: past a publish's hard time limit plus margin (like the post row's lease).
PROBE_LEASE_S = 75.0
#: Longest deferral while the probe is out: callers come back this soon to see its verdict.
PROBE_WAIT_S = 5.0
#: How long `herald breakers open` keeps a breaker open without `--for`.
FORCE_OPEN_S = 600.0

Verdict = Literal["failure", "success", "neutral"]

_TRANSITIONS = {
    (STATE_CLOSED, STATE_OPEN): "breaker.opened",
    (STATE_OPEN, STATE_HALF_OPEN): "breaker.half_opened",
    (STATE_HALF_OPEN, STATE_HALF_OPEN): "breaker.probe_expired",
    (STATE_HALF_OPEN, STATE_CLOSED): "breaker.closed",
    (STATE_HALF_OPEN, STATE_OPEN): "breaker.reopened",
}


def classify(error: BaseException) -> Verdict:
    """What an exception from a platform call says about the platform.

    * ``failure``: :class:`TransientError` (and :class:`OutcomeUnknownError`):
      timeouts, connection errors, 5xx. Only these count toward opening.
    * ``success``: any other :class:`PlatformError` (4xx validation, 429, expired
      auth): the platform answered, so, as pybreaker does with excluded errors, it
      resets the consecutive count and a probe that gets one closes the breaker.
    * ``neutral``: anything else (Celery's ``Retry``, ``SoftTimeLimitExceeded``, our
      own bugs): no verdict; a probe that ends so is given up for the next caller.
    """
    if isinstance(error, TransientError):
        return "failure"
    if isinstance(error, PlatformError):
        return "success"
    return "neutral"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """One breaker's thresholds (seconds); defaults are the module constants."""

    fail_max: int = FAIL_MAX
    reset_timeout: float = RESET_TIMEOUT_S
    probe_lease: float = PROBE_LEASE_S
    probe_wait: float = PROBE_WAIT_S

    def __post_init__(self) -> None:
        seconds = (self.reset_timeout, self.probe_lease, self.probe_wait)
        if self.fail_max < 1 or not all(math.isfinite(s) and s > 0 for s in seconds):
            raise ValueError(f"fail_max must be >= 1 and every time > 0 s: {self!r}")


@dataclass(frozen=True, slots=True)
class Admission:
    """May this call go to the platform now?

    Not allowed: defer the job by ``retry_after`` seconds (time to the half-open
    probe, or to look again while it is out). ``probe``: this call decides whether the
    breaker closes; hand the admission back with its outcome. ``degraded``: Redis was
    unreachable and the call was let through without a shared decision.
    """

    allowed: bool
    retry_after: float = 0.0
    probe: bool = False
    ticket: str = ""
    state: str = STATE_CLOSED
    #: Consecutive failures counted when it was admitted.
    failures: int = 0
    degraded: bool = False


class BreakerOpen(pybreaker.CircuitBreakerError):
    """The platform's breaker defers this call; try again in ``retry_after`` seconds."""

    def __init__(self, platform: str, retry_after: float, state: str = STATE_OPEN) -> None:
        super().__init__(f"{platform} breaker is {state}: retry in {retry_after:.1f}s")
        self.platform = platform
        self.retry_after = retry_after
        self.state = state

    def __reduce__(self) -> tuple[Any, ...]:  # billiard pickles exceptions between processes
        return (type(self), (self.platform, self.retry_after, self.state))


class PlatformBreaker(pybreaker.CircuitBreaker):
    """A pybreaker breaker whose every decision is one atomic call on Redis.

    ``call``, ``calling``, ``open``, ``close`` and ``half_open`` keep pybreaker's
    meaning but go through the shared state; ``fail_max`` / ``reset_timeout`` may be
    changed on the instance and apply to its next call.
    """

    def __init__(
        self,
        platform: str,
        config: BreakerConfig | None = None,
        *,
        client: Callable[[], redis.Redis] = get_redis,
        key: Callable[[], str] | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        super().__init__(
            fail_max=self.config.fail_max,
            reset_timeout=self.config.reset_timeout,
            exclude=[lambda error: classify(error) != "failure"],
            # pybreaker's __init__ reads the state: a round trip we do not need.
            state_storage=pybreaker.CircuitMemoryStorage(STATE_CLOSED),
            name=platform,
        )
        self._storage = self._state_storage = RedisBreakerStorage(
            platform,
            key=key or functools.partial(_default_key, platform),
            client=client,
            thresholds=self._thresholds(),
        )

    @property
    def platform(self) -> str:
        return self._storage.name

    def admit(self) -> Admission:
        """Decide whether a call may go now (one Redis call); see :class:`Admission`."""
        ticket = uuid.uuid4().hex
        reply = self._decide("admit", ticket=ticket)
        if reply is None:
            return Admission(True, degraded=True)
        if reply.verdict == DEFERRED:
            return Admission(False, self._retry_after(reply), state=reply.state)
        probe = reply.verdict == PROBE
        return Admission(
            True,
            probe=probe,
            ticket=ticket if probe else "",
            state=reply.state,
            failures=reply.failures,
        )

    def record_success(self, admission: Admission | None = None) -> None:
        """The platform answered: reset the consecutive count; a probe closes it.

        With an admission that saw the breaker closed and no failures (the healthy
        common case) there is nothing to reset and no Redis call is made; failures
        other calls counted while this one was in flight then stand.
        """
        if admission is not None and _nothing_to_reset(admission):
            return
        self._decide("success", ticket=_ticket(admission))

    def record_failure(self, error: BaseException, admission: Admission | None = None) -> None:
        """Report how a call ended; only a transient error counts (:func:`classify`)."""
        verdict = classify(error)
        if verdict == "failure":
            self._decide("failure", ticket=_ticket(admission))
        elif verdict == "success":
            self.record_success(admission)
        else:
            self.release(admission)

    def release(self, admission: Admission | None) -> None:
        """Give up the probe without a verdict (no call if this was not the probe)."""
        if admission is not None and admission.probe:
            self._decide("release", ticket=admission.ticket)

    @contextlib.contextmanager
    def guard(self) -> Iterator[Admission]:
        """Admit or raise :class:`BreakerOpen`; record how the block ends."""
        admission = self.admit()
        if not admission.allowed:
            raise BreakerOpen(self.platform, admission.retry_after, admission.state)
        try:
            yield admission
        except BaseException as exc:
            self.record_failure(exc, admission)
            raise
        self.record_success(admission)

    def force_open(self, seconds: float) -> Reply:
        """Open it now for ``seconds`` (then one probe decides, as usual). Raises
        ``redis.RedisError``: an operator must learn that it did not happen."""
        reply = self._storage.decide("open", self._thresholds(), open_for=seconds)
        self._log("breaker.forced_open", reply)
        return reply

    def reset(self) -> Reply:
        """Close it and forget its failures. Raises ``redis.RedisError``."""
        reply = self._storage.decide("reset", self._thresholds())
        self._log("breaker.reset", reply)
        return reply

    def status(self) -> dict[str, Any]:
        """What an operator sees (JSON-ready). Raises ``redis.RedisError``."""
        reply = self._storage.decide("status", self._thresholds())
        half_open_at = reply.reset_at if reply.state == STATE_OPEN else None
        return {
            "platform": self.platform,
            "state": reply.state,
            "failures": reply.failures,
            "fail_max": self.fail_max,
            "reset_timeout": self.reset_timeout,
            "opened_at": _iso(reply.opened_at),
            "half_open_at": _iso(half_open_at),
            "probe_until": _iso(reply.probe_until),
            "retry_after": round(self._retry_after(reply, floor=0.0), 3),
        }

    # --- pybreaker's own API, on the shared state ---

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.guard():
            return func(*args, **kwargs)

    def calling(self) -> Any:
        return self.guard()

    def open(self) -> bool:
        self.force_open(self.reset_timeout)
        return True

    def close(self) -> None:
        self.reset()

    def half_open(self) -> None:
        self._storage.state = STATE_HALF_OPEN

    @property
    def state(self) -> Any:
        """pybreaker's state object, without its side effect: pybreaker resets the
        (here shared) counters whenever one process notices another changed the state."""
        return self._create_new_state(self.current_state)

    @state.setter
    def state(self, state: str) -> None:
        self._storage.state = state

    # --- internals ---

    def _thresholds(self) -> Thresholds:
        return Thresholds(self.fail_max, self.reset_timeout, self.config.probe_lease)

    def _decide(self, op: Op, *, ticket: str = "") -> Reply | None:
        reply = self._storage.try_decide(op, self._thresholds(), ticket=ticket)
        if reply is not None and reply.changed_from is not None:
            self._log(_TRANSITIONS.get((reply.changed_from, reply.state), "breaker.changed"), reply)
        return reply

    def _retry_after(self, reply: Reply, floor: float = 0.01) -> float:
        """Seconds until admit may say yes (``floor`` keeps a deferral from being 0)."""
        if reply.state == STATE_OPEN and reply.reset_at is not None:
            return max(floor, reply.reset_at - reply.now)
        if reply.state == STATE_HALF_OPEN and reply.probe_until is not None:
            return max(floor, min(reply.probe_until - reply.now, self.config.probe_wait))
        return 0.0

    def _log(self, event: str, reply: Reply) -> None:
        loud = event in ("breaker.opened", "breaker.reopened", "breaker.forced_open")
        (log.warning if loud else log.info)(
            event,
            platform=self.platform,
            from_state=reply.changed_from,
            to_state=reply.state,
            failures=reply.failures,
            opened_at=_iso(reply.opened_at),
            reset_at=_iso(reply.reset_at),
        )


def _default_key(platform: str) -> str:
    return get_settings().key("breaker", platform)


def _nothing_to_reset(admission: Admission) -> bool:
    return admission.degraded or (admission.state == STATE_CLOSED and admission.failures == 0)


def _ticket(admission: Admission | None) -> str:
    return admission.ticket if admission is not None else ""


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


class Breakers(dict[str, PlatformBreaker]):
    """One :class:`PlatformBreaker` per platform; ``overrides`` replaces ``config`` for
    the platforms it names. A name that is not a platform, there or when looking one
    up, is a ``ValueError`` (a typo must not silently keep the defaults)."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        overrides: Mapping[str, BreakerConfig] | None = None,
        *,
        platforms: tuple[str, ...] = PLATFORMS,
        client: Callable[[], redis.Redis] = get_redis,
    ) -> None:
        overrides = overrides or {}
        unknown = sorted(set(overrides) - set(platforms))
        if unknown:
            raise ValueError(f"breaker overrides for unknown platforms: {', '.join(unknown)}")
        super().__init__(
            (p, PlatformBreaker(p, overrides.get(p, config), client=client)) for p in platforms
        )

    def __missing__(self, platform: str) -> PlatformBreaker:
        raise ValueError(f"no breaker for unknown platform {platform!r}")


@functools.cache
def get_breakers() -> Breakers:
    """This process's breakers, with the thresholds of the settings."""
    settings = get_settings()
    config = BreakerConfig(
        fail_max=settings.breaker_fail_max, reset_timeout=settings.breaker_reset_timeout
    )
    return Breakers(config)


def reset_breakers() -> None:
    """Forget this process's breakers (tests, or after the thresholds changed)."""
    get_breakers.cache_clear()


def admit(platform: str) -> Admission:
    """:meth:`PlatformBreaker.admit` of the platform's breaker (unknown: ``ValueError``)."""
    return get_breakers()[platform].admit()


def record_success(platform: str, admission: Admission | None = None) -> None:
    get_breakers()[platform].record_success(admission)


def record_failure(platform: str, error: BaseException, admission: Admission | None = None) -> None:
    get_breakers()[platform].record_failure(error, admission)


def release(platform: str, admission: Admission | None) -> None:
    get_breakers()[platform].release(admission)


def guard(platform: str) -> contextlib.AbstractContextManager[Admission]:
    return get_breakers()[platform].guard()
