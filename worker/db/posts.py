"""Every write to scheduled_posts and post_attempts (reads: `worker.db.posts_queries`).

States: scheduled -> queued (dispatcher) -> publishing (a worker's lease) -> published,
or back to queued for a retry, or dead. Every change locks the row, and a worker's
writes are fenced by the attempt number it leased: a worker that outlived its lease
cannot overwrite what the next one did. The API side (`worker.client`) creates,
cancels and reschedules rows; dead letters revive a dead post or bury a poison one.
Archival's move of finished rows to scheduled_posts_archive is archival's own table
operation (`worker.archival.posts`): it changes no live row, it takes old ones away.

Functions take the caller's session: the caller owns the transaction and decides
what a state means; this module only knows SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from worker.db.models import FINAL_POST_STATUSES, ScheduledPost
from worker.db.posts_queries import DUE_TOLERANCE_SECONDS, AccountForPost
from worker.observability import correlation

#: States from which the API may still cancel or reschedule a post.
MODIFIABLE_STATUSES: Final = ("scheduled", "queued")


@dataclass(frozen=True)
class Lease:
    """A worker's right to publish one post, for this attempt only."""

    post_id: uuid.UUID
    account_id: uuid.UUID
    platform: str
    content: str
    media: list[str]
    scheduled_at: datetime
    attempt: int
    request_id: str | None

    @property
    def earlier_outcome_unknown(self) -> bool:
        """An earlier attempt may have reached the platform: look before posting again."""
        return self.attempt > 1


@dataclass(frozen=True)
class Skip:
    """Why this message does not publish; `retry_in` when another worker holds the lease."""

    reason: str
    retry_in: float | None = None


@dataclass(frozen=True)
class Claimed:
    post_id: uuid.UUID
    scheduled_at: datetime
    request_id: str | None


#: One statement takes the lease when the row may be published now (the row lock it
#: takes makes a concurrent taker re-check these conditions and find none).
_TAKE = text(
    "UPDATE scheduled_posts SET status = 'publishing', attempts = attempts + 1, "
    "lease_expires_at = now() + make_interval(secs => :lease), updated_at = now(), "
    # A request id that came only in the message header stays with the post from now on.
    "request_id = COALESCE(request_id, :request_id), "
    "first_attempt_at = COALESCE(first_attempt_at, now()) "
    "WHERE id = :id AND (status IN ('scheduled', 'queued') "
    "OR (status = 'publishing' AND lease_expires_at <= now())) "
    "AND scheduled_at <= now() + make_interval(secs => :tolerance) "
    "AND (CAST(:expected AS timestamptz) IS NULL OR scheduled_at = :expected) "
    "RETURNING social_account_id, platform, content, media, scheduled_at, attempts, request_id"
)
#: Only when the lease was not taken: why not (no lock; the answer is for logs and timing).
_INSPECT = text(
    "SELECT status, scheduled_at, extract(epoch FROM lease_expires_at - now()) AS lease_left, "
    "extract(epoch FROM scheduled_at - now()) AS due_in FROM scheduled_posts WHERE id = :id"
)


def take_lease(
    session: Session, post_id: uuid.UUID, lease_seconds: int, expected_at: datetime | None
) -> Lease | Skip:
    """Move a due post to `publishing` for this worker (one round trip), or say why not."""
    params = {
        "id": post_id,
        "lease": lease_seconds,
        "tolerance": DUE_TOLERANCE_SECONDS,
        "expected": expected_at,
        "request_id": correlation.current_request_id(),
    }
    row = session.execute(_TAKE, params).mappings().one_or_none()
    if row is None:
        return _why_not(
            session.execute(_INSPECT, {"id": post_id}).mappings().one_or_none(), expected_at
        )
    return Lease(
        post_id=post_id,
        account_id=row["social_account_id"],
        platform=row["platform"],
        content=row["content"],
        media=list(row["media"] or []),
        scheduled_at=row["scheduled_at"],
        attempt=row["attempts"],
        request_id=row["request_id"],
    )


def _why_not(row: Any, expected_at: datetime | None) -> Skip:
    if row is None:
        return Skip("unknown post")
    status = row["status"]
    if status in FINAL_POST_STATUSES:
        return Skip(f"already {status}")
    if status == "publishing" and row["lease_left"] is not None and row["lease_left"] > 0:
        return Skip("being published by another worker", retry_in=float(row["lease_left"]))
    if expected_at is not None and row["scheduled_at"] != expected_at:
        return Skip("rescheduled since this message was sent")
    if row["due_in"] > DUE_TOLERANCE_SECONDS:
        return Skip(f"not due for {float(row['due_in']):.1f}s")
    return Skip(f"not publishable ({status})")


