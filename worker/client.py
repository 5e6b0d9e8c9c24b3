"""The Python API of Herald: schedule, cancel, reschedule and look at posts.

An API in another language inserts a ``scheduled`` row instead (DESIGN.md); this
module is that, plus the checks a person wants before a post is accepted. Every
refusal is a :class:`HeraldClientError` (a ``ValueError``) whose message starts with
the field it is about, e.g. ``scheduled_at: 2025-05-01T09:00:00 has no timezone``.
Where several fields are wrong, the error has the first one's class and its message
lists them all (``problems`` holds them one by one).

Status changes lock the post's row, as the dispatcher and the publisher do, so a
cancel never races a publish: it waits for the row, then decides on what it finds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy.orm import Session

from worker.db import posts, posts_queries
from worker.db.accounts import AccountNotFound
from worker.db.models import POST_STATUSES
from worker.db.posts_queries import PostAccount, PostView
from worker.db.session import in_transaction, unit_of_work
from worker.errors import HeraldClientError
from worker.settings import get_settings

__all__ = [
    "AccountInactiveError",
    "HeraldClientError",
    "InvalidInputError",
    "PostAccount",
    "PostNotModifiableError",
    "PostView",
    "ScheduledInPastError",
    "UnknownAccountError",
    "UnknownPostError",
    "cancel_post",
    "get_post",
    "list_posts",
    "past_grace",
    "reschedule_post",
    "schedule_post",
]
log = structlog.get_logger(__name__)

#: Most posts :func:`list_posts` returns at once.
MAX_LIST_LIMIT: Final = 1000
#: Longest content per platform: (limit, unit). YouTube counts its description in bytes.
CONTENT_LIMITS: Final = {
    "instagram": (2_200, "characters"),
    "facebook": (63_206, "characters"),
    "youtube": (5_000, "bytes"),
}
#: Media items per platform: (fewest, most, what they must be).
MEDIA_RULES: Final = {
    "instagram": (1, 1, "one image URL"),
    "facebook": (0, 1, "at most one media URL"),
    "youtube": (1, 1, "one video URL"),
}
_PLATFORM_NAMES: Final = {"instagram": "Instagram", "facebook": "Facebook", "youtube": "YouTube"}


class InvalidInputError(HeraldClientError):
    """A field's value is malformed or does not suit the platform."""


class ScheduledInPastError(InvalidInputError):
    """``scheduled_at`` is further in the past than :func:`past_grace`."""


#: No account has this id: the accounts repository's one "account not found" error.
UnknownAccountError = AccountNotFound


class AccountInactiveError(HeraldClientError):
    """The account is deactivated or needs its owner to sign in again."""


class UnknownPostError(HeraldClientError):
    """No post has this id (or the id is not a UUID)."""


class PostNotModifiableError(HeraldClientError):
    """The post is being published or is finished; ``status`` says which."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_id(field: str, value: object, error: type[HeraldClientError]) -> uuid.UUID:
    """``value`` as a UUID, or ``error`` naming the field and the bad value."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise error(f"{field}: {str(value)!r} is not an id (expected a UUID)") from None


def past_grace() -> timedelta:
    """How far in the past ``scheduled_at`` may be (clock skew, a slow form) and still be
    taken, to publish at once: ``HERALD_PAST_GRACE`` seconds (5 min by default)."""
    return timedelta(seconds=get_settings().past_grace)


def check_time(scheduled_at: datetime, now: datetime, grace: timedelta | None = None) -> datetime:
    """An aware ``scheduled_at`` no earlier than ``now - grace`` (default
    :func:`past_grace`), or an error."""
    if scheduled_at.tzinfo is None or scheduled_at.utcoffset() is None:
        shown = scheduled_at.isoformat()
        raise InvalidInputError(
            f"scheduled_at: {shown} has no timezone; give one, e.g. {shown}+00:00 for UTC"
        )
    allowed = past_grace() if grace is None else grace
    late = now - scheduled_at
    if late > allowed:
        raise ScheduledInPastError(
            f"scheduled_at: {scheduled_at.isoformat()} is {_duration(late)} in the past; "
            f"at most {_duration(allowed)} is allowed (HERALD_PAST_GRACE)"
        )
    return scheduled_at


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


