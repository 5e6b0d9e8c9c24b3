"""How far a recovery lookup pages back: to the first attempt, capped, never blind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.platforms.base import (
    LOOKUP_CLOCK_SKEW,
    ListedPage,
    look_back,
    oldest_time,
    parse_time,
)
from worker.platforms.errors import OutcomeUnknownError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Feed:
    """An account's items, newest first, one a second going back from NOW; ``ref`` at
    index ``at`` (0 is the newest). Counts the pages read."""

    def __init__(self, size: int, page_size: int, at: int | None = None) -> None:
        self.items = [
            (f"id{i}", "ref" if i == at else f"other{i}", NOW - timedelta(seconds=i))
            for i in range(size)
        ]
        self.page_size = page_size
        self.reads = 0

    def fetch(self, cursor: str | None) -> ListedPage:
        self.reads += 1
        start = int(cursor or 0)
        page = self.items[start : start + self.page_size]
        found = next((ident for ident, ref, _ in page if ref == "ref"), None)
        oldest = min((at for _, _, at in page), default=None)
        end = start + self.page_size
        return ListedPage(found, oldest, str(end) if end < len(self.items) else None)


def test_an_item_deeper_than_any_fixed_look_back_is_found() -> None:
    feed = Feed(size=2_000, page_size=100, at=1_500)  # 1,500 newer items

    found = look_back("facebook", feed.fetch, NOW - timedelta(hours=1), max_pages=100)

    assert found == "id1500"
    assert feed.reads == 16


def test_the_lookup_stops_once_a_page_reaches_before_the_first_attempt() -> None:
    feed = Feed(size=5_000, page_size=100)  # not there; items one a second
    since = NOW - timedelta(seconds=250)

    assert look_back("facebook", feed.fetch, since, max_pages=100) is None
    # 250 s plus the skew margin back, and not a page further.
    reach = 250 + int(LOOKUP_CLOCK_SKEW.total_seconds())
    assert feed.reads == reach // 100 + 1


def test_items_within_the_clock_skew_margin_are_still_searched() -> None:
    skew = int(LOOKUP_CLOCK_SKEW.total_seconds())
    # The post carries a platform time up to `skew` seconds before our first attempt.
    feed = Feed(size=1_000, page_size=10, at=100 + skew - 1)

    found = look_back("youtube", feed.fetch, NOW - timedelta(seconds=100), max_pages=100)

    assert found == f"id{100 + skew - 1}"


def test_the_end_of_the_list_means_not_there() -> None:
    feed = Feed(size=25, page_size=10)

    assert look_back("youtube", feed.fetch, None, max_pages=100) is None
    assert feed.reads == 3


@pytest.mark.parametrize("since", [NOW - timedelta(days=1), None])
def test_hitting_the_page_cap_is_unknown_never_not_found(since: datetime | None) -> None:
    feed = Feed(size=10_000, page_size=100)

    with pytest.raises(OutcomeUnknownError) as caught:
        look_back("instagram", feed.fetch, since, max_pages=7)

    assert feed.reads == 7
    assert caught.value.platform == "instagram"
    assert "lookup read 7 pages" in caught.value.message
    assert "unknown" in caught.value.message


def test_a_page_without_readable_times_does_not_end_the_lookup() -> None:
    pages = [ListedPage(None, None, "1"), ListedPage("found", None, None)]

    assert look_back("facebook", lambda c: pages[int(c or 0)], NOW, max_pages=5) == "found"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-01T12:00:00+0000", NOW),  # Graph created_time / timestamp
        ("2026-12-01T12:00:00Z", NOW),  # YouTube publishedAt
        ("2026-12-01T12:00:00", None),  # no zone: cannot be compared safely
        ("yesterday", None),
        (None, None),
        (1_764_590_400, None),
    ],
)
def test_platform_times_are_parsed_or_ignored(value: object, expected: datetime | None) -> None:
    assert parse_time(value) == expected


def test_oldest_time_skips_what_it_cannot_read() -> None:
    values: list[object] = ["2026-12-01T12:00:00Z", "bad", "2026-12-01T11:00:00+0000", None]

    assert oldest_time(values) == NOW - timedelta(hours=1)