@dataclass(frozen=True)
class AttemptRecord:
    """The post_attempts row an attempt's end writes."""

    outcome: str
    latency_ms: int | None = None
    http_status: int | None = None
    error: str | None = None
    task_id: str | None = None
    worker: str | None = None


# Each end of an attempt is one statement: the post's new state, fenced by
# `status = 'publishing' AND attempts = :attempt` (only the lease holder may end it),
# and its post_attempts row, written whether or not the fence held. It returns
# whether the fence held.
_ATTEMPT_COLUMNS = "post_id, attempt, outcome, http_status, latency_ms, error, task_id, worker"

_END_PUBLISHED = text(
    "WITH ended AS (UPDATE scheduled_posts SET status = 'published', external_post_id = :ext, "
    "published_at = now(), lease_expires_at = NULL, last_error = NULL, updated_at = now() "
    "WHERE id = :id AND status = 'publishing' AND attempts = :attempt RETURNING 1) "
    "INSERT INTO post_attempts (post_id, attempt, outcome, http_status, latency_ms, error, "
    "task_id, worker) VALUES (:id, :attempt, :outcome, :status, :latency, :error, :task, "
    ":worker) RETURNING (SELECT count(*) FROM ended)"
)
_END_RETRY = text(
    "WITH ended AS (UPDATE scheduled_posts SET status = 'queued', last_error = :error, "
    "lease_expires_at = now() + make_interval(secs => :until), updated_at = now() "
    "WHERE id = :id AND status = 'publishing' AND attempts = :attempt RETURNING 1) "
    "INSERT INTO post_attempts (post_id, attempt, outcome, http_status, latency_ms, error, "
    "task_id, worker) VALUES (:id, :attempt, :outcome, :status, :latency, :error, :task, "
    ":worker) RETURNING (SELECT count(*) FROM ended)"
)
_END_DEAD = text(
    "WITH ended AS (UPDATE scheduled_posts SET status = 'dead', last_error = :error, "
    "lease_expires_at = NULL, updated_at = now() "
    "WHERE id = :id AND status = 'publishing' AND attempts = :attempt RETURNING 1) "
    "INSERT INTO post_attempts (post_id, attempt, outcome, http_status, latency_ms, error, "
    "task_id, worker) VALUES (:id, :attempt, :outcome, :status, :latency, :error, :task, "
    ":worker) RETURNING (SELECT count(*) FROM ended)"
)


_UNTAKE = text(
    "UPDATE scheduled_posts SET status = 'queued', attempts = attempts - 1, "
    "lease_expires_at = now() + make_interval(secs => :until), updated_at = now() "
    "WHERE id = :id AND status = 'publishing' AND attempts = :attempt"
)


def untake_lease(session: Session, lease: Lease, until: float) -> bool:
    """Give the lease back unused (deferred before calling the platform): `queued` again
    until `until` seconds from now, the attempt not counted. False if the lease was no
    longer this worker's."""
    params = {"id": lease.post_id, "attempt": lease.attempt, "until": until}
    return bool(session.execute(_UNTAKE, params).rowcount)  # type: ignore[attr-defined]


def _end(
    session: Session, statement: Any, lease: Lease, record: AttemptRecord, **extra: Any
) -> bool:
    params = {
        "id": lease.post_id,
        "attempt": lease.attempt,
        "outcome": record.outcome,
        "status": record.http_status,
        "latency": record.latency_ms,
        "error": record.error,
        "task": record.task_id,
        "worker": record.worker,
        **extra,
    }
    return bool(session.execute(statement, params).scalar_one())


def end_published(session: Session, lease: Lease, external_id: str, record: AttemptRecord) -> bool:
    """Record success; False if this worker's lease was taken over meanwhile."""
    return _end(session, _END_PUBLISHED, lease, record, ext=external_id)


def end_for_retry(session: Session, lease: Lease, record: AttemptRecord, until: float) -> bool:
    """Back to `queued`, leased for `until` seconds, after which the dispatcher re-sends."""
    return _end(session, _END_RETRY, lease, record, until=until)


def end_dead(session: Session, lease: Lease, record: AttemptRecord) -> bool:
    """Give up on the post: `dead`, with the record's error as last_error."""
    return _end(session, _END_DEAD, lease, record)


#: Clocks of API hosts and PostgreSQL may disagree this much before a row counts as stale.
STALE_CLOCK_SLACK_SECONDS = 60