def check_media_url(url: str, position: int) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or url != url.strip():
        raise InvalidInputError(f"media[{position}]: {url!r} is not an http(s) URL")
    return url


def check_for_platform(platform: str, content: str, media: Sequence[str]) -> None:
    """Refuse content longer than the platform takes, or the wrong number of media."""
    name = _PLATFORM_NAMES.get(platform, platform)
    limit, unit = CONTENT_LIMITS[platform]
    size = len(content.encode()) if unit == "bytes" else len(content)
    if size > limit:
        raise InvalidInputError(
            f"content: {size:,} {unit} is too long; {name} allows at most {limit:,} {unit}"
        )
    fewest, most, wanted = MEDIA_RULES[platform]
    if not fewest <= len(media) <= most:
        raise InvalidInputError(f"media: {name} needs {wanted} (got {len(media)})")


class NewTime(BaseModel):
    """A new ``scheduled_at``; validate with ``context={"now": ...}``."""

    model_config = ConfigDict(frozen=True)

    scheduled_at: datetime

    @field_validator("scheduled_at")
    @classmethod
    def _time(cls, value: datetime, info: ValidationInfo) -> datetime:
        return check_time(value, (info.context or {}).get("now") or utc_now())


class NewPost(NewTime):
    """A post as the caller gave it, checked as far as it can be without its account."""

    account_id: uuid.UUID
    content: str
    media: tuple[str, ...] = ()
    request_id: str | None = Field(None, max_length=200)

    @field_validator("account_id", mode="before")
    @classmethod
    def _account(cls, value: object) -> uuid.UUID:
        return parse_id("account_id", value, UnknownAccountError)

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        if not value.strip():
            raise InvalidInputError("content: is empty; a post needs some text")
        if "\x00" in value:
            raise InvalidInputError("content: contains a NUL character")
        return value

    @field_validator("media", mode="before")
    @classmethod
    def _media_is_a_list(cls, value: object) -> object:
        if isinstance(value, str | bytes):
            raise InvalidInputError("media: give a list of URLs, not a single string")
        return value

    @field_validator("media")
    @classmethod
    def _media(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_media_url(url, position) for position, url in enumerate(value))


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], fields: dict[str, Any], now: datetime) -> Model:
    """``model`` built from ``fields``, or the first problem's error listing them all."""
    try:
        return model.model_validate(fields, context={"now": now})
    except ValidationError as exc:
        errors = [_as_client_error(error) for error in exc.errors()]
    problems = [str(error) for error in errors]
    raise type(errors[0])("; ".join(problems), problems) from None


def _as_client_error(error: Any) -> HeraldClientError:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, HeraldClientError):
        return cause
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    return InvalidInputError(f"{where.lstrip('.')}: {error['msg']}")


def schedule_post(
    account_id: uuid.UUID | str,
    content: str,
    scheduled_at: datetime,
    media: Sequence[str] = (),
    request_id: str | None = None,
) -> uuid.UUID:
    """Accept a post for publishing at ``scheduled_at``; returns its id.

    ``scheduled_at`` needs a timezone; up to :func:`past_grace` in the past is taken
    (published at once), earlier is :class:`ScheduledInPastError`. The account must
    exist (:class:`UnknownAccountError`), be active and not need re-authorisation
    (:class:`AccountInactiveError`); content and media must suit its platform
    (:class:`InvalidInputError`). ``request_id`` follows the post into the logs; it
    does not deduplicate.
    """
    fields = {"account_id": account_id, "content": content, "scheduled_at": scheduled_at}
    new = validated(NewPost, {**fields, "media": media, "request_id": request_id}, utc_now())

    def work(session: Session) -> uuid.UUID:
        account = posts_queries.account_for_post(session, new.account_id)
        if account is None:
            raise UnknownAccountError(f"account_id: no account {new.account_id}")
        if not account.is_active:
            raise AccountInactiveError(f"account_id: account {account.id} is deactivated")
        if account.needs_reauth:
            raise AccountInactiveError(
                f"account_id: account {account.id} needs its owner to sign in to "
                f"{_PLATFORM_NAMES[account.platform]} again before it can publish"
            )
        check_for_platform(account.platform, new.content, new.media)
        return posts.insert_post(
            session,
            account,
            content=new.content,
            media=list(new.media),
            scheduled_at=new.scheduled_at,
            request_id=new.request_id,
        )

    post_id = in_transaction(work)
    log.info("post.scheduled", post_id=str(post_id), account_id=str(new.account_id))
    return post_id


