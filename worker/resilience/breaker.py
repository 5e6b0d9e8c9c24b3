"""Circuit breakers, one per platform, shared by every worker process and host.

Each is a ``pybreaker.CircuitBreaker`` whose state machine decides, on state shared in
Redis (:mod:`~worker.resilience.breaker_storage`, one Lua call per storage operation).
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
A healthy publish costs one Redis call in all (the admission's state read).

States are pybreaker's. **closed**: ``fail_max`` consecutive transient failures,
counted across all processes, open it. **open**: callers are deferred until
``reset_timeout`` has passed; then exactly one caller (atomic in Redis) becomes the
probe: **half-open**. Others are deferred (at most ``probe_wait``, to look again).
The probe decides: success closes, a transient failure re-opens for ``reset_timeout``.
A probe that never reports (its worker died) loses its lease after ``probe_lease``;
one that ends without a verdict (:func:`classify`) gives it up at once. While open or
half-open, reports from anyone but the current probe are ignored.

Where pybreaker alone falls short, it is extended at one point each, with the reason
where it is done: one leased probe across processes (:meth:`PlatformBreaker.half_open`
and the :class:`~worker.resilience.breaker_listeners.OneProbe` listener); transitions
announced once across processes (:meth:`PlatformBreaker.close`, the storage's
``opened_at``); deferring instead of failing (:meth:`PlatformBreaker.admit` turns
pybreaker's ``CircuitBreakerError`` into a deferral); outcomes with no verdict
(:meth:`PlatformBreaker.record_failure`).

Each transition is logged once, by the process whose call made it (the
:class:`~worker.resilience.breaker_listeners.TransitionLog` listener):
``breaker.opened``, ``breaker.half_opened``, ``breaker.probe_expired``,
``breaker.closed``, ``breaker.reopened``; operators' ``breaker.forced_open`` /
``breaker.reset``.

**Redis down: fail open.** Every call is admitted (``Admission.degraded``) and outcomes
are dropped, with a throttled ``breaker.redis_unavailable`` warning. Failing closed
would stop all publishing on a coordination blip; failing open costs at worst calls to
a failing platform, which the retry policy still bounds.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pybreaker
import redis
from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from worker import runtime
from worker.constants import KEY_BREAKER, PLATFORMS
from worker.coordination.redis_client import get_redis
from worker.errors import HeraldError
from worker.platforms.errors import PlatformError, TransientError
from worker.resilience.breaker_listeners import OneProbe, TransitionLog, iso, log_transition
from worker.resilience.breaker_storage import CallContext, RedisBreakerStorage, Reply, Thresholds
from worker.settings import get_settings

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


def _not_a_failure(error: BaseException) -> bool:
    """pybreaker's ``exclude``: what does not count toward opening."""
    return classify(error) != "failure"


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


class InFlight:
    """A call pybreaker admitted, whose outcome is reported later.

    pybreaker records a guarded call's outcome when the call returns, or, for a call
    that returns a generator, when that generator ends (this is how its ``calling()``
    works). The publish path admits in one function and reports in another, so
    admission hands pybreaker a generator that ends, when :meth:`finish` runs it, the
    way the publish did. Never finished (an outcome with no verdict), it reports
    nothing: a generator that was never started runs no code, even when collected.
    """

    def __init__(self, breaker: PlatformBreaker, context: CallContext) -> None:
        self.context = context
        self._error: BaseException | None = None
        # pybreaker's state machine decides here; it raises CircuitBreakerError to refuse.
        context.admitting = True
        try:
            self._outcome: Iterator[None] = breaker.call(self._ends)
        finally:
            context.admitting = False

    def _ends(self) -> Iterator[None]:
        if self._error is not None:
            raise self._error
        yield from ()

    def finish(self, storage: RedisBreakerStorage, error: BaseException | None) -> None:
        """Let pybreaker record the outcome (``error`` None: success), in this call's context."""
        self._error = error
        traceback = error.__traceback__ if error is not None else None
        with storage.bound(self.context):
            try:
                next(self._outcome)
            except StopIteration:
                pass
            except pybreaker.CircuitBreakerError:
                pass  # pybreaker's word that this failure opened it
            except BaseException as raised:
                if raised is not error:
                    raise
            finally:
                if error is not None:
                    error.__traceback__ = traceback  # re-raised here: keep the caller's


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
    #: pybreaker's record of the admitted call; None: nothing to report to.
    call: InFlight | None = field(default=None, repr=False, compare=False)


class BreakerOpen(HeraldError, pybreaker.CircuitBreakerError):  # noqa: N818 - a state, not a fault
    """The platform's breaker defers this call; try again in ``retry_after`` seconds."""

    def __init__(self, platform: str, retry_after: float, state: str = STATE_OPEN) -> None:
        super().__init__(f"{platform} breaker is {state}: retry in {retry_after:.1f}s")
        self.platform = platform
        self.retry_after = retry_after
        self.state = state

    def __reduce__(self) -> tuple[Any, ...]:  # billiard pickles exceptions between processes
        return (type(self), (self.platform, self.retry_after, self.state))


