"""`herald backup now | list | verify ID | restore ID --to URL`."""

from __future__ import annotations

import click


@click.group()
def backup() -> None:
    """Database backups: take, list, verify, restore."""