def _lock_modifiable(session: Session, post_id: uuid.UUID, action: str) -> None:
    """Lock the row (waiting for the publish path if it holds it); raise unless the
    post is still scheduled or queued."""
    status = posts.lock_status(session, post_id)
    if status is None:
        raise UnknownPostError(f"post_id: no post {post_id}")
    if status == "publishing":
        raise PostNotModifiableError(
            f"post {post_id} is being published right now; it can no longer be {action}",
            status,
        )
    if status not in posts.MODIFIABLE_STATUSES:
        raise PostNotModifiableError(
            f"post {post_id} is {status}; only scheduled or queued posts can be {action}",
            status,
        )


def cancel_post(post_id: uuid.UUID | str) -> None:
    """Cancel a scheduled or queued post (a message already queued for it is dropped).

    :class:`UnknownPostError` for an unknown or malformed id; :class:`PostNotModifiableError`
    once publishing has started or the post is finished (cancelled included).
    """
    parsed = parse_id("post_id", post_id, UnknownPostError)

    def work(session: Session) -> None:
        _lock_modifiable(session, parsed, "cancelled")
        posts.set_cancelled(session, parsed)

    in_transaction(work)
    log.info("post.cancelled", post_id=str(parsed))


def reschedule_post(post_id: uuid.UUID | str, scheduled_at: datetime) -> None:
    """Move a scheduled or queued post to a new time, checked as :func:`schedule_post` does.

    The post goes back to ``scheduled``; a message queued for the old time is dropped
    by the publisher. Errors as for :func:`cancel_post`.
    """
    parsed = parse_id("post_id", post_id, UnknownPostError)
    new = validated(NewTime, {"scheduled_at": scheduled_at}, utc_now())

    def work(session: Session) -> None:
        _lock_modifiable(session, parsed, "rescheduled")
        posts.set_rescheduled(session, parsed, new.scheduled_at)

    in_transaction(work)
    log.info("post.rescheduled", post_id=str(parsed), scheduled_at=new.scheduled_at.isoformat())


def get_post(post_id: uuid.UUID | str) -> PostView:
    """The post, or :class:`UnknownPostError`."""
    parsed = parse_id("post_id", post_id, UnknownPostError)
    with unit_of_work() as session:
        view = posts_queries.fetch_post(session, parsed)
    if view is None:
        raise UnknownPostError(f"post_id: no post {parsed}")
    return view


def list_posts(
    status: str | None = None, account_id: uuid.UUID | str | None = None, limit: int = 50
) -> list[PostView]:
    """Posts, latest ``scheduled_at`` first, optionally of one status and/or account.

    ``limit`` is 1 to :data:`MAX_LIST_LIMIT`. An account that does not exist has no posts.
    """
    if status is not None and status not in POST_STATUSES:
        raise InvalidInputError(f"status: {status!r} is not one of {', '.join(POST_STATUSES)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInputError(f"limit: must be a whole number from 1 to {MAX_LIST_LIMIT}")
    account = None if account_id is None else parse_id("account_id", account_id, InvalidInputError)
    with unit_of_work() as session:
        return posts_queries.fetch_posts(session, status, account, limit)
