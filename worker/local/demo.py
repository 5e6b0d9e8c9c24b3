"""Demo data for `make run`: an account per platform and posts due over the next minutes.

Safe to run again: the demo accounts (external ids ``demo-<platform>``) are reused,
and their (fake) tokens refreshed so they can publish; each run adds new posts.
The tokens are fakes the sandbox platform accepts, never real credentials.

``python -m worker.local.demo [MINUTES [PER_PLATFORM]]`` prints what it made as JSON.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final, TypedDict

from worker.client import schedule_post
from worker.constants import PLATFORMS
from worker.db.accounts import AccountExists, create_account, find_account, update_tokens

#: Every demo account belongs to this one (made-up) user.
DEMO_USER_ID: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://herald.invalid/demo-user")
DEMO_REQUEST_ID: Final = "demo-seed"
#: Fake tokens' lifetime; long enough that the demo never waits on a refresh.
DEMO_TOKEN_SECONDS: Final = 30 * 24 * 3600


class DemoSeed(TypedDict):
    accounts: dict[str, str]
    accounts_created: int
    posts_scheduled: int
    post_ids: list[str]


def demo_external_id(platform: str) -> str:
    return f"demo-{platform}"


def _demo_account(platform: str) -> tuple[uuid.UUID, bool]:
    """The platform's demo account (id, created?), ready to publish."""
    external_id = demo_external_id(platform)
    token = f"demo-{platform}-access-{uuid.uuid4().hex}"
    existing = find_account(platform, external_id)
    if existing is None:
        try:
            account = create_account(
                platform,
                external_id,
                token,
                f"demo-{platform}-refresh-{uuid.uuid4().hex}",
                expires_in=DEMO_TOKEN_SECONDS,
                user_id=DEMO_USER_ID,
                display_name=f"Herald demo ({platform})",
            )
            return account.id, True
        except AccountExists as exc:  # another seed created it a moment ago
            if exc.account_id is None:
                raise
            return exc.account_id, False
    if existing.needs_reauth:
        expires_at = datetime.now(UTC) + timedelta(seconds=DEMO_TOKEN_SECONDS)
        update_tokens(existing.id, token, None, expires_at)
    return existing.id, False


def _media(platform: str, number: int) -> list[str]:
    if platform == "instagram":
        return [f"https://picsum.photos/seed/{number}/1080/1080"]
    if platform == "youtube":
        return [f"https://videos.example.com/herald-demo/{number}.mp4"]
    return []


def _content(platform: str, number: int, at: datetime) -> str:
    return (
        f"Herald demo post #{number} on {platform}, due {at:%H:%M:%S} UTC\n"
        "Scheduled by `herald run` to show a post going out on time, exactly once."
    )


def seed_demo(minutes: int = 3, per_platform: int = 5) -> DemoSeed:
    """Make (or reuse) the demo accounts and schedule ``per_platform`` posts on each
    platform, spread evenly over the next ``minutes`` minutes (the last one due at
    ``minutes``). A deactivated demo account stays deactivated: scheduling on it
    raises ``AccountInactiveError``.
    """
    if minutes < 1 or per_platform < 1:
        raise ValueError("minutes and per_platform must be at least 1")
    accounts: dict[str, uuid.UUID] = {}
    created = 0
    for platform in PLATFORMS:
        accounts[platform], was_created = _demo_account(platform)
        created += was_created
    now = datetime.now(UTC)
    total = per_platform * len(PLATFORMS)
    step = timedelta(minutes=minutes) / total
    post_ids: list[str] = []
    for number in range(total):
        platform = PLATFORMS[number % len(PLATFORMS)]
        at = now + step * (number + 1)
        post_id = schedule_post(
            accounts[platform],
            _content(platform, number + 1, at),
            at,
            media=_media(platform, number + 1),
            request_id=DEMO_REQUEST_ID,
        )
        post_ids.append(str(post_id))
    return DemoSeed(
        accounts={platform: str(account) for platform, account in accounts.items()},
        accounts_created=created,
        posts_scheduled=len(post_ids),
        post_ids=post_ids,
    )


if __name__ == "__main__":
    arguments = [int(argument) for argument in sys.argv[1:3]]
    print(json.dumps(seed_demo(*arguments), indent=2))
