"""What every platform client shares: the data it takes, its interface, and its HTTP.

One ``httpx.Client`` per base URL per process keeps connections warm across tasks;
after ``fork`` the child drops the parent's pool (its sockets belong to the parent).
:class:`ApiCaller` turns every failure — transport or answer — into one of
:mod:`worker.platforms.errors`, and never lets the token reach a message, a repr or a
chained traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypedDict, Unpack
from urllib.parse import urlsplit

import httpx

from worker import runtime
from worker.platforms.errors import (
    Dialect,
    OutcomeUnknownError,
    PlatformError,
    PlatformUsage,
    TransientError,
    error_from_answer,
)

#: Per process; a prefork child makes one call at a time, a thread pool a few.
HTTP_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=5.0)
USER_AGENT = "herald/1 (+httpx)"

#: A platform's clock and ours may disagree: a lookup reads this much further back.
LOOKUP_CLOCK_SKEW = timedelta(seconds=60)

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Raised before a byte left: the platform cannot have acted on the request.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True, slots=True)
class Account:
    """A platform-side account we publish as; ``access_token`` never shows in its repr."""

    platform: str
    external_id: str
    access_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PostRequest:
    """One post to publish; ``client_ref`` (our post UUID) makes it findable afterwards."""

    client_ref: str
    content: str
    media: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Published:
    """A publish the platform confirmed."""

    external_id: str


class PlatformClient(Protocol):
    """The interface every platform client offers."""

    platform: str

    @property
    def last_usage(self) -> PlatformUsage | None:
        """Rate-limit usage from the latest response, when the platform reports it."""
        ...

    def publish(self, account: Account, post: PostRequest) -> str:
        """Publish ``post`` and return the platform's id for it."""
        ...

    def find_published(
        self, account: Account, client_ref: str, since: datetime | None = None
    ) -> str | None:
        """Return the platform id of the account's post carrying ``client_ref``, else None.

        ``since`` is when the post's first publish attempt may have started at the
        earliest: the lookup pages back until it reaches items created before it (see
        :func:`look_back`); without it, until the list ends. Raises
        :class:`OutcomeUnknownError` when its page cap stops it first.
        """
        ...


@dataclass(frozen=True, slots=True)
class ListedPage:
    """One page of an account's items, newest first, as a lookup needs it."""

    #: The platform id of the item carrying the wanted ``client_ref``, if on this page.
    found: str | None
    #: The oldest creation time on the page (None when no item carried one).
    oldest: datetime | None
    #: Where the next (older) page starts; None on the last page.
    next_cursor: str | None


def look_back(
    platform: str,
    fetch: Callable[[str | None], ListedPage],
    since: datetime | None,
    max_pages: int,
) -> str | None:
    """Page back through ``fetch(cursor)`` until the item turns up or cannot exist.

    It cannot exist further back once a page reaches items created before ``since``
    (less :data:`LOOKUP_CLOCK_SKEW`), or when the list ends. A fixed look-back is not
    enough: a retried post rejoins the back of the queue and may find thousands of
    newer posts on its account. Hitting ``max_pages`` first proves nothing, so it is
    :class:`OutcomeUnknownError` (try again later), never "not found" (publish again).
    """
    floor = since - LOOKUP_CLOCK_SKEW if since is not None else None
    cursor: str | None = None
    for _ in range(max_pages):
        page = fetch(cursor)
        if page.found is not None:
            return page.found
        if page.next_cursor is None:
            return None
        if floor is not None and page.oldest is not None and page.oldest < floor:
            return None
        cursor = page.next_cursor
    reach = f"items older than {floor.isoformat()}" if floor is not None else "the end"
    message = (
        f"lookup read {max_pages} pages without finding the post or reaching {reach}: "
        "whether an earlier attempt published it is unknown"
    )
    raise OutcomeUnknownError(platform, message)


def parse_time(value: object) -> datetime | None:
    """A platform's ISO-8601 creation time (``...+0000`` or ``...Z``), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def oldest_time(values: list[object]) -> datetime | None:
    """The earliest of the parseable times among ``values``, or None."""
    times = [t for t in map(parse_time, values) if t is not None]
    return min(times) if times else None


class _SharedClients:
    """The process's ``httpx.Client`` per base URL."""

    def __init__(self) -> None:
        self.clients: dict[str, httpx.Client] = {}
        self.lock = threading.Lock()

    def get(self, base_url: str) -> httpx.Client:
        client = self.clients.get(base_url)
        if client is not None:
            return client
        with self.lock:
            client = self.clients.get(base_url)
            if client is None:
                host = urlsplit(base_url).hostname or ""
                client = httpx.Client(
                    base_url=base_url,
                    limits=HTTP_LIMITS,
                    timeout=make_timeout(5.0, 30.0),
                    headers={"User-Agent": USER_AGENT},
                    # A proxy from the environment must not capture calls to the sandbox.
                    trust_env=host not in _LOOPBACK_HOSTS,
                )
                self.clients[base_url] = client
            return client

    def close_all(self) -> None:
        with self.lock:
            clients = list(self.clients.values())
            self.clients.clear()
        for client in clients:
            client.close()


