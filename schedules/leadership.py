"""Beat leadership that rides out a Redis outage: wait, keep or re-take the lock, resume.

redbeat's scheduler lets any Redis error escape (`celery beat` then exits) and, when
Redis is down at start, leaves `lock` unset so its first tick dies on `None.extend`.
This subclass turns both into a wait with backoff and a warning per attempt:

* Redis unreachable (connection refused, reset, timed out) in `setup_schedule`, lock
  acquisition or `tick`: nothing is fired, the tick returns a growing wait, the next
  tick tries again. A schedule that could not be installed is installed first.
* Redis back and our lock still there (outage shorter than `redbeat_lock_timeout`): the
  next tick extends it as usual; leadership kept.
* Redis back and our lock expired or taken: `extend` raises `LockError`; we drop the
  lock and go through acquisition again (SET NX with a fresh token, the same lock
  redbeat builds), so at most one beat fires. A beat without the lock polls every
  `max_interval`, as redbeat's blocking acquire does, and fires nothing.

Entries are only ever sent by `RedBeatScheduler.tick`, which extends the lock first:
a tick whose extend failed sends nothing.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions
import structlog
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, RedBeatScheduler, get_redis

log = structlog.get_logger(__name__)

#: What `beat_scheduler` and `celery beat --scheduler` name (one place for both).
BEAT_SCHEDULER = "schedules.leadership.HeraldRedBeatScheduler"
#: What an unreachable Redis raises (TimeoutError is not a ConnectionError in redis-py).
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
#: First wait after a failed attempt; doubled per failure up to MAX_WAIT_S (seconds).
FIRST_WAIT_S = 0.5
#: Longest wait between attempts: a returning Redis is noticed within this.
MAX_WAIT_S = 5.0


def outage_wait(failures: int) -> float:
    """Seconds to wait after the `failures`-th failed attempt in a row (1-based)."""
    return float(min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** max(failures - 1, 0)))


class HeraldRedBeatScheduler(RedBeatScheduler):  # type: ignore[misc]
    """redbeat's scheduler, waiting out Redis outages instead of exiting."""

    #: The held redis-py Lock, None while we are not the leader (as in redbeat).
    lock: Any = None

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        # Set before the base __init__, which calls setup_schedule.
        self._failures = 0
        self._needs_setup = True
        super().__init__(app, *args, **kwargs)

    def setup_schedule(self) -> None:
        try:
            super().setup_schedule()
        except REDIS_DOWN as exc:
            # Not fatal and not blocking here (a SIGTERM must still stop us): tick retries.
            self._note_outage(exc, "setup_schedule")
        else:
            self._needs_setup = False

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            if self._needs_setup:
                self.setup_schedule()
                if self._needs_setup:
                    return outage_wait(self._failures)
            if self.lock_key and self.lock is None and not self._acquire():
                self._recovered()
                return float(self.max_interval)
            interval = float(super().tick(*args, **kwargs))
        except REDIS_DOWN as exc:
            return self._note_outage(exc, "tick")
        except redis.exceptions.LockError as exc:
            # Our lock expired (or was taken) while we could not extend it: we are not
            # the leader any more. Acquire again like any standby; fire nothing now.
            log.warning("beat.leadership_lost", error=type(exc).__name__)
            self.lock = None
            self._recovered()
            return min(1.0, float(self.max_interval))
        self._recovered()
        return interval

    def close(self) -> None:
        try:
            super().close()
        except (*REDIS_DOWN, redis.exceptions.LockError) as exc:
            # Stopping while Redis is away: the lock's TTL ends it; the stop must not fail.
            log.warning("beat.lock_not_released", error=type(exc).__name__)
            self.lock = None
            super().close()

    def _acquire(self) -> bool:
        """Try once to take the leadership lock, built exactly as redbeat builds it."""
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        # redbeat's extend sets the TTL to lock_timeout instead of adding to it.
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        if not lock.acquire(blocking=False):
            return False
        log.info("beat.leadership_acquired", lock=self.lock_key)
        self.lock = lock
        return True

    def _note_outage(self, exc: Exception, during: str) -> float:
        self._failures += 1
        wait = outage_wait(self._failures)
        # The message names host and port only; redis-py never puts the password in it.
        log.warning(
            "beat.redis_unavailable",
            during=during,
            error=type(exc).__name__,
            detail=str(exc),
            attempt=self._failures,
            retry_in_s=wait,
        )
        return wait

    def _recovered(self) -> None:
        if self._failures:
            log.info("beat.redis_available", after_attempts=self._failures)
            self._failures = 0
