"""The Instagram and Facebook Graph routes: publish, list, and the token exchange.

Every answer carries Graph's usage headers (``X-App-Usage``, and
``X-Business-Use-Case-Usage`` when an account is addressed); errors use Graph's
``{"error": {"message", "type", "code", "fbtrace_id"}}`` shape.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.platforms.sandbox.faults import enter, fails, maybe_hang, retry_after_headers
from worker.platforms.sandbox.state import Faults, SandboxState, graph_id
from worker.platforms.sandbox.wire import (
    Endpoint,
    bearer_token,
    decode_cursor,
    encode_cursor,
    form_params,
    json_response,
)

IG_CAPTION_MAX = 2200
_GRAPH_REVOKED = (
    "Error validating access token: The session has been invalidated because the user "
    "changed their password or Facebook has changed the session for security reasons."
)


@dataclass(frozen=True, slots=True)
class GraphCall:
    """A Graph request that passed the shared checks (latency, token)."""

    request: Request
    platform: str
    account: str
    params: dict[str, str]
    faults: Faults


GraphHandler = Callable[[GraphCall], Awaitable[Response]]


def routes(state: SandboxState) -> list[Route]:
    """The Instagram and Facebook routes of a sandbox holding ``state``."""
    api = GraphApi(state)
    graph = api.endpoint
    ig, fb = "/instagram/{version}/{account}", "/facebook/{version}/{account}"
    return [
        Route(f"{ig}/media", graph("instagram", api.ig_create_container), methods=["POST"]),
        Route(f"{ig}/media", graph("instagram", api.list_posts), methods=["GET"]),
        Route(f"{ig}/media_publish", graph("instagram", api.ig_publish), methods=["POST"]),
        Route(f"{fb}/feed", graph("facebook", api.fb_publish), methods=["POST"]),
        Route(f"{fb}/feed", graph("facebook", api.list_posts), methods=["GET"]),
        Route("/instagram/{version}/oauth/access_token", api.oauth("instagram")),
        Route("/facebook/{version}/oauth/access_token", api.oauth("facebook")),
    ]


class GraphApi:
    """Graph endpoints over one sandbox's state."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state

    # --- answers ---------------------------------------------------------------------

    def _answer(
        self,
        platform: str,
        account: str,
        payload: object,
        status: int = 200,
        *,
        headers: dict[str, str] | None = None,
        regain_s: float = 0,
    ) -> Response:
        pct = self._state.usage.percent(platform, self._state.faults[platform])
        figures = {"call_count": pct, "total_cputime": pct // 2, "total_time": pct // 2}
        headers = {**(headers or {}), "X-App-Usage": json.dumps(figures)}
        if account:
            kind = "pages" if platform == "facebook" else "instagram"
            regain = math.ceil(regain_s / 60)
            per_object = [{"type": kind, **figures, "estimated_time_to_regain_access": regain}]
            headers["X-Business-Use-Case-Usage"] = json.dumps({account: per_object})
        return json_response(payload, status, headers)

    def _error(
        self,
        call: GraphCall,
        status: int,
        code: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        regain_s: float = 0,
    ) -> Response:
        error: dict[str, object] = {"message": message, "type": "OAuthException", "code": code}
        if code in (1, 2):
            error["is_transient"] = True
        error["fbtrace_id"] = secrets.token_urlsafe(9)
        payload = {"error": error}
        return self._answer(
            call.platform, call.account, payload, status, headers=headers, regain_s=regain_s
        )

    def _fault(self, call: GraphCall) -> Response:
        status, headers = call.faults.status, retry_after_headers(call.faults)
        if status == 429:
            code, limit = (32, "Page") if call.platform == "facebook" else (4, "Application")
            message = f"(#{code}) {limit} request limit reached"
            regain_s = call.faults.retry_after or 0
            return self._error(call, 429, code, message, headers=headers, regain_s=regain_s)
        if status >= 500:
            message = "(#2) Service temporarily unavailable"
            return self._error(call, status, 2, message, headers=headers)
        if status == 401:
            return self._error(call, 401, 190, _GRAPH_REVOKED)
        return self._error(call, status, 100, "(#100) Invalid parameter")

    # --- endpoints -------------------------------------------------------------------

    def endpoint(self, platform: str, handler: GraphHandler) -> Endpoint:
        """Wrap a Graph handler with latency, the token check and revocation."""

        async def endpoint(request: Request) -> Response:
            faults = await enter(self._state, platform)
            params = await form_params(request)
            account = request.path_params.get("account", "")
            call = GraphCall(request, platform, account, params, faults)
            if not (bearer_token(request) or params.get("access_token")):
                message = "An access token is required to request this resource."
                return self._error(call, 400, 104, message)
            if faults.revoke_tokens:
                return self._error(call, 400, 190, _GRAPH_REVOKED)
            return await handler(call)

        return endpoint

    async def ig_create_container(self, call: GraphCall) -> Response:
        """``POST /{ig-user-id}/media``: a container for one image."""
        image_url, caption = call.params.get("image_url", ""), call.params.get("caption", "")
        if not image_url:
            return self._error(call, 400, 100, "The parameter image_url is required.")
        if not image_url.startswith(("http://", "https://")):
            message = "Only photo or video can be accepted as media type."
            return self._error(call, 400, 9004, message)
        if len(caption) > IG_CAPTION_MAX:
            return self._error(call, 400, 100, "The caption is too long.")
        if fails(call.faults):
            return self._fault(call)
        client_ref = call.params.get("client_ref")
        container_id = self._state.store.add_container(call.account, caption, client_ref)
        return self._answer(call.platform, call.account, {"id": container_id})

    async def ig_publish(self, call: GraphCall) -> Response:
        """``POST /{ig-user-id}/media_publish``: publish a container (once)."""
        creation_id = call.params.get("creation_id", "")
        if not creation_id:
            return self._error(call, 400, 100, "The parameter creation_id is required.")
        if fails(call.faults):
            return self._fault(call)
        container = self._state.store.take_container(call.account, creation_id)
        if container is None:
            message = f"Unsupported post request. Object with ID '{creation_id}' does not exist"
            return self._error(call, 400, 100, message)
        post = self._state.store.record(call.platform, call.account, container[1], container[0])
        await maybe_hang(call.faults)
        return self._answer(call.platform, call.account, {"id": post.external_id})

    async def fb_publish(self, call: GraphCall) -> Response:
        """``POST /{page-id}/feed``: a page post with a message and/or a link."""
        message = call.params.get("message", "")
        if not message and not call.params.get("link"):
            return self._error(call, 400, 100, "(#100) Missing message or attachment")
        if fails(call.faults):
            return self._fault(call)
        page = call.account
        post = self._state.store.record(
            call.platform,
            page,
            call.params.get("client_ref"),
            message,
            lambda seq: f"{page}_{graph_id(seq)}",
        )
        await maybe_hang(call.faults)
        return self._answer(call.platform, page, {"id": post.external_id})

    async def list_posts(self, call: GraphCall) -> Response:
        """``GET /{id}/media`` or ``/{id}/feed``: recent posts, newest first, paged."""
        try:
            before = decode_cursor(call.params.get("after"))
            limit = min(100, max(1, int(call.params.get("limit", "25"))))
        except ValueError:
            return self._error(call, 400, 100, "(#100) Invalid after or limit")
        posts, _ = self._state.store.page(call.platform, call.account, before, limit)
        text, stamp = ("message", "created_time")
        if call.platform == "instagram":
            text, stamp = ("caption", "timestamp")
        data = [
            {
                "id": p.external_id,
                text: p.content,
                stamp: p.at.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                "client_ref": p.client_ref,
            }
            for p in posts
        ]
        payload: dict[str, object] = {"data": data}
        if posts:
            cursors = {"before": encode_cursor(posts[0].seq), "after": encode_cursor(posts[-1].seq)}
            paging: dict[str, object] = {"cursors": cursors}
            if len(posts) == limit:
                paging["next"] = str(call.request.url.include_query_params(after=cursors["after"]))
            payload["paging"] = paging
        return self._answer(call.platform, call.account, payload)

    def oauth(self, platform: str) -> Endpoint:
        """``GET /oauth/access_token?grant_type=fb_exchange_token``: a long-lived token.

        Every call is logged (``GET /__sandbox/oauth``), the token as a fingerprint."""

        async def endpoint(request: Request) -> Response:
            faults = await enter(self._state, platform)
            params = dict(request.query_params)
            response = self._exchange(GraphCall(request, platform, "", params, faults))
            grant_type, grant = params.get("grant_type", ""), params.get("fb_exchange_token", "")
            self._state.oauth.record(platform, grant_type, grant, response.status_code)
            return response

        return endpoint

    def _exchange(self, call: GraphCall) -> Response:
        params = call.params
        for name in ("grant_type", "client_id", "client_secret", "fb_exchange_token"):
            if not params.get(name):
                return self._error(call, 400, 100, f"Missing {name} parameter.")
        if params["grant_type"] != "fb_exchange_token":
            return self._error(call, 400, 100, "Unsupported grant_type.")
        if call.faults.revoke_tokens:
            return self._error(call, 400, 190, _GRAPH_REVOKED)
        if fails(call.faults):
            return self._fault(call)
        token = "EAAB" + secrets.token_urlsafe(48)
        body = {"access_token": token, "token_type": "bearer", "expires_in": 5_183_944}
        return self._answer(call.platform, "", body)
