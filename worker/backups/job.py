"""One scheduled (or `herald backup now`) backup: lock, dump, verify, rotate."""

from __future__ import annotations

from dataclasses import dataclass, fields

import structlog

from worker.backups import store
from worker.backups.dump import take_backup
from worker.backups.retention import apply_retention
from worker.backups.verify import verify_backup
from worker.constants import LOCK_BACKUP
from worker.coordination.locks import singleton
from worker.settings import Settings

log = structlog.get_logger(__name__)

#: Name of the deployment-wide lock; a second backup while one runs is skipped.
LOCK_NAME = LOCK_BACKUP
#: Seconds the lock outlives a holder that died (a live holder keeps extending it).
LOCK_TTL = 120.0


@dataclass(frozen=True)
class BackupRun(store.BackupRecord):
    """The backup's row after the run, plus `deleted`: ids retention removed."""

    deleted: list[int]


def run_backup(settings: Settings) -> BackupRun:
    """Take a backup, verify it (if HERALD_BACKUP_VERIFY), apply retention; return its row
    plus `deleted` (ids retention removed). Raises `AlreadyRunningError` when another
    backup holds the lock, `BackupError` when the dump failed (recorded as failed)."""
    with singleton(LOCK_NAME, ttl=LOCK_TTL):
        interrupted = store.fail_interrupted()
        if interrupted:
            log.warning("backup.interrupted_found", backup_ids=interrupted)
        row = take_backup(settings)
        if settings.backup_verify:
            verify_backup(settings, row.id)
        deleted = apply_retention(settings)
    done = store.get(row.id)
    assert done is not None
    return BackupRun(**{f.name: getattr(done, f.name) for f in fields(done)}, deleted=deleted)
