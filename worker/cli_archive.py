"""`herald archive [--dry-run]`."""

from __future__ import annotations

import click


@click.command()
def archive() -> None:
    """Archive old post attempts and finished posts."""
