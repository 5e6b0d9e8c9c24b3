"""Request parsing and JSON responses shared by every sandbox route."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]


def json_response(
    payload: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A compact JSON response."""
    body = json.dumps(payload, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def encode_cursor(seq: int) -> str:
    """An opaque paging cursor, as Graph and Google hand out."""
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The seq inside a cursor; ValueError when it is not one of ours."""
    if not cursor:
        return None
    padded = cursor + "=" * (-len(cursor) % 4)
    return int(base64.urlsafe_b64decode(padded.encode()).decode())


def bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer`` header, or ''."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def form_params(request: Request) -> dict[str, str]:
    """Query string and urlencoded body, merged (Graph reads parameters from both)."""
    params = dict(request.query_params)
    body = await request.body()
    if body:
        params.update(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
    return params


def split_related(body: bytes, content_type: str) -> tuple[bytes, bytes] | None:
    """The (metadata, media) parts of a ``multipart/related`` upload, or None."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/related") or found is None:
        return None
    payloads: list[bytes] = []
    for part in body.split(b"--" + found.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        _, sep, payload = part.partition(b"\r\n\r\n")
        if not sep:
            return None
        payloads.append(payload.removesuffix(b"\r\n"))
    return (payloads[0], payloads[1]) if len(payloads) == 2 else None
