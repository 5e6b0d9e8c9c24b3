"""The YouTube routes (multipart upload, a channel's uploads) and Google's token endpoint.

Errors use Google's ``{"error": {"code", "message", "errors": [...], "status"}}``
shape; the token endpoint answers in OAuth's ``{"error", "error_description"}``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.errors import RefusedError
from worker.platforms.sandbox.faults import enter, fails, maybe_hang, retry_after_headers
from worker.platforms.sandbox.state import Faults, Post, SandboxState, video_id
from worker.platforms.sandbox.wire import (
    Endpoint,
    bearer_token,
    decode_cursor,
    encode_cursor,
    form_params,
    json_response,
    split_related,
)

YT_TITLE_MAX = 100
YT_DESCRIPTION_MAX_BYTES = 5000
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
}
_GOOGLE_REVOKED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential."
)

GoogleHandler = Callable[[Request, Faults], Awaitable[Response]]


def routes(state: SandboxState) -> list[Route]:
    """The YouTube and token routes of a sandbox holding ``state``."""
    api = GoogleApi(state)
    google = api.endpoint
    return [
        Route("/youtube/upload/youtube/v3/videos", google(api.yt_upload), methods=["POST"]),
        Route("/youtube/youtube/v3/playlistItems", google(api.yt_playlist_items)),
        Route("/youtube/token", api.token, methods=["POST"]),
    ]


# --- answers -----------------------------------------------------------------------


def google_error(
    status: int,
    reason: str,
    message: str,
    domain: str = "global",
    *,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error in Google's API shape."""
    state = _GOOGLE_STATUS.get(status) or ("UNAVAILABLE" if status >= 500 else "FAILED")
    item = {"message": message, "domain": domain, "reason": reason}
    error = {"code": status, "message": message, "errors": [item], "status": state}
    return json_response({"error": error}, status, headers)


def _fault(faults: Faults) -> Response:
    status, headers = faults.status, retry_after_headers(faults)
    if status == 429:
        message = "The request cannot be completed because you have exceeded your quota."
        return google_error(429, "rateLimitExceeded", message, "usageLimits", headers=headers)
    if status >= 500:
        return google_error(status, "backendError", "Backend Error", headers=headers)
    if status == 401:
        return _revoked()
    return google_error(status, "badRequest", "Bad Request")


def _revoked() -> Response:
    challenge = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    headers = {"WWW-Authenticate": challenge}
    return google_error(401, "authError", _GOOGLE_REVOKED, headers=headers)


# --- endpoints ---------------------------------------------------------------------


class GoogleApi:
    """YouTube and token endpoints over one sandbox's state."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state

    def endpoint(self, handler: GoogleHandler) -> Endpoint:
        """Wrap a YouTube handler with latency, the token check and revocation."""

        async def endpoint(request: Request) -> Response:
            faults = await enter(self._state, "youtube")
            if not bearer_token(request):
                return google_error(401, "required", "Login Required.")
            if faults.revoke_tokens:
                return _revoked()
            return await handler(request, faults)

        return endpoint

    async def yt_upload(self, request: Request, faults: Faults) -> Response:
        """``POST /upload/youtube/v3/videos?uploadType=multipart``: metadata + media."""
        query = request.query_params
        if query.get("uploadType") != "multipart" or "snippet" not in query.get("part", ""):
            message = "The sandbox takes uploadType=multipart with part=snippet[,status]."
            return google_error(400, "badRequest", message)
        parts = split_related(await request.body(), request.headers.get("content-type", ""))
        try:
            snippet = video_snippet(parts)
        except VideoRejectedError as exc:
            return google_error(400, exc.reason, str(exc), "youtube.video")
        if fails(faults):
            return _fault(faults)
        channel = str(snippet["channelId"])
        description = str(snippet.get("description", ""))
        client_ref = query.get("client_ref")
        post = self._state.store.record("youtube", channel, client_ref, description, video_id)
        await maybe_hang(faults)
        published = post.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return json_response(
            {
                "kind": "youtube#video",
                "id": post.external_id,
                "snippet": {**snippet, "publishedAt": published},
                "status": {"uploadStatus": "uploaded", "privacyStatus": "public"},
            }
        )

    async def yt_playlist_items(self, request: Request, faults: Faults) -> Response:
        """``GET /youtube/v3/playlistItems?playlistId=UU…``: a channel's uploads."""
        query = request.query_params
        playlist = query.get("playlistId", "")
        if not playlist:
            message = "No filter selected. Expected one of: playlistId, id"
            return google_error(400, "missingRequiredParameter", message)
        try:
            before = decode_cursor(query.get("pageToken"))
            limit = min(50, max(1, int(query.get("maxResults", "5"))))
        except ValueError:
            return google_error(400, "invalidPageToken", "Invalid page token.")
        channel = "UC" + playlist[2:] if playlist.startswith("UU") else playlist
        posts, total = self._state.store.page("youtube", channel, before, limit)
        items = [_playlist_item(post, playlist) for post in posts]
        body: dict[str, object] = {
            "kind": "youtube#playlistItemListResponse",
            "items": items,
            "pageInfo": {"totalResults": total, "resultsPerPage": limit},
        }
        if len(posts) == limit:
            body["nextPageToken"] = encode_cursor(posts[-1].seq)
        return json_response(body)

    async def token(self, request: Request) -> Response:
        """``POST /token`` (grant_type=refresh_token): a fresh access token.

        Every call is logged (``GET /__sandbox/oauth``), the token as a fingerprint."""
        faults = await enter(self._state, "youtube")
        form = await form_params(request)
        response = _grant(form, faults)
        grant_type, grant = form.get("grant_type", ""), form.get("refresh_token", "")
        self._state.oauth.record("youtube", grant_type, grant, response.status_code)
        return response


