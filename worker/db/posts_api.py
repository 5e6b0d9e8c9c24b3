"""The API side's reads and writes of ``scheduled_posts``: create, cancel, reschedule.

The publish path writes its own states in :mod:`worker.db.posts`. Both lock the row
(``SELECT ... FOR UPDATE``) before changing its status, so a cancel that arrives
while the dispatcher or a worker holds the row waits for it, then decides on the
state that transaction left. Functions here take the caller's session: the caller
owns the transaction (``worker.db.session.in_transaction``) and decides what a
state means; this module only knows SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from worker.db.models import ScheduledPost, SocialAccount

#: States from which the API may still cancel or reschedule a post.
MODIFIABLE_STATUSES: Final = ("scheduled", "queued")


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


def insert_post(
    session: Session,
    account: AccountForPost,
    *,
    content: str,
    media: list[str],
    scheduled_at: datetime,
    request_id: str | None,
) -> uuid.UUID:
    """A new row in status ``scheduled``; the dispatcher takes it from there."""
    post = ScheduledPost(
        user_id=account.user_id,
        social_account_id=account.id,
        platform=account.platform,
        content=content,
        media=media,
        scheduled_at=scheduled_at,
        status="scheduled",
        request_id=request_id,
    )
    session.add(post)
    session.flush()
    return post.id


def lock_status(session: Session, post_id: uuid.UUID) -> str | None:
    """The post's status with its row locked until commit (waits for other lockers)."""
    return session.scalar(
        select(ScheduledPost.status).where(ScheduledPost.id == post_id).with_for_update()
    )


def set_cancelled(session: Session, post_id: uuid.UUID) -> None:
    """Cancel a row the caller has locked; a queued message will find it cancelled."""
    session.execute(
        update(ScheduledPost)
        .where(ScheduledPost.id == post_id)
        .values(status="cancelled", lease_expires_at=None, updated_at=func.now())
    )


def set_rescheduled(session: Session, post_id: uuid.UUID, scheduled_at: datetime) -> None:
    """Back to ``scheduled`` at a new time (a locked row); a queued message is outdated.

    The publisher compares the time its message carries with the row's and drops a
    message for a time the post no longer has; the dispatcher queues it again when due.
    """
    session.execute(
        update(ScheduledPost)
        .where(ScheduledPost.id == post_id)
        .values(
            status="scheduled",
            scheduled_at=scheduled_at,
            lease_expires_at=None,
            updated_at=func.now(),
        )
    )


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
