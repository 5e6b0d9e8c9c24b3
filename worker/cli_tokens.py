"""`herald tokens new-key | rotate-key | refresh`."""

from __future__ import annotations

import click


@click.group()
def tokens() -> None:
    """OAuth tokens: encryption keys and refreshes."""
