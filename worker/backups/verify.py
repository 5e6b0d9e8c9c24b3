"""Proving a backup restores: checksum, then a real restore into a scratch database
on the same server, then per-table row counts compared with those taken at backup.

The outcome is recorded on the row (`verified_at`, `verify_ok`, `verify_result`), a
failure too: a backup that does not restore is worth an alert, not an exception lost
in a log. `verify_result` is JSON: `{"ok", "mismatches", "tables"?, "error"?, "seconds"}`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from worker.backups import store
from worker.backups.counts import Mismatch, mismatches
from worker.backups.pgtools import PgToolsError, find_tools
from worker.backups.restore import (
    BackupFile,
    RestoreRefusedError,
    backup_row,
    check_file,
    count_database,
    plain_dump,
    run_pg_restore,
)
from worker.db.admin import create_database, drop_database
from worker.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class VerifyResult:
    """A verification's verdict; `error` says why when not `ok`, `tables` how many were
    compared (None when the restore did not get that far)."""

    ok: bool
    mismatches: dict[str, Mismatch] = field(default_factory=dict)
    tables: int | None = None
    error: str | None = None
    seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The recorded and printed form: `tables` and `error` only when known."""
        data: dict[str, Any] = {"ok": self.ok, "mismatches": self.mismatches}
        if self.tables is not None:
            data["tables"] = self.tables
        if self.error is not None:
            data["error"] = self.error
        data["seconds"] = self.seconds
        return data


def scratch_name(backup_id: int) -> str:
    """A database name no one else uses (this process, this backup)."""
    return f"herald_verify_{backup_id}_{os.getpid()}"


def verify_backup(settings: Settings, backup_id: int) -> VerifyResult:
    """Verify backup `backup_id`, record the outcome, return it.

    Raises `RestoreRefusedError` only when there is nothing to verify (unknown id, a
    backup that never succeeded); every other failure is a recorded result.
    """
    row = backup_row(backup_id)
    started = time.monotonic()
    try:
        result = _restore_and_compare(settings, row)
    except (RestoreRefusedError, PgToolsError) as exc:
        result = VerifyResult(ok=False, error=str(exc))
    result = replace(result, seconds=round(time.monotonic() - started, 3))
    store.record_verify(backup_id, result.ok, result.as_json())
    if result.ok:
        log.info("backup.verified", backup_id=backup_id, seconds=result.seconds)
    else:
        log.error("backup.verify_failed", backup_id=backup_id, error=result.error)
    return result


def _restore_and_compare(settings: Settings, row: BackupFile) -> VerifyResult:
    admin_url = settings.database_url
    assert admin_url is not None, "settings must be resolved (get_settings())"
    assert row.id is not None, "only a catalogued backup is verified"
    path = check_file(row)  # the checksum first: no point restoring a changed file
    tools = find_tools(settings)
    name = scratch_name(row.id)
    with plain_dump(settings, path) as dump:
        scratch_url = create_database(admin_url, name)
        try:
            run_pg_restore(tools, dump, scratch_url, "--no-acl")
            counts = count_database(scratch_url)
        finally:
            drop_database(admin_url, name)
    different = mismatches(row.row_counts, counts)
    error = f"row counts differ in {len(different)} table(s)" if different else None
    return VerifyResult(ok=not different, mismatches=different, tables=len(counts), error=error)
