"""Monthly range partitions of post_attempts, created ahead of time.

A row whose month has no partition cannot be inserted, so the months ahead are
created at migrate time, by `herald run` and by a daily maintenance job; this module
is the one place that knows the naming and the bounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

PARENT = "post_attempts"
#: The names `partition_name` gives; any other partition (a DEFAULT one, one an
#: operator made by hand) is never exported or dropped by archival.
_MONTHLY = re.compile(rf"^{PARENT}_y(\d{{4}})m(\d{{2}})$")


@dataclass(frozen=True)
class MonthlyPartition:
    name: str
    month: date  # first day of the month it holds

    @property
    def end(self) -> date:
        return add_months(self.month, 1)


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def partition_month(name: str) -> date | None:
    """The month a partition named by `partition_name` holds; None for any other name."""
    match = _MONTHLY.match(name)
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    return date(year, month, 1) if 1 <= month <= 12 else None


def missing_partitions(
    conn: Connection, *, months_back: int = 1, months_ahead: int = 3, today: date | None = None
) -> list[MonthlyPartition]:
    """The monthly partitions around `today` that do not exist yet (nothing is created)."""
    current = month_start(today or datetime.now(UTC).date())
    existing = set(list_partitions(conn))
    months = (add_months(current, offset) for offset in range(-months_back, months_ahead + 1))
    return [
        MonthlyPartition(partition_name(m), m) for m in months if partition_name(m) not in existing
    ]


def ensure_partitions(
    conn: Connection, *, months_back: int = 1, months_ahead: int = 3, today: date | None = None
) -> list[str]:
    """Create the monthly partitions around `today` that do not exist yet; return them."""
    created = []
    for part in missing_partitions(
        conn, months_back=months_back, months_ahead=months_ahead, today=today
    ):
        conn.execute(
            text(
                f'CREATE TABLE IF NOT EXISTS "{part.name}" PARTITION OF {PARENT} '
                f"FOR VALUES FROM ('{part.month.isoformat()}') TO ('{part.end.isoformat()}')"
            )
        )
        created.append(part.name)
    return created


def monthly_partitions(conn: Connection) -> list[MonthlyPartition]:
    """The attached monthly partitions, oldest first; never the DEFAULT partition (its
    name is no month's)."""
    found = [(name, partition_month(name)) for name in list_partitions(conn)]
    return [MonthlyPartition(name, month) for name, month in found if month is not None]


def drop_partition(conn: Connection, part: MonthlyPartition) -> None:
    """Detach `part` from post_attempts and drop it (the caller exported it first)."""
    if partition_month(part.name) != part.month:
        raise ValueError(f"{part.name!r} is not a monthly partition of {PARENT}")
    conn.execute(text(f'ALTER TABLE {PARENT} DETACH PARTITION "{part.name}"'))
    conn.execute(text(f'DROP TABLE "{part.name}"'))


def list_partitions(conn: Connection) -> list[str]:
    """Names of post_attempts' attached partitions, oldest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = :parent ORDER BY c.relname"
        ),
        {"parent": PARENT},
    )
    return [row[0] for row in rows]