def _grant(form: dict[str, str], faults: Faults) -> Response:
    if form.get("grant_type") != "refresh_token":
        failure = {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
        return json_response(failure, 400)
    for name in ("refresh_token", "client_id", "client_secret"):
        if not form.get(name):
            detail = f"Missing required parameter: {name}"
            return json_response({"error": "invalid_request", "error_description": detail}, 400)
    if faults.revoke_tokens:
        detail = "Token has been expired or revoked."
        return json_response({"error": "invalid_grant", "error_description": detail}, 400)
    if fails(faults):
        return _fault(faults)
    token = "ya29." + secrets.token_urlsafe(48)
    return json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})


# --- upload validation -------------------------------------------------------------


class VideoRejectedError(RefusedError, ValueError):
    """The upload's metadata or media is not acceptable; ``reason`` as YouTube names it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def video_snippet(parts: tuple[bytes, bytes] | None) -> dict[str, object]:
    """Validate an upload's (metadata, media) and return its snippet."""
    if parts is None or not parts[1]:
        raise VideoRejectedError(
            "mediaBodyRequired", "The request does not include the video content."
        )
    try:
        resource = json.loads(parts[0])
    except ValueError:
        raise VideoRejectedError("parseError", "The metadata part is not JSON.") from None
    snippet = resource.get("snippet") if isinstance(resource, dict) else None
    if not isinstance(snippet, dict):
        raise VideoRejectedError("invalidSnippet", "The metadata has no snippet.")
    title = snippet.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > YT_TITLE_MAX:
        raise VideoRejectedError("invalidTitle", "The request metadata specifies an invalid title.")
    description = snippet.get("description", "")
    if not isinstance(description, str) or len(description.encode()) > YT_DESCRIPTION_MAX_BYTES:
        raise VideoRejectedError(
            "invalidDescription", "The request specifies an invalid description."
        )
    if not snippet.get("channelId"):
        raise VideoRejectedError("invalidSnippet", "The sandbox needs snippet.channelId.")
    return snippet


def _playlist_item(post: Post, playlist: str) -> dict[str, object]:
    title = post.content.strip().splitlines()[0][:YT_TITLE_MAX] if post.content.strip() else ""
    snippet = {
        "publishedAt": post.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "channelId": post.account,
        "title": title,
        "description": post.content,
        "playlistId": playlist,
        "resourceId": {"kind": "youtube#video", "videoId": post.external_id},
        "client_ref": post.client_ref,
    }
    return {"kind": "youtube#playlistItem", "id": encode_cursor(post.seq), "snippet": snippet}
