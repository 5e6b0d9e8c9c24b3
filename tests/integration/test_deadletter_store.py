"""The dead-letter table on real PostgreSQL: idempotent recording, reviving posts, and a
letter that outlives a database outage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.fixtures.posting import InsertPosts, post_rows
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker.db.session import unit_of_work
from worker.deadletter.letter import (
    DeadLetterError,
    Letter,
    encode_body,
    record_dead_letter,
    revive_post,
)
from worker.deadletter.store import LetterSummary, get, list_letters, mark_purged, store
from worker.local.processes import BACKGROUND_QUEUES

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def put(**values: Any) -> int:
    with unit_of_work() as session:
        return store(session, Letter(**{"reason": "r", "task_id": "t1", **values})).id


def rows() -> list[LetterSummary]:
    with unit_of_work() as session:
        return list_letters(session, status="all", limit=100)


def test_the_same_failure_twice_is_one_row_with_the_latest_time_and_most_attempts(
    database: str,
) -> None:
    first = put(attempts=3, failed_at=T0.isoformat())
    again = put(attempts=2, failed_at=(T0 + timedelta(minutes=5)).isoformat())
    other_reason = put(reason="another", failed_at=T0.isoformat())

    assert again == first != other_reason
    with unit_of_work() as session:
        row = get(session, first)
    assert row is not None
    assert (row.attempts, row.first_failed_at, row.last_failed_at) == (
        3,
        T0,
        T0 + timedelta(minutes=5),
    )


def test_messages_without_a_task_id_are_told_apart_by_their_body(database: str) -> None:
    a = put(task_id=None, raw_body=encode_body(b"a"))
    assert put(task_id=None, raw_body=encode_body(b"a")) == a
    assert put(task_id=None, raw_body=encode_body(b"b")) != a


def test_a_failure_after_its_letter_was_purged_opens_a_new_one(database: str) -> None:
    first = put()
    with unit_of_work() as session:
        mark_purged(session, first)
    assert put() != first
    assert sorted(row.status for row in rows()) == ["open", "purged"]


def test_revive_post_puts_a_dead_post_back_in_flight_keeping_its_attempts(
    insert_posts: InsertPosts,
) -> None:
    dead, published = insert_posts(2, platforms=("facebook",))
    with unit_of_work() as session:
        session.execute(
            text(
                "UPDATE scheduled_posts SET status = CASE WHEN id = :dead THEN 'dead' "
                "ELSE 'published' END, attempts = 3, last_error = 'gone'"
            ),
            {"dead": dead},
        )

    revived = revive_post(str(dead))

    assert (revived.previous_status, revived.attempts) == ("dead", 3)
    (row,) = post_rows([dead])
    assert (row["status"], row["attempts"]) == ("queued", 3)
    assert row["lease_expires_at"] > datetime.now(UTC)
    with pytest.raises(DeadLetterError, match="is published, not dead"):
        revive_post(published)
    with pytest.raises(DeadLetterError, match="does not exist"):
        revive_post(uuid.uuid4())
    with pytest.raises(DeadLetterError, match="is not a UUID"):
        revive_post("not-a-uuid")


def test_a_letter_sent_while_postgresql_is_unreachable_is_written_once_it_is_back(
    worker_process: WorkerFactory, herald_env: dict[str, str]
) -> None:
    # Given a background worker that cannot reach PostgreSQL
    cut_off = worker_process(
        BACKGROUND_QUEUES,
        name="nodb",
        env={"DATABASE_URL": "postgresql://herald@127.0.0.1:1/nowhere"},
    )
    # When a dead letter is recorded
    assert record_dead_letter(task_name="tokens.refresh", task_id="t-outage", reason="boom")
    wait_for(lambda: "Retry in" in cut_off.log(), timeout=30, what="the recorder to retry")
    assert rows() == []
    # Then a worker that reaches the database writes it (the retries never gave up).
    cut_off.stop()
    worker_process(BACKGROUND_QUEUES, name="bg")
    (row,) = wait_for(rows, timeout=60, interval=0.5, what="the letter to be written")
    assert (row.task_id, row.reason) == ("t-outage", "boom")
