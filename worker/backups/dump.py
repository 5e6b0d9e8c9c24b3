"""Taking a backup: `pg_dump --format=custom` streamed through sha256 (and encryption)
into BACKUP_DIR, with exact per-table row counts from the same snapshot.

A REPEATABLE READ transaction exports its snapshot (`pg_export_snapshot()`), counts
every table, and stays open while pg_dump runs with `--snapshot`: the counts and the
dump see exactly the same data. The file is written as `.<name>.partial`, fsynced,
then renamed into place (and the directory fsynced), so a crash never leaves a file
under a backup's name that is not the whole backup. `sha256` is over the file as
stored (encrypted or not): verification checks it before anything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
import structlog
from cryptography.fernet import Fernet

from worker.backups import store
from worker.backups.counts import count_rows
from worker.backups.crypto import CHUNK, encrypt_chunks
from worker.backups.files import create_private, fsync_dir, write_durably
from worker.backups.pgtools import DatabaseTarget, PgTools, find_tools
from worker.db.engine import libpq_url
from worker.errors import RefusedError
from worker.settings import Settings

log = structlog.get_logger(__name__)


class BackupError(RefusedError, RuntimeError):
    """A backup could not be taken; the row says `failed` with this message."""


@dataclass(frozen=True)
class Written:
    size: int
    sha256: str
    row_counts: dict[str, int]


def fernet_of(settings: Settings) -> Fernet | None:
    key = settings.backup_encryption_key
    return Fernet(key.get_secret_value().strip()) if key is not None else None


def take_backup(settings: Settings) -> store.BackupRecord:
    """Dump the configured database into a new file; return its `backups` row."""
    assert settings.database_url is not None, "settings must be resolved (get_settings())"
    directory = settings.backup_dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".dump.enc" if settings.backup_encryption_key is not None else ".dump"
    backup_id = store.start(str(directory / f"herald-{stamp}-{{id}}{suffix}"))
    row = store.get(backup_id)
    assert row is not None
    started = time.monotonic()
    log.info("backup.started", backup_id=backup_id, file=row.file)
    try:
        tools = find_tools(settings)
        written = write_dump(settings.database_url, tools, Path(row.file), fernet_of(settings))
    except BaseException as exc:  # interrupted too (time limit, Ctrl-C): never left running
        message = _describe(exc, settings.database_url)
        store.fail(backup_id, message)
        log.error("backup.failed", backup_id=backup_id, error=message)
        if isinstance(exc, Exception):
            raise BackupError(message) from None
        raise
    store.succeed(
        backup_id, size=written.size, sha256=written.sha256, row_counts=written.row_counts
    )
    log.info(
        "backup.succeeded",
        backup_id=backup_id,
        size_bytes=written.size,
        seconds=round(time.monotonic() - started, 3),
    )
    done = store.get(backup_id)
    assert done is not None
    return done


def _describe(exc: BaseException, database_url: str) -> str:
    message = str(exc) or type(exc).__name__
    password = DatabaseTarget.of(database_url).env.get("PGPASSWORD")
    return message.replace(password, "***") if password else message


def write_dump(database_url: str, tools: PgTools, final: Path, fernet: Fernet | None) -> Written:
    """Dump `database_url` into `final` (atomically); counts come from the same snapshot."""
    partial = final.with_name(f".{final.name}.partial")
    try:
        with _snapshot(database_url) as (conn, snapshot):
            counts = count_rows(conn)
            size, digest = _stream_pg_dump(tools, database_url, snapshot, partial, fernet)
        # The checksum beside the file (`sha256sum -c` format) lets a file be restored
        # when the catalog is gone with the database it described.
        write_durably(checksum_path(final), f"{digest}  {final.name}\n".encode())
        os.replace(partial, final)
        fsync_dir(final.parent)
    finally:
        partial.unlink(missing_ok=True)
    return Written(size, digest, counts)


def checksum_path(backup_file: Path) -> Path:
    """Where a backup file's sha256 is kept next to it (`<file>.sha256`)."""
    return backup_file.with_name(f"{backup_file.name}.sha256")


@contextlib.contextmanager
def _snapshot(database_url: str) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """A read-only REPEATABLE READ transaction and its exported snapshot id."""
    with psycopg.connect(
        libpq_url(database_url),
        connect_timeout=10,
        application_name="herald-backup",
        options="-c statement_timeout=0 -c idle_in_transaction_session_timeout=0",
    ) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            yield conn, str(row[0])


def _stream_pg_dump(
    tools: PgTools, database_url: str, snapshot: str, out_path: Path, fernet: Fernet | None
) -> tuple[int, str]:
    target = DatabaseTarget.of(database_url)
    argv = [
        tools.pg_dump,
        "--format=custom",
        "--no-password",
        f"--snapshot={snapshot}",
        f"--dbname={target.url}",
    ]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=target.env)
        assert process.stdout is not None
        try:
            size, digest = _write(process.stdout, out_path, fernet)
            returncode = process.wait()
        finally:
            if process.poll() is None:  # we were interrupted: do not leave pg_dump behind
                process.kill()
                process.wait()
            process.stdout.close()
        if returncode != 0:
            raise BackupError(f"pg_dump exited with status {returncode}: {_tail(errors)}")
    return size, digest


def _write(source: IO[bytes], out_path: Path, fernet: Fernet | None) -> tuple[int, str]:
    chunks: Iterator[bytes] = iter(lambda: source.read(CHUNK), b"")
    if fernet is not None:
        chunks = encrypt_chunks(fernet, chunks)
    sha = hashlib.sha256()
    size = 0
    # Owner-only: a dump holds every row (tokens encrypted, but content and users not).
    with create_private(out_path) as out:
        for chunk in chunks:
            sha.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size, sha.hexdigest()


def _tail(errors: IO[bytes], limit: int = 2000) -> str:
    errors.seek(0)
    text = errors.read().decode(errors="replace").strip()
    return text[-limit:] or "(no message)"
