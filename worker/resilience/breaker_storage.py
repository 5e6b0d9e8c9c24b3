"""Circuit-breaker state in Redis, behind pybreaker's `CircuitBreakerStorage` interface.

One hash per breaker holds everything: state, consecutive failures, when it opened,
when a probe is allowed, the probe's ticket and its lease. Two ways in:

* **The fast path**, :meth:`RedisBreakerStorage.decide`: one EVALSHA of
  ``breaker_storage.lua`` per decision (admit, success, failure, release, open, reset,
  status). Times come from Redis's clock, so hosts with skewed clocks agree; the reply
  says whether this call changed the state, so each transition is logged exactly once.
* **pybreaker's interface** (``state``, ``counter``, ``opened_at``, ...): field by
  field, one round trip each, for code that drives a stock ``pybreaker.CircuitBreaker``
  with this storage. It shares the hash with the fast path but cannot give "one probe
  decides" (stock pybreaker decides in Python); ``PlatformBreaker`` uses the fast path.

Unlike pybreaker's ``CircuitRedisStorage`` every write sets a TTL: a breaker nobody
touches for :data:`IDLE_TTL_S` past its reset time disappears, which reads as closed.
When Redis fails, :meth:`~RedisBreakerStorage.decide` raises ``redis.RedisError``
(operator commands must say it did not happen); :meth:`~RedisBreakerStorage.try_decide`
and the interface properties fail open: they answer None / "closed, no failures" and
log ``breaker.redis_unavailable`` at most every :data:`REDIS_DOWN_LOG_EVERY_S` per
breaker and process (a down Redis must not flood the logs at hundreds of calls/s).
After a failure they skip Redis for :data:`REDIS_RETRY_S`, so an unreachable host
costs one attempt (timeouts and retries) per window, not one per publish.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import redis
import structlog
from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreakerStorage
from redis.client import Pipeline

log = structlog.get_logger(__name__)

Op = Literal["admit", "success", "failure", "release", "open", "reset", "status"]

#: Seconds a breaker's hash outlives the last moment it matters (its reset time, its
#: probe's lease, or its last counted failure); then it expires and reads as closed.
IDLE_TTL_S = 24 * 3600

#: At most one "Redis unavailable" warning per breaker and process in this many seconds.
REDIS_DOWN_LOG_EVERY_S = 30.0
#: After Redis failed, the fail-open paths answer without trying it for this many seconds:
#: one attempt can take long (redis-py 8 retries 3 times; a refused connect took ~4 s).
REDIS_RETRY_S = 10.0

#: Verdicts of ``admit``: deferred, admitted, admitted as the one probe.
DEFERRED, ADMITTED, PROBE = 0, 1, 2

#: The script (KEYS, ARGV and reply are described at its top); Redis runs it atomically.
SCRIPT = Path(__file__).with_name("breaker_storage.lua").read_text()
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What a decision is made against; sent with every call, so a change applies at once."""

    fail_max: int
    reset_timeout: float
    probe_lease: float


@dataclass(frozen=True, slots=True)
class Reply:
    """What one script call saw and did. Times are seconds since the epoch (Redis clock)."""

    verdict: int
    state: str
    #: The state before, when this very call changed it or replaced an expired probe.
    changed_from: str | None
    failures: int
    opened_at: float | None
    reset_at: float | None
    probe_until: float | None
    now: float

    @classmethod
    def parse(cls, raw: list[Any]) -> Reply:
        verdict, state, changed, failures, opened_at, reset_at, probe_until, now = raw
        closed = _text(state) == STATE_CLOSED
        return cls(
            verdict=int(verdict),
            state=_text(state),
            changed_from=_text(changed) or None,
            failures=int(failures),
            opened_at=None if closed else _seconds(opened_at),
            reset_at=None if closed else _seconds(reset_at),
            probe_until=_seconds(probe_until),
            now=int(now) / 1000,
        )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _seconds(ms: object) -> float | None:
    value = int(cast(int, ms))
    return value / 1000 if value > 0 else None


