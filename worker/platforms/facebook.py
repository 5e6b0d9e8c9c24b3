"""Facebook Pages through the Graph API, plus the Graph helpers Instagram shares.

Publishing is one call, ``POST /{page-id}/feed`` (``message``, optional ``link``),
answered with ``{"id": "{page-id}_{post-id}"}``. Our post UUID travels as
``client_ref`` and comes back on ``GET /{page-id}/feed`` items, which is how a
publish whose answer was lost is found again.
"""

from __future__ import annotations

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

#: The Graph API version every Graph path starts with.
GRAPH_VERSION = "v21.0"
#: Items per page when looking a post up; Graph allows up to 100.
FIND_PAGE_SIZE = 100
#: A safety cap, not the look-back: ``look_back`` stops at the first attempt's time.
#: 100 pages are 10,000 posts; an account that busy gets "unknown", never a repost.
FIND_MAX_PAGES = 100


def single_media(platform: str, post: PostRequest) -> str | None:
    """The post's one media URL, if any; several are refused rather than silently dropped."""
    if len(post.media) > 1:
        raise PermanentError(platform, "posts with more than one media item are not supported")
    return post.media[0] if post.media else None


def find_on_graph_edge(
    api: ApiCaller,
    account: Account,
    edge: str,
    client_ref: str,
    *,
    stamp: str,
    since: datetime | None,
) -> str | None:
    """Page back through ``/{account}/{edge}`` (newest first) for an item with ``client_ref``.

    ``stamp`` names the edge's creation-time field (``created_time``, ``timestamp``).
    """
    path = f"/{GRAPH_VERSION}/{account.external_id}/{edge}"
    fields = f"id,client_ref,{stamp}"

    def fetch(cursor: str | None) -> ListedPage:
        params: dict[str, str | int] = {"fields": fields, "limit": FIND_PAGE_SIZE}
        if cursor is not None:
            params["after"] = cursor
        body = api.call("GET", path, account, mutating=False, params=params)
        items = _list(body.get("data"))
        found = next(
            (str(i["id"]) for i in items if i.get("client_ref") == client_ref and i.get("id")),
            None,
        )
        paging = body.get("paging")
        after = _cursor_after(paging)
        more = after is not None and isinstance(paging, dict) and bool(paging.get("next"))
        oldest = oldest_time([item.get(stamp) for item in items])
        return ListedPage(found, oldest, after if more else None)

    return look_back(api.platform, fetch, since, FIND_MAX_PAGES)


def _list(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _cursor_after(paging: object) -> str | None:
    cursors = paging.get("cursors") if isinstance(paging, dict) else None
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None


class GraphClient:
    """What the Graph API's clients (Facebook, Instagram) share: the caller and its usage."""

    #: Set by each subclass.
    platform: str

    def __init__(self, base_url: str, connect_timeout: float, read_timeout: float) -> None:
        self._api = ApiCaller(self.platform, "graph", base_url, connect_timeout, read_timeout)

    @property
    def last_usage(self) -> PlatformUsage | None:
        """Usage from the latest Graph response (``X-App-Usage`` and friends)."""
        return self._api.last_usage


class FacebookClient(GraphClient):
    """Publishes to Facebook Pages; ``account.external_id`` is the page id."""

    platform = "facebook"

    def publish(self, account: Account, post: PostRequest) -> str:
        """Post to the page's feed; returns the ``{page-id}_{post-id}`` id."""
        data = {"message": post.content, "client_ref": post.client_ref}
        link = single_media(self.platform, post)
        if link is not None:
            data["link"] = link
        path = f"/{GRAPH_VERSION}/{account.external_id}/feed"
        return self._api.call_for_id("POST", path, account, mutating=True, data=data)

    def find_published(
        self, account: Account, client_ref: str, since: datetime | None = None
    ) -> str | None:
        """The id of the page post carrying ``client_ref`` (see ``look_back``), or None."""
        return find_on_graph_edge(
            self._api, account, "feed", client_ref, stamp="created_time", since=since
        )
