"""The error taxonomy and the mapping of platform answers onto it, on canned answers."""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from worker import runtime
from worker.platforms import base, errors
from worker.platforms.base import Account, ApiCaller, error_from_response
from worker.platforms.errors import (
    DEFAULT_RETRY_AFTER_S,
    AuthExpiredError,
    Dialect,
    OutcomeUnknownError,
    PermanentError,
    PlatformError,
    PlatformUsage,
    RateLimitedError,
    TransientError,
)

TOKEN = "EAAB-unit-secret-token"


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    if body is None:
        return httpx.Response(status, content=b"<html>oops</html>", headers=named)
    return httpx.Response(status, json=body, headers=named)


def graph(code: int, message: str = "boom", **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": code, **extra}}


def google(status: int, reason: str, message: str = "boom") -> dict[str, Any]:
    item = {"message": message, "domain": "global", "reason": reason}
    return {"error": {"code": status, "message": message, "errors": [item]}}


def mapped(response: httpx.Response, dialect: Dialect) -> PlatformError:
    return error_from_response("test", response, dialect=dialect, secret=TOKEN)


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (answer(400, graph(190)), AuthExpiredError, 190),
        (answer(401, graph(102)), AuthExpiredError, 102),
        (answer(400, graph(4)), RateLimitedError, 4),
        (answer(400, graph(17)), RateLimitedError, 17),
        (answer(429, graph(32)), RateLimitedError, 32),
        (answer(400, graph(613)), RateLimitedError, 613),
        (answer(400, graph(80001)), RateLimitedError, 80001),
        (answer(500, graph(2)), TransientError, 2),
        (answer(400, graph(1)), TransientError, 1),
        (answer(400, graph(9999, is_transient=True)), TransientError, 9999),
        (answer(503, graph(100)), TransientError, 100),
        (answer(400, graph(100)), PermanentError, 100),
        (answer(400, graph(9004)), PermanentError, 9004),
        (answer(502), TransientError, None),
        (answer(404), PermanentError, None),
        (answer(429), RateLimitedError, None),
    ],
)
def test_graph_answers_map_by_code_then_status(
    response: httpx.Response, kind: type[PlatformError], code: object
) -> None:
    error = mapped(response, "graph")

    assert type(error) is kind
    assert (error.status, error.code) == (response.status_code, code)


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (answer(401, google(401, "authError")), AuthExpiredError, "authError"),
        (answer(403, google(403, "quotaExceeded")), RateLimitedError, "quotaExceeded"),
        (
            answer(403, google(403, "userRateLimitExceeded")),
            RateLimitedError,
            "userRateLimitExceeded",
        ),
        (answer(429, google(429, "rateLimitExceeded")), RateLimitedError, "rateLimitExceeded"),
        (answer(503, google(503, "backendError")), TransientError, "backendError"),
        (answer(400, google(400, "invalidTitle")), PermanentError, "invalidTitle"),
        (answer(403, google(403, "forbidden")), PermanentError, "forbidden"),
        (answer(400, {"error": "invalid_grant"}), AuthExpiredError, "invalid_grant"),
        (answer(400, {"error": "invalid_request"}), PermanentError, "invalid_request"),
        (answer(500), TransientError, None),
    ],
)
def test_google_answers_map_by_reason_then_status(
    response: httpx.Response, kind: type[PlatformError], code: object
) -> None:
    error = mapped(response, "google")

    assert type(error) is kind
    assert (error.status, error.code) == (response.status_code, code)


def test_retry_after_seconds_header_wins() -> None:
    error = mapped(answer(429, graph(4), retry_after="12"), "graph")

    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 12.0


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)

    error = mapped(answer(429, google(429, "rateLimitExceeded"), retry_after=when), "google")

    assert isinstance(error, RateLimitedError)
    assert 80 <= error.retry_after <= 90


def test_retry_after_from_business_use_case_usage() -> None:
    usage = {"123": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 3}]}

    error = mapped(answer(400, graph(80001), x_business_use_case_usage=json.dumps(usage)), "graph")

    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 180.0
    assert error.usage is not None
    assert error.usage.usage_percent == 100


def test_unparseable_retry_after_falls_back_to_the_default() -> None:
    error = mapped(answer(429, graph(4), retry_after="soon"), "graph")

    assert isinstance(error, RateLimitedError)
    assert error.retry_after == DEFAULT_RETRY_AFTER_S


@pytest.mark.parametrize(
    ("response", "dialect"),
    [
        (answer(503, graph(2), retry_after="7"), "graph"),
        (answer(503, google(503, "backendError"), retry_after="7"), "google"),
        (answer(502, retry_after="7"), "graph"),
    ],
)
def test_a_transient_answer_keeps_its_retry_after_hint(
    response: httpx.Response, dialect: Dialect
) -> None:
    error = mapped(response, dialect)

    assert type(error) is TransientError
    assert error.retry_after == 7.0


