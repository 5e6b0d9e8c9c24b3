"""worker.client and `herald posts` against real PostgreSQL and Redis."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.fixtures.cli import run_herald
from tests.fixtures.waiting import wait_for
from worker.client import (
    AccountInactiveError,
    InvalidInputError,
    PostNotModifiableError,
    ScheduledInPastError,
    UnknownAccountError,
    UnknownPostError,
    cancel_post,
    get_post,
    list_posts,
    reschedule_post,
    schedule_post,
)
from worker.db.accounts import create_account, deactivate_account, mark_needs_reauth
from worker.db.engine import libpq_url
from worker.local.demo import seed_demo

IMAGE = "https://picsum.photos/seed/1/1080/1080"
VIDEO = "https://videos.example.com/1.mp4"


def soon(minutes: float = 10) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


@pytest.fixture
def accounts(herald_env: dict[str, str]) -> dict[str, uuid.UUID]:
    return {
        platform: create_account(platform, f"{platform}-1", f"token-{platform}").id
        for platform in ("instagram", "facebook", "youtube")
    }


@pytest.fixture
def sql(database: str) -> Iterator[Callable[..., Any]]:
    """Run one statement on a connection of its own (autocommit); returns the rows."""
    with psycopg.connect(libpq_url(database), autocommit=True) as conn:

        def run(statement: str, *params: Any) -> list[tuple[Any, ...]]:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

        yield run


def force_status(sql: Callable[..., Any], post_id: uuid.UUID, status: str) -> None:
    """What the dispatcher or a worker would have done (with a lease while in flight)."""
    lease = "now() + interval '1 minute'" if status in ("queued", "publishing") else "NULL"
    sql(
        f"UPDATE scheduled_posts SET status = %s, lease_expires_at = {lease} WHERE id = %s",
        status,
        post_id,
    )


# --- scheduling ----------------------------------------------------------------------


def test_a_scheduled_post_is_stored_with_everything_the_user_sees(
    accounts: dict[str, uuid.UUID],
) -> None:
    at = soon()
    post_id = schedule_post(
        str(accounts["instagram"]), "Hello", at, media=[IMAGE], request_id="req-7"
    )
    post = get_post(str(post_id))
    assert (post.id, post.status, post.platform) == (post_id, "scheduled", "instagram")
    assert post.account.id == accounts["instagram"]
    assert post.account.external_id == "instagram-1"
    assert (post.content, post.media, post.scheduled_at) == ("Hello", [IMAGE], at)
    assert (post.attempts, post.external_post_id, post.last_error) == (0, None, None)
    assert post.published_at is None and post.request_id == "req-7"
    assert post.created_at <= post.updated_at
    assert "token" not in post.model_dump_json()


def test_each_platform_takes_its_own_kind_of_post(accounts: dict[str, uuid.UUID]) -> None:
    schedule_post(accounts["facebook"], "x" * 63_206, soon())
    schedule_post(accounts["youtube"], "Title\nDescription", soon(), media=[VIDEO])
    with pytest.raises(InvalidInputError, match=r"content: 2,201 characters is too long"):
        schedule_post(accounts["instagram"], "x" * 2_201, soon(), media=[IMAGE])
    with pytest.raises(InvalidInputError, match=r"media: Instagram needs one image URL"):
        schedule_post(accounts["instagram"], "no picture", soon())
    with pytest.raises(InvalidInputError, match=r"media: YouTube needs one video URL"):
        schedule_post(accounts["youtube"], "no video", soon())
    assert len(list_posts()) == 2


def test_an_unknown_account_is_refused(herald_env: dict[str, str]) -> None:
    with pytest.raises(UnknownAccountError, match=r"account_id: no account"):
        schedule_post(uuid.uuid4(), "hi", soon())
    with pytest.raises(UnknownAccountError, match=r"'42' is not an id"):
        schedule_post("42", "hi", soon())


def test_an_inactive_or_signed_out_account_is_refused(accounts: dict[str, uuid.UUID]) -> None:
    deactivate_account(accounts["facebook"])
    with pytest.raises(AccountInactiveError, match=r"is deactivated"):
        schedule_post(accounts["facebook"], "hi", soon())
    mark_needs_reauth(accounts["youtube"], "revoked")
    with pytest.raises(AccountInactiveError, match=r"sign in to YouTube again"):
        schedule_post(accounts["youtube"], "hi", soon(), media=[VIDEO])


def test_times_without_a_zone_or_in_the_past_are_refused(accounts: dict[str, uuid.UUID]) -> None:
    with pytest.raises(InvalidInputError, match=r"scheduled_at: .* has no timezone"):
        schedule_post(accounts["facebook"], "hi", datetime.now() + timedelta(hours=1))
    with pytest.raises(ScheduledInPastError, match=r"scheduled_at: .* in the past"):
        schedule_post(accounts["facebook"], "hi", soon(-10))
    post_id = schedule_post(accounts["facebook"], "a minute late is fine", soon(-1))
    assert get_post(post_id).status == "scheduled"


def test_bad_content_and_media_are_refused(accounts: dict[str, uuid.UUID]) -> None:
    with pytest.raises(InvalidInputError, match=r"content: is empty"):
        schedule_post(accounts["facebook"], "  \n", soon())
    with pytest.raises(InvalidInputError, match=r"media\[0\]: 'file:///etc/passwd'"):
        schedule_post(accounts["facebook"], "hi", soon(), media=["file:///etc/passwd"])
    assert list_posts() == []


def test_list_filters_by_status_and_account_latest_first(accounts: dict[str, uuid.UUID]) -> None:
    fb, yt = accounts["facebook"], accounts["youtube"]
    first = schedule_post(fb, "one", soon(1))
    second = schedule_post(fb, "two", soon(2))
    third = schedule_post(yt, "three", soon(3), media=[VIDEO])
    cancel_post(first)
    assert [p.id for p in list_posts()] == [third, second, first]
    assert [p.id for p in list_posts(account_id=str(fb))] == [second, first]
    assert [p.id for p in list_posts(status="cancelled")] == [first]
    assert [p.id for p in list_posts(limit=1)] == [third]
    assert list_posts(account_id=uuid.uuid4()) == []
    with pytest.raises(InvalidInputError, match=r"status: 'done' is not one of"):
        list_posts(status="done")
    with pytest.raises(InvalidInputError, match=r"limit: must be a whole number from 1"):
        list_posts(limit=0)
    with pytest.raises(InvalidInputError, match=r"account_id: 'fb' is not an id"):
        list_posts(account_id="fb")


# --- cancel and reschedule -----------------------------------------------------------


@pytest.mark.parametrize("status", ["scheduled", "queued"])
def test_a_scheduled_or_queued_post_can_be_cancelled(
    accounts: dict[str, uuid.UUID], sql: Callable[..., Any], status: str
) -> None:
    post_id = schedule_post(accounts["facebook"], "hi", soon())
    force_status(sql, post_id, status)
    cancel_post(str(post_id))
    assert get_post(post_id).status == "cancelled"
    assert sql("SELECT lease_expires_at FROM scheduled_posts WHERE id = %s", post_id) == [(None,)]


def test_a_post_being_published_cannot_be_cancelled_or_rescheduled(
    accounts: dict[str, uuid.UUID], sql: Callable[..., Any]
) -> None:
    post_id = schedule_post(accounts["facebook"], "hi", soon())
    force_status(sql, post_id, "publishing")
    with pytest.raises(PostNotModifiableError, match=r"is being published right now") as caught:
        cancel_post(post_id)
    assert caught.value.status == "publishing"
    with pytest.raises(PostNotModifiableError, match=r"is being published right now"):
        reschedule_post(post_id, soon(30))
    assert get_post(post_id).status == "publishing"


@pytest.mark.parametrize("status", ["published", "cancelled", "dead", "failed"])
def test_a_finished_post_cannot_be_changed_and_the_error_names_its_status(
    accounts: dict[str, uuid.UUID], sql: Callable[..., Any], status: str
) -> None:
    post_id = schedule_post(accounts["facebook"], "hi", soon())
    force_status(sql, post_id, status)
    with pytest.raises(PostNotModifiableError, match=rf"is {status}; only scheduled or queued"):
        cancel_post(post_id)
    with pytest.raises(PostNotModifiableError, match=rf"is {status}"):
        reschedule_post(post_id, soon(30))


def test_unknown_and_malformed_post_ids_are_unknown_posts(herald_env: dict[str, str]) -> None:
    for action in (cancel_post, get_post, lambda p: reschedule_post(p, soon())):
        with pytest.raises(UnknownPostError, match=r"post_id: no post"):
            action(uuid.uuid4())
        with pytest.raises(UnknownPostError, match=r"post_id: 'abc' is not an id"):
            action("abc")


@pytest.mark.parametrize("status", ["scheduled", "queued"])
def test_reschedule_moves_the_post_back_to_scheduled_at_the_new_time(
    accounts: dict[str, uuid.UUID], sql: Callable[..., Any], status: str
) -> None:
    post_id = schedule_post(accounts["facebook"], "hi", soon())
    force_status(sql, post_id, status)
    later = soon(60)
    reschedule_post(str(post_id), later)
    post = get_post(post_id)
    assert (post.status, post.scheduled_at) == ("scheduled", later)
    assert sql("SELECT lease_expires_at FROM scheduled_posts WHERE id = %s", post_id) == [(None,)]
    with pytest.raises(ScheduledInPastError):
        reschedule_post(post_id, soon(-60))
    with pytest.raises(InvalidInputError, match=r"has no timezone"):
        reschedule_post(post_id, later.replace(tzinfo=None))
    assert get_post(post_id).scheduled_at == later


def _in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException | None]]:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _waiting_on_a_lock(sql: Callable[..., Any]) -> bool:
    rows = sql(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return bool(rows[0][0])


@pytest.mark.parametrize(
    ("new_status", "expected"), [("publishing", "being published"), ("queued", None)]
)
def test_a_cancel_waits_for_a_row_lock_then_sees_the_new_state(
    accounts: dict[str, uuid.UUID],
    sql: Callable[..., Any],
    database: str,
    new_status: str,
    expected: str | None,
) -> None:
    post_id = schedule_post(accounts["facebook"], "hi", soon())
    with psycopg.connect(libpq_url(database)) as publisher:  # a transaction holds the row
        publisher.execute("SELECT 1 FROM scheduled_posts WHERE id = %s FOR UPDATE", (post_id,))
        publisher.execute(
            "UPDATE scheduled_posts SET status = %s WHERE id = %s", (new_status, post_id)
        )
        thread, outcome = _in_thread(lambda: cancel_post(post_id))
        wait_for(lambda: _waiting_on_a_lock(sql), timeout=10, what="the cancel to wait")
        assert thread.is_alive() and not outcome
        publisher.commit()
    thread.join(timeout=10)
    assert len(outcome) == 1
    if expected is None:
        assert outcome[0] is None
        assert get_post(post_id).status == "cancelled"
    else:
        assert isinstance(outcome[0], PostNotModifiableError)
        assert expected in str(outcome[0])
        assert get_post(post_id).status == new_status


# --- demo seed -----------------------------------------------------------------------


def test_the_demo_seed_makes_accounts_once_and_posts_every_time(
    herald_env: dict[str, str],
) -> None:
    before = datetime.now(UTC)
    first = seed_demo(minutes=2, per_platform=3)
    second = seed_demo(minutes=2, per_platform=3)
    assert first["accounts_created"] == 3 and second["accounts_created"] == 0
    assert first["accounts"] == second["accounts"]
    assert first["posts_scheduled"] == len(first["post_ids"]) == 9
    posts = [get_post(post_id) for post_id in first["post_ids"]]
    assert {p.platform for p in posts} == {"instagram", "facebook", "youtube"}
    assert {p.account.external_id for p in posts} == {
        "demo-instagram",
        "demo-facebook",
        "demo-youtube",
    }
    for post in posts:
        assert before < post.scheduled_at <= before + timedelta(minutes=2, seconds=5)
        if post.platform == "instagram":
            assert post.media[0].startswith("https://picsum.photos/seed/")
    assert len(list_posts(status="scheduled")) == 18


# --- the `herald posts` command ------------------------------------------------------


def test_cli_schedules_shows_reschedules_lists_and_cancels(
    accounts: dict[str, uuid.UUID], herald_env: dict[str, str]
) -> None:
    account = str(accounts["instagram"])
    made = run_herald(
        "posts", "schedule", "--account", account, "--content", "From the shell",
        "--at", "+120", "--media", IMAGE, env=herald_env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    post = json.loads(made.stdout)
    assert (post["status"], post["media"], post["account"]["id"]) == ("scheduled", [IMAGE], account)
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    moved = run_herald("posts", "reschedule", post["id"], "--at", at.isoformat(), env=herald_env)
    assert moved.returncode == 0, moved.stderr
    assert datetime.fromisoformat(json.loads(moved.stdout)["scheduled_at"]) == at
    listed = run_herald("posts", "list", "--status", "scheduled", "--limit", "5", env=herald_env)
    assert [p["id"] for p in json.loads(listed.stdout)] == [post["id"]]
    cancelled = run_herald("posts", "cancel", post["id"], env=herald_env)
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    shown = run_herald("posts", "show", post["id"], env=herald_env)
    assert json.loads(shown.stdout)["status"] == "cancelled"
    again = run_herald("posts", "cancel", post["id"], env=herald_env)
    assert again.returncode == 1
    assert again.stderr.startswith(f"herald: post {post['id']} is cancelled; only scheduled")


def test_cli_bad_input_exits_1_and_bad_usage_exits_2(
    accounts: dict[str, uuid.UUID], herald_env: dict[str, str]
) -> None:
    account = str(accounts["facebook"])
    naive = run_herald(
        "posts", "schedule", "--account", account, "--content", "hi",
        "--at", "2030-01-01T09:00:00", env=herald_env,
    )  # fmt: skip
    assert naive.returncode == 1
    assert naive.stderr.startswith("herald: scheduled_at: 2030-01-01T09:00:00 has no timezone")
    unknown = run_herald("posts", "show", "nope", env=herald_env)
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "herald: post_id: 'nope' is not an id (expected a UUID)\n",
    )
    bad_at = run_herald(
        "posts", "schedule", "--account", account, "--content", "hi", "--at", "tomorrow",
        env=herald_env,
    )  # fmt: skip
    assert bad_at.returncode == 2 and "neither an ISO 8601 time" in bad_at.stderr
