"""Restoring a backup into a database (`herald backup restore`), and the pieces that
verification shares: checksum check, decryption to a temporary file, pg_restore.

A restore refuses a target that holds anything (any table at all) unless forced;
forced, what the backup contains is dropped and restored in one transaction (see
`replace`); either way a restore that fails part-way changes nothing.
Objects are owned by the role that restores (`--no-owner`): the backup's roles need
not exist on the target server.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from worker.backups import store
from worker.backups.counts import Mismatch, count_rows, mismatches, user_tables
from worker.backups.crypto import MAGIC, BackupDecryptError, decrypt_stream
from worker.backups.dump import checksum_path, fernet_of
from worker.backups.pgtools import DatabaseTarget, PgTools, find_tools
from worker.backups.replace import ReplaceError, restore_replacing
from worker.db.engine import libpq_url
from worker.errors import RefusedError
from worker.settings import Settings

log = structlog.get_logger(__name__)

#: Shown (and recorded) when a file's bytes no longer match the sha256 taken at backup.
CHECKSUM_MISMATCH = "checksum mismatch: file changed since backup"


class RestoreRefusedError(RefusedError):
    """The restore (or verification) cannot go ahead; the message says why."""


@dataclass(frozen=True)
class BackupFile:
    """A backup to restore or verify: its catalog id (None for a bare file), its file,
    the sha256 and per-table row counts taken at backup (when known)."""

    id: int | None
    file: str
    sha256: str | None
    row_counts: dict[str, int]


@dataclass(frozen=True)
class RestoreResult:
    """What `restore_backup` restored, where, and the row counts found there after."""

    backup_id: int | None
    file: str
    checksum_checked: bool
    to: str
    replaced_existing: bool
    row_counts: dict[str, int]
    mismatches: dict[str, Mismatch]


def backup_row(backup_id: int) -> BackupFile:
    """A succeeded backup from the catalog, or `RestoreRefusedError` saying why not."""
    row = store.get(backup_id)
    if row is None:
        raise RestoreRefusedError(f"no backup {backup_id} (see `herald backup list`)")
    if row.status != "succeeded":
        raise RestoreRefusedError(
            f"backup {backup_id} is {row.status}; only a succeeded backup has a whole file"
        )
    return BackupFile(row.id, row.file, row.sha256, row.row_counts)


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            sha.update(chunk)
    return sha.hexdigest()


def check_file(row: BackupFile) -> Path:
    """The backup's file, after checking it is there and unchanged."""
    path = Path(row.file)
    label = f"backup {row.id}" if row.id is not None else "backup file"
    if not path.is_file():
        raise RestoreRefusedError(f"{label}: file {path} is missing")
    if row.sha256 is not None and file_sha256(path) != row.sha256:
        raise RestoreRefusedError(f"{label}: {CHECKSUM_MISMATCH} ({path})")
    return path


@contextlib.contextmanager
def plain_dump(settings: Settings, path: Path) -> Iterator[Path]:
    """A path pg_restore can read: `path` itself, or a decrypted temporary copy."""
    with path.open("rb") as source:
        if source.read(len(MAGIC)) != MAGIC:
            yield path
            return
        source.seek(0)
        fernet = fernet_of(settings)
        if fernet is None:
            raise RestoreRefusedError(
                f"{path} is encrypted and HERALD_BACKUP_ENCRYPTION_KEY is not set"
            )
        # Next to the backups, not in /tmp: same disk budget, same access rights.
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".restore-") as plain:
            try:
                for chunk in decrypt_stream(fernet, source):
                    plain.write(chunk)
            except BackupDecryptError as exc:
                raise RestoreRefusedError(f"{path}: {exc}") from None
            plain.flush()
            yield Path(plain.name)


def run_pg_restore(tools: PgTools, dump: Path, database_url: str, *options: str) -> None:
    target = DatabaseTarget.of(database_url)
    argv = [
        tools.pg_restore,
        "--exit-on-error",
        "--no-password",
        "--no-owner",
        *options,
        f"--dbname={target.url}",
        str(dump),
    ]
    done = subprocess.run(argv, env=target.env, capture_output=True, check=False)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()[-2000:] or "(no message)"
        raise RestoreRefusedError(f"pg_restore exited with status {done.returncode}: {message}")


