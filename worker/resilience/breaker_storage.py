"""Circuit-breaker state in Redis: pybreaker's `CircuitBreakerStorage`, one Lua call each.

One hash per breaker holds everything: state, consecutive failures, the probe's
successes, when it opened, when a probe is allowed, the probe's ticket and its lease.
Every operation of pybreaker's storage interface that must reach Redis is one call of
``breaker_storage.lua``, and the reads that pybreaker makes next (``counter``,
``opened_at``, ...) are answered from that call's reply, so pybreaker's state machine
decides on a consistent snapshot: a healthy guarded call costs one round trip (the
state read), a counted failure one more. Times come from Redis's clock, so hosts with
skewed clocks agree.

Because the state is shared by every process and host, each write is a compare-and-set
(the script's header says which op applies when): a failure counts only while closed or
from the probe; tripping opens only a closed breaker or the probe's own; half-opening is
claiming the one probe. The first call to make a transition sees it in its reply
(``changed_from``), so each transition is announced exactly once, by the process that
made it (pybreaker notifies its listeners before it writes the storage; the writes that
decide come first, see :class:`~worker.resilience.breaker.PlatformBreaker`).

**Per call.** pybreaker's interface takes no arguments, so the storage keeps, per
thread, a :class:`CallContext`: the probe ticket the current call holds and the last
reply it saw. ``PlatformBreaker`` binds one per admission (:meth:`bound`); a call that
binds none (a stock ``pybreaker.CircuitBreaker`` on this storage) uses the thread's own.

Unlike pybreaker's ``CircuitRedisStorage`` every write sets a TTL: a breaker nobody
touches for :data:`IDLE_TTL_S` past its reset time disappears, which reads as closed.
**Redis down: fail open.** :meth:`~RedisBreakerStorage.decide` (operators' commands)
raises ``redis.RedisError``; pybreaker's interface answers "closed, no failures", drops
writes, and logs ``breaker.redis_unavailable`` at most every
:data:`REDIS_DOWN_LOG_EVERY_S` per breaker and process. After a failure it skips Redis
for :data:`REDIS_RETRY_S`, so an unreachable host costs one attempt per window, not one
per publish.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import redis
import structlog
from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreakerStorage
from redis.commands.core import Script

log = structlog.get_logger(__name__)

Op = Literal[
    "read", "failure", "reset_counter", "success", "reset_successes", "trip", "probe",
    "close", "release", "open", "reset",
]  # fmt: skip

#: Seconds a breaker's hash outlives the last moment it matters (its reset time, its
#: probe's lease, or its last counted failure); then it expires and reads as closed.
IDLE_TTL_S = 24 * 3600
#: At most one "Redis unavailable" warning per breaker and process in this many seconds.
REDIS_DOWN_LOG_EVERY_S = 30.0
#: After Redis failed, the fail-open paths answer without trying it for this many seconds:
#: one attempt can take long (redis-py 8 retries 3 times; a refused connect took ~4 s).
REDIS_RETRY_S = 10.0

#: The script (KEYS, ARGV and reply are described at its top); Redis runs it atomically.
SCRIPT = Path(__file__).with_name("breaker_storage.lua").read_text()

#: The write each state asks of pybreaker's ``state`` setter (a compare-and-set).
_ENTER: dict[str, Op] = {STATE_OPEN: "trip", STATE_CLOSED: "close", STATE_HALF_OPEN: "probe"}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The times a decision is made against (seconds); read on every call."""

    reset_timeout: float
    probe_lease: float


