"""Rows of the `backups` table: the one place that writes them.

A row is `running` while its dump is being taken, then `succeeded` (file, size,
sha256 and per-table row counts recorded) or `failed` (with the error); retention
later marks removed ones `deleted`. Verification results are recorded on the row:
`verified_at`, `verify_ok`, `verify_result` (JSON text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from worker.db.models import Backup
from worker.db.session import unit_of_work


@dataclass(frozen=True)
class BackupRecord:
    """A `backups` row as operators see it: times as ISO-8601 text, `verify_result`
    parsed (`{"ok", "error"?, "mismatches", "tables"?, "seconds"}`), JSON-ready."""

    id: int
    file: str
    size_bytes: int | None
    sha256: str | None
    row_counts: dict[str, int]
    started_at: str | None
    finished_at: str | None
    status: str
    error: str | None
    verified_at: str | None
    verify_ok: bool | None
    verify_result: dict[str, Any] | None

    @classmethod
    def of(cls, row: Backup) -> BackupRecord:
        return cls(
            id=row.id,
            file=row.file,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            row_counts=dict(row.row_counts or {}),
            started_at=_iso(row.started_at),
            finished_at=_iso(row.finished_at),
            status=row.status,
            error=row.error,
            verified_at=_iso(row.verified_at),
            verify_ok=row.verify_ok,
            verify_result=json.loads(row.verify_result) if row.verify_result else None,
        )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def start(file_name: str) -> int:
    """A new `running` row; `file_name` may contain `{id}`, filled with the row's id."""
    with unit_of_work() as session:
        row = Backup(file=file_name, status="running")
        session.add(row)
        session.flush()
        row.file = file_name.format(id=row.id)
        return row.id


def get(backup_id: int) -> BackupRecord | None:
    with unit_of_work() as session:
        row = session.get(Backup, backup_id)
        return BackupRecord.of(row) if row is not None else None


def list_backups(*, include_deleted: bool = False, limit: int = 100) -> list[BackupRecord]:
    """Newest first."""
    query = select(Backup).order_by(Backup.started_at.desc(), Backup.id.desc()).limit(limit)
    if not include_deleted:
        query = query.where(Backup.status != "deleted")
    with unit_of_work() as session:
        return [BackupRecord.of(row) for row in session.scalars(query)]


def succeed(backup_id: int, *, size: int, sha256: str, row_counts: dict[str, int]) -> None:
    _update(
        backup_id,
        status="succeeded",
        size_bytes=size,
        sha256=sha256,
        row_counts=row_counts,
        finished_at=func.now(),
    )


def fail(backup_id: int, error: str) -> None:
    _update(backup_id, status="failed", error=error, finished_at=func.now())


def record_verify(backup_id: int, ok: bool, result: dict[str, Any]) -> None:
    _update(
        backup_id,
        verified_at=func.now(),
        verify_ok=ok,
        verify_result=json.dumps(result, sort_keys=True),
    )


def mark_deleted(backup_id: int) -> None:
    _update(backup_id, status="deleted")


def _update(backup_id: int, **values: Any) -> None:
    with unit_of_work() as session:
        session.execute(update(Backup).where(Backup.id == backup_id).values(**values))


def fail_interrupted() -> list[int]:
    """Mark `running` rows failed: called while holding the backup lock, so whatever
    still says running was interrupted (its process was killed). Returns their ids."""
    with unit_of_work() as session:
        found = session.scalars(
            update(Backup)
            .where(Backup.status == "running")
            .values(status="failed", error="interrupted", finished_at=func.now())
            .returning(Backup.id)
        )
        return list(found)


def catalog_rows() -> list[dict[str, Any]]:
    """Every row as raw column values, to hand back to `replace_catalog` after a restore
    (a snapshot of the table, not a result: hence a mapping per row)."""
    with unit_of_work() as session:
        return [dict(row) for row in session.execute(select(Backup.__table__)).mappings()]


def replace_catalog(rows: list[dict[str, Any]]) -> None:
    """Make the table hold exactly `rows` again (ids kept) and the id sequence follow."""
    with unit_of_work() as session:
        session.execute(delete(Backup))
        if rows:
            session.execute(insert(Backup), rows)
        session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('backups', 'id'), "
                "coalesce(max(id), 0) + 1, false) FROM backups"
            )
        )


def rows_for_retention() -> list[Backup]:
    """Every row that is not deleted (retention decides over these)."""
    with unit_of_work() as session:
        return list(session.scalars(select(Backup).where(Backup.status != "deleted")))


@dataclass(frozen=True)
class BackupAges:
    """What the backup metrics and alerts read; None where there is nothing yet."""

    succeeded: float | None  # seconds since the newest succeeded backup finished
    verified: float | None  # seconds since the newest backup that verified as restorable
    last_verify_ok: bool | None  # the newest verification's verdict


_AGES = text(
    "SELECT max(finished_at) FILTER (WHERE status = 'succeeded'), "
    "max(verified_at) FILTER (WHERE status = 'succeeded' AND verify_ok), "
    "(SELECT verify_ok FROM backups WHERE verified_at IS NOT NULL "
    " ORDER BY verified_at DESC LIMIT 1) "
    "FROM backups"
)


def backup_ages(conn: Connection, now: datetime) -> BackupAges:
    """Ages of the newest succeeded and newest verified backups, in one query."""
    finished, verified, verify_ok = conn.execute(_AGES).one()
    return BackupAges(_age(finished, now), _age(verified, now), verify_ok)


def _age(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())