class RedisBreakerStorage(CircuitBreakerStorage):
    """One breaker's state in Redis, shared by every process and host.

    ``key`` and ``client`` are called on each use, so a client rebuilt after fork and
    a namespace changed by tests are picked up; ``thresholds`` serve the interface
    path (the fast path is given its own with each call).
    """

    def __init__(
        self,
        name: str,
        *,
        key: Callable[[], str],
        client: Callable[[], redis.Redis],
        thresholds: Thresholds,
        idle_ttl: float = IDLE_TTL_S,
    ) -> None:
        super().__init__(name)
        self._key = key
        self._client = client
        self.thresholds = thresholds
        self.idle_ttl = idle_ttl
        self._warned_at = -math.inf
        self._unlogged_errors = 0
        self._skip_until = -math.inf

    def decide(
        self, op: Op, thresholds: Thresholds, *, ticket: str = "", open_for: float = 0.0
    ) -> Reply:
        """Run one atomic decision; raises ``redis.RedisError`` when Redis fails."""
        args = (
            op,
            thresholds.fail_max,
            _ms(thresholds.reset_timeout),
            _ms(thresholds.probe_lease),
            _ms(self.idle_ttl),
            ticket,
            _ms(open_for),
        )
        client, key = self._client(), self._key()
        try:
            raw = client.evalsha(SCRIPT_SHA, 1, key, *args)
        except redis.exceptions.NoScriptError:  # first use on this server, or after a flush
            raw = client.eval(SCRIPT, 1, key, *args)
        return Reply.parse(cast(list[Any], raw))

    def try_decide(self, op: Op, thresholds: Thresholds, *, ticket: str = "") -> Reply | None:
        """:meth:`decide`, or None (logged, throttled) when Redis fails."""
        reply: Reply | None = self._quietly(lambda: self.decide(op, thresholds, ticket=ticket))
        return reply

    # --- pybreaker's interface: one field per round trip (see the module docstring) ---

    @property
    def state(self) -> str:
        reply = self._quietly(lambda: self.decide("status", self.thresholds), None)
        return reply.state if reply is not None else STATE_CLOSED

    @state.setter
    def state(self, state: str) -> None:
        if state == STATE_OPEN:
            reset = self.thresholds.reset_timeout
            self._quietly(lambda: self.decide("open", self.thresholds, open_for=reset))
        elif state == STATE_CLOSED:
            self._quietly(lambda: self.decide("reset", self.thresholds))
        elif state == STATE_HALF_OPEN:  # no probe out: the next admission becomes it
            self._write(
                lambda p, k: p.hset(k, mapping={"state": state, "probe": "", "probe_until": 0})
            )
        else:
            raise ValueError(f"unknown breaker state {state!r}")

    def increment_counter(self) -> None:
        self._write(lambda pipe, key: pipe.hincrby(key, "failures", 1))

    def reset_counter(self) -> None:
        self._write(lambda pipe, key: pipe.hset(key, "failures", 0))

    def increment_success_counter(self) -> None:
        self._write(lambda pipe, key: pipe.hincrby(key, "successes", 1))

    def reset_success_counter(self) -> None:
        self._write(lambda pipe, key: pipe.hset(key, "successes", 0))

    @property
    def counter(self) -> int:
        return self._field_int("failures")

    @property
    def success_counter(self) -> int:
        return self._field_int("successes")

    @property
    def opened_at(self) -> datetime | None:
        ms = self._field_int("opened_at")
        return datetime.fromtimestamp(ms / 1000, UTC) if ms > 0 else None

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        # Without reset_at the script derives it: opened_at + the caller's reset timeout.
        ms = int(when.timestamp() * 1000)

        def write(pipe: Pipeline, key: str) -> None:
            pipe.hset(key, "opened_at", ms)
            pipe.hdel(key, "reset_at")

        self._write(write)

    def _field_int(self, field: str) -> int:
        value = self._quietly(lambda: self._client().hget(self._key(), field), None)
        return int(cast(str, value)) if value else 0

    def _write(self, command: Callable[[Pipeline, str], object]) -> None:
        """One write and a TTL refresh, in one round trip (a transaction)."""

        def run() -> None:
            key = self._key()
            with self._client().pipeline(transaction=True) as pipe:
                command(pipe, key)
                pipe.expire(key, int(self.idle_ttl + self.thresholds.reset_timeout))
                pipe.execute()

        self._quietly(run, None)

    def _quietly(self, action: Callable[[], Any], default: Any = None) -> Any:
        """``action()``, or ``default`` when Redis fails or failed moments ago."""
        if time.monotonic() < self._skip_until:
            self._unlogged_errors += 1
            return default
        try:
            return action()
        except redis.RedisError as exc:
            self._redis_down(exc)
            return default

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
