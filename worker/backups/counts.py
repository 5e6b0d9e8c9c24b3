"""Exact per-table row counts: taken with the dump's snapshot, compared after a restore."""

from __future__ import annotations

from typing import Any, TypedDict

import psycopg
from psycopg import sql

#: Ordinary and partitioned tables outside PostgreSQL's own schemas.
_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('information_schema', 'pg_catalog', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
ORDER BY 1, 2
"""


def user_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(str(schema), str(name)) for schema, name in conn.execute(_TABLES).fetchall()]


def count_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """`{"schema.table": rows}` for every user table, as `conn`'s snapshot sees them.

    A partitioned table's count includes its partitions', which are counted too: each
    figure is compared with the same figure after a restore, never summed.
    """
    counts = {}
    for schema, name in user_tables(conn):
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(name)
        )
        row = conn.execute(query).fetchone()
        assert row is not None
        counts[f"{schema}.{name}"] = int(row[0])
    return counts


class Mismatch(TypedDict):
    """One table's row count at backup time and after the restore (None: table missing)."""

    expected: int
    actual: int | None


def mismatches(expected: dict[str, int], actual: dict[str, int]) -> dict[str, Mismatch]:
    """Tables whose restored count differs from the backup's (None: table missing)."""
    return {
        table: Mismatch(expected=rows, actual=actual.get(table))
        for table, rows in sorted(expected.items())
        if actual.get(table) != rows
    }
