"""The platform clients against the sandbox platform, over real HTTP to a subprocess."""

from __future__ import annotations

import socket
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest

from tests.fixtures.sandbox import SandboxServer
from worker.constants import PLATFORMS
from worker.platforms import base
from worker.platforms.base import Account, PlatformClient, PostRequest
from worker.platforms.errors import (
    AuthExpiredError,
    OutcomeUnknownError,
    PermanentError,
    PlatformError,
    RateLimitedError,
    TransientError,
)
from worker.platforms.registry import get_client

TOKEN = "tok-SECRET-5f0c9e-never-print-me"
ACCOUNTS = {
    "instagram": "17841400000000001",
    "facebook": "104000000000001",
    "youtube": "UCsandbox0000000000000001",
}


def client_for(sandbox: SandboxServer, platform: str, read_timeout: float = 5.0) -> PlatformClient:
    return get_client(platform, sandbox.platform_url(platform), 2.0, read_timeout)


def account(platform: str) -> Account:
    return Account(platform, ACCOUNTS[platform], TOKEN)


def a_post(content: str = "Launch day\nEverything ships today.") -> PostRequest:
    return PostRequest(str(uuid.uuid4()), content, ["https://cdn.example.test/launch.jpg"])


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_publish_lands_once_in_the_ledger(sandbox: SandboxServer, platform: str) -> None:
    post = a_post()

    external_id = client_for(sandbox, platform).publish(account(platform), post)

    [entry] = sandbox.ledger()
    assert entry["platform"] == platform
    assert entry["account"] == ACCOUNTS[platform]
    assert entry["client_ref"] == post.client_ref
    assert entry["external_id"] == external_id
    assert datetime.fromisoformat(entry["at"]).utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_find_published_finds_a_post_by_client_ref(sandbox: SandboxServer, platform: str) -> None:
    client, who = client_for(sandbox, platform), account(platform)
    post = a_post()
    external_id = client.publish(who, post)
    client.publish(who, a_post())

    assert client.find_published(who, post.client_ref) == external_id
    assert client.find_published(who, str(uuid.uuid4())) is None


@pytest.mark.parametrize("platform", ["facebook", "youtube"])
def test_find_published_pages_back_past_the_first_page(
    sandbox: SandboxServer, platform: str
) -> None:
    client, who = client_for(sandbox, platform), account(platform)
    target = a_post()
    external_id = client.publish(who, target)
    for _ in range(120):  # more than one page on either platform
        client.publish(who, a_post())

    assert client.find_published(who, target.client_ref) == external_id


