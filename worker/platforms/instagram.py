"""Instagram professional accounts through the Graph API's content publishing.

Publishing is two calls: ``POST /{ig-user-id}/media`` (``image_url``, ``caption``)
creates a container, then ``POST /{ig-user-id}/media_publish`` (``creation_id``)
publishes it as a media object. Only the second call can publish, so only its lost
answer leaves the outcome unknown; a container left over by a failed attempt is
never published and expires on its own.
"""

from __future__ import annotations

from datetime import datetime

from worker.platforms.base import Account, PostRequest
from worker.platforms.errors import PermanentError
from worker.platforms.facebook import (
    GRAPH_VERSION,
    GraphClient,
    find_on_graph_edge,
    single_media,
)


class InstagramClient(GraphClient):
    """Publishes single-image posts; ``account.external_id`` is the IG user id."""

    platform = "instagram"

    def publish(self, account: Account, post: PostRequest) -> str:
        """Create a media container, then publish it; returns the media id."""
        image_url = single_media(self.platform, post)
        if image_url is None:
            raise PermanentError(self.platform, "an Instagram post needs an image")
        user = f"/{GRAPH_VERSION}/{account.external_id}"
        container = {"image_url": image_url, "caption": post.content, "client_ref": post.client_ref}
        # Losing this answer publishes nothing: a plain transient failure, not an unknown.
        creation_id = self._api.call_for_id(
            "POST", f"{user}/media", account, mutating=False, data=container
        )
        return self._api.call_for_id(
            "POST",
            f"{user}/media_publish",
            account,
            mutating=True,
            data={"creation_id": creation_id},
        )

    def find_published(
        self, account: Account, client_ref: str, since: datetime | None = None
    ) -> str | None:
        """The id of the media object carrying ``client_ref`` (see ``look_back``), or None."""
        return find_on_graph_edge(
            self._api, account, "media", client_ref, stamp="timestamp", since=since
        )