#: This process's clients (worker.runtime: closed on reset; a forked child drops them
#: untouched, since their sockets are the parent's, and builds a new set with a new lock).
_shared = runtime.cached("platform HTTP clients", _SharedClients, close=_SharedClients.close_all)


def make_timeout(connect_timeout: float, read_timeout: float) -> httpx.Timeout:
    """Explicit timeouts for every phase of a call: httpx's default applies none of ours."""
    return httpx.Timeout(
        connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
    )


def http_client(base_url: str) -> httpx.Client:
    """The process's shared client for ``base_url`` (created on first use, per process)."""
    return _shared().get(base_url)


class _BearerAuth(httpx.Auth):
    """Sets ``Authorization`` per request; its repr hides the token from error reporters."""

    def __init__(self, account: Account) -> None:
        self._account = account

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._account.access_token}"
        yield request

    def __repr__(self) -> str:
        return f"_BearerAuth({self._account!r})"


class CallOptions(TypedDict, total=False):
    """What a call may carry besides its method, path and account."""

    params: Mapping[str, str | int]
    data: Mapping[str, str]
    content: bytes
    content_type: str


class ApiCaller:
    """Makes one platform's HTTP calls and turns every failure into a PlatformError."""

    def __init__(
        self,
        platform: str,
        dialect: Dialect,
        base_url: str,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.platform = platform
        self.dialect: Dialect = dialect
        self.base_url = base_url.rstrip("/")
        self.timeout = make_timeout(connect_timeout, read_timeout)
        self.last_usage: PlatformUsage | None = None

    def call(
        self,
        method: str,
        path: str,
        account: Account,
        *,
        mutating: bool,
        **options: Unpack[CallOptions],
    ) -> dict[str, Any]:
        """Send one request as ``account`` and return its JSON object body.

        ``mutating`` says whether a lost answer leaves the outcome unknown (a publish)
        or merely failed (a read).
        """
        content_type = options.get("content_type")
        headers = {"Content-Type": content_type} if content_type else None
        try:
            response = http_client(self.base_url).request(
                method,
                path,
                params=options.get("params"),
                data=options.get("data"),
                content=options.get("content"),
                headers=headers,
                auth=_BearerAuth(account),
                timeout=self.timeout,
            )
        except httpx.RequestError as exc:
            # No chaining: httpx frames hold the raw Authorization header in their locals.
            raise self._request_error(exc, mutating) from None
        usage = PlatformUsage.from_headers(response.headers)
        if usage is not None:
            self.last_usage = usage
        if not response.is_success:
            raise error_from_response(
                self.platform, response, dialect=self.dialect, secret=account.access_token
            )
        return self._json_body(response, mutating, usage)

    def call_for_id(
        self,
        method: str,
        path: str,
        account: Account,
        *,
        mutating: bool,
        **options: Unpack[CallOptions],
    ) -> str:
        """Like :meth:`call`, for calls that create something: returns the body's ``id``."""
        body = self.call(method, path, account, mutating=mutating, **options)
        created = body.get("id")
        if isinstance(created, str | int) and not isinstance(created, bool) and str(created):
            return str(created)
        cls = OutcomeUnknownError if mutating else TransientError
        raise cls(self.platform, "success status but no id in the answer", usage=self.last_usage)

    def _request_error(self, exc: httpx.RequestError, mutating: bool) -> PlatformError:
        name = type(exc).__name__
        if mutating and not isinstance(exc, _NOT_SENT):
            message = f"no answer after the request was sent ({name})"
            return OutcomeUnknownError(self.platform, message)
        return TransientError(self.platform, f"request failed ({name})")

    def _json_body(
        self, response: httpx.Response, mutating: bool, usage: PlatformUsage | None
    ) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
        cls = OutcomeUnknownError if mutating else TransientError
        message = "success status with an unreadable body"
        raise cls(self.platform, message, status=response.status_code, usage=usage)


def error_from_response(
    platform: str, response: httpx.Response, *, dialect: Dialect, secret: str | None = None
) -> PlatformError:
    """Map a non-2xx response onto the taxonomy; ``secret`` is cut out of the message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_from_answer(
        platform, response.status_code, body, response.headers, dialect=dialect, secret=secret
    )
