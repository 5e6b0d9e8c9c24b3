"""`herald posts ...`: schedule, cancel, reschedule and look at posts from a shell.

A thin face on :mod:`worker.client`: every command prints the post as JSON, and a
refused request (bad input, unknown id, a post already publishing) exits 1 with
`herald: <message>` on stderr.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from worker.cli.common import STDIN, emit, settings_or_exit


class WhenType(click.ParamType[datetime, "str | datetime"]):
    """`--at`: an ISO 8601 time with its offset, or `+SECONDS` from now."""

    name = "ISO8601|+SECONDS"

    def convert(
        self, value: str | datetime, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text.startswith("+"):
            try:
                seconds = float(text[1:])
            except ValueError:
                seconds = math.nan
            if not math.isfinite(seconds) or seconds < 0:
                self.fail(f"{value!r}: after + give a number of seconds, e.g. +90", param, ctx)
            return datetime.now(UTC) + timedelta(seconds=seconds)
        try:
            # A time without an offset is passed on: the client explains what is missing.
            return datetime.fromisoformat(text)
        except ValueError:
            example = "2025-05-01T09:00:00+02:00"
            self.fail(f"{value!r} is neither an ISO 8601 time ({example}) nor +SECONDS", param, ctx)


WHEN = WhenType()


def _show(post_id: Any) -> None:
    from worker.client import get_post

    emit(get_post(post_id).model_dump(mode="json"))


@click.group()
def posts() -> None:
    """Scheduled posts: what goes out, where, and when."""


@posts.command("schedule")
@click.option("--account", "account_id", required=True, help="Account UUID to post as.")
@click.option("--content", required=True, help="The text; `-` reads it from stdin.")
@click.option("--at", "at", required=True, type=WHEN, help="When: ISO 8601 with offset, +SECONDS.")
@click.option("--media", multiple=True, help="Media URL (http/https); repeat for several.")
@click.option("--request-id", help="Follows the post through the logs.")
def schedule(
    account_id: str, content: str, at: datetime, media: tuple[str, ...], request_id: str | None
) -> None:
    """Schedule a post; prints it."""
    text = sys.stdin.read().rstrip("\r\n") if content == STDIN else content
    settings_or_exit()
    from worker.client import schedule_post

    post_id = schedule_post(account_id, text, at, media=media, request_id=request_id)
    _show(post_id)


@posts.command("cancel")
@click.argument("post_id")
def cancel(post_id: str) -> None:
    """Cancel a scheduled or queued post; prints it."""
    settings_or_exit()
    from worker.client import cancel_post

    cancel_post(post_id)
    _show(post_id)


@posts.command("reschedule")
@click.argument("post_id")
@click.option("--at", "at", required=True, type=WHEN, help="When: ISO 8601 with offset, +SECONDS.")
def reschedule(post_id: str, at: datetime) -> None:
    """Move a scheduled or queued post to a new time; prints it."""
    settings_or_exit()
    from worker.client import reschedule_post

    reschedule_post(post_id, at)
    _show(post_id)


@posts.command("show")
@click.argument("post_id")
def show(post_id: str) -> None:
    """One post, with its status, attempts and last error."""
    settings_or_exit()
    _show(post_id)


@posts.command("list")
@click.option("--status", help="Only posts in this status (scheduled, queued, published, ...).")
@click.option("--account", "account_id", help="Only this account's posts.")
@click.option("--limit", default=50, show_default=True, type=int, help="At most this many.")
def list_(status: str | None, account_id: str | None, limit: int) -> None:
    """Posts, latest scheduled time first."""
    settings_or_exit()
    from worker.client import list_posts

    found = list_posts(status=status, account_id=account_id, limit=limit)
    emit([post.model_dump(mode="json") for post in found])