def count_database(database_url: str) -> dict[str, int]:
    with psycopg.connect(libpq_url(database_url), connect_timeout=10) as conn:
        return count_rows(conn)


def describe_contents(database_url: str) -> str | None:
    """None when the database holds no table at all, else what it holds (one line)."""
    with psycopg.connect(libpq_url(database_url), connect_timeout=10) as conn:
        tables = user_tables(conn)
        if not tables:
            return None
        counts = count_rows(conn)
    filled = sum(1 for rows in counts.values() if rows)
    return f"{len(tables)} tables, {filled} with rows"


def shown(url: str) -> str:
    """A database URL safe to print (password masked)."""
    return make_url(url).render_as_string(hide_password=True)


def check_target_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise RestoreRefusedError(
            "--to is not a URL; expected postgresql://user:password@host:5432/dbname"
        ) from None
    if parsed.drivername not in {"postgresql", "postgres", "postgresql+psycopg"}:
        raise RestoreRefusedError(f"--to: scheme {parsed.drivername!r} is not PostgreSQL")
    if not parsed.database:
        raise RestoreRefusedError("--to names no database (postgresql://host/DBNAME)")
    return url


def same_database(a: str, b: str) -> bool:
    x, y = make_url(a), make_url(b)
    return (x.host or "", x.port or 5432, x.database) == (y.host or "", y.port or 5432, y.database)


def file_row(path: Path) -> BackupFile:
    """A backup file given by path (the catalog lost with its database): what is known
    of it. Its checksum comes from `<file>.sha256` when that is there."""
    if not path.is_file():
        raise RestoreRefusedError(f"no backup file {path}")
    sums = checksum_path(path)
    digest = sums.read_text().split()[0] if sums.is_file() else None
    return BackupFile(id=None, file=str(path), sha256=digest, row_counts={})


def restore_backup(
    settings: Settings, backup: int | Path, to_url: str, *, force: bool = False
) -> RestoreResult:
    """Restore backup `backup` (an id, or a file) into `to_url`; return what was restored
    and the row counts found there afterwards."""
    assert settings.database_url is not None, "settings must be resolved (get_settings())"
    check_target_url(to_url)
    row = file_row(backup) if isinstance(backup, Path) else backup_row(backup)
    path = check_file(row)
    try:
        contents = describe_contents(to_url)
    except psycopg.OperationalError as exc:
        raise RestoreRefusedError(f"cannot connect to {shown(to_url)}: {exc}") from None
    if contents is not None and not force:
        raise RestoreRefusedError(
            f"target {shown(to_url)} is not empty ({contents}); pass --force to replace "
            "what the backup contains"
        )
    # Restored over our own database, the catalog would go back to dump time.
    into_ours = row.id is not None and same_database(to_url, settings.database_url)
    catalog = store.catalog_rows() if into_ours else []
    tools = find_tools(settings, to_url)
    with plain_dump(settings, path) as dump:
        if contents is None:
            run_pg_restore(tools, dump, to_url, "--single-transaction")
        else:
            try:
                restore_replacing(tools, dump, to_url)
            except ReplaceError as exc:
                raise RestoreRefusedError(str(exc)) from None
    if into_ours:
        # The backups table came back as it was at dump time; the files did not move.
        store.replace_catalog(catalog)
    counts = count_database(to_url)
    different = mismatches(row.row_counts, counts)
    if into_ours:
        different.pop("public.backups", None)
    log.info("backup.restored", backup_id=row.id, forced=bool(contents), tables=len(counts))
    return RestoreResult(
        backup_id=row.id,
        file=row.file,
        checksum_checked=row.sha256 is not None,
        to=shown(to_url),
        replaced_existing=contents is not None,
        row_counts=counts,
        mismatches=different,
    )
