"""Recovery after an unknown outcome finds the earlier publish however busy the account got.

A retried post rejoins the back of the queue; by the time it runs again hundreds of
other posts may have landed on its account. The lookup pages back to the post's first
attempt, not a fixed number of items, and when its safety cap stops it first the
post is retried later rather than published blindly. Real PostgreSQL, Redis and the
sandbox platform over HTTP; the recovery is `publish_post`, the task's own body.
"""

from __future__ import annotations

import collections
import uuid

import pytest
from sqlalchemy import text

from tests.fixtures.posting import InsertPosts, ledger_refs, post_rows
from tests.fixtures.sandbox import SandboxServer
from worker.constants import OUTCOME_FOUND, PLATFORMS
from worker.db import posts, posts_queries
from worker.db.session import unit_of_work
from worker.platforms import facebook
from worker.platforms.base import Account, PlatformClient, PostRequest
from worker.platforms.registry import get_client
from worker.publishing.publish import publish_post

#: More than the old fixed look-back on any platform (500 Graph items, 250 YouTube).
BUSY = 650
MEDIA = {"instagram": ["https://example.com/photo.jpg"], "youtube": ["https://example.com/v.mp4"]}


def client_for(sandbox: SandboxServer, platform: str) -> PlatformClient:
    return get_client(platform, sandbox.platform_url(platform), 2.0, 5.0)


def who(platform: str) -> Account:
    """The account the `accounts` fixture made for ``platform``, as the platform knows it."""
    return Account(platform, f"acct-{platform}", f"tok-{platform}")


def a_post(platform: str, client_ref: str | None = None) -> PostRequest:
    ref = client_ref or str(uuid.uuid4())
    return PostRequest(ref, f"post {ref}", MEDIA.get(platform, []))


def first_attempt_publishes_then_dies(
    sandbox: SandboxServer, platform: str, post_id: uuid.UUID
) -> str:
    """What a worker SIGKILLed after the platform accepted its call leaves behind: a
    taken lease, a post on the platform, no answer recorded; then its lease runs out."""
    with unit_of_work() as session:
        lease = posts.take_lease(session, post_id, 60, None)
    assert isinstance(lease, posts.Lease) and lease.attempt == 1
    external_id = client_for(sandbox, platform).publish(
        who(platform), a_post(platform, str(post_id))
    )
    with unit_of_work() as session:
        session.execute(
            text("UPDATE scheduled_posts SET lease_expires_at = now() WHERE id = :id"),
            {"id": post_id},
        )
    return external_id


def others_publish(sandbox: SandboxServer, platform: str, count: int) -> None:
    client = client_for(sandbox, platform)
    for _ in range(count):
        client.publish(who(platform), a_post(platform))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_recovery_finds_a_publish_buried_under_hundreds_of_newer_posts(
    insert_posts: InsertPosts, sandbox: SandboxServer, platform: str
) -> None:
    # Given a post whose first attempt published and died, then BUSY more posts
    (post,) = insert_posts(1, platforms=(platform,))
    external_id = first_attempt_publishes_then_dies(sandbox, platform, post)
    others_publish(sandbox, platform, BUSY)

    # When the post is tried again
    outcome = publish_post(str(post))

    # Then the earlier publish is found and recorded, and nothing is posted again
    assert (outcome.kind, outcome.detail) == (OUTCOME_FOUND, external_id)
    assert collections.Counter(ledger_refs(sandbox))[str(post)] == 1
    (row,) = post_rows([post])
    assert (row["status"], row["external_post_id"], row["attempts"]) == (
        "published",
        external_id,
        2,
    )


def test_a_lookup_stopped_by_its_page_cap_is_unknown_and_retried_not_published(
    insert_posts: InsertPosts, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a post whose first attempt published, buried deeper than the cap reads
    monkeypatch.setattr(facebook, "FIND_PAGE_SIZE", 10)
    monkeypatch.setattr(facebook, "FIND_MAX_PAGES", 3)
    (post,) = insert_posts(1, platforms=("facebook",))
    first_attempt_publishes_then_dies(sandbox, "facebook", post)
    others_publish(sandbox, "facebook", 40)  # 4 pages of 10, all newer than the attempt

    # When the post is tried again
    outcome = publish_post(str(post))

    # Then it is neither found nor published again: unknown, retried later
    assert outcome.kind == "retry"
    assert "lookup read 3 pages" in outcome.detail
    assert collections.Counter(ledger_refs(sandbox))[str(post)] == 1
    (row,) = post_rows([post])
    assert (row["status"], row["external_post_id"]) == ("queued", None)
    with unit_of_work() as session:
        (attempt,) = session.execute(
            text("SELECT outcome, error FROM post_attempts WHERE post_id = :id"), {"id": post}
        ).all()
    assert attempt.outcome == "unknown"
    assert "whether an earlier attempt published it is unknown" in attempt.error


def test_within_the_cap_a_lookup_that_reaches_the_end_publishes_once(
    insert_posts: InsertPosts, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a post whose first attempt died before reaching the platform
    monkeypatch.setattr(facebook, "FIND_PAGE_SIZE", 10)
    (post,) = insert_posts(1, platforms=("facebook",))
    with unit_of_work() as session:
        assert isinstance(posts.take_lease(session, post, 60, None), posts.Lease)
        session.execute(
            text("UPDATE scheduled_posts SET lease_expires_at = now() WHERE id = :id"),
            {"id": post},
        )
    others_publish(sandbox, "facebook", 35)

    # When the post is tried again
    outcome = publish_post(str(post))

    # Then the lookup read every page, found nothing, and the post went out once
    assert outcome.kind == "published"
    assert collections.Counter(ledger_refs(sandbox))[str(post)] == 1


def test_the_lookup_floor_is_the_first_attempt_even_after_the_post_moved_later(
    insert_posts: InsertPosts,
) -> None:
    # Given a post whose first attempt took it and died before recording anything
    (post,) = insert_posts(1, platforms=("facebook",))
    with unit_of_work() as session:
        first = posts.take_lease(session, post, 60, None)
        assert isinstance(first, posts.Lease)
        # ... an hour ago (the time it took the lease, moved back to stand for an hour)
        taken_at = session.execute(
            text(
                "UPDATE scheduled_posts SET first_attempt_at = first_attempt_at - "
                "interval '1 hour' WHERE id = :id RETURNING first_attempt_at"
            ),
            {"id": post},
        ).scalar_one()
    # When it is moved to now (its lease long gone) and taken again
    with unit_of_work() as session:
        session.execute(
            text(
                "UPDATE scheduled_posts SET scheduled_at = now(), "
                "lease_expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": post},
        )
        assert isinstance(posts.take_lease(session, post, 60, None), posts.Lease)
    # Then the lookup still reaches back to the first attempt, not to the new time
    with unit_of_work() as session:
        floor = posts_queries.first_attempt_floor(session, post)
        again = session.execute(
            text("SELECT first_attempt_at FROM scheduled_posts WHERE id = :id"), {"id": post}
        ).scalar_one()
    assert taken_at is not None and again == taken_at
    assert floor == taken_at
