"""Which client serves which platform (the names themselves live in worker.constants)."""

from __future__ import annotations

from collections.abc import Callable

from worker.constants import PLATFORMS
from worker.platforms.base import PlatformClient
from worker.platforms.facebook import FacebookClient
from worker.platforms.instagram import InstagramClient
from worker.platforms.youtube import YouTubeClient

_FACTORIES: dict[str, Callable[[str, float, float], PlatformClient]] = {
    "instagram": InstagramClient,
    "facebook": FacebookClient,
    "youtube": YouTubeClient,
}


def get_client(
    platform: str, base_url: str, connect_timeout: float, read_timeout: float
) -> PlatformClient:
    """A client for ``platform`` talking to ``base_url``; ValueError for an unknown name."""
    try:
        factory = _FACTORIES[platform]
    except KeyError:
        known = ", ".join(PLATFORMS)
        raise ValueError(f"unknown platform {platform!r}; expected one of: {known}") from None
    return factory(base_url, connect_timeout, read_timeout)
