"""The client's input rules, without a database: each refusal names its field."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from worker import runtime
from worker.client import (
    AccountInactiveError,
    HeraldClientError,
    InvalidInputError,
    NewPost,
    NewTime,
    PostNotModifiableError,
    ScheduledInPastError,
    UnknownAccountError,
    UnknownPostError,
    check_for_platform,
    check_time,
    parse_id,
    past_grace,
    validated,
)

NOW = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
IMAGE = "https://picsum.photos/seed/1/1080/1080"


def new_post(**overrides: Any) -> NewPost:
    fields: dict[str, Any] = {
        "account_id": str(uuid.uuid4()),
        "content": "hello",
        "scheduled_at": NOW + timedelta(minutes=10),
        "media": [IMAGE],
        "request_id": None,
    }
    return validated(NewPost, {**fields, **overrides}, NOW)


def test_every_error_is_a_value_error_and_a_herald_client_error() -> None:
    for error in (
        InvalidInputError,
        ScheduledInPastError,
        UnknownAccountError,
        AccountInactiveError,
        UnknownPostError,
    ):
        assert issubclass(error, HeraldClientError)
        assert issubclass(error, ValueError)
    assert issubclass(PostNotModifiableError, HeraldClientError)


def test_a_valid_post_keeps_what_was_given() -> None:
    account = uuid.uuid4()
    post = new_post(account_id=str(account), content="  hi  ", request_id="req-1")
    assert post.account_id == account
    assert post.content == "  hi  "
    assert post.media == (IMAGE,)
    assert post.request_id == "req-1"


def test_a_naive_time_is_refused_with_a_hint_to_add_a_timezone() -> None:
    with pytest.raises(InvalidInputError, match=r"^scheduled_at: .* has no timezone; give one"):
        check_time(datetime(2025, 5, 1, 9, 30), NOW)


def test_a_time_within_the_grace_is_accepted_and_one_beyond_it_is_in_the_past() -> None:
    assert past_grace() == timedelta(minutes=5)  # the default
    assert check_time(NOW - past_grace() + timedelta(seconds=1), NOW)
    with pytest.raises(
        ScheduledInPastError, match=r"^scheduled_at: .* 6 min in the past; at most 5 min"
    ):
        check_time(NOW - past_grace() - timedelta(minutes=1), NOW)


@pytest.fixture
def grace_of_90_seconds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HERALD_PAST_GRACE", "90")
    runtime.reset()
    yield
    monkeypatch.undo()
    runtime.reset()


@pytest.mark.usefixtures("grace_of_90_seconds")
def test_the_grace_is_the_herald_past_grace_setting() -> None:
    assert past_grace() == timedelta(seconds=90)
    assert check_time(NOW - timedelta(seconds=89), NOW)
    with pytest.raises(
        ScheduledInPastError,
        match=r"^scheduled_at: .* 100 s in the past; at most 90 s is allowed \(HERALD_PAST_GRACE\)",
    ):
        check_time(NOW - timedelta(seconds=100), NOW)


def test_a_grace_of_zero_refuses_any_time_in_the_past() -> None:
    assert check_time(NOW, NOW, grace=timedelta(0))
    with pytest.raises(ScheduledInPastError, match=r"1 s in the past; at most 0 s"):
        check_time(NOW - timedelta(seconds=1), NOW, grace=timedelta(0))


def test_any_timezone_is_fine() -> None:
    paris = timezone(timedelta(hours=2))
    assert check_time(datetime(2025, 5, 1, 11, 5, tzinfo=paris), NOW)


def test_a_time_given_as_an_iso_string_is_parsed() -> None:
    post = new_post(scheduled_at="2025-05-01T09:30:00+00:00")
    assert post.scheduled_at == NOW + timedelta(minutes=30)


@pytest.mark.parametrize("content", ["", "   ", "\n\t"])
def test_empty_content_is_refused(content: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^content: is empty"):
        new_post(content=content)


def test_content_with_a_nul_character_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"^content: contains a NUL"):
        new_post(content="a\x00b")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.jpg", "example.com/a.jpg", "https://", " https://x.io/a.jpg"]
)
def test_media_that_is_not_an_http_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^media\[1\]: .* is not an http\(s\) URL"):
        new_post(media=[IMAGE, url])


def test_media_given_as_one_string_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"^media: give a list of URLs"):
        new_post(media=IMAGE)


def test_an_account_id_that_is_not_a_uuid_is_an_unknown_account() -> None:
    with pytest.raises(UnknownAccountError, match=r"^account_id: 'nope' is not an id"):
        new_post(account_id="nope")


def test_a_type_error_names_the_field() -> None:
    with pytest.raises(InvalidInputError, match=r"^content: Input should be a valid string"):
        new_post(content=42)


def test_several_problems_are_all_listed_under_the_first_ones_class() -> None:
    with pytest.raises(HeraldClientError) as caught:
        new_post(content="", scheduled_at=NOW - timedelta(days=1), media=["nope"])
    assert len(caught.value.problems) == 3
    assert isinstance(caught.value, ScheduledInPastError)
    assert "content: is empty" in str(caught.value)
    assert "media[0]" in str(caught.value)


def test_a_new_time_alone_is_checked_the_same_way() -> None:
    with pytest.raises(ScheduledInPastError):
        validated(NewTime, {"scheduled_at": NOW - timedelta(hours=1)}, NOW)


@pytest.mark.parametrize(
    ("platform", "limit", "unit"),
    [("instagram", 2_200, "characters"), ("facebook", 63_206, "characters")],
)
def test_content_up_to_the_platform_limit_is_taken_and_one_more_is_refused(
    platform: str, limit: int, unit: str
) -> None:
    media = [IMAGE] if platform == "instagram" else []
    check_for_platform(platform, "x" * limit, media)
    with pytest.raises(InvalidInputError, match=rf"^content: .* at most {limit:,} {unit}"):
        check_for_platform(platform, "x" * (limit + 1), media)


def test_youtube_counts_its_description_in_bytes() -> None:
    video = ["https://videos.example.com/1.mp4"]
    check_for_platform("youtube", "x" * 5_000, video)
    with pytest.raises(InvalidInputError, match=r"^content: 5,002 bytes .* YouTube"):
        check_for_platform("youtube", "é" * 2_501, video)


@pytest.mark.parametrize("media", [[], [IMAGE, IMAGE]])
def test_instagram_needs_exactly_one_image(media: list[str]) -> None:
    with pytest.raises(InvalidInputError, match=r"^media: Instagram needs one image URL \(got"):
        check_for_platform("instagram", "hi", media)


def test_youtube_needs_one_video_and_facebook_takes_at_most_one_item() -> None:
    with pytest.raises(InvalidInputError, match=r"^media: YouTube needs one video URL"):
        check_for_platform("youtube", "hi", [])
    check_for_platform("facebook", "hi", [])
    check_for_platform("facebook", "hi", [IMAGE])
    with pytest.raises(InvalidInputError, match=r"^media: Facebook needs at most one"):
        check_for_platform("facebook", "hi", [IMAGE, IMAGE])


def test_an_id_is_parsed_or_refused_with_the_given_error() -> None:
    post_id = uuid.uuid4()
    assert parse_id("post_id", str(post_id), UnknownPostError) == post_id
    assert parse_id("post_id", post_id, UnknownPostError) is post_id
    with pytest.raises(UnknownPostError, match=r"^post_id: '12' is not an id"):
        parse_id("post_id", 12, UnknownPostError)
