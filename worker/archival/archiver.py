"""One archival run: what `maintenance.archive` and `herald archive` both do.

Order matters: the months ahead are created first (an attempt whose month has no
partition cannot be recorded at all), then finished posts move, then expired
attempt partitions are exported and dropped. A dry run reads the same plan and
changes nothing: no rows, no DDL, no files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from worker.archival import attempts, posts
from worker.db.engine import get_engine
from worker.db.models import ARCHIVABLE_POST_STATUSES
from worker.db.partitions import MonthlyPartition
from worker.settings import Settings

#: The deployment-wide lock every real run holds (beat's task and `herald archive`).
LOCK_NAME = "archive"
#: Seconds a killed run's lock outlives it (a live run's watchdog keeps extending it).
LOCK_TTL = 30.0


def export_dir(settings: Settings) -> Path:
    """Where partition exports go: beside the backups."""
    return settings.backup_dir / "archive"


def run_archive(
    settings: Settings, *, dry_run: bool = False, now: datetime | None = None
) -> dict[str, Any]:
    """Archive (or, with `dry_run`, say what would be archived); return a JSON-able report."""
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
    report: dict[str, Any] = {"dry_run": dry_run, "at": now.isoformat()}
    posts_section: dict[str, Any] = {
        "cutoff": cutoff.isoformat(),
        "statuses": list(ARCHIVABLE_POST_STATUSES),
        "batch_size": settings.archive_batch_size,
    }
    attempts_section: dict[str, Any] = {
        "retention_months": settings.attempts_retention_months,
        "expired_before": plan.cutoff.isoformat(),
        "directory": str(export_dir(settings)),
    }
    if dry_run:
        posts_section["to_archive"] = archivable
        posts_section["batches"] = -(-archivable // settings.archive_batch_size)
        attempts_section["to_create"] = [part.name for part in plan.to_create]
        attempts_section["to_export"] = [
            {"partition": part.name, "rows": rows} for part, rows in expired
        ]
    else:
        attempts_section["created"] = attempts.create_ahead(
            engine, today=now.date(), ahead=settings.partitions_ahead
        )
        posts_section.update(_move_posts(cutoff, settings.archive_batch_size, now))
        attempts_section["exported"] = _retire(engine, [p for p, _ in expired], settings)
    report["posts"] = posts_section
    report["attempts"] = attempts_section
    return report


def _move_posts(cutoff: datetime, batch_size: int, stamp: datetime) -> dict[str, Any]:
    result = posts.archive_posts(cutoff, batch_size, stamp)
    return {
        "before": result.before,
        "archived": result.archived,
        "after": result.after,
        "batches": result.batches,
        "seconds": round(result.seconds, 3),
        "rows_per_s": round(result.rows_per_s, 1),
    }


def _retire(
    engine: Engine, expired: list[MonthlyPartition], settings: Settings
) -> list[dict[str, Any]]:
    done = []
    for part in expired:
        export = attempts.retire(engine, part, export_dir(settings))
        done.append(
            {
                "partition": part.name,
                "rows": export.rows,
                "file": export.file,
                "sha256": export.sha256,
                "bytes": export.bytes,
            }
        )
    return done
