"""post_attempts: export and drop the months past retention; create the months ahead.

A partition is expired when its whole month ended at least `retention_months` months
before the current month began (retention 3 in December keeps September to December).
Each expired partition is handled in one transaction: lock it against writes, count
it, export it (worker/archival/export.py, which reads the file back), then DETACH and
DROP. Killed anywhere before COMMIT, the partition is still attached and whole, and
the next run exports it again over the half-written files. The current month and the
DEFAULT partition are never candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from worker.archival.export import Export, export_table
from worker.db.partitions import (
    MonthlyPartition,
    add_months,
    drop_partition,
    ensure_partitions,
    missing_partitions,
    month_start,
    monthly_partitions,
)
from worker.errors import RefusedError

log = structlog.get_logger(__name__)

#: How long DETACH may wait for post_attempts' lock. It queues every writer behind it
#: while it waits, so it gives up early and the next run tries again.
DETACH_LOCK_TIMEOUT = "5s"


class PartitionBusyError(RefusedError):
    """post_attempts stayed locked past DETACH_LOCK_TIMEOUT; nothing was dropped."""


@dataclass(frozen=True)
class AttemptsPlan:
    cutoff: date  # partitions ending on or before this month's start are expired
    expired: list[MonthlyPartition]
    to_create: list[MonthlyPartition]


def expired_partitions(
    partitions: list[MonthlyPartition], today: date, retention_months: int
) -> list[MonthlyPartition]:
    """The partitions whose whole month is older than the retention (pure)."""
    current = month_start(today)
    cutoff = add_months(current, -retention_months)
    return [p for p in partitions if p.end <= cutoff and p.end <= current]


def plan(conn: Connection, *, today: date, retention_months: int, ahead: int) -> AttemptsPlan:
    return AttemptsPlan(
        cutoff=add_months(month_start(today), -retention_months),
        expired=expired_partitions(monthly_partitions(conn), today, retention_months),
        to_create=missing_partitions(conn, months_back=0, months_ahead=ahead, today=today),
    )


def count_rows(conn: Connection, part: MonthlyPartition) -> int:
    query = text(f'SELECT count(*) FROM "{part.name}"')  # noqa: S608 - a checked partition name
    return int(conn.execute(query).scalar_one())


def create_ahead(engine: Engine, *, today: date, ahead: int) -> list[str]:
    """Create the current and the next `ahead` months' partitions that are missing."""
    with engine.begin() as conn:
        return ensure_partitions(conn, months_back=0, months_ahead=ahead, today=today)


def retire(engine: Engine, part: MonthlyPartition, directory: Path) -> Export:
    """Export `part` to `directory`, then detach and drop it, in one transaction."""
    with engine.connect() as conn, conn.begin():
        # A big partition's COPY may outlast the per-statement limit of the pool.
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("SET LOCAL TimeZone = 'UTC'"))  # timestamps in the file are UTC
        # Nobody writes to an old month, but if anyone did, the row would be lost.
        conn.execute(text(f'LOCK TABLE "{part.name}" IN SHARE MODE'))
        expected = count_rows(conn, part)
        export = export_table(_driver(conn), part.name, directory, expected_rows=expected)
        conn.execute(text(f"SET LOCAL lock_timeout = '{DETACH_LOCK_TIMEOUT}'"))
        try:
            drop_partition(conn, part)
        except OperationalError as exc:
            if not isinstance(exc.orig, pg_errors.LockNotAvailable):
                raise
            raise PartitionBusyError(
                f"{part.name}: exported, but post_attempts stayed locked for "
                f"{DETACH_LOCK_TIMEOUT}; it was not dropped (the next run retries)"
            ) from None
    log.info("archive.partition_dropped", partition=part.name, rows=export.rows)
    return export


def _driver(conn: Connection) -> psycopg.Connection[Any]:
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    return raw
