"""A session per unit of work, retried when PostgreSQL asks for it."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import structlog
from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from worker.db.engine import get_engine

T = TypeVar("T")
log = structlog.get_logger(__name__)

#: SQLSTATEs that mean "run the whole transaction again": serialization failure, deadlock.
RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)


@contextlib.contextmanager
def unit_of_work() -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    with Session(get_engine(), expire_on_commit=False) as session, session.begin():
        yield session


def in_transaction(
    work: Callable[[Session], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.02,
    max_delay: float = 1.0,
) -> T:
    """Run `work` in one transaction, again (backoff, full jitter) on a retryable conflict.

    `work` must be safe to repeat: everything it did was rolled back before a retry.
    """
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work() as session:
                return work(session)
        except DBAPIError as exc:
            if not isinstance(exc.orig, RETRYABLE) or attempt == attempts:
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))  # noqa: S311
            log.warning("db.retry", attempt=attempt, sqlstate=exc.orig.sqlstate, delay=delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