def test_instagram_publishes_in_two_calls(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []
    spy = httpx.Client(
        base_url=sandbox.platform_url("instagram"),
        event_hooks={"request": [lambda request: seen.append((request.method, request.url.path))]},
    )
    monkeypatch.setattr(base, "http_client", lambda base_url: spy)
    user = ACCOUNTS["instagram"]

    with spy:
        client_for(sandbox, "instagram").publish(account("instagram"), a_post())

    assert seen == [
        ("POST", f"/instagram/v21.0/{user}/media"),
        ("POST", f"/instagram/v21.0/{user}/media_publish"),
    ]
    assert len(sandbox.ledger()) == 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_5xx_is_transient_and_not_recorded(sandbox: SandboxServer, platform: str) -> None:
    sandbox.set_faults(platform, error_rate=1.0, status=503)

    with pytest.raises(TransientError) as caught:
        client_for(sandbox, platform).publish(account(platform), a_post())

    assert type(caught.value) is TransientError
    assert caught.value.status == 503
    assert sandbox.ledger() == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_429_storm_is_rate_limited_with_retry_after(
    sandbox: SandboxServer, platform: str
) -> None:
    sandbox.set_faults(platform, error_rate=1.0, status=429, retry_after=7)

    with pytest.raises(RateLimitedError) as caught:
        client_for(sandbox, platform).publish(account(platform), a_post())

    assert caught.value.retry_after == 7.0
    expected_code = {"instagram": 4, "facebook": 32, "youtube": "rateLimitExceeded"}[platform]
    assert caught.value.code == expected_code
    assert sandbox.ledger() == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_revoked_tokens_are_auth_expired_on_every_call(
    sandbox: SandboxServer, platform: str
) -> None:
    sandbox.set_faults(platform, revoke_tokens=True)
    client, who = client_for(sandbox, platform), account(platform)

    with pytest.raises(AuthExpiredError):
        client.publish(who, a_post())
    with pytest.raises(AuthExpiredError):
        client.find_published(who, str(uuid.uuid4()))
    assert sandbox.ledger() == []


@pytest.mark.parametrize(
    ("platform", "post", "code"),
    [
        ("instagram", PostRequest(str(uuid.uuid4()), "hi", ["not-a-url"]), 9004),
        ("instagram", PostRequest(str(uuid.uuid4()), "x" * 2201, ["https://a.test/i.jpg"]), 100),
        ("facebook", PostRequest(str(uuid.uuid4()), "", []), 100),
        ("youtube", PostRequest(str(uuid.uuid4()), "", ["https://a.test/v.mp4"]), "invalidTitle"),
    ],
)
def test_a_rejected_request_is_permanent(
    sandbox: SandboxServer, platform: str, post: PostRequest, code: object
) -> None:
    with pytest.raises(PermanentError) as caught:
        client_for(sandbox, platform).publish(account(platform), post)

    assert (caught.value.status, caught.value.code) == (400, code)
    assert sandbox.ledger() == []


@pytest.mark.parametrize("platform", ["instagram", "youtube"])
def test_a_post_without_the_media_it_needs_is_refused_before_any_call(
    sandbox: SandboxServer, platform: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        client_for(sandbox, platform).publish(account(platform), PostRequest("r", "text", []))

    assert caught.value.status is None


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_lost_answer_is_outcome_unknown_and_the_post_exists(
    sandbox: SandboxServer, platform: str
) -> None:
    sandbox.set_faults(platform, timeout_rate=1.0, timeout_s=3)
    client, who, post = client_for(sandbox, platform, read_timeout=0.3), account(platform), a_post()

    with pytest.raises(OutcomeUnknownError):
        client.publish(who, post)

    [entry] = sandbox.ledger()
    assert entry["client_ref"] == post.client_ref
    sandbox.reset_faults(platform)
    assert client.find_published(who, post.client_ref) == entry["external_id"]


def test_a_refused_connection_is_transient_not_unknown(sandbox: SandboxServer) -> None:
    with closed_port() as port:
        client = get_client("facebook", f"http://127.0.0.1:{port}/facebook", 0.5, 0.5)
        with pytest.raises(TransientError) as caught:
            client.publish(account("facebook"), a_post())

    assert type(caught.value) is TransientError


def test_latency_delays_every_call(sandbox: SandboxServer) -> None:
    sandbox.set_faults("facebook", latency_ms=150)
    started = time.monotonic()

    client_for(sandbox, "facebook").find_published(account("facebook"), "none")

    assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize("platform", ["instagram", "facebook"])
def test_graph_usage_headers_reach_the_caller(sandbox: SandboxServer, platform: str) -> None:
    sandbox.set_faults(platform, usage_percent=85)
    client = client_for(sandbox, platform)

    client.publish(account(platform), a_post())

    assert client.last_usage is not None
    assert client.last_usage.usage_percent == 85


@pytest.mark.parametrize(
    "faults",
    [
        {"revoke_tokens": True},
        {"error_rate": 1.0, "status": 503},
        {"error_rate": 1.0, "status": 429, "retry_after": 1},
        {"error_rate": 1.0, "status": 400},
        {"timeout_rate": 1.0, "timeout_s": 2},
    ],
    ids=["revoked", "503", "429", "400", "timeout"],
)
def test_a_token_never_appears_in_an_error(
    sandbox: SandboxServer, faults: dict[str, object]
) -> None:
    sandbox.set_faults("facebook", **faults)
    who = account("facebook")

    with pytest.raises(PlatformError) as caught:
        client_for(sandbox, "facebook", read_timeout=0.3).publish(who, a_post())

    rendered = [str(caught.value), repr(caught.value), repr(who), str(who)]
    rendered.append("".join(traceback.format_exception(caught.value)))
    assert not [text for text in rendered if TOKEN in text]
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'{"platform": "myspace", "error_rate": 1}', "platform must be one of"),
        (b'{"error_rate": 1}', "platform must be one of"),
        (b'{"platform": "facebook", "eror_rate": 1}', "unknown fault field(s): eror_rate"),
        (b'{"platform": "facebook", "error_rate": 1.5}', "error_rate must be <= 1"),
        (b'{"platform": "facebook", "status": "503"}', "status must be an integer"),
        (b'{"platform": "facebook", "status": 200}', "status must be >= 400"),
        (b'{"platform": "facebook", "revoke_tokens": "yes"}', "revoke_tokens must be true"),
        (b'{"platform": "facebook", "latency_ms": -1}', "latency_ms must be >= 0"),
        (b'{"platform": "facebook", "reset": "please"}', "reset must be true or false"),
    ],
)
def test_a_bad_fault_request_is_400_with_the_reason(
    sandbox: SandboxServer, body: bytes, reason: str
) -> None:
    response = sandbox.post_faults_raw(body)

    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert sandbox.faults()["facebook"]["error_rate"] == 0


