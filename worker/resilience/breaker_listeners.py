"""pybreaker listeners of Herald's breakers: one probe at a time, transitions logged once.

Both read the breaker's storage (:mod:`~worker.resilience.breaker_storage`) for the
current call: the reply it last saw, the probe ticket it holds, and a transition it made.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pybreaker
import structlog
from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from worker.resilience.breaker_storage import RedisBreakerStorage, Reply

log = structlog.get_logger(__name__)

_TRANSITIONS = {
    (STATE_CLOSED, STATE_OPEN): "breaker.opened",
    (STATE_OPEN, STATE_HALF_OPEN): "breaker.half_opened",
    (STATE_HALF_OPEN, STATE_HALF_OPEN): "breaker.probe_expired",
    (STATE_HALF_OPEN, STATE_CLOSED): "breaker.closed",
    (STATE_HALF_OPEN, STATE_OPEN): "breaker.reopened",
}


class OneProbe(pybreaker.CircuitBreakerListener):
    """Lets only the probe through while half-open (listeners run before every call).

    pybreaker lets every caller through while half-open: with one process that is one
    call at a time (its lock), with many processes it would be a stampede on a platform
    that just failed. A caller that does not hold the probe tries to claim it
    (:meth:`~worker.resilience.breaker.PlatformBreaker.half_open`), which raises
    :class:`~worker.resilience.breaker.BreakerOpen` while the
    probe someone else holds has a live lease.
    """

    def __init__(self, storage: RedisBreakerStorage) -> None:
        self.storage = storage

    def before_call(self, cb: pybreaker.CircuitBreaker, func: Any, *args: Any, **kw: Any) -> None:
        context = self.storage.context
        seen = context.reply
        if seen is not None and seen.state == STATE_HALF_OPEN and not seen.held_by(context.ticket):
            cb.half_open()


class TransitionLog(pybreaker.CircuitBreakerListener):
    """Logs a transition when this process's call made it in Redis.

    pybreaker also notifies when a process merely notices that another one changed the
    state; those are not logged, so each transition is one line across all processes.
    """

    def __init__(self, storage: RedisBreakerStorage) -> None:
        self.storage = storage

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        change = self.storage.context.take_change()
        if change is not None and change.changed_from is not None:
            event = _TRANSITIONS.get((change.changed_from, change.state), "breaker.changed")
            log_transition(event, self.storage.name, change)


def log_transition(event: str, platform: str, reply: Reply) -> None:
    """One line per transition (warning when it opens), with the reply's times."""
    loud = event in ("breaker.opened", "breaker.reopened", "breaker.forced_open")
    (log.warning if loud else log.info)(
        event,
        platform=platform,
        from_state=reply.changed_from,
        to_state=reply.state,
        failures=reply.failures,
        opened_at=iso(reply.opened_at),
        reset_at=iso(reply.reset_at),
    )


def iso(seconds: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC (milliseconds); None stays None."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
