"""Reads of ``scheduled_posts`` and ``post_attempts``: posts as their owner sees them,
and what the publish path looks up. Every write is in :mod:`worker.db.posts`.

Functions take the caller's session: the caller owns the transaction
(``worker.db.session.in_transaction`` / ``unit_of_work``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session

from worker.db.models import ScheduledPost, SocialAccount

#: Slack for clocks and ETA jitter when deciding whether a post is due yet.
DUE_TOLERANCE_SECONDS: Final = 2.0


@dataclass(frozen=True, slots=True)
class AccountForPost:
    """What scheduling needs to know about the account a post goes out as."""

    id: uuid.UUID
    user_id: uuid.UUID
    platform: str
    external_id: str
    display_name: str | None
    is_active: bool
    needs_reauth: bool


def account_for_post(session: Session, account_id: uuid.UUID) -> AccountForPost | None:
    """The account, share-locked until commit: it cannot be deactivated mid-insert."""
    row = session.execute(
        select(
            SocialAccount.id,
            SocialAccount.user_id,
            SocialAccount.platform,
            SocialAccount.external_id,
            SocialAccount.display_name,
            SocialAccount.is_active,
            SocialAccount.needs_reauth,
        )
        .where(SocialAccount.id == account_id)
        .with_for_update(read=True)
    ).one_or_none()
    return AccountForPost(*row) if row else None


class PostAccount(BaseModel):
    """The account a post goes out as."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    external_id: str
    display_name: str | None


class PostView(BaseModel):
    """A post as its owner sees it: every column but the publish path's lease."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    status: str
    platform: str
    account: PostAccount
    user_id: uuid.UUID
    content: str
    media: list[str]
    scheduled_at: datetime
    attempts: int
    external_post_id: str | None
    last_error: str | None
    published_at: datetime | None
    request_id: str | None
    created_at: datetime
    updated_at: datetime


#: PostView fields copied from the row as they are.
_POST_FIELDS: Final = tuple(set(PostView.model_fields) - {"account", "media"})


def _view(post: ScheduledPost, external_id: str, display_name: str | None) -> PostView:
    return PostView(
        account=PostAccount(
            id=post.social_account_id, external_id=external_id, display_name=display_name
        ),
        media=list(post.media or []),
        **{name: getattr(post, name) for name in _POST_FIELDS},
    )


def _with_account() -> Select[ScheduledPost, str, str | None]:
    return select(ScheduledPost, SocialAccount.external_id, SocialAccount.display_name).join(
        SocialAccount, SocialAccount.id == ScheduledPost.social_account_id
    )


def fetch_post(session: Session, post_id: uuid.UUID) -> PostView | None:
    row = session.execute(_with_account().where(ScheduledPost.id == post_id)).one_or_none()
    return _view(*row) if row else None


def fetch_posts(
    session: Session, status: str | None, account_id: uuid.UUID | None, limit: int
) -> list[PostView]:
    """Latest scheduled time first, at most ``limit``."""
    query = _with_account().order_by(ScheduledPost.scheduled_at.desc(), ScheduledPost.id)
    if status is not None:
        query = query.where(ScheduledPost.status == status)
    if account_id is not None:
        query = query.where(ScheduledPost.social_account_id == account_id)
    return [_view(*row) for row in session.execute(query.limit(limit))]


def count_attempts(session: Session, post_id: uuid.UUID, outcomes: tuple[str, ...]) -> int:
    """How many of the post's attempts ended with one of ``outcomes``."""
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM post_attempts WHERE post_id = :post "
                "AND outcome = ANY(:outcomes)"
            ),
            {"post": post_id, "outcomes": list(outcomes)},
        ).scalar_one()
    )


#: The earliest a publish attempt of the post can have started, by the database clock:
#: a lease is only taken once `scheduled_at` is within the tolerance, and each ended
#: attempt (attempted_at is its end) started `latency_ms` before its row. The latter
#: covers a post rescheduled later after an attempt; LEAST skips a NULL.
_FIRST_ATTEMPT_FLOOR = text(
    "SELECT LEAST(p.first_attempt_at, p.scheduled_at - make_interval(secs => :tolerance), "
    "(SELECT min(a.attempted_at - COALESCE(a.latency_ms, 0) * interval '1 millisecond') "
    "FROM post_attempts a WHERE a.post_id = p.id)) AS earliest "
    "FROM scheduled_posts p WHERE p.id = :id"
)


def first_attempt_floor(session: Session, post_id: uuid.UUID) -> datetime | None:
    """No attempt to publish the post started before this (None: no such post).

    The recovery lookup on the platform pages back to here, not a fixed count.
    """
    params = {"id": post_id, "tolerance": DUE_TOLERANCE_SECONDS}
    floor: datetime | None = session.execute(_FIRST_ATTEMPT_FLOOR, params).scalar_one_or_none()
    return floor
