"""`herald backup now | list | verify ID | restore ID|FILE --to URL [--force]`.

Output is JSON on stdout (`list`: one backup per line). A refusal (unknown id, a
backup running elsewhere, a non-empty restore target, a file that changed) prints
`herald: <message>` on stderr and exits 1; so does a verification that fails.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from worker.cli.common import EXIT_REFUSED, emit, settings_or_exit


@click.group()
def backup() -> None:
    """Database backups: take, list, verify, restore."""


@backup.command("now")
def now() -> None:
    """Take a backup in this process (verify and retention as configured); print its row."""
    settings = settings_or_exit()
    from worker.backups.job import run_backup

    row = run_backup(settings)
    emit(row)
    if row.verify_ok is False:
        click.echo(f"herald: backup {row.id} failed verification", err=True)
        sys.exit(EXIT_REFUSED)


@backup.command("list")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted backups.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
def list_(include_deleted: bool, limit: int) -> None:
    """Backups, newest first, one JSON object per line."""
    settings_or_exit()
    from worker.backups.store import list_backups

    for row in list_backups(include_deleted=include_deleted, limit=limit):
        click.echo(json.dumps(dataclasses.asdict(row), default=str))


@backup.command("verify")
@click.argument("backup_id", type=int)
def verify(backup_id: int) -> None:
    """Check the checksum, restore into a scratch database, compare row counts."""
    settings = settings_or_exit()
    from worker.backups.verify import verify_backup

    result = verify_backup(settings, backup_id)
    emit({"backup_id": backup_id, **result.as_json()})
    if not result.ok:
        click.echo(f"herald: backup {backup_id} failed verification: {result.error}", err=True)
        sys.exit(EXIT_REFUSED)


@backup.command("restore")
@click.argument("backup_ref", metavar="ID|FILE")
@click.option("--to", "to_url", required=True, help="postgresql:// URL of the target database.")
@click.option(
    "--force", is_flag=True, help="Replace what the backup contains in a non-empty target."
)
def restore(backup_ref: str, to_url: str, force: bool) -> None:
    """Restore a backup into the database at --to (refuses a non-empty one without --force).

    ID is a backup's id; FILE a backup file, for when the catalog is gone with its database
    (its checksum is read from FILE.sha256 when that exists).
    """
    settings = settings_or_exit()
    from worker.backups.restore import restore_backup

    backup_arg: int | Path = int(backup_ref) if backup_ref.isdigit() else Path(backup_ref)
    result = restore_backup(settings, backup_arg, to_url, force=force)
    emit(result)
