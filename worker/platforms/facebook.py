"""Facebook Pages through the Graph API, plus the Graph helpers Instagram shares.

Publishing is one call, ``POST /{page-id}/feed`` (``message``, optional ``link``),
answered with ``{"id": "{page-id}_{post-id}"}``. Our post UUID travels as
``client_ref`` and comes back on ``GET /{page-id}/feed`` items, which is how a
publish whose answer was lost is found again.
"""

from __future__ import annotations

from typing import Any

from worker.platforms.base import Account, ApiCaller, PostRequest
from worker.platforms.errors import PermanentError, PlatformUsage

#: The Graph API version every Graph path starts with.
GRAPH_VERSION = "v21.0"
#: Items per page when looking a post up; Graph allows up to 100.
FIND_PAGE_SIZE = 100
#: How many pages back ``find_published`` looks: a lost publish is always recent.
FIND_MAX_PAGES = 5


def single_media(platform: str, post: PostRequest) -> str | None:
    """The post's one media URL, if any; several are refused rather than silently dropped."""
    if len(post.media) > 1:
        raise PermanentError(platform, "posts with more than one media item are not supported")
    return post.media[0] if post.media else None


def find_on_graph_edge(
    api: ApiCaller, account: Account, edge: str, fields: str, client_ref: str
) -> str | None:
    """Page through ``/{account}/{edge}`` (newest first) for an item with ``client_ref``."""
    path = f"/{GRAPH_VERSION}/{account.external_id}/{edge}"
    params: dict[str, str | int] = {"fields": fields, "limit": FIND_PAGE_SIZE}
    for _ in range(FIND_MAX_PAGES):
        body = api.call("GET", path, account, mutating=False, params=params)
        for item in _list(body.get("data")):
            if item.get("client_ref") == client_ref and item.get("id"):
                return str(item["id"])
        paging = body.get("paging")
        after = _cursor_after(paging)
        if after is None or not isinstance(paging, dict) or not paging.get("next"):
            return None
        params = {**params, "after": after}
    return None


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

    def find_published(self, account: Account, client_ref: str) -> str | None:
        """The id of a recent page post carrying ``client_ref``, or None."""
        fields = "id,message,created_time,client_ref"
        return find_on_graph_edge(self._api, account, "feed", fields, client_ref)
