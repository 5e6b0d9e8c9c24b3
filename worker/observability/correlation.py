"""The request id: one id from the API's request through every job it causes.

An API sets it as a message header (`x-request-id`, `HEADER_REQUEST_ID`):

    app.send_task("posts.publish", args=[post_id], headers={"x-request-id": rid})

or, for a post, in `scheduled_posts.request_id` (`worker.client.schedule_post(...,
request_id=rid)` or the column of an inserted row): the dispatcher sends it as the
header. A header, not an argument, because every task takes it the same way and no
task signature changes; not only a column, because tasks other than publishes have
no row.

A task without one gets a new id when it starts (`begin`). While a task runs its id
is the process's current one, and every message the task sends (a retry, a
deferral, a fan-out, a dead letter) carries it (`stamp_headers`, wired to Celery's
`before_task_publish` in `worker.taskapp.signals`). The dispatcher sends each post under the
post's own id (`detached`), never under its own run's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any, Final

from worker.constants import HEADER_REQUEST_ID

#: Longest request id taken from a header; a longer one is replaced (it goes in every line).
MAX_REQUEST_ID_LENGTH: Final = 200

_current: ContextVar[str | None] = ContextVar("herald_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The request id of the task running in this context, if any."""
    return _current.get()


def request_id_of(request: Any) -> str | None:
    """A task request's `x-request-id` header when it is usable text, else None."""
    value = getattr(request, HEADER_REQUEST_ID, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(HEADER_REQUEST_ID)  # protocol 1 / nested headers
    if isinstance(value, str) and 0 < len(value.strip()) <= MAX_REQUEST_ID_LENGTH:
        return value.strip()
    return None


def begin(request: Any) -> str:
    """Make the request's id (or a new one) current, and write it back on the request so
    that whatever reads the request's headers (dead letters) sees it."""
    request_id = request_id_of(request) or new_request_id()
    _current.set(request_id)
    with suppress(AttributeError, TypeError):  # a read-only request: logs still get it
        setattr(request, HEADER_REQUEST_ID, request_id)
    return request_id


def end() -> None:
    _current.set(None)


@contextmanager
def detached() -> Iterator[None]:
    """Send messages that belong to no current request (each carries its own or none)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def stamp_headers(headers: MutableMapping[str, Any] | None) -> None:
    """Give an outgoing message the current request id, unless it names its own."""
    request_id = _current.get()
    if request_id is not None and headers is not None and not headers.get(HEADER_REQUEST_ID):
        headers[HEADER_REQUEST_ID] = request_id