@dataclass(frozen=True, slots=True)
class Reply:
    """What one script call saw and did. Times are seconds since the epoch (Redis clock)."""

    applied: bool
    state: str
    #: The state before, when this very call changed it or replaced an expired probe.
    changed_from: str | None
    failures: int
    successes: int
    opened_at: float | None
    reset_at: float | None
    #: The ticket of the probe out ('' when none).
    probe: str
    probe_until: float | None
    now: float
    #: This host's clock when the reply arrived: maps Redis's times onto it.
    received: float = 0.0

    @classmethod
    def parse(cls, raw: list[Any], received: float = 0.0) -> Reply:
        applied, state, changed, failures, successes, opened, reset, probe, until, now = raw
        closed = _text(state) == STATE_CLOSED
        return cls(
            applied=bool(int(applied)),
            state=_text(state),
            changed_from=_text(changed) or None,
            failures=int(failures),
            successes=int(successes),
            opened_at=None if closed else _seconds(opened),
            reset_at=None if closed else _seconds(reset),
            probe=_text(probe),
            probe_until=_seconds(until),
            now=int(now) / 1000,
            received=received,
        )

    def held_by(self, ticket: str) -> bool:
        """Is the probe out, and is it the one with this ticket?"""
        return self.state == STATE_HALF_OPEN and bool(ticket) and self.probe == ticket


@dataclass(slots=True)
class CallContext:
    """One guarded call as the storage sees it (see the module docstring)."""

    #: The probe ticket this call holds or claims ('' when none).
    ticket: str = ""
    #: The last reply this call saw; None before the first, or when Redis failed.
    reply: Reply | None = None
    #: A reply that made a transition no listener has announced yet.
    change: Reply | None = None
    #: True while pybreaker decides whether to admit the call (no outcome yet).
    admitting: bool = False

    def take_change(self) -> Reply | None:
        change, self.change = self.change, None
        return change


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _seconds(ms: object) -> float | None:
    value = int(cast(int, ms))
    return value / 1000 if value > 0 else None


