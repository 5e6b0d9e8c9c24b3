"""`herald tokens new-key | rotate-key | refresh`.

* ``new-key`` prints a fresh Fernet key (for TOKEN_ENCRYPTION_KEYS or
  HERALD_BACKUP_ENCRYPTION_KEY); nothing else is printed, nothing stored.
* ``rotate-key`` re-encrypts every account's tokens with the newest key of
  TOKEN_ENCRYPTION_KEYS, in batches; prints JSON counts. Resumable: run it again after
  an interruption. Exit 1 when some account could not be rotated (its id is listed).
* ``refresh ACCOUNT_ID`` refreshes one account now, in this process, if it is due
  (same lock, policy, guards and outcomes as the ``tokens.refresh`` task). Prints JSON;
  exit 1 unless it ended ``refreshed`` or ``skipped``.
"""

from __future__ import annotations

import sys

import click

from worker.cli.common import EXIT_REFUSED, emit, settings_or_exit
from worker.cli.failures import server_errors

ACTOR = click.option("--actor", help="Who does this, for the audit log (default: the OS user).")


@click.group()
def tokens() -> None:
    """OAuth tokens: encryption keys and refreshes."""


@tokens.command("new-key")
def new_key() -> None:
    """Print a fresh Fernet key (32 random bytes, url-safe base64)."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@tokens.command("rotate-key")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="Accounts per transaction.",
)
@click.option(
    "--pause",
    type=click.FloatRange(0, 60),
    default=0.0,
    show_default=True,
    help="Seconds to wait between batches (spares a busy database).",
)
@ACTOR
def rotate_key(batch_size: int, pause: float, actor: str | None) -> None:
    """Re-encrypt every account's tokens with the newest key (first of TOKEN_ENCRYPTION_KEYS)."""
    settings = settings_or_exit()
    from worker.db import audit
    from worker.security.cipher import configured_keys
    from worker.tokens.rotation import rotate_keys

    # The error's type only: a driver's message may quote a row's ciphertext.
    with server_errors("key rotation", quote_error=False, advice="re-run to resume"):
        report = rotate_keys(configured_keys(settings), batch_size=batch_size, pause=pause)
        audit.record("tokens.rotate_key", actor=actor, target=None, counts=report.as_json())
    emit(report.as_json())
    if report.undecryptable:
        ids = ", ".join(report.undecryptable)
        click.echo(f"herald: no configured key opens the tokens of account(s) {ids}", err=True)
    if report.locked:
        click.echo(f"herald: {len(report.locked)} account(s) were busy; re-run to finish", err=True)
    if not report.complete:
        sys.exit(EXIT_REFUSED)


@tokens.command("refresh")
@click.argument("account_id")
def refresh(account_id: str) -> None:
    """Refresh ACCOUNT_ID's token now if it is due (JSON outcome)."""
    settings_or_exit()
    from worker.tokens.refresh import refresh_account

    result = refresh_account(account_id)
    emit(
        {
            "account_id": account_id,
            "platform": result.platform,
            "outcome": result.outcome,
            "detail": result.detail,
            "retry_in": result.retry_in,
        }
    )
    if result.outcome not in ("refreshed", "skipped"):
        sys.exit(EXIT_REFUSED)
