"""Scenario 7: the clock. A post scheduled a little in the past (within HERALD_PAST_GRACE)
is published at once; further back, `worker.client` refuses it with a clear error and
writes nothing. A row that was on time when inserted but fell due while Herald was down
is published late (catching up is the point of a queue); a row *inserted* already
further in the past than the grace is a mistake of the API that wrote it (a timezone
slip, a stale retry) and ends dead with that reason, never published.
"""

from __future__ import annotations

import collections
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.chaos.harness import Record, audit, drain, side_by_side, stop_workers
from tests.fixtures.posting import InsertPosts, ledger_refs, post_rows, statuses
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.services import reset_process_state
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker.client import ScheduledInPastError, schedule_post
from worker.db.session import unit_of_work

GRACE_S = 3


@pytest.fixture
def short_grace(chaos_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    """A grace of a few seconds, so "beyond the grace" takes seconds, not minutes."""
    monkeypatch.setenv("HERALD_PAST_GRACE", str(GRACE_S))
    reset_process_state()
    return GRACE_S


def insert_row(account: uuid.UUID, scheduled_at: datetime) -> uuid.UUID:
    """A row as a non-Python API writes it (status 'scheduled' by default)."""
    with unit_of_work() as session:
        post_id: uuid.UUID = session.execute(
            text(
                "INSERT INTO scheduled_posts (user_id, social_account_id, platform, content, "
                "media, scheduled_at) SELECT user_id, id, platform, 'from SQL', '[]', :at "
                "FROM social_accounts WHERE id = :acct RETURNING id"
            ),
            {"acct": account, "at": scheduled_at},
        ).scalar_one()
    return post_id


def test_late_within_the_grace_publishes_at_once_and_beyond_it_the_client_refuses(
    short_grace: int,
    accounts: dict[str, uuid.UUID],
    insert_posts: InsertPosts,
    sandbox: SandboxServer,
    worker_process: WorkerFactory,
    beat_process: object,
) -> None:
    record = Record("clock")
    facebook = accounts["facebook"]
    # Fell due while no worker ran: inserted on time, now later than the grace.
    (backlog,) = insert_posts(1, platforms=("facebook",))
    # The worker boots meanwhile: without beat nothing is dispatched, so the row waits.
    worker = worker_process(concurrency=2, name="clock")
    wait_for(
        lambda: (
            post_rows([backlog])[0]["scheduled_at"]
            < datetime.now(UTC) - timedelta(seconds=GRACE_S + 1)
        ),
        timeout=GRACE_S + 5,
        interval=0.1,
        what="the queued-up post to be later than the grace",
    )
    before = len(post_rows())
    with pytest.raises(ScheduledInPastError) as refused:
        schedule_post(facebook, "too late", datetime.now(UTC) - timedelta(seconds=GRACE_S + 7))
    assert str(refused.value).startswith("scheduled_at: ")
    assert f"in the past; at most {GRACE_S} s is allowed (HERALD_PAST_GRACE)" in str(refused.value)
    assert len(post_rows()) == before  # nothing written
    slightly_late = schedule_post(
        facebook, "a slow form", datetime.now(UTC) - timedelta(seconds=GRACE_S - 1)
    )

    beat_process()  # type: ignore[operator]
    started = time.monotonic()
    ids = [backlog, slightly_late]
    drain(ids, record, timeout=30)
    record.notes["seconds_to_publish_late_posts"] = round(time.monotonic() - started, 2)
    record.faults = {"past_grace_s": GRACE_S, "refused_by_client": 1}
    audit(ids, sandbox, record)
    stop_workers([worker])


def test_a_row_inserted_far_in_the_past_ends_dead_with_a_reason_and_never_publishes(
    short_grace: int,
    accounts: dict[str, uuid.UUID],
    sandbox: SandboxServer,
    worker_process: WorkerFactory,
    beat_process: object,
) -> None:
    stale = insert_row(accounts["facebook"], datetime.now(UTC) - timedelta(days=1))
    fresh = insert_row(accounts["facebook"], datetime.now(UTC) - timedelta(seconds=1))
    worker, _ = side_by_side(
        lambda: worker_process(concurrency=2, name="stale"),
        beat_process,  # type: ignore[arg-type]
    )
    wait_for(
        lambda: statuses([stale, fresh]) == {"dead": 1, "published": 1},
        timeout=30,
        interval=0.2,
        what="the stale row dead and the fresh one published",
    )
    assert collections.Counter(ledger_refs(sandbox)) == {str(fresh): 1}
    (row,) = post_rows([stale])
    assert "HERALD_PAST_GRACE" in row["last_error"]
    stop_workers([worker])
