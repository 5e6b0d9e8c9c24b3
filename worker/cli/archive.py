"""`herald archive [--dry-run]`: run archival now, or say what it would do.

Prints the run's report as JSON. Holds the same lock as the nightly task, so an
operator's run and beat's never overlap (exit 1 if one is running; a killed run's lock
expires `LOCK_TTL` seconds after it died).
"""

from __future__ import annotations

import click

from worker.cli.common import emit, settings_or_exit


@click.command()
@click.option("--dry-run", is_flag=True, help="Report what would be archived; change nothing.")
def archive(dry_run: bool) -> None:
    """Archive old post attempts and finished posts."""
    settings = settings_or_exit()
    from worker.archival.archiver import LOCK_NAME, LOCK_TTL, run_archive
    from worker.coordination.locks import singleton

    if dry_run:  # reads only: no lock needed, and it works while a run is going on
        emit(run_archive(settings, dry_run=True))
        return
    with singleton(LOCK_NAME, LOCK_TTL):
        emit(run_archive(settings))