def refuse_stale(session: Session, grace_s: float, batch: int) -> list[Claimed]:
    """Due rows whose `scheduled_at` was already more than `grace_s` in the past when the
    row was inserted: `dead`, with a reason that names the setting.

    Judged against `created_at`, not now: a post that fell due while Herald was down is
    still published late; only a row that arrived already stale (a clock slip, a bad
    import, a stale retry of an API call) is refused, as `worker.client` refuses it.
    """
    rows = session.execute(
        text(
            "WITH stale AS (SELECT id FROM scheduled_posts WHERE status = 'scheduled' "
            "AND scheduled_at <= now() "
            "AND scheduled_at < created_at - make_interval(secs => :grace + :slack) "
            "LIMIT :batch FOR UPDATE SKIP LOCKED) "
            "UPDATE scheduled_posts p SET status = 'dead', updated_at = now(), last_error = "
            "'scheduled_at was ' || floor(extract(epoch FROM p.created_at - p.scheduled_at))"
            "::bigint || ' s before the row was inserted; at most ' || :grace || "
            "' s is allowed (HERALD_PAST_GRACE): reschedule it' "
            "FROM stale WHERE p.id = stale.id RETURNING p.id, p.scheduled_at, p.request_id"
        ),
        {"grace": int(grace_s), "slack": STALE_CLOCK_SLACK_SECONDS, "batch": batch},
    )
    return [Claimed(r.id, r.scheduled_at, r.request_id) for r in rows]


def claim_due(session: Session, lookahead: float, batch: int, lease_s: int) -> list[Claimed]:
    """Claim up to `batch` posts due within `lookahead` seconds: scheduled -> queued.

    SKIP LOCKED lets any number of dispatchers run at once, each claiming other rows.
    """
    rows = session.execute(
        text(
            "WITH due AS (SELECT id FROM scheduled_posts WHERE status = 'scheduled' "
            "AND scheduled_at <= now() + make_interval(secs => :lookahead) "
            "ORDER BY scheduled_at LIMIT :batch FOR UPDATE SKIP LOCKED) "
            "UPDATE scheduled_posts p SET status = 'queued', updated_at = now(), "
            "lease_expires_at = greatest(p.scheduled_at, now()) + make_interval(secs => :lease) "
            "FROM due WHERE p.id = due.id RETURNING p.id, p.scheduled_at, p.request_id"
        ),
        {"lookahead": lookahead, "batch": batch, "lease": lease_s},
    )
    return [Claimed(r.id, r.scheduled_at, r.request_id) for r in rows]


def reclaim_expired(session: Session, batch: int, lease_s: int) -> list[Claimed]:
    """Queued or publishing rows whose lease ran out (message lost, worker dead): back to
    queued with a fresh lease, to be sent again. The next attempt looks on the platform
    before posting, so a publish that did happen is found, not repeated."""
    rows = session.execute(
        text(
            "WITH stale AS (SELECT id FROM scheduled_posts "
            "WHERE status IN ('queued', 'publishing') AND lease_expires_at < now() "
            "ORDER BY lease_expires_at LIMIT :batch FOR UPDATE SKIP LOCKED) "
            "UPDATE scheduled_posts p SET status = 'queued', updated_at = now(), "
            "lease_expires_at = now() + make_interval(secs => :lease) "
            "FROM stale WHERE p.id = stale.id RETURNING p.id, p.scheduled_at, p.request_id"
        ),
        {"batch": batch, "lease": lease_s},
    )
    return [Claimed(r.id, r.scheduled_at, r.request_id) for r in rows]


# --- The API side: create, cancel, reschedule (worker.client). -------------------------


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


# --- Dead letters: replay a dead post, bury a poison one (worker.deadletter). ----------


def set_revived(session: Session, post_id: uuid.UUID, lease_s: int) -> int:
    """A `dead` row the caller has locked goes back to `queued` with the dispatcher's
    queued lease (attempts and last_error kept); returns its attempts."""
    return int(
        session.execute(
            text(
                "UPDATE scheduled_posts SET status = 'queued', updated_at = now(), "
                "lease_expires_at = greatest(scheduled_at, now()) "
                "+ make_interval(secs => :lease) WHERE id = :id RETURNING attempts"
            ),
            {"id": post_id, "lease": lease_s},
        ).scalar_one()
    )


def bury_in_flight(session: Session, post_id: uuid.UUID, reason: str) -> bool:
    """A queued or publishing post goes `dead` with `reason` as last_error; False if the
    post is in another state (or does not exist)."""
    result = session.execute(
        text(
            "UPDATE scheduled_posts SET status = 'dead', last_error = :reason, "
            "lease_expires_at = NULL, updated_at = now() "
            "WHERE id = :id AND status IN ('queued', 'publishing')"
        ),
        {"id": post_id, "reason": reason},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
