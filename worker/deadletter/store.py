"""The one place that writes `dead_letters`: the recorder's upsert and the operator's reads.

A letter is idempotent per (original task id, reason): recording the same failure
again (a redelivered `deadletter.record`, a task that fails the same way after a
retry) updates the open row instead of adding one. A transaction-scoped advisory
lock on that key makes concurrent recorders agree without a unique index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from worker.deadletter.letter import Letter

#: Statuses an operator can filter on; `all` means any.
STATUSES = ("open", "replayed", "purged", "all")

_COLUMNS = (
    "id, task_id, task_name, args, kwargs, headers, queue, raw_body, reason, exception_type, "
    "exception_message, traceback, attempts, first_failed_at, last_failed_at, status, "
    "replayed_task_id, replayed_at"
)
_SUMMARY = (
    "id, task_id, task_name, queue, reason, exception_type, attempts, first_failed_at, "
    "last_failed_at, status, replayed_task_id, replayed_at, raw_body IS NULL AS decoded"
)


@dataclass(frozen=True)
class Stored:
    """The letter's row id; `created` False when it was folded into an open row."""

    id: int
    created: bool


@dataclass(frozen=True)
class LetterSummary:
    """A letter in a listing: no arguments, no bodies (`LetterRow` has those).
    `replayable`: it was decoded and names a task (whatever its status)."""

    id: int
    task_id: str | None
    task_name: str | None
    queue: str | None
    reason: str
    exception_type: str | None
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    status: str
    replayed_task_id: str | None
    replayed_at: datetime | None
    replayable: bool


@dataclass(frozen=True)
class LetterRow:
    """A whole `dead_letters` row: what a replay sends again, and why it failed."""

    id: int
    task_id: str | None
    task_name: str | None
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    headers: dict[str, Any] | None
    queue: str | None
    raw_body: str | None
    reason: str
    exception_type: str | None
    exception_message: str | None
    traceback: str | None
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    status: str
    replayed_task_id: str | None
    replayed_at: datetime | None


def _dedupe_key(letter: Letter) -> str:
    body = "" if letter.task_id is not None else (letter.raw_body or "")
    return json.dumps([letter.task_id, letter.reason, body])


def store(session: Session, letter: Letter) -> Stored:
    """Insert the letter, or fold it into the open row with the same task id and reason."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 4))"),
        {"key": _dedupe_key(letter)},
    )
    existing = session.execute(
        text(
            "SELECT id FROM dead_letters WHERE status = 'open' "
            "AND task_id IS NOT DISTINCT FROM :task_id AND reason = :reason "
            "AND (task_id IS NOT NULL OR raw_body IS NOT DISTINCT FROM :raw_body) "
            "ORDER BY id LIMIT 1 FOR UPDATE"
        ),
        {"task_id": letter.task_id, "reason": letter.reason, "raw_body": letter.raw_body},
    ).scalar_one_or_none()
    params = _params(letter)
    if existing is not None:
        session.execute(
            text(
                "UPDATE dead_letters SET attempts = greatest(attempts, :attempts), "
                "last_failed_at = greatest(last_failed_at, :failed_at), "
                "exception_type = :exception_type, exception_message = :exception_message, "
                "traceback = :traceback WHERE id = :id"
            ),
            {**params, "id": existing},
        )
        return Stored(int(existing), created=False)
    new_id = session.execute(
        text(
            "INSERT INTO dead_letters (task_id, task_name, args, kwargs, headers, queue, "
            "raw_body, reason, exception_type, exception_message, traceback, attempts, "
            "first_failed_at, last_failed_at) VALUES (:task_id, :task_name, "
            "CAST(:args AS jsonb), CAST(:kwargs AS jsonb), CAST(:headers AS jsonb), :queue, "
            ":raw_body, :reason, :exception_type, :exception_message, :traceback, :attempts, "
            ":failed_at, :failed_at) RETURNING id"
        ),
        params,
    ).scalar_one()
    return Stored(int(new_id), created=True)


def _params(letter: Letter) -> dict[str, Any]:
    return {
        "task_id": letter.task_id,
        "task_name": letter.task_name,
        "args": json.dumps(letter.args),
        "kwargs": json.dumps(letter.kwargs),
        "headers": json.dumps(letter.headers),
        "queue": letter.queue,
        "raw_body": letter.raw_body,
        "reason": letter.reason,
        "exception_type": letter.exception_type,
        "exception_message": letter.exception_message,
        "traceback": letter.traceback,
        "attempts": letter.attempts,
        "failed_at": datetime.fromisoformat(letter.failed_at),
    }


def list_letters(
    session: Session,
    *,
    task_name: str | None = None,
    since: datetime | None = None,
    status: str = "open",
    limit: int = 50,
) -> list[LetterSummary]:
    """Summaries, newest failure first (no arguments, no bodies: `get` has those)."""
    rows = session.execute(
        text(
            f"SELECT {_SUMMARY} FROM dead_letters "  # noqa: S608 - constant column list
            "WHERE (CAST(:status AS text) = 'all' OR status = :status) "
            "AND (CAST(:task AS text) IS NULL OR task_name = :task) "
            "AND (CAST(:since AS timestamptz) IS NULL OR last_failed_at >= :since) "
            "ORDER BY last_failed_at DESC, id DESC LIMIT :limit"
        ),
        {"status": status, "task": task_name, "since": since, "limit": limit},
    ).mappings()
    return [_summary(row) for row in rows]


def _summary(row: Any) -> LetterSummary:
    found = dict(row)
    decoded = found.pop("decoded")
    return LetterSummary(**found, replayable=decoded and found["task_name"] is not None)


def get(session: Session, letter_id: int, *, lock: bool = False) -> LetterRow | None:
    """The whole row (`lock`: FOR UPDATE, for a replay or purge in this transaction)."""
    row = (
        session.execute(
            text(
                f"SELECT {_COLUMNS} FROM dead_letters WHERE id = :id"  # noqa: S608
                + (" FOR UPDATE" if lock else "")
            ),
            {"id": letter_id},
        )
        .mappings()
        .one_or_none()
    )
    return LetterRow(**row) if row is not None else None


def open_ids(session: Session, task_name: str) -> list[int]:
    """Open letters of one task, oldest first (for `replay --all`)."""
    found = session.execute(
        text(
            "SELECT id FROM dead_letters WHERE status = 'open' AND task_name = :task "
            "ORDER BY first_failed_at, id"
        ),
        {"task": task_name},
    ).scalars()
    return [int(i) for i in found]


def mark_replayed(session: Session, letter_id: int, new_task_id: str) -> None:
    session.execute(
        text(
            "UPDATE dead_letters SET status = 'replayed', replayed_task_id = :new, "
            "replayed_at = now() WHERE id = :id"
        ),
        {"id": letter_id, "new": new_task_id},
    )


def mark_purged(session: Session, letter_id: int) -> None:
    session.execute(
        text("UPDATE dead_letters SET status = 'purged' WHERE id = :id"), {"id": letter_id}
    )
