"""`herald accounts ...`: how an account's tokens get in (encrypted), and a look at them.

Tokens are never printed: `show` says whether a refresh token is stored and when the
access token expires. Bad input exits 1 with `herald: <message>` on stderr (usage
errors are click's, 2; configuration errors 2).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from worker.cli.common import STDIN, emit, settings_or_exit
from worker.constants import PLATFORMS

if TYPE_CHECKING:
    from worker.db.models import SocialAccount


def read_secret(value: str | None, name: str) -> str | None:
    """The option's value, or the first line of stdin when it is `-`."""
    if value != STDIN:
        return value
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise click.BadParameter("stdin gave no token", param_hint=name)
    return line


def describe(account: SocialAccount) -> dict[str, Any]:
    """What an operator may see of an account: everything but the tokens."""
    return {
        "id": str(account.id),
        "user_id": str(account.user_id),
        "platform": account.platform,
        "external_id": account.external_id,
        "display_name": account.display_name,
        "is_active": account.is_active,
        "needs_reauth": account.needs_reauth,
        "has_refresh_token": account.refresh_token_enc is not None,
        "token_expires_at": account.token_expires_at,
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    }


@click.group()
def accounts() -> None:
    """Social accounts Herald publishes as; their tokens are stored encrypted."""


@accounts.command("add")
@click.option("--platform", required=True, type=click.Choice(PLATFORMS))
@click.option("--external-id", required=True, help="The account's id on the platform.")
@click.option(
    "--access-token",
    required=True,
    help="OAuth access token; `-` reads it from stdin (keeps it out of shell history).",
)
@click.option("--refresh-token", help="OAuth refresh token; `-` reads it from stdin.")
@click.option(
    "--expires-in", type=click.IntRange(min=1), help="Seconds until the access token expires."
)
@click.option("--user-id", help="Owner's UUID in the product (default: a new one).")
@click.option("--display-name", help="A name people recognise the account by.")
def add(
    *,
    platform: str,
    external_id: str,
    access_token: str,
    refresh_token: str | None,
    expires_in: int | None,
    user_id: str | None,
    display_name: str | None,
) -> None:
    """Register an account; prints it, never its tokens.

    Pass a token as `-` and pipe it in (`... --access-token - < token.txt`): it then
    stays out of shell history and the process list.
    """
    if access_token == STDIN and refresh_token == STDIN:
        raise click.UsageError("only one of --access-token / --refresh-token can be `-`")
    access = read_secret(access_token, "--access-token")
    refresh = read_secret(refresh_token, "--refresh-token")
    assert access is not None
    settings_or_exit()
    from worker.db.accounts import create_account

    account = create_account(
        platform,
        external_id,
        access,
        refresh,
        expires_in=expires_in,
        user_id=user_id,
        display_name=display_name,
    )
    emit(describe(account))


@accounts.command("list")
@click.option("--platform", type=click.Choice(PLATFORMS))
@click.option("--user-id", help="Only this owner's accounts.")
def list_(platform: str | None, user_id: str | None) -> None:
    """Accounts, oldest first (no tokens)."""
    settings_or_exit()
    from worker.db.accounts import list_accounts

    found = list_accounts(user_id=user_id, platform=platform)
    emit([describe(account) for account in found])


@accounts.command("show")
@click.argument("account_id")
def show(account_id: str) -> None:
    """One account (no tokens: `has_refresh_token`, `token_expires_at` instead)."""
    settings_or_exit()
    from worker.db.accounts import AccountNotFound, get_account

    account = get_account(account_id)
    if account is None:
        raise AccountNotFound.of(account_id)
    emit(describe(account))


@accounts.command("deactivate")
@click.argument("account_id")
def deactivate(account_id: str) -> None:
    """Stop publishing as the account (its scheduled posts stay; they will not publish)."""
    settings_or_exit()
    from worker.db.accounts import deactivate_account

    account = deactivate_account(account_id)
    emit(describe(account))
