"""Operator actions on dead letters: replay (re-send the original task) and purge.

A replay sends the ORIGINAL task name, args, kwargs and the sender's own headers to
the original queue under a NEW task id, and links it from the row (`replayed_task_id`,
`replayed_at`). The message is sent last inside the transaction that marks the row,
so a failed send changes nothing — except for `posts.publish`, whose post is revived
(`revive_post`) in that transaction and whose message goes out after the commit (see
`_send_revived`). Every replay and purge is written to the audit log.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any, Final

import structlog

from worker.constants import ALL_QUEUES, TASK_PUBLISH
from worker.db import audit
from worker.db.session import unit_of_work
from worker.deadletter import store
from worker.deadletter.letter import HEADER_REPLAY_OF, DeadLetterError, revive_post
from worker.deadletter.store import LetterRow
from worker.taskapp import sending
from worker.taskapp.routing import queue_for

log = structlog.get_logger(__name__)

#: Headers Celery's message protocol sets itself: a replay gets fresh ones (new id,
#: no ETA, no retry count); every other header is the sender's and is sent again.
PROTOCOL_HEADERS: Final = frozenset(
    {
        "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries",
        "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin",
        "ignore_result", "replaced_task_nesting", "stamped_headers", "stamps", "redelivered",
    }
)  # fmt: skip


def replay_headers(headers: dict[str, Any] | None, letter_id: int) -> dict[str, Any]:
    """The sender's own headers of the original message, plus where the replay came from."""
    own = {k: v for k, v in (headers or {}).items() if k not in PROTOCOL_HEADERS}
    own[HEADER_REPLAY_OF] = str(letter_id)
    return own


def replay_queue(queue: str | None, task_name: str) -> str:
    """The original queue when it is one of ours, else where the task name routes."""
    return queue if queue in ALL_QUEUES else queue_for(task_name)


@dataclass(frozen=True)
class Replayed:
    """A replayed letter: the new task id it went out under, to `queue`; `post_id` is
    the revived post of a `posts.publish` letter (None for any other task)."""

    id: int
    status: str
    task_name: str
    task_id: str | None
    replayed_task_id: str
    queue: str
    post_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """As printed and audited: `post_id` only when there is one."""
        data = asdict(self)
        if self.post_id is None:
            del data["post_id"]
        return data


@dataclass(frozen=True)
class Purged:
    """A letter marked purged (it stays in the table, for the record)."""

    id: int
    status: str
    task_name: str | None
    task_id: str | None
    reason: str


def why_not_replayable(row: LetterRow) -> str | None:
    """Why this letter cannot be replayed as it is, or None."""
    if row.status != "open":
        linked = f" as task {row.replayed_task_id}" if row.replayed_task_id else ""
        return f"dead letter {row.id} is already {row.status}{linked}"
    if row.raw_body is not None or not row.task_name:
        return (
            f"dead letter {row.id} is a message that could not be decoded "
            f"({row.reason}); there is no task to send again. `herald dlq show "
            f"{row.id}` has its raw body; purge it once it is understood"
        )
    return None


def replay(letter_id: int, *, actor: str | None = None) -> Replayed:
    """Re-send one open dead letter; raise `DeadLetterError` saying why not."""
    new_id = str(uuid.uuid4())
    with unit_of_work() as session:
        row = store.get(session, letter_id, lock=True)
        if row is None:
            raise DeadLetterError(f"no dead letter {letter_id}")
        problem = why_not_replayable(row)
        if problem is not None:
            raise DeadLetterError(problem)
        assert row.task_name is not None  # why_not_replayable refuses a letter without one
        post_id = None
        if row.task_name == TASK_PUBLISH:
            post_id = str(revive_post(_post_id(row), session=session).post_id)
        queue = replay_queue(row.queue, row.task_name)
        store.mark_replayed(session, letter_id, new_id)
        if post_id is None:
            _send(row, new_id, queue)
    if post_id is not None:
        _send_revived(row, new_id, queue)
    done = Replayed(letter_id, "replayed", row.task_name, row.task_id, new_id, queue, post_id)
    audit.record("dlq.replay", actor=actor, target=f"dead_letter:{letter_id}", **done.as_json())
    return done


def _send_revived(row: LetterRow, new_id: str, queue: str) -> None:
    """Send a revived post's publish after the revive committed: a worker taking the
    message earlier would find the post still `dead` (its lease UPDATE does not wait on
    a row whose committed status does not match) and skip it. If the send fails, the
    post is `queued` with a lease, so recovery sends it when the lease ends."""
    try:
        _send(row, new_id, queue)
    except DeadLetterError as exc:
        raise DeadLetterError(
            f"{exc}; the post was revived and recovery re-sends it within HERALD_QUEUED_LEASE"
        ) from exc


def _post_id(row: LetterRow) -> object:
    args, kwargs = row.args or [], row.kwargs or {}
    return args[0] if args else kwargs.get("post_id")


def _send(row: LetterRow, new_id: str, queue: str) -> None:
    assert row.task_name is not None  # why_not_replayable refuses a letter without one
    try:
        sending.current().send_task(
            row.task_name,
            args=row.args or [],
            kwargs=row.kwargs or {},
            task_id=new_id,
            queue=queue,
            headers=replay_headers(row.headers, row.id),
        )
    except Exception as exc:  # the broker: nothing was changed, the row stays open
        raise DeadLetterError(f"could not send the replay ({type(exc).__name__}: {exc})") from exc
    log.info("deadletter.replayed", letter_id=row.id, task_name=row.task_name, new=new_id)


def replayable_ids(task_name: str) -> list[int]:
    """Open letters of `task_name`, oldest first (`replay --all --task NAME`)."""
    with unit_of_work() as session:
        return store.open_ids(session, task_name)


def purge(letter_id: int, *, actor: str | None = None) -> Purged:
    """Mark an open letter purged: it will not be replayed. The row stays, for the record."""
    with unit_of_work() as session:
        row = store.get(session, letter_id, lock=True)
        if row is None:
            raise DeadLetterError(f"no dead letter {letter_id}")
        if row.status != "open":
            raise DeadLetterError(f"dead letter {letter_id} is already {row.status}")
        store.mark_purged(session, letter_id)
    done = Purged(letter_id, "purged", row.task_name, row.task_id, row.reason)
    audit.record("dlq.purge", actor=actor, target=f"dead_letter:{letter_id}", **asdict(done))
    return done
