"""One archival run: what `maintenance.archive` and `herald archive` both do.

Order matters: the months ahead are created first (an attempt whose month has no
partition cannot be recorded at all), then finished posts move, then expired
attempt partitions are exported and dropped. A dry run reads the same plan and
changes nothing: no rows, no DDL, no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, overload

from sqlalchemy import Engine

from worker.archival import attempts, posts
from worker.constants import LOCK_ARCHIVE
from worker.db.engine import get_engine
from worker.db.models import ARCHIVABLE_POST_STATUSES
from worker.db.partitions import MonthlyPartition
from worker.settings import Settings

#: The deployment-wide lock every real run holds (beat's task and `herald archive`).
LOCK_NAME = LOCK_ARCHIVE
#: Seconds a killed run's lock outlives it (a live run's watchdog keeps extending it).
LOCK_TTL = 30.0


def export_dir(settings: Settings) -> Path:
    """Where partition exports go: beside the backups."""
    return settings.backup_dir / "archive"


@dataclass(frozen=True)
class PostsPlan:
    """Finished posts older than `cutoff` that a run would move, in `batches`."""

    cutoff: str
    statuses: list[str]
    batch_size: int
    to_archive: int
    batches: int


@dataclass(frozen=True)
class PostsMoved:
    """Finished posts moved to scheduled_posts_archive (`before`/`after`: archivable rows)."""

    cutoff: str
    statuses: list[str]
    batch_size: int
    before: int
    archived: int
    after: int
    batches: int
    seconds: float
    rows_per_s: float


@dataclass(frozen=True)
class PartitionRows:
    """An expired post_attempts partition a run would export and drop."""

    partition: str
    rows: int


@dataclass(frozen=True)
class PartitionExport:
    """An expired partition exported (file, its sha256 and size) and dropped."""

    partition: str
    rows: int
    file: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class AttemptsPlan:
    """Partitions a run would create ahead and export (older than `expired_before`)."""

    retention_months: int
    expired_before: str
    directory: str
    to_create: list[str]
    to_export: list[PartitionRows]


@dataclass(frozen=True)
class AttemptsRetired:
    """Partitions created ahead, and expired ones exported into `directory` and dropped."""

    retention_months: int
    expired_before: str
    directory: str
    created: list[str]
    exported: list[PartitionExport]


@dataclass(frozen=True)
class ArchivePlan:
    """A dry run's report: what a run at `at` (ISO-8601) would do; nothing changed."""

    dry_run: Literal[True]
    at: str
    posts: PostsPlan
    attempts: AttemptsPlan


@dataclass(frozen=True)
class ArchiveReport:
    """A run's report: what it did at `at` (ISO-8601)."""

    dry_run: Literal[False]
    at: str
    posts: PostsMoved
    attempts: AttemptsRetired


@overload
def run_archive(
    settings: Settings, *, dry_run: Literal[False] = False, now: datetime | None = None
) -> ArchiveReport: ...
@overload
def run_archive(
    settings: Settings, *, dry_run: Literal[True], now: datetime | None = None
) -> ArchivePlan: ...
def run_archive(
    settings: Settings, *, dry_run: bool = False, now: datetime | None = None
) -> ArchiveReport | ArchivePlan:
    """Archive (or, with `dry_run`, say what would be archived); return the report."""
    now = now or datetime.now(UTC)
    engine = get_engine()
    cutoff = now - timedelta(days=settings.archive_after_days)
    with engine.connect() as conn:
        plan = attempts.plan(
            conn,
            today=now.date(),
            retention_months=settings.attempts_retention_months,
            ahead=settings.partitions_ahead,
        )
        expired = [(part, attempts.count_rows(conn, part)) for part in plan.expired]
        archivable = posts.count_archivable(conn, cutoff)
    common_posts = (cutoff.isoformat(), list(ARCHIVABLE_POST_STATUSES), settings.archive_batch_size)
    common_attempts = (
        settings.attempts_retention_months,
        plan.cutoff.isoformat(),
        str(export_dir(settings)),
    )
    if dry_run:
        return ArchivePlan(
            dry_run=True,
            at=now.isoformat(),
            posts=PostsPlan(
                *common_posts,
                to_archive=archivable,
                batches=-(-archivable // settings.archive_batch_size),
            ),
            attempts=AttemptsPlan(
                *common_attempts,
                to_create=[part.name for part in plan.to_create],
                to_export=[PartitionRows(part.name, rows) for part, rows in expired],
            ),
        )
    created = attempts.create_ahead(engine, today=now.date(), ahead=settings.partitions_ahead)
    moved = posts.archive_posts(cutoff, settings.archive_batch_size, now)
    exported = _retire(engine, [p for p, _ in expired], settings)
    return ArchiveReport(
        dry_run=False,
        at=now.isoformat(),
        posts=PostsMoved(
            *common_posts,
            before=moved.before,
            archived=moved.archived,
            after=moved.after,
            batches=moved.batches,
            seconds=round(moved.seconds, 3),
            rows_per_s=round(moved.rows_per_s, 1),
        ),
        attempts=AttemptsRetired(*common_attempts, created=created, exported=exported),
    )


def _retire(
    engine: Engine, expired: list[MonthlyPartition], settings: Settings
) -> list[PartitionExport]:
    done = []
    for part in expired:
        export = attempts.retire(engine, part, export_dir(settings))
        done.append(
            PartitionExport(part.name, export.rows, export.file, export.sha256, export.bytes)
        )
    return done