class RedisBreakerStorage(CircuitBreakerStorage):
    """One breaker's state in Redis, shared by every process and host.

    ``key`` and ``client`` are called on each use, so a client rebuilt after fork and a
    namespace changed by tests are picked up; so is ``thresholds`` when it is callable,
    so a breaker's ``reset_timeout`` changed on the instance applies to its next call.
    pybreaker's constructor reads the state once, to build the state object it caches;
    that first read is answered "closed" without a round trip (pybreaker compares the
    cache with the storage on every call and catches up on the first).
    """

    def __init__(
        self,
        name: str,
        *,
        key: Callable[[], str],
        client: Callable[[], redis.Redis],
        thresholds: Thresholds | Callable[[], Thresholds],
        idle_ttl: float = IDLE_TTL_S,
    ) -> None:
        super().__init__(name)
        self._key = key
        self._client = client
        self._thresholds = thresholds if callable(thresholds) else lambda: thresholds
        self.idle_ttl = idle_ttl
        self._script: Script | None = None
        self._local = threading.local()
        self._first_read = True
        self._warned_at = -math.inf
        self._unlogged_errors = 0
        self._skip_until = -math.inf

    # --- Herald's entry points -----------------------------------------------------

    def decide(self, op: Op, *, ticket: str = "", open_for: float = 0.0) -> Reply:
        """Run one atomic op; raises ``redis.RedisError`` when Redis fails."""
        times = self._thresholds()
        args = (
            op,
            _ms(times.reset_timeout),
            _ms(times.probe_lease),
            _ms(self.idle_ttl),
            ticket,
            _ms(open_for),
        )
        client = self._client()
        if self._script is None:
            self._script = client.register_script(SCRIPT)
        raw = self._script(keys=[self._key()], args=args, client=client)
        return Reply.parse(cast(list[Any], raw), received=time.time())

    @property
    def context(self) -> CallContext:
        """This thread's current call (its own default when none is bound)."""
        bound: CallContext | None = getattr(self._local, "bound", None)
        if bound is None:
            bound = self._local.bound = CallContext()
        return bound

    @contextlib.contextmanager
    def bound(self, context: CallContext) -> Iterator[CallContext]:
        """Make ``context`` this thread's current call for the block."""
        before = getattr(self._local, "bound", None)
        self._local.bound = context
        try:
            yield context
        finally:
            self._local.bound = before

    def claim_probe(self) -> Reply | None:
        """Become the one probe (a new ticket), unless this call holds it already."""
        context = self.context
        if context.reply is None or not context.reply.held_by(context.ticket):
            context.ticket = uuid.uuid4().hex
        return self._run("probe")

    def release(self, ticket: str) -> None:
        """Give the probe with this ticket up without a verdict (fails open)."""
        with self.bound(CallContext(ticket=ticket)):
            self._run("release")

    # --- pybreaker's interface ---------------------------------------------------------

    @property
    def state(self) -> str:
        if self._first_read:
            self._first_read = False
            return STATE_CLOSED
        reply = self._run("read")
        return reply.state if reply is not None else STATE_CLOSED

    @state.setter
    def state(self, state: str) -> None:
        if state not in _ENTER:
            raise ValueError(f"unknown breaker state {state!r}")
        seen = self.context.reply
        if seen is not None and seen.state == state:
            return  # already so: the compare-and-set that made it ran first
        if state == STATE_HALF_OPEN:
            self.claim_probe()
        else:
            self._run(_ENTER[state])

    def increment_counter(self) -> None:
        self._run("failure")

    def reset_counter(self) -> None:
        context = self.context
        if context.admitting:
            # pybreaker resets the count when it notices that another process closed the
            # breaker; here the count is every process's, and failures counted since that
            # close must stand. Only an outcome resets it.
            return
        if context.reply is None or context.reply.failures > 0:  # else: nothing to forget
            self._run("reset_counter")

    def increment_success_counter(self) -> None:
        self._run("success")

    def reset_success_counter(self) -> None:
        seen = self.context.reply
        if seen is None or seen.successes > 0:
            self._run("reset_successes")

    @property
    def counter(self) -> int:
        seen = self.context.reply
        return seen.failures if seen is not None else 0

    @property
    def success_counter(self) -> int:
        seen = self.context.reply
        return seen.successes if seen is not None else 0

    @property
    def opened_at(self) -> datetime | None:
        """When pybreaker's reset timeout started, on this host's clock.

        That is the moment it opened, except after an operator's ``open --for``: then
        the moment that makes ``opened_at + reset_timeout`` the end they asked for.
        Redis's times are mapped onto this host's clock through the reply's arrival
        time, so pybreaker's ``datetime.now()`` comparison agrees with Redis's clock.
        """
        seen = self.context.reply
        if seen is None or seen.reset_at is None:
            return None
        started = seen.received + (seen.reset_at - seen.now) - self._thresholds().reset_timeout
        return datetime.fromtimestamp(started, UTC)

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        # pybreaker's open() sets this first: the trip (a compare-and-set) happens here,
        # before it notifies listeners. The time is Redis's, not `when`.
        self._run("trip")

    # --- internals ---------------------------------------------------------------------

    def _run(self, op: Op) -> Reply | None:
        """One op for the current call; None (and no reply kept) when Redis fails."""
        context = self.context
        if time.monotonic() < self._skip_until:
            self._unlogged_errors += 1
            context.reply = None
            return None
        try:
            reply = self.decide(op, ticket=context.ticket)
        except redis.RedisError as exc:
            self._redis_down(exc)
            context.reply = None
            return None
        context.reply = reply
        if reply.changed_from is not None:
            context.change = reply
        return reply

    def _redis_down(self, exc: redis.RedisError) -> None:
        now = time.monotonic()
        self._skip_until = now + REDIS_RETRY_S
        if now - self._warned_at < REDIS_DOWN_LOG_EVERY_S:
            self._unlogged_errors += 1
            return
        log.warning(
            "breaker.redis_unavailable",
            platform=self.name,
            error=str(exc),
            behaviour="fail open: calls admitted, outcomes not counted",
            unlogged_since_last=self._unlogged_errors,
        )
        self._warned_at, self._unlogged_errors = now, 0


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
