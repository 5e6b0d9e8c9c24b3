"""The error taxonomy every caller of a platform client acts on.

One class per decision a caller makes:

* :class:`TransientError` — retry with backoff (timeouts, connection errors, 5xx).
* :class:`OutcomeUnknownError` — a transient error after the request was sent: the
  platform may have published. Look the post up (``find_published``) before retrying.
* :class:`RateLimitedError` — defer by ``retry_after`` seconds without spending a retry.
* :class:`AuthExpiredError` — refresh the token or mark the account ``needs_reauth``.
* :class:`PermanentError` — never retry; dead-letter.

Messages never contain access tokens: clients build them from platform error bodies
(redacted) and fixed strings, never from request URLs or headers.

:func:`error_from_answer` is the one place that knows what Graph error codes and
Google error reasons mean.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.errors import HeraldError

#: Error body families: Graph (Facebook, Instagram) and Google (YouTube, OAuth).
Dialect = Literal["graph", "google"]

#: Graph's usage headers; each holds percentages of a budget (100 = throttled).
USAGE_HEADERS = ("x-app-usage", "x-page-usage")
#: Per business object: {"<id>": [{"type": "pages", "call_count": 3, ...}]}.
BUSINESS_USAGE_HEADER = "x-business-use-case-usage"


@dataclass(frozen=True, slots=True)
class PlatformUsage:
    """Rate-limit usage a platform reported, as percentages of the app's budget.

    Facebook and Instagram send ``X-App-Usage`` and ``X-Business-Use-Case-Usage``;
    throttling starts when any figure reaches 100.
    """

    call_count: int = 0
    total_time: int = 0
    total_cputime: int = 0
    #: Seconds until a throttled business use case regains access, when the platform says.
    regain_access_s: float | None = None

    @property
    def usage_percent(self) -> int:
        """The highest of the reported percentages: what the caller should compare."""
        return max(self.call_count, self.total_time, self.total_cputime)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> PlatformUsage | None:
        """Read Graph's usage headers (``headers`` looked up in lower case, as httpx
        does); None when the response carried none."""
        figures: list[dict[str, Any]] = []
        for name in USAGE_HEADERS:
            value = _json_header(headers, name)
            if isinstance(value, dict):
                figures.append(value)
        per_object = _json_header(headers, BUSINESS_USAGE_HEADER)
        if isinstance(per_object, dict):
            for entries in per_object.values():
                if isinstance(entries, list):
                    figures.extend(e for e in entries if isinstance(e, dict))
        if not figures:
            return None
        regain_minutes = max(_number(f, "estimated_time_to_regain_access") for f in figures)
        return cls(
            call_count=max(int(_number(f, "call_count")) for f in figures),
            total_time=max(int(_number(f, "total_time")) for f in figures),
            total_cputime=max(int(_number(f, "total_cputime")) for f in figures),
            regain_access_s=regain_minutes * 60.0 if regain_minutes > 0 else None,
        )


def _json_header(headers: Mapping[str, str], name: str) -> object:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _number(figures: dict[str, Any], key: str) -> float:
    value = figures.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


class PlatformError(HeraldError):
    """Base of every error a platform client raises."""

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        status: int | None = None,
        code: str | int | None = None,
        usage: PlatformUsage | None = None,
    ) -> None:
        super().__init__(platform, message)
        self.platform = platform
        self.message = message
        #: HTTP status, or None when no response arrived.
        self.status = status
        #: The platform's error code or reason (Graph ``code``, Google ``reason``), if any.
        self.code = code
        self.usage = usage

    def __str__(self) -> str:
        details = ", ".join(
            f"{name}={value}" for name, value in (("status", self.status), ("code", self.code))
        )
        return f"{self.platform}: {self.message}" + (f" ({details})" if details else "")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(platform={self.platform!r}, message={self.message!r}, "
            f"status={self.status!r}, code={self.code!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # billiard pickles task exceptions from the pool child to the parent; the
        # keyword-only constructor would otherwise break unpickling.
        return (type(self), (self.platform, self.message), self.__dict__.copy())


class TransientError(PlatformError):
    """The call failed in a way a later attempt may not (timeout, connection, 5xx).

    ``retry_after`` is the platform's ``Retry-After`` hint in seconds (a 503 often
    carries one), or None when it gave none: the caller's own backoff applies then.
    """

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        code: str | int | None = None,
        usage: PlatformUsage | None = None,
    ) -> None:
        super().__init__(platform, message, status=status, code=code, usage=usage)
        self.retry_after = retry_after


class OutcomeUnknownError(TransientError):
    """The request was sent but no answer came: the post may or may not exist now."""


class RateLimitedError(PlatformError):
    """The platform throttled us; wait ``retry_after`` seconds before the next call."""

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        retry_after: float = 60.0,
        status: int | None = None,
        code: str | int | None = None,
        usage: PlatformUsage | None = None,
    ) -> None:
        super().__init__(platform, message, status=status, code=code, usage=usage)
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{super().__str__()} retry after {self.retry_after:g}s"


class AuthExpiredError(PlatformError):
    """The access token is expired or revoked: refresh it or ask the user to re-auth."""


class PermanentError(PlatformError):
    """The platform refused this request as such (invalid parameters, rejected media)."""


# --- platform answers -> taxonomy ---------------------------------------------------

#: Graph error codes: 190 invalid/expired token, 102 invalid session.
GRAPH_AUTH_CODES = frozenset({102, 190})
#: App (4), user (17), page (32) and API-specific (613) throttling; 80000-80099 are the
#: business-use-case limits (pages, Instagram, ...).
GRAPH_RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
GRAPH_TRANSIENT_CODES = frozenset({1, 2})
GOOGLE_AUTH_REASONS = frozenset(
    {"authError", "invalidCredentials", "invalid_grant", "invalid_token", "UNAUTHENTICATED"}
)
GOOGLE_RATE_REASONS = frozenset(
    {
        "quotaExceeded",
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "dailyLimitExceeded",
        "uploadLimitExceeded",
        "RESOURCE_EXHAUSTED",
    }
)
GOOGLE_TRANSIENT_REASONS = frozenset({"backendError", "internalError"})
#: When a throttled response says nothing about when to come back.
DEFAULT_RETRY_AFTER_S = 60.0
#: YouTube's daily quota resets at midnight Pacific time; this when the zone is unknown.
FALLBACK_QUOTA_RESET_S = 3600.0
_MAX_MESSAGE = 500

_Classified = tuple[type[PlatformError], str | int | None, str]


def error_from_answer(
    platform: str,
    status: int,
    body: object,
    headers: Mapping[str, str],
    *,
    dialect: Dialect,
    secret: str | None = None,
) -> PlatformError:
    """Map a non-2xx answer (status, decoded JSON body or None, headers) onto the taxonomy.

    ``headers`` is read with lower-case names (httpx's are case-insensitive);
    ``secret`` — the caller's token — is cut out of the message.
    """
    classify = _classify_graph if dialect == "graph" else _classify_google
    kind, code, message = classify(status, body)
    if secret:
        message = message.replace(secret, "[redacted]")
    message = message[:_MAX_MESSAGE]
    usage = PlatformUsage.from_headers(headers)
    if kind is RateLimitedError:
        retry_after = _retry_after(headers, usage, code)
        return RateLimitedError(
            platform, message, retry_after=retry_after, status=status, code=code, usage=usage
        )
    if kind is TransientError:
        stated = _parse_retry_after(headers.get("retry-after"))
        return TransientError(
            platform, message, retry_after=stated, status=status, code=code, usage=usage
        )
    return kind(platform, message, status=status, code=code, usage=usage)


def _by_status(status: int) -> type[PlatformError]:
    if status == 429:
        return RateLimitedError
    if status == 401:
        return AuthExpiredError
    if status == 408 or status >= 500:
        return TransientError
    return PermanentError


def _classify_graph(status: int, body: object) -> _Classified:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return _by_status(status), None, f"HTTP {status}"
    code = error.get("code")
    message = str(error.get("message") or f"HTTP {status}")
    if not isinstance(code, int):
        return _by_status(status), None, message
    kind: type[PlatformError]
    if code in GRAPH_AUTH_CODES:
        kind = AuthExpiredError
    elif code in GRAPH_RATE_LIMIT_CODES or 80000 <= code < 80100:
        kind = RateLimitedError
    elif code in GRAPH_TRANSIENT_CODES or error.get("is_transient") is True:
        kind = TransientError
    else:
        kind = _by_status(status)
    return kind, code, message


def _classify_google(status: int, body: object) -> _Classified:
    error = body.get("error") if isinstance(body, dict) else None
    kind: type[PlatformError]
    if isinstance(error, str) and isinstance(body, dict):
        # The OAuth token endpoint: {"error": "invalid_grant", "error_description": ...}
        message = str(body.get("error_description") or error)
        kind = AuthExpiredError if error in GOOGLE_AUTH_REASONS else _by_status(status)
        return kind, error, message
    if not isinstance(error, dict):
        return _by_status(status), None, f"HTTP {status}"
    items = error.get("errors")
    reasons = [str(e["reason"]) for e in items or () if isinstance(e, dict) and "reason" in e]
    fallback = reasons[0] if reasons else error.get("status")
    reason = next((r for r in reasons if r in GOOGLE_RATE_REASONS), fallback)
    message = str(error.get("message") or f"HTTP {status}")
    if status == 401 or reason in GOOGLE_AUTH_REASONS:
        kind = AuthExpiredError
    elif reason in GOOGLE_RATE_REASONS:
        kind = RateLimitedError
    elif reason in GOOGLE_TRANSIENT_REASONS:
        kind = TransientError
    else:
        kind = _by_status(status)
    return kind, str(reason) if reason is not None else None, message


def _retry_after(headers: Mapping[str, str], usage: PlatformUsage | None, code: object) -> float:
    stated = _parse_retry_after(headers.get("retry-after"))
    if stated is not None:
        return stated
    if usage is not None and usage.regain_access_s:
        return usage.regain_access_s
    if code in ("quotaExceeded", "dailyLimitExceeded"):
        return _seconds_until_pacific_midnight()
    if code == "uploadLimitExceeded":
        return 24 * 3600.0
    return DEFAULT_RETRY_AFTER_S


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):  # unparseable, or a date without a zone
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _seconds_until_pacific_midnight(now: datetime | None = None) -> float:
    try:
        zone = ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        return FALLBACK_QUOTA_RESET_S
    local = (now or datetime.now(UTC)).astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=zone)
    return (midnight - local).total_seconds()
