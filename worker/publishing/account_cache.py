"""What the publish path knows about an account: a read-through Redis cache over the DB.

An entry (key ``<namespace>:account:<id>``, JSON, :data:`CACHE_TTL_SECONDS`) holds the
account's metadata and its access token *as stored*: encrypted. The plain token
exists only in the :class:`PublishAccount` handed to the caller, whose repr hides it.

Stale entries: a writer commits, then calls :func:`invalidate_account`, which bumps
the entry's generation counter and deletes it. A reader that missed records the
generation before reading the database and fills the entry only if it is unchanged
(one Lua call), so a read that raced a write cannot put the old row back for a TTL.

Redis trouble never fails a publish: the account is read from the database and a
warning logged. An invalidation that cannot reach Redis is logged too; the entry
then lives until its TTL at most.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import redis
import structlog
from sqlalchemy import select

from worker.constants import KEY_ACCOUNT, KEY_ACCOUNT_GENERATION
from worker.coordination.redis_client import get_redis
from worker.db.models import SocialAccount
from worker.db.session import unit_of_work
from worker.security.cipher import get_cipher
from worker.settings import get_settings

log = structlog.get_logger(__name__)

#: Seconds an entry lives; bounds staleness when an invalidation could not reach Redis.
CACHE_TTL_SECONDS: Final = 300
#: Seconds a generation counter outlives its last bump (far beyond any DB read).
GENERATION_TTL_SECONDS: Final = 86_400

#: KEYS[1] the entry, KEYS[2] its generation counter.
#: ARGV[1] the generation read before the database ('' when there was none),
#: ARGV[2] the entry's JSON, ARGV[3] its TTL. Returns 1 if stored, 0 if outdated.
_FILL_IF_CURRENT: Final = """
local generation = redis.call('GET', KEYS[2]) or ''
if generation ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

_COLUMNS = (
    SocialAccount.id,
    SocialAccount.platform,
    SocialAccount.external_id,
    SocialAccount.access_token_enc,
    SocialAccount.is_active,
    SocialAccount.needs_reauth,
)


@dataclass(frozen=True, slots=True)
class PublishAccount:
    """An account as the publish path needs it; ``access_token`` is plain, never shown."""

    id: uuid.UUID
    platform: str
    external_id: str
    access_token: str = field(repr=False)
    is_active: bool
    needs_reauth: bool

    @property
    def can_publish(self) -> bool:
        return self.is_active and not self.needs_reauth


def _keys(account_id: uuid.UUID) -> tuple[str, str]:
    entry = get_settings().key(KEY_ACCOUNT, str(account_id))
    return entry, f"{entry}:{KEY_ACCOUNT_GENERATION}"


def get_publish_account(account_id: uuid.UUID) -> PublishAccount | None:
    """The account with its decrypted token, or None if there is no such account.

    One Redis round trip on a hit; on a miss, a database read and one more. Missing
    accounts are not cached. Raises ``TokenDecryptError`` if no configured key opens
    the stored token (a configuration problem, not a cache one).
    """
    entry_key, generation_key = _keys(account_id)
    try:
        cached, generation = get_redis().mget(entry_key, generation_key)
    except redis.RedisError as exc:
        log.warning("account_cache.unavailable", account_id=str(account_id), error=str(exc))
        row = _load(account_id)
        return _decrypted(row) if row else None
    row = _parse(cached) if cached else None
    if row is None:
        row = _load(account_id)
        if row is None:
            return None
        _fill(entry_key, generation_key, _text(generation), row)
    return _decrypted(row)


def invalidate_account(account_id: uuid.UUID) -> None:
    """Forget the cached entry; call after the transaction that changed the account."""
    entry_key, generation_key = _keys(account_id)
    try:
        with get_redis().pipeline(transaction=True) as pipe:
            pipe.incr(generation_key)
            pipe.expire(generation_key, GENERATION_TTL_SECONDS)
            pipe.delete(entry_key)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning(
            "account_cache.invalidate_failed",
            account_id=str(account_id),
            error=str(exc),
            stale_for_at_most_s=CACHE_TTL_SECONDS,
        )


def _load(account_id: uuid.UUID) -> dict[str, Any] | None:
    with unit_of_work() as session:
        found = session.execute(
            select(*_COLUMNS).where(SocialAccount.id == account_id)
        ).one_or_none()
    if found is None:
        return None
    row = dict(found._mapping)
    row["id"] = str(row["id"])
    return row


def _fill(entry_key: str, generation_key: str, generation: str, row: dict[str, Any]) -> None:
    try:
        get_redis().eval(
            _FILL_IF_CURRENT,
            2,
            entry_key,
            generation_key,
            generation,
            json.dumps(row),
            CACHE_TTL_SECONDS,
        )
    except redis.RedisError as exc:
        log.warning("account_cache.fill_failed", account_id=row["id"], error=str(exc))


def _text(value: str | bytes | None) -> str:
    # The shared client decodes responses; bytes only if someone built it otherwise.
    if isinstance(value, bytes):
        return value.decode()
    return value or ""


def _parse(cached: str | bytes) -> dict[str, Any] | None:
    """The cached row, or None for an entry this code cannot read (it is then refilled)."""
    try:
        row = json.loads(cached)
    except ValueError:
        return None
    if not isinstance(row, dict) or not all(column.key in row for column in _COLUMNS):
        return None
    return row


def _decrypted(row: dict[str, Any]) -> PublishAccount:
    return PublishAccount(
        id=uuid.UUID(str(row["id"])),
        platform=str(row["platform"]),
        external_id=str(row["external_id"]),
        access_token=get_cipher().decrypt(str(row["access_token_enc"])),
        is_active=bool(row["is_active"]),
        needs_reauth=bool(row["needs_reauth"]),
    )
