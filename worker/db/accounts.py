"""The accounts repository: the one place that writes ``social_accounts``.

Tokens go in encrypted (:func:`worker.security.tokens.get_cipher`) and never come
back out of this module in plain text: callers that publish read them through
:mod:`worker.account_cache`. Every write invalidates the account's cache entry
after its transaction commits, so the publish path sees the change on its next read.

Ids may be given as :class:`uuid.UUID` or as strings; a string that is not a UUID
names no account (``get_account`` returns None, writes raise :class:`AccountNotFound`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.account_cache import invalidate_account
from worker.constants import PLATFORMS
from worker.db.models import SocialAccount
from worker.db.session import in_transaction, unit_of_work
from worker.security.tokens import get_cipher

log = structlog.get_logger(__name__)

#: The unique constraint on (platform, external_id), as the naming convention spells it.
_UNIQUE_PLATFORM_EXTERNAL_ID = "uq_social_accounts_platform_external_id"


class AccountError(ValueError):
    """Bad input to, or a refused change of, an account; the message names the field."""


class AccountExists(AccountError):  # noqa: N818 - the name the API promises
    """An account with this (platform, external_id) is already registered."""

    def __init__(self, platform: str, external_id: str, account_id: uuid.UUID | None) -> None:
        shown = f" (id {account_id})" if account_id else ""
        super().__init__(f"external_id: a {platform} account {external_id!r} already exists{shown}")
        self.account_id = account_id


class AccountNotFound(AccountError):  # noqa: N818 - reads as the condition it reports
    """No account has this id."""

    def __init__(self, account_id: object) -> None:
        hint = "" if _as_uuid(account_id) else " (not a UUID)"
        super().__init__(f"account_id: no account {str(account_id)!r}{hint}")


def _as_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _required_uuid(value: object) -> uuid.UUID:
    parsed = _as_uuid(value)
    if parsed is None:
        raise AccountNotFound(value)
    return parsed


def _check_new(platform: str, external_id: str, access_token: str, expires_in: int | None) -> None:
    if platform not in PLATFORMS:
        raise AccountError(f"platform: {platform!r} is not one of {', '.join(PLATFORMS)}")
    if not external_id.strip():
        raise AccountError("external_id: is empty")
    if not access_token.strip():
        raise AccountError("access_token: is empty")
    if expires_in is not None and expires_in <= 0:
        raise AccountError(f"expires_in: must be a positive number of seconds (got {expires_in})")


def create_account(
    platform: str,
    external_id: str,
    access_token: str,
    refresh_token: str | None = None,
    *,
    expires_in: int | None = None,
    user_id: uuid.UUID | str | None = None,
    display_name: str | None = None,
) -> SocialAccount:
    """Register an account; its tokens are stored encrypted.

    ``expires_in`` is the access token's lifetime in seconds from now (as OAuth token
    endpoints give it); without it the expiry is unknown (NULL). A new user id
    (uuid4) is made when none is given. Raises :class:`AccountExists` for a
    (platform, external_id) already registered, :class:`AccountError` for bad input.
    """
    _check_new(platform, external_id, access_token, expires_in)
    owner = uuid.uuid4() if user_id is None else _as_uuid(user_id)
    if owner is None:
        raise AccountError(f"user_id: {user_id!r} is not a UUID")
    cipher = get_cipher()
    account = SocialAccount(
        user_id=owner,
        platform=platform,
        external_id=external_id,
        display_name=display_name,
        access_token_enc=cipher.encrypt(access_token),
        refresh_token_enc=cipher.encrypt(refresh_token) if refresh_token else None,
        token_expires_at=(
            datetime.now(UTC) + timedelta(seconds=expires_in) if expires_in else None
        ),
    )
    try:
        with unit_of_work() as session:
            session.add(account)
            session.flush()
            session.refresh(account)
    except IntegrityError as exc:
        if _constraint(exc) != _UNIQUE_PLATFORM_EXTERNAL_ID:
            raise
        existing = find_account(platform, external_id)
        raise AccountExists(platform, external_id, existing.id if existing else None) from None
    invalidate_account(account.id)
    log.info("account.created", account_id=str(account.id), platform=platform)
    return account


def _constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def get_account(account_id: uuid.UUID | str) -> SocialAccount | None:
    """The account, or None (also for a string that is not a UUID)."""
    parsed = _as_uuid(account_id)
    if parsed is None:
        return None
    with unit_of_work() as session:
        return session.get(SocialAccount, parsed)


def find_account(platform: str, external_id: str) -> SocialAccount | None:
    """The account registered for (platform, external_id), or None."""
    with unit_of_work() as session:
        return session.scalars(
            select(SocialAccount).where(
                SocialAccount.platform == platform, SocialAccount.external_id == external_id
            )
        ).one_or_none()


def list_accounts(
    user_id: uuid.UUID | str | None = None, platform: str | None = None
) -> list[SocialAccount]:
    """Accounts, oldest first, optionally of one user and/or one platform."""
    query = select(SocialAccount).order_by(SocialAccount.created_at, SocialAccount.id)
    if user_id is not None:
        owner = _as_uuid(user_id)
        if owner is None:
            raise AccountError(f"user_id: {user_id!r} is not a UUID")
        query = query.where(SocialAccount.user_id == owner)
    if platform is not None:
        query = query.where(SocialAccount.platform == platform)
    with unit_of_work() as session:
        return list(session.scalars(query))


def _update(account_id: uuid.UUID | str, **values: object) -> SocialAccount:
    """Change the row (locked) and return it; invalidate its cache entry after commit."""
    parsed = _required_uuid(account_id)

    def work(session: Session) -> SocialAccount | None:
        return session.scalars(
            update(SocialAccount)
            .where(SocialAccount.id == parsed)
            .values(**values, updated_at=func.now())
            .returning(SocialAccount)
        ).one_or_none()

    account = in_transaction(work)
    if account is None:
        raise AccountNotFound(account_id)
    invalidate_account(parsed)
    return account


def deactivate_account(account_id: uuid.UUID | str) -> SocialAccount:
    """Stop publishing as this account (``is_active = false``); idempotent."""
    account = _update(account_id, is_active=False)
    log.info("account.deactivated", account_id=str(account.id))
    return account


def mark_needs_reauth(account_id: uuid.UUID | str, reason: str) -> SocialAccount:
    """Flag the account as needing its user to sign in again (revoked or expired grant).

    The table has no column for ``reason``: it is logged, with the account id.
    """
    account = _update(account_id, needs_reauth=True)
    log.warning("account.needs_reauth", account_id=str(account.id), reason=reason)
    return account


def update_tokens(
    account_id: uuid.UUID | str,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> SocialAccount:
    """Store new tokens (encrypted) and clear ``needs_reauth``: the grant works again.

    ``refresh_token=None`` keeps the stored refresh token (Google, for one, does not
    send a new one on every refresh). ``expires_at`` must carry a timezone; None
    means the expiry is unknown.
    """
    if not access_token.strip():
        raise AccountError("access_token: is empty")
    if expires_at is not None and expires_at.tzinfo is None:
        raise AccountError("expires_at: has no timezone; give an aware datetime")
    cipher = get_cipher()
    values: dict[str, object] = {
        "access_token_enc": cipher.encrypt(access_token),
        "token_expires_at": expires_at,
        "needs_reauth": False,
    }
    if refresh_token is not None:
        values["refresh_token_enc"] = cipher.encrypt(refresh_token)
    account = _update(account_id, **values)
    log.info("account.tokens_updated", account_id=str(account.id))
    return account
