"""SQLAlchemy models of every table in DESIGN.md; Alembic migrations create them.

Status columns are text with a CHECK rather than native enums: an API in another
language inserts plain strings, and adding a state later is one constraint swap.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from worker.constants import PLATFORMS

POST_STATUSES = ("scheduled", "queued", "publishing", "published", "failed", "cancelled", "dead")
#: A post in one of these states is finished: nothing will publish it again.
FINAL_POST_STATUSES = ("published", "failed", "cancelled", "dead")
#: Finished posts that archival moves to scheduled_posts_archive once old enough.
#: Not 'failed': an operator may still reschedule it, so it stays in the live table.
ARCHIVABLE_POST_STATUSES = ("published", "cancelled", "dead")
DEAD_LETTER_STATUSES = ("open", "replayed", "purged")
BACKUP_STATUSES = ("running", "succeeded", "failed", "deleted")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _uuid_pk() -> Any:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SocialAccount(Base):
    __tablename__ = "social_accounts"
    __table_args__ = (
        UniqueConstraint("platform", "external_id"),
        CheckConstraint(_in("platform", PLATFORMS), name="platform"),
        Index(None, "user_id", "platform"),
        Index(None, "is_active", "token_expires_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    platform: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    #: Fernet tokens (MultiFernet, newest key first); never the plain token.
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    needs_reauth: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class ScheduledPost(Base):
    """The schedule. A non-Python API inserts a row with status 'scheduled'."""

    __tablename__ = "scheduled_posts"
    __table_args__ = (
        CheckConstraint(_in("status", POST_STATUSES), name="status"),
        CheckConstraint(_in("platform", PLATFORMS), name="platform"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(None, "user_id", "status", "scheduled_at"),
        Index(None, "social_account_id", "status"),
        # The dispatcher's query: due rows only, so the index stays small.
        Index(
            "ix_scheduled_posts_due", "scheduled_at", postgresql_where=text("status = 'scheduled'")
        ),
        # Recovery's query: rows whose lease ran out.
        Index(
            "ix_scheduled_posts_leased",
            "lease_expires_at",
            postgresql_where=text("status IN ('queued', 'publishing')"),
        ),
        # Archival's query: finished rows by age, so a batch never scans the live schedule.
        Index(
            "ix_scheduled_posts_finished",
            "updated_at",
            postgresql_where=text(_in("status", ARCHIVABLE_POST_STATUSES)),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    social_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("social_accounts.id"))
    platform: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    media: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default=text("'scheduled'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    external_post_id: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Until when the row belongs to the job that queued or is publishing it.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the first publish attempt took the row: recovery lookups page back to here.
    first_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class ArchivedPost(Base):
    """A finished post moved out of scheduled_posts by archival (worker/archival/).

    The same columns as `ScheduledPost` (a unit test holds them equal) plus `archived_at`.
    No foreign key and no CHECKs: the archive keeps what the live table held, and an
    archived post must not stop its account from being deleted.
    """

    __tablename__ = "scheduled_posts_archive"
    __table_args__ = (
        Index(None, "user_id", "scheduled_at"),
        Index(None, "social_account_id", "scheduled_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    social_account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    platform: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    media: Mapped[list[str]] = mapped_column(JSONB)
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    external_post_id: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    archived_at: Mapped[datetime] = _now()


class PostAttempt(Base):
    """One row per publish attempt; range-partitioned by month (see partitions.py)."""

    __tablename__ = "post_attempts"
    __table_args__ = (
        Index(None, "post_id"),
        {"postgresql_partition_by": "RANGE (attempted_at)"},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    attempted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    post_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    task_id: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(Text)


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (
        CheckConstraint(_in("status", DEAD_LETTER_STATUSES), name="status"),
        Index(None, "status", "task_name", "last_failed_at"),
        Index(None, "task_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    task_id: Mapped[str | None] = mapped_column(Text)
    task_name: Mapped[str | None] = mapped_column(Text)
    args: Mapped[Any] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    kwargs: Mapped[Any] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    headers: Mapped[Any] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    queue: Mapped[str | None] = mapped_column(Text)
    #: The message body as received when it could not be decoded (base64).
    raw_body: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    exception_type: Mapped[str | None] = mapped_column(Text)
    exception_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    first_failed_at: Mapped[datetime] = _now()
    last_failed_at: Mapped[datetime] = _now()
    status: Mapped[str] = mapped_column(Text, server_default=text("'open'"))
    replayed_task_id: Mapped[str | None] = mapped_column(Text)
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Backup(Base):
    __tablename__ = "backups"
    __table_args__ = (
        CheckConstraint(_in("status", BACKUP_STATUSES), name="status"),
        Index(None, "status", "finished_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    file: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(Text)
    row_counts: Mapped[Any] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    started_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default=text("'running'"))
    error: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verify_ok: Mapped[bool | None] = mapped_column()
    verify_result: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """An operator action that changed state: who, what, on what, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"), Index(None, "action", "at"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = _now()
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[Any] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
