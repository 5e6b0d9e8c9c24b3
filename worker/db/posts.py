"""The publish path's writes to scheduled_posts and post_attempts.

States: scheduled -> queued (dispatcher) -> publishing (a worker's lease) -> published,
or back to queued for a retry, or dead. Every change locks the row, and a worker's
writes are fenced by the attempt number it leased: a worker that outlived its lease
cannot overwrite what the next one did.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from worker.db.models import FINAL_POST_STATUSES

#: Slack for clocks and ETA jitter when deciding whether a post is due yet.
DUE_TOLERANCE_SECONDS = 2.0


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


_LOCK = text(
    "SELECT social_account_id, platform, content, media, scheduled_at, status, attempts, "
    "request_id, extract(epoch FROM lease_expires_at - now()) AS lease_left, "
    "extract(epoch FROM scheduled_at - now()) AS due_in "
    "FROM scheduled_posts WHERE id = :id FOR UPDATE"
)


def take_lease(
    session: Session, post_id: uuid.UUID, lease_seconds: int, expected_at: datetime | None
) -> Lease | Skip:
    """Move a due post to `publishing` for this worker, or say why not."""
    row = session.execute(_LOCK, {"id": post_id}).mappings().one_or_none()
    if row is None:
        return Skip("unknown post")
    skip = _why_not(row, expected_at)
    if skip is not None:
        return skip
    session.execute(
        text(
            "UPDATE scheduled_posts SET status = 'publishing', attempts = attempts + 1, "
            "lease_expires_at = now() + make_interval(secs => :lease), updated_at = now() "
            "WHERE id = :id"
        ),
        {"id": post_id, "lease": lease_seconds},
    )
    return Lease(
        post_id=post_id,
        account_id=row["social_account_id"],
        platform=row["platform"],
        content=row["content"],
        media=list(row["media"] or []),
        scheduled_at=row["scheduled_at"],
        attempt=row["attempts"] + 1,
        request_id=row["request_id"],
    )


def _why_not(row: Any, expected_at: datetime | None) -> Skip | None:
    status = row["status"]
    if status in FINAL_POST_STATUSES:
        return Skip(f"already {status}")
    if status == "publishing" and row["lease_left"] is not None and row["lease_left"] > 0:
        return Skip("being published by another worker", retry_in=float(row["lease_left"]))
    if expected_at is not None and row["scheduled_at"] != expected_at:
        return Skip("rescheduled since this message was sent")
    if row["due_in"] > DUE_TOLERANCE_SECONDS:
        return Skip(f"not due for {float(row['due_in']):.1f}s")
    return None


# Every end of an attempt is fenced: WHERE ... status = 'publishing' AND attempts = :attempt,
# so only the worker holding this attempt's lease can write it.


def mark_published(session: Session, lease: Lease, external_id: str) -> bool:
    """Record success; False if this worker's lease was taken over meanwhile."""
    result = session.execute(
        text(
            "UPDATE scheduled_posts SET status = 'published', external_post_id = :ext, "
            "published_at = now(), lease_expires_at = NULL, last_error = NULL, "
            "updated_at = now() WHERE id = :id AND status = 'publishing' AND attempts = :attempt"
        ),
        {"id": lease.post_id, "attempt": lease.attempt, "ext": external_id},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_for_retry(
    session: Session, lease: Lease, error: str, delay: float, lease_s: int
) -> bool:
    """Back to `queued` for a retry in `delay` seconds (the recovery lease covers it)."""
    result = session.execute(
        text(
            "UPDATE scheduled_posts SET status = 'queued', last_error = :error, "
            "lease_expires_at = now() + make_interval(secs => :until), updated_at = now() "
            "WHERE id = :id AND status = 'publishing' AND attempts = :attempt"
        ),
        {"id": lease.post_id, "attempt": lease.attempt, "error": error, "until": delay + lease_s},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_dead(session: Session, lease: Lease, error: str) -> bool:
    """Give up on the post: `dead`, with the reason in last_error."""
    result = session.execute(
        text(
            "UPDATE scheduled_posts SET status = 'dead', last_error = :error, "
            "lease_expires_at = NULL, updated_at = now() "
            "WHERE id = :id AND status = 'publishing' AND attempts = :attempt"
        ),
        {"id": lease.post_id, "attempt": lease.attempt, "error": error},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_attempt(
    session: Session,
    lease: Lease,
    outcome: str,
    *,
    latency_ms: int | None = None,
    http_status: int | None = None,
    error: str | None = None,
    task_id: str | None = None,
    worker: str | None = None,
) -> None:
    session.execute(
        text(
            "INSERT INTO post_attempts (post_id, attempt, outcome, http_status, latency_ms, "
            "error, task_id, worker) VALUES (:post, :attempt, :outcome, :status, :latency, "
            ":error, :task, :worker)"
        ),
        {
            "post": lease.post_id,
            "attempt": lease.attempt,
            "outcome": outcome,
            "status": http_status,
            "latency": latency_ms,
            "error": error,
            "task": task_id,
            "worker": worker,
        },
    )


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


def count_attempts(session: Session, post_id: uuid.UUID, outcomes: tuple[str, ...]) -> int:
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM post_attempts WHERE post_id = :post "
                "AND outcome = ANY(:outcomes)"
            ),
            {"post": post_id, "outcomes": list(outcomes)},
        ).scalar_one()
    )
