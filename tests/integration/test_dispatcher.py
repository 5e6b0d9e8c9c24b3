"""The dispatcher claims due rows exactly once, however many run, and recovers stale ones."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import text

from schedules.dispatcher import dispatch_due
from tests.fixtures.posting import InsertPosts, statuses
from tests.fixtures.services import Servers
from worker.constants import QUEUE_POSTS
from worker.db.session import unit_of_work
from worker.publishing.publish import InvalidPublishInputError, parse_input, publish_post
from worker.settings import get_settings


def queued_messages(servers: Servers, namespace: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(servers.redis_url)
    raw = client.lrange(f"{namespace}:{QUEUE_POSTS}", 0, -1)
    client.close()
    messages = []
    for item in raw:
        envelope = json.loads(item)
        body = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"headers": envelope["headers"], "args": body[0], "kwargs": body[1]})
    return messages


def test_only_due_posts_are_claimed_and_future_ones_carry_an_eta(
    insert_posts: InsertPosts, servers: Servers, namespace: str
) -> None:
    now_ids = insert_posts(3, due_in=0)
    soon_ids = insert_posts(2, due_in=1.5)  # inside the 2 s lookahead
    later_ids = insert_posts(2, due_in=120)
    report = dispatch_due(get_settings())
    assert report.claimed == 5
    assert statuses(now_ids + soon_ids) == {"queued": 5}
    assert statuses(later_ids) == {"scheduled": 2}

    messages = {m["args"][0]: m for m in queued_messages(servers, namespace)}
    assert set(messages) == {str(i) for i in now_ids + soon_ids}
    for post in soon_ids:
        assert messages[str(post)]["headers"]["eta"] is not None
    for post in now_ids:
        assert messages[str(post)]["headers"]["eta"] is None
        assert messages[str(post)]["kwargs"]["expected_at"]


def test_concurrent_dispatchers_claim_disjoint_rows(
    insert_posts: InsertPosts, servers: Servers, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_DISPATCH_BATCH_SIZE", "50")
    from worker import runtime

    runtime.reset()
    ids = insert_posts(600, due_in=0)
    reports = []

    def run() -> None:
        reports.append(dispatch_due(get_settings()))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r.claimed for r in reports) == 600
    assert statuses(ids) == {"queued": 600}
    sent = [m["args"][0] for m in queued_messages(servers, namespace)]
    assert len(sent) == 600
    assert len(set(sent)) == 600


def test_stale_leases_are_reclaimed_and_sent_again(
    insert_posts: InsertPosts, servers: Servers, namespace: str
) -> None:
    lost, crashed, fine = insert_posts(3, due_in=0)
    past = datetime.now(UTC) - timedelta(seconds=5)
    with unit_of_work() as session:
        session.execute(
            text(
                "UPDATE scheduled_posts SET status = CASE WHEN id = :lost THEN 'queued' "
                "ELSE 'publishing' END, attempts = 1, lease_expires_at = :past "
                "WHERE id IN (:lost, :crashed)"
            ),
            {"lost": lost, "crashed": crashed, "past": past},
        )
    report = dispatch_due(get_settings())
    assert (report.claimed, report.recovered) == (1, 2)
    assert statuses([lost, crashed, fine]) == {"queued": 3}
    sent = sorted(m["args"][0] for m in queued_messages(servers, namespace))
    assert sent == sorted(str(i) for i in (lost, crashed, fine))


def test_a_row_inserted_already_beyond_the_grace_is_refused_with_a_reason(
    insert_posts: InsertPosts, servers: Servers, namespace: str
) -> None:
    # Given: one row inserted a day after its time, one that fell due during an outage
    # (inserted before its time), and one inserted inside the grace.
    stale, outage, late_ok = insert_posts(3, due_in=0)
    now = datetime.now(UTC)
    with unit_of_work() as session:
        for post, created, scheduled in (
            (stale, now, now - timedelta(days=1)),
            (outage, now - timedelta(days=2), now - timedelta(days=1)),
            (late_ok, now, now - timedelta(seconds=60)),
        ):
            session.execute(
                text("UPDATE scheduled_posts SET created_at = :c, scheduled_at = :s WHERE id = :i"),
                {"c": created, "s": scheduled, "i": post},
            )
    # When
    report = dispatch_due(get_settings())
    # Then: only the stale row is refused; it is never sent, and the reason names the setting.
    assert (report.refused, report.claimed) == (1, 2)
    assert statuses([stale]) == {"dead": 1} and statuses([outage, late_ok]) == {"queued": 2}
    with unit_of_work() as session:
        error = session.execute(
            text("SELECT last_error FROM scheduled_posts WHERE id = :i"), {"i": stale}
        ).scalar_one()
    assert "HERALD_PAST_GRACE" in error and "86400 s before the row was inserted" in error
    sent = {m["args"][0] for m in queued_messages(servers, namespace)}
    assert str(stale) not in sent


@pytest.mark.parametrize(
    ("post_id", "expected_at", "message"),
    [
        ("not-a-uuid", None, "post_id 'not-a-uuid' is not a UUID"),
        (42, None, "post_id 42 is not a UUID"),
        (str(uuid.uuid4()), "yesterday", "expected_at 'yesterday' is not an ISO-8601 time"),
        (str(uuid.uuid4()), "2026-01-01T10:00:00", "has no timezone"),
    ],
    # Stable ids: xdist workers collect separately and must agree on every test's name.
    ids=["not-a-uuid", "an-int", "time-not-iso", "time-without-zone"],
)
def test_malformed_publish_input_is_a_clear_error(
    post_id: object, expected_at: object, message: str
) -> None:
    with pytest.raises(InvalidPublishInputError, match=message):
        parse_input(post_id, expected_at)


def test_an_unknown_post_is_skipped_not_crashed(publish_env: dict[str, str]) -> None:
    outcome = publish_post(str(uuid.uuid4()))
    assert (outcome.kind, outcome.detail) == ("skipped", "unknown post")


def test_a_post_not_yet_due_is_skipped(insert_posts: InsertPosts) -> None:
    (post,) = insert_posts(1, due_in=600)
    outcome = publish_post(str(post))
    assert outcome.kind == "skipped"
    assert outcome.detail.startswith("not due")
    assert statuses([post]) == {"scheduled": 1}


def test_a_post_leased_over_and_over_without_ending_is_dead_lettered(
    insert_posts: InsertPosts,
) -> None:
    from worker.publishing.publish import LEASE_CAP_FACTOR

    (post,) = insert_posts(1, due_in=0)
    cap = LEASE_CAP_FACTOR * get_settings().publish_max_attempts
    with unit_of_work() as session:
        session.execute(
            text("UPDATE scheduled_posts SET status = 'queued', attempts = :n WHERE id = :id"),
            {"n": cap, "id": post},
        )
    outcome = publish_post(str(post))
    assert outcome.kind == "dead"
    assert outcome.detail == f"poison: {cap} attempts started and none finished"
    assert statuses([post]) == {"dead": 1}