def test_a_transient_answer_without_a_usable_hint_has_none() -> None:
    silent = mapped(answer(503, graph(2)), "graph")
    garbled = mapped(answer(503, google(503, "backendError"), retry_after="soon"), "google")

    assert isinstance(silent, TransientError)
    assert isinstance(garbled, TransientError)
    assert (silent.retry_after, garbled.retry_after) == (None, None)


def test_youtube_daily_quota_waits_until_pacific_midnight() -> None:
    error = mapped(answer(403, google(403, "quotaExceeded")), "google")
    eleven_pm_pacific = datetime(2024, 1, 15, 7, 0, tzinfo=UTC)

    assert isinstance(error, RateLimitedError)
    assert 0 < error.retry_after <= 25 * 3600
    assert errors._seconds_until_pacific_midnight(eleven_pm_pacific) == 3600


def test_a_token_echoed_by_the_platform_is_redacted() -> None:
    error = mapped(answer(400, graph(100, f"bad token {TOKEN} given")), "graph")

    assert TOKEN not in str(error)
    assert "[redacted]" in error.message


@pytest.mark.parametrize(
    ("headers", "percent"),
    [
        ({"x-app-usage": '{"call_count":28,"total_time":25,"total_cputime":40}'}, 40),
        ({"x-app-usage": '{"call_count":5}', "x-page-usage": '{"call_count":61}'}, 61),
        ({"x-business-use-case-usage": '{"1":[{"type":"instagram","call_count":77}]}'}, 77),
        ({"x-app-usage": "not json"}, None),
        ({}, None),
    ],
)
def test_usage_headers(headers: dict[str, str], percent: int | None) -> None:
    usage = PlatformUsage.from_headers(httpx.Headers(headers))

    assert (usage.usage_percent if usage else None) == percent


def test_errors_survive_pickling_between_pool_processes() -> None:
    error = RateLimitedError("youtube", "slow down", retry_after=9.5, status=429, code="x")

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is RateLimitedError
    assert (copy.platform, copy.message, copy.retry_after, copy.status, copy.code) == (
        "youtube",
        "slow down",
        9.5,
        429,
        "x",
    )


def test_a_transient_errors_retry_after_survives_pickling() -> None:
    error = TransientError("facebook", "busy", retry_after=3.0, status=503, code=2)

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is TransientError
    assert (copy.retry_after, copy.status, copy.code) == (3.0, 503, 2)


def test_an_account_hides_its_token() -> None:
    account = Account("facebook", "1", TOKEN)

    assert TOKEN not in repr(account)
    assert TOKEN not in str(account)


def failing_caller(monkeypatch: pytest.MonkeyPatch, failure: Exception) -> ApiCaller:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise failure

    client = httpx.Client(base_url="http://platform.test", transport=httpx.MockTransport(refuse))
    monkeypatch.setattr(base, "http_client", lambda base_url: client)
    return ApiCaller("facebook", "graph", "http://platform.test", 1.0, 1.0)


@pytest.mark.parametrize(
    ("failure", "mutating", "kind"),
    [
        (httpx.ReadTimeout("timed out"), True, OutcomeUnknownError),
        (httpx.RemoteProtocolError("server hung up"), True, OutcomeUnknownError),
        (httpx.ReadTimeout("timed out"), False, TransientError),
        (httpx.ConnectError("refused"), True, TransientError),
        (httpx.ConnectTimeout("slow"), True, TransientError),
        (httpx.PoolTimeout("busy"), True, TransientError),
    ],
)
def test_transport_failures_say_whether_the_request_may_have_acted(
    monkeypatch: pytest.MonkeyPatch, failure: Exception, mutating: bool, kind: type[PlatformError]
) -> None:
    caller = failing_caller(monkeypatch, failure)

    with pytest.raises(PlatformError) as caught:
        caller.call("POST", "/x", Account("facebook", "1", TOKEN), mutating=mutating)

    assert type(caught.value) is kind
    assert caught.value.__cause__ is None


def test_one_shared_client_per_base_url_until_reset() -> None:
    first = base.http_client("http://shared.test")

    assert base.http_client("http://shared.test") is first
    assert base.http_client("http://other.test") is not first
    runtime.reset()
    assert first.is_closed
    assert base.http_client("http://shared.test") is not first
    runtime.reset()


def test_a_forked_child_forgets_the_parents_clients_without_closing_them() -> None:
    parents = base.http_client("http://shared.test")
    read_end, write_end = os.pipe()

    pid = os.fork()
    if pid == 0:  # the child reports through the pipe and leaves without pytest's teardown
        fresh = base.http_client("http://shared.test") is not parents
        os.write(write_end, b"fresh" if fresh and not parents.is_closed else b"stale")
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert os.read(read_end, 16) == b"fresh"
    os.close(read_end)
    assert not parents.is_closed
    assert base.http_client("http://shared.test") is parents  # the parent's are untouched
    runtime.reset()