def test_faults_merge_per_platform_and_reset_clears(sandbox: SandboxServer) -> None:
    sandbox.set_faults("youtube", latency_ms=5)

    current = sandbox.set_faults("youtube", error_rate=0.5)

    assert (current["latency_ms"], current["error_rate"]) == (5, 0.5)
    assert sandbox.faults()["facebook"]["error_rate"] == 0
    sandbox.reset_faults("youtube")
    assert sandbox.faults()["youtube"] == sandbox.faults()["facebook"]


@pytest.mark.parametrize("platform", ["instagram", "facebook"])
def test_graph_token_exchange_and_its_revocation(sandbox: SandboxServer, platform: str) -> None:
    url = f"{sandbox.platform_url(platform)}/v21.0/oauth/access_token"
    params = {
        "grant_type": "fb_exchange_token",
        "client_id": "app",
        "client_secret": "app-secret",
        "fb_exchange_token": "short-lived",
    }

    granted = httpx.get(url, params=params, trust_env=False)
    sandbox.set_faults(platform, revoke_tokens=True)
    refused = httpx.get(url, params=params, trust_env=False)

    assert granted.status_code == 200
    assert granted.json()["access_token"]
    assert granted.json()["token_type"] == "bearer"
    assert granted.json()["expires_in"] > 0
    error = base.error_from_response(platform, refused, dialect="graph")
    assert isinstance(error, AuthExpiredError)
    assert error.code == 190


def test_google_token_refresh_and_its_revocation(sandbox: SandboxServer) -> None:
    url = f"{sandbox.platform_url('youtube')}/token"
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "1//refresh",
        "client_id": "app",
        "client_secret": "app-secret",
    }

    granted = httpx.post(url, data=form, trust_env=False)
    incomplete = httpx.post(url, data={**form, "refresh_token": ""}, trust_env=False)
    sandbox.set_faults("youtube", revoke_tokens=True)
    refused = httpx.post(url, data=form, trust_env=False)

    assert granted.status_code == 200
    assert granted.json()["token_type"] == "Bearer"
    assert granted.json()["expires_in"] > 0
    assert isinstance(
        base.error_from_response("youtube", refused, dialect="google"), AuthExpiredError
    )
    assert refused.json()["error"] == "invalid_grant"
    assert isinstance(
        base.error_from_response("youtube", incomplete, dialect="google"), PermanentError
    )


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]
