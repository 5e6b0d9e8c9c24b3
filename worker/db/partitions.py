"""Monthly range partitions of post_attempts, created ahead of time.

A row whose month has no partition cannot be inserted, so the months ahead are
created at migrate time, by `herald run` and by a daily maintenance job; this module
is the one place that knows the naming and the bounds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

PARENT = "post_attempts"


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def ensure_partitions(
    conn: Connection, *, months_back: int = 1, months_ahead: int = 3, today: date | None = None
) -> list[str]:
    """Create the monthly partitions around `today` that do not exist yet; return them."""
    current = month_start(today or datetime.now(UTC).date())
    existing = set(list_partitions(conn))
    created = []
    for offset in range(-months_back, months_ahead + 1):
        start = add_months(current, offset)
        name = partition_name(start)
        if name in existing:
            continue
        end = add_months(start, 1)
        conn.execute(
            text(
                f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF {PARENT} '
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        )
        created.append(name)
    return created


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
