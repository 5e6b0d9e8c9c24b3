"""The accounts repository: the one place that writes ``social_accounts``.

Tokens go in encrypted (:func:`worker.security.cipher.get_cipher`) and come back
out in plain text only to the token refresh (:func:`load_for_refresh`): callers that
publish read them through :mod:`worker.publishing.account_cache`. Every write invalidates the
account's cache entry after its transaction commits, so the publish path sees the
change on its next read.

Ids may be given as :class:`uuid.UUID` or as strings; a string that is not a UUID
names no account (``get_account`` returns None, writes raise :class:`AccountNotFound`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.constants import PLATFORMS
from worker.db.models import SocialAccount
from worker.db.session import in_transaction, unit_of_work
from worker.errors import HeraldClientError
from worker.publishing.account_cache import invalidate_account
from worker.security.cipher import get_cipher

log = structlog.get_logger(__name__)

#: The unique constraint on (platform, external_id), as the naming convention spells it.
_UNIQUE_PLATFORM_EXTERNAL_ID = "uq_social_accounts_platform_external_id"


class AccountError(HeraldClientError):
    """Bad input to, or a refused change of, an account; the message names the field."""


class AccountExists(AccountError):  # noqa: N818 - the name the API promises
    """An account with this (platform, external_id) is already registered."""

    def __init__(self, platform: str, external_id: str, account_id: uuid.UUID | None) -> None:
        shown = f" (id {account_id})" if account_id else ""
        super().__init__(f"external_id: a {platform} account {external_id!r} already exists{shown}")
        self.account_id = account_id


class AccountNotFound(AccountError):  # noqa: N818 - reads as the condition it reports
    """No account has this id: Herald's one "account not found" (``worker.client``
    raises it as ``UnknownAccountError``). :meth:`of` words the message for an id."""

    @classmethod
    def of(cls, account_id: object) -> AccountNotFound:
        hint = "" if _as_uuid(account_id) else " (not a UUID)"
        return cls(f"account_id: no account {str(account_id)!r}{hint}")


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
        raise AccountNotFound.of(value)
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
        raise AccountNotFound.of(account_id)
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


# --- token refresh and key rotation ----------------------------------------------------


@dataclass(frozen=True)
class RefreshCandidate:
    """An account as the refresh service needs it: its tokens in plain text (hidden from
    reprs) and ``issued_at``, when its token was last written (``updated_at``)."""

    id: uuid.UUID
    platform: str
    external_id: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    issued_at: datetime
    is_active: bool
    needs_reauth: bool


def load_for_refresh(account_id: uuid.UUID | str) -> RefreshCandidate | None:
    """The account with its tokens decrypted, read from the database (never the cache:
    the refresh decides on the row as it is now); None if there is no such account.

    Raises :class:`~worker.security.cipher.TokenDecryptError` when no key opens it.
    """
    parsed = _as_uuid(account_id)
    if parsed is None:
        return None
    with unit_of_work() as session:
        row = session.get(SocialAccount, parsed)
    if row is None:
        return None
    cipher = get_cipher()
    return RefreshCandidate(
        id=row.id,
        platform=row.platform,
        external_id=row.external_id,
        access_token=cipher.decrypt(row.access_token_enc),
        refresh_token=cipher.decrypt(row.refresh_token_enc) if row.refresh_token_enc else None,
        expires_at=row.token_expires_at,
        issued_at=row.updated_at,
        is_active=row.is_active,
        needs_reauth=row.needs_reauth,
    )


def due_account_ids(
    where: str, params: dict[str, object], after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[tuple[uuid.UUID, datetime]]:
    """(id, token_expires_at) of accounts matching ``where`` (the refresh policy's SQL),
    soonest expiry first, after the keyset position ``after``; at most ``limit``."""
    keyset = "AND (token_expires_at, id) > (:after_at, :after_id)" if after else ""
    query = text(
        f"SELECT id, token_expires_at FROM social_accounts WHERE {where} {keyset} "  # noqa: S608 - fixed fragments
        "ORDER BY token_expires_at, id LIMIT :limit"
    )
    values = {**params, "limit": limit}
    if after is not None:
        values.update(after_at=after[0], after_id=after[1])
    with unit_of_work() as session:
        return [(row.id, row.token_expires_at) for row in session.execute(query, values)]


def store_refreshed_tokens(
    account_id: uuid.UUID,
    *,
    expected_expires_at: datetime | None,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> bool:
    """Store a refresh's tokens (encrypted) and expiry in one statement, clearing
    ``needs_reauth``; ``refresh_token=None`` keeps the stored one.

    Fenced: only if the row still expires at ``expected_expires_at`` (what the refresh
    read). False when another refresh got there first, or the account is gone.
    """
    cipher = get_cipher()
    query = text(
        "UPDATE social_accounts SET access_token_enc = :access, "
        "refresh_token_enc = coalesce(:refresh, refresh_token_enc), "
        "token_expires_at = :expires_at, needs_reauth = false, updated_at = now() "
        "WHERE id = :id AND token_expires_at IS NOT DISTINCT FROM :expected RETURNING id"
    )
    values = {
        "id": account_id,
        "access": cipher.encrypt(access_token),
        "refresh": cipher.encrypt(refresh_token) if refresh_token else None,
        "expires_at": expires_at,
        "expected": expected_expires_at,
    }
    with unit_of_work() as session:
        stored = session.execute(query, values).scalar_one_or_none() is not None
    if stored:
        invalidate_account(account_id)
        log.info("account.tokens_refreshed", account_id=str(account_id))
    return stored


@dataclass
class RotationBatch:
    """What one batch of key rotation did."""

    last_id: uuid.UUID | None = None
    scanned: int = 0
    rotated: int = 0
    current: int = 0
    #: Accounts whose tokens no configured key opens.
    undecryptable: list[uuid.UUID] = field(default_factory=list)
    #: Accounts in the batch's id range that another transaction held locked.
    locked: list[uuid.UUID] = field(default_factory=list)


_ROTATION_SELECT = (
    "SELECT id, access_token_enc, refresh_token_enc FROM social_accounts "
    "WHERE {where} ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)


def rotate_batch(
    rewrap: Callable[[str], str | None],
    *,
    after: uuid.UUID | None = None,
    only: list[uuid.UUID] | None = None,
    limit: int = 500,
) -> RotationBatch:
    """Re-encrypt one batch of accounts' tokens, in one transaction.

    Rows come in id order after ``after`` (or exactly the ids ``only``), locked with
    ``FOR UPDATE SKIP LOCKED`` so a refresh writing a row is never waited for: such a
    row is reported in ``locked``. ``rewrap(ciphertext)`` returns the ciphertext under
    the newest key, or None when it already is (the row is not written); it raises
    :class:`~worker.security.cipher.TokenDecryptError` for one no key opens.
    ``updated_at`` is left alone: the tokens themselves did not change.
    """
    from worker.security.cipher import TokenDecryptError

    where = (
        "id = ANY(:only)" if only is not None else "(CAST(:after AS uuid) IS NULL OR id > :after)"
    )
    batch = RotationBatch()
    changed: list[uuid.UUID] = []
    with unit_of_work() as session:
        rows = session.execute(
            text(_ROTATION_SELECT.format(where=where)),
            {"after": after, "only": only, "limit": limit},
        ).all()
        for row in rows:
            batch.scanned += 1
            try:
                access = rewrap(row.access_token_enc)
                refresh = rewrap(row.refresh_token_enc) if row.refresh_token_enc else None
            except TokenDecryptError:
                batch.undecryptable.append(row.id)
                continue
            if access is None and refresh is None:
                batch.current += 1
                continue
            session.execute(
                text(
                    "UPDATE social_accounts SET access_token_enc = coalesce(:a, access_token_enc), "
                    "refresh_token_enc = coalesce(:r, refresh_token_enc) WHERE id = :id"
                ),
                {"a": access, "r": refresh, "id": row.id},
            )
            changed.append(row.id)
        fetched = [row.id for row in rows]
        batch.last_id = fetched[-1] if fetched else None
        full = len(fetched) == limit
        locked = _skipped_in_range(session, after, only, fetched if full else None)
        batch.locked = [i for i in locked if i not in fetched]
    batch.rotated = len(changed)
    for account_id in changed:  # the cache holds ciphertext: drop the old key's
        invalidate_account(account_id)
    return batch


def _skipped_in_range(
    session: Session,
    after: uuid.UUID | None,
    only: list[uuid.UUID] | None,
    fetched: list[uuid.UUID] | None,
) -> list[uuid.UUID]:
    """Ids a SKIP LOCKED select passed over. ``fetched``: the ids of a full batch (its
    range ends at the last); None: the select reached the end of the table."""
    seen = fetched or []
    values: dict[str, object]
    if only is not None:
        where, values = "id = ANY(:only)", {"only": only}
    else:
        where = "(CAST(:after AS uuid) IS NULL OR id > :after)"
        values = {"after": after}
        if fetched:
            where += " AND id <= :last"
            values["last"] = fetched[-1]
    rows = session.execute(
        text(f"SELECT id FROM social_accounts WHERE {where} ORDER BY id"),  # noqa: S608
        values,
    )
    return [row.id for row in rows if row.id not in seen]
