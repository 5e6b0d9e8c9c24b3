"""Which backups to keep: grandfather-father-son, plus the newest verified one.

Only succeeded backups are candidates; running ones are never touched (a dump is
being written) and failed or deleted ones have no file to keep. A backup's time is
when it started (its snapshot), in UTC. Kept:

* daily: the newest backup of each of the newest `daily` days that have backups;
* weekly: the newest of each of the newest `weekly` ISO weeks that have backups;
* monthly: the newest of each of the newest `monthly` months that have backups;
* always the newest backup whose verification passed (a proven restore point).

At most daily + weekly + monthly + 1 are kept; applying the policy to what it kept
keeps the same set.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from worker.backups import store
from worker.backups.dump import checksum_path
from worker.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Candidate:
    id: int
    status: str
    taken_at: datetime
    verified_ok: bool = False

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.taken_at, self.id)


@dataclass(frozen=True)
class Policy:
    daily: int
    weekly: int
    monthly: int

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            settings.backup_keep_daily, settings.backup_keep_weekly, settings.backup_keep_monthly
        )


def _day(at: datetime) -> Hashable:
    return at.astimezone(UTC).date()


def _week(at: datetime) -> Hashable:
    return at.astimezone(UTC).isocalendar()[:2]


def _month(at: datetime) -> Hashable:
    utc = at.astimezone(UTC)
    return (utc.year, utc.month)


def _newest_per_period(
    backups: list[Candidate], period: Callable[[datetime], Hashable], count: int
) -> set[int]:
    newest: dict[Hashable, Candidate] = {}
    for backup in backups:
        key = period(backup.taken_at)
        if key not in newest or backup.order > newest[key].order:
            newest[key] = backup
    latest = sorted(newest.values(), key=lambda b: b.order, reverse=True)[:count]
    return {backup.id for backup in latest}


def keep(backups: Iterable[Candidate], policy: Policy) -> set[int]:
    """Ids of the succeeded backups the policy keeps."""
    done = [b for b in backups if b.status == "succeeded"]
    kept = (
        _newest_per_period(done, _day, policy.daily)
        | _newest_per_period(done, _week, policy.weekly)
        | _newest_per_period(done, _month, policy.monthly)
    )
    verified = [b for b in done if b.verified_ok]
    if verified:
        kept.add(max(verified, key=lambda b: b.order).id)
    return kept


def to_delete(backups: Iterable[Candidate], policy: Policy) -> list[int]:
    """Ids of succeeded backups the policy does not keep (never a running one)."""
    listed = list(backups)
    kept = keep(listed, policy)
    return sorted(b.id for b in listed if b.status == "succeeded" and b.id not in kept)


def apply_retention(settings: Settings) -> list[int]:
    """Delete the files of backups the policy drops and mark their rows `deleted`."""
    rows = store.rows_for_retention()
    files = {row.id: Path(row.file) for row in rows}
    candidates = [
        Candidate(row.id, row.status, row.started_at, bool(row.verify_ok)) for row in rows
    ]
    dropped = to_delete(candidates, Policy.of(settings))
    for backup_id in dropped:
        files[backup_id].unlink(missing_ok=True)  # the row first would leave an orphan file
        checksum_path(files[backup_id]).unlink(missing_ok=True)
        store.mark_deleted(backup_id)
    if dropped:
        log.info("backup.retention", deleted=dropped, kept=len(candidates) - len(dropped))
    return dropped
