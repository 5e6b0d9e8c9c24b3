"""YouTube through the Data API v3.

Publishing is one multipart upload, ``POST /upload/youtube/v3/videos?part=snippet,status
&uploadType=multipart``: a JSON video resource, then the media bytes, in one
``multipart/related`` body. Lookup lists the channel's uploads playlist
(``playlistItems``, 1 quota unit, and current — ``search`` costs 100 and lags).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from worker.platforms.base import (
    Account,
    ApiCaller,
    ListedPage,
    PostRequest,
    look_back,
    oldest_time,
)
from worker.platforms.errors import PermanentError, PlatformUsage
from worker.platforms.facebook import single_media

#: YouTube rejects longer titles.
MAX_TITLE = 100
#: Items per page when looking a post up; the Data API allows up to 50.
FIND_PAGE_SIZE = 50
#: A safety cap, not the look-back (5,000 uploads, 1 quota unit a page): see ``look_back``.
FIND_MAX_PAGES = 100
#: "People & Blogs", the category YouTube's own upload samples use.
DEFAULT_CATEGORY_ID = "22"


def reference_bytes(media_url: str) -> bytes:
    """Stand-in media loader: sends the reference itself, which only the sandbox accepts."""
    return media_url.encode()


def uploads_playlist_id(channel_id: str) -> str:
    """A channel's uploads playlist: ``UC…`` becomes ``UU…``."""
    return "UU" + channel_id[2:] if channel_id.startswith("UC") else channel_id


def video_resource(account: Account, post: PostRequest) -> dict[str, Any]:
    """The metadata part of the upload: title from the first line of the content."""
    first_line = next((line for line in post.content.splitlines() if line.strip()), "")
    return {
        "snippet": {
            "title": first_line.strip()[:MAX_TITLE],
            "description": post.content,
            "categoryId": DEFAULT_CATEGORY_ID,
            "channelId": account.external_id,
        },
        "status": {"privacyStatus": "public", "selfDeclaredMadeForKids": False},
    }


def multipart_related(metadata: dict[str, Any], media: bytes) -> tuple[bytes, str]:
    """Encode Google's ``multipart/related`` upload body; returns (body, content type)."""
    boundary = f"herald-{secrets.token_hex(12)}"
    head = (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        f"{json.dumps(metadata)}\r\n"
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    body = head.encode() + media + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/related; boundary={boundary}"


class YouTubeClient:
    """Uploads videos; ``account.external_id`` is the channel id (``UC…``).

    ``load_media`` turns a post's media reference into the bytes to upload.
    """

    platform = "youtube"

    def __init__(
        self,
        base_url: str,
        connect_timeout: float,
        read_timeout: float,
        *,
        load_media: Callable[[str], bytes] = reference_bytes,
    ) -> None:
        self._api = ApiCaller(self.platform, "google", base_url, connect_timeout, read_timeout)
        self._load_media = load_media

    @property
    def last_usage(self) -> PlatformUsage | None:
        """Always None: Google reports quota in the console, not in headers."""
        return self._api.last_usage

    def publish(self, account: Account, post: PostRequest) -> str:
        """Upload the post's video with its metadata; returns the video id."""
        media_url = single_media(self.platform, post)
        if media_url is None:
            raise PermanentError(self.platform, "a YouTube post needs a video")
        body, content_type = multipart_related(
            video_resource(account, post), self._load_media(media_url)
        )
        params = {
            "part": "snippet,status",
            "uploadType": "multipart",
            "client_ref": post.client_ref,
        }
        return self._api.call_for_id(
            "POST",
            "/upload/youtube/v3/videos",
            account,
            mutating=True,
            params=params,
            content=body,
            content_type=content_type,
        )

    def find_published(
        self, account: Account, client_ref: str, since: datetime | None = None
    ) -> str | None:
        """The id of the upload carrying ``client_ref`` (see ``look_back``), or None."""
        playlist = uploads_playlist_id(account.external_id)

        def fetch(cursor: str | None) -> ListedPage:
            params: dict[str, str | int] = {
                "part": "snippet",
                "playlistId": playlist,
                "maxResults": FIND_PAGE_SIZE,
            }
            if cursor is not None:
                params["pageToken"] = cursor
            page = self._api.call(
                "GET", "/youtube/v3/playlistItems", account, mutating=False, params=params
            )
            items = page.get("items")
            token = page.get("nextPageToken")
            next_cursor = token if isinstance(token, str) and token else None
            return ListedPage(_match(items, client_ref), _oldest(items), next_cursor)

        return look_back(self.platform, fetch, since, FIND_MAX_PAGES)


def _match(items: object, client_ref: str) -> str | None:
    for item in items if isinstance(items, list) else ():
        snippet = item.get("snippet") if isinstance(item, dict) else None
        if not isinstance(snippet, dict) or snippet.get("client_ref") != client_ref:
            continue
        resource = snippet.get("resourceId")
        video_id = resource.get("videoId") if isinstance(resource, dict) else None
        if isinstance(video_id, str) and video_id:
            return video_id
    return None


def _oldest(items: object) -> datetime | None:
    published: list[object] = []
    for item in items if isinstance(items, list) else ():
        snippet = item.get("snippet") if isinstance(item, dict) else None
        if isinstance(snippet, dict):
            published.append(snippet.get("publishedAt"))
    return oldest_time(published)