class PlatformBreaker(pybreaker.CircuitBreaker):
    """A pybreaker breaker on Redis-shared state, with one leased probe.

    pybreaker's ``call`` / ``calling`` / ``open`` work as documented (on the shared
    state); :meth:`admit` and the ``record_*`` methods split a call in two for the
    publish path. ``fail_max`` / ``reset_timeout`` may be changed on the instance.
    Unlike :meth:`record_failure`, pybreaker's own ``call`` counts an exception with no
    verdict (``Retry``, ``SoftTimeLimitExceeded``) as a success, as its ``exclude`` does.
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
        self.storage = RedisBreakerStorage(
            platform,
            key=key or functools.partial(_default_key, platform),
            client=client,
            thresholds=lambda: Thresholds(self.reset_timeout, self.config.probe_lease),
        )
        super().__init__(
            fail_max=self.config.fail_max,
            reset_timeout=self.config.reset_timeout,
            exclude=[_not_a_failure],
            listeners=[OneProbe(self.storage), TransitionLog(self.storage)],
            state_storage=self.storage,
            name=platform,
        )

    @property
    def platform(self) -> str:
        return self.storage.name

    def admit(self) -> Admission:
        """Decide whether a call may go now (pybreaker's state machine; one Redis call
        unless this call half-opens it); see :class:`Admission`."""
        context = CallContext()
        with self.storage.bound(context):
            try:
                call = InFlight(self, context)
            except pybreaker.CircuitBreakerError:
                seen = context.reply
                wait = self._retry_after(seen) if seen else self.config.probe_wait
                return Admission(False, wait, state=seen.state if seen else STATE_OPEN)
        seen = context.reply
        if seen is None:
            return Admission(True, degraded=True, call=call)
        probe = seen.held_by(context.ticket)
        ticket = context.ticket if probe else ""
        return Admission(True, 0.0, probe, ticket, seen.state, seen.failures, call=call)

    def record_success(self, admission: Admission | None = None) -> None:
        """The platform answered: reset the consecutive count; a probe closes it.

        Without an admission it is reported as a call admitted now would be (an open
        breaker ignores it). With one that saw no failures there is nothing to reset
        and no Redis call is made; failures other calls counted meanwhile then stand.
        """
        self._report(admission, None)

    def record_failure(self, error: BaseException, admission: Admission | None = None) -> None:
        """Report how a call ended; only a transient error counts (:func:`classify`).

        An outcome with no verdict is not reported to pybreaker at all (it would count
        an excluded error as a success, closing a half-open breaker on a time limit);
        a probe that ends so gives its lease up.
        """
        if classify(error) == "neutral":
            self.release(admission)
        else:
            self._report(admission, error)

    def release(self, admission: Admission | None) -> None:
        """Give up the probe without a verdict (no call if this was not the probe)."""
        if admission is not None and admission.probe:
            self.storage.release(admission.ticket)

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

    def half_open(self) -> None:
        """Claim the one probe, then half-open as pybreaker does.

        pybreaker half-opens in each process on its own and then lets every caller
        through. Shared by many processes, half-opening must be claiming the probe,
        atomically in Redis, with a lease: raises :class:`BreakerOpen` while someone
        else's probe has a live one. Redis unreachable: fails open, like every read.
        """
        reply = self.storage.claim_probe()
        if reply is not None and not reply.held_by(self.storage.context.ticket):
            raise BreakerOpen(self.platform, self._retry_after(reply), reply.state)
        super().half_open()

    def close(self) -> None:
        """Close as pybreaker does, once Redis agrees.

        pybreaker notifies listeners before it writes the storage; with shared state the
        write is a compare-and-set (a probe whose lease was taken over closes nothing),
        so it runs first, and pybreaker's close follows only if it took effect.
        """
        self.storage.state = STATE_CLOSED
        seen = self.storage.context.reply
        if seen is None or seen.state == STATE_CLOSED:
            super().close()

    def force_open(self, seconds: float) -> Reply:
        """Open it now for ``seconds`` (then one probe decides, as usual). Raises
        ``redis.RedisError``: an operator must learn that it did not happen."""
        reply = self.storage.decide("open", open_for=seconds)
        log_transition("breaker.forced_open", self.platform, reply)
        return reply

    def reset(self) -> Reply:
        """Close it and forget its failures. Raises ``redis.RedisError``."""
        reply = self.storage.decide("reset")
        log_transition("breaker.reset", self.platform, reply)
        return reply

    def status(self) -> dict[str, Any]:
        """What an operator sees (JSON-ready). Raises ``redis.RedisError``."""
        reply = self.storage.decide("read")
        half_open_at = reply.reset_at if reply.state == STATE_OPEN else None
        return {
            "platform": self.platform,
            "state": reply.state,
            "failures": reply.failures,
            "fail_max": self.fail_max,
            "reset_timeout": self.reset_timeout,
            "opened_at": iso(reply.opened_at),
            "half_open_at": iso(half_open_at),
            "probe_until": iso(reply.probe_until),
            "retry_after": round(self._retry_after(reply, floor=0.0), 3),
        }

    def _report(self, admission: Admission | None, error: BaseException | None) -> None:
        if admission is None:
            admission = self.admit()
        if admission.call is not None:
            admission.call.finish(self.storage, error)

    def _retry_after(self, reply: Reply, floor: float = 0.01) -> float:
        """Seconds until admit may say yes (``floor`` keeps a deferral from being 0)."""
        if reply.state == STATE_OPEN and reply.reset_at is not None:
            return max(floor, reply.reset_at - reply.now)
        if reply.state == STATE_HALF_OPEN and reply.probe_until is not None:
            return max(floor, min(reply.probe_until - reply.now, self.config.probe_wait))
        return 0.0


def _default_key(platform: str) -> str:
    return get_settings().key(KEY_BREAKER, platform)


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


def _build_breakers() -> Breakers:
    """This process's breakers, with the thresholds of the settings."""
    settings = get_settings()
    config = BreakerConfig(
        fail_max=settings.breaker_fail_max, reset_timeout=settings.breaker_reset_timeout
    )
    return Breakers(config)


#: This process's breakers (worker.runtime: `runtime.reset()` rebuilds them).
get_breakers = runtime.cached("breakers", _build_breakers)


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
