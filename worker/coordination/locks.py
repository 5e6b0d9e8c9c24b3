"""Locks held in Redis, shared by every process and host of one deployment.

`singleton` keeps a maintenance job from running twice at once (two beats, a manual
`herald backup now` during the nightly one, a redelivered message). The lock carries a
TTL so a killed holder cannot block the job forever, and a watchdog thread extends it
while the holder is alive, so a long backup never outlives its own lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import structlog
from redis.exceptions import LockError, LockNotOwnedError

from worker.constants import KEY_LOCK
from worker.coordination.redis_client import get_redis
from worker.errors import RefusedError
from worker.settings import get_settings

log = structlog.get_logger(__name__)


class AlreadyRunningError(RefusedError):
    """Another process holds the lock; the caller skips its run."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is already running elsewhere")
        self.name = name


@contextlib.contextmanager
def singleton(name: str, ttl: float = 60.0) -> Iterator[None]:
    """Hold the deployment-wide lock `name` for the block, or raise `AlreadyRunningError`."""
    lock = get_redis().lock(
        get_settings().key(KEY_LOCK, name), timeout=ttl, blocking=False, thread_local=False
    )
    if not lock.acquire():
        raise AlreadyRunningError(name)
    stop = threading.Event()
    watchdog = threading.Thread(
        target=_keep_extending, args=(lock, ttl, stop), name=f"lock-{name}", daemon=True
    )
    watchdog.start()
    try:
        yield
    finally:
        stop.set()
        watchdog.join()
        with contextlib.suppress(LockError):  # expired meanwhile: nothing left to free
            lock.release()


def _keep_extending(lock: object, ttl: float, stop: threading.Event) -> None:
    from redis.lock import Lock

    assert isinstance(lock, Lock)
    while not stop.wait(ttl / 3):
        try:
            lock.reacquire()
        except LockNotOwnedError:
            return
        except Exception as exc:  # Redis briefly away: the TTL still runs; try next tick
            log.warning("lock.extend_failed", lock=lock.name, error=type(exc).__name__)
