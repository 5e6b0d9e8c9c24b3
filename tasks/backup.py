"""`maintenance.backup`: beat's nightly backup (dump, verify, rotate) in worker.backups."""

from __future__ import annotations

from typing import TypedDict

import structlog

from worker.app import app
from worker.backups.job import run_backup
from worker.constants import TASK_BACKUP
from worker.coordination.locks import AlreadyRunningError
from worker.settings import get_settings

log = structlog.get_logger(__name__)

#: A large database takes long to dump and restore; the default 5-minute limit would
#: kill it. Past this, the dump is abandoned and recorded as failed.
TIME_LIMIT = 6 * 3600


class BackupTaskResult(TypedDict, total=False):
    """The task's JSON result: `skipped` (why) or the backup's summary."""

    skipped: str
    id: int
    status: str
    size_bytes: int | None
    verify_ok: bool | None
    deleted: list[int]


@app.task(
    name=TASK_BACKUP,
    # Not redelivered: a backup outlives the broker's visibility timeout, and a missed
    # night is better than two dumps racing; beat sends the next one.
    acks_late=False,
    soft_time_limit=TIME_LIMIT,
    time_limit=TIME_LIMIT + 60,
)
def backup() -> BackupTaskResult:
    """Dump the database, verify the dump restores, apply retention."""
    try:
        row = run_backup(get_settings())
    except AlreadyRunningError:
        log.info("backup.skipped", reason="another backup is running")
        return {"skipped": "another backup is running"}
    if row.verify_ok is False:
        log.error("backup.unverified", backup_id=row.id, result=row.verify_result)
    return {
        "id": row.id,
        "status": row.status,
        "size_bytes": row.size_bytes,
        "verify_ok": row.verify_ok,
        "deleted": row.deleted,
    }
