"""The platforms' OAuth token endpoints: how a token is renewed without its user.

* Facebook and Instagram (Graph): ``GET /{version}/oauth/access_token`` with
  ``grant_type=fb_exchange_token`` trades the current long-lived token for a fresh one
  (about 60 days).
* YouTube (Google): ``POST {token_url}`` with ``grant_type=refresh_token`` gives a new
  access token (an hour) for the stored refresh token; sometimes a new refresh token.

Every failure becomes one of :mod:`worker.platforms.errors` (a revoked grant is an
:class:`AuthExpiredError`). No token, refresh token or client secret ever reaches an
error message, a repr or a chained traceback: the old grant travels in the request, so
a platform's error text that echoes it is redacted, and httpx exceptions (whose
request URL holds the Graph token) are never chained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from worker.platforms.base import error_from_response, http_client, make_timeout
from worker.platforms.errors import (
    AuthExpiredError,
    Dialect,
    PermanentError,
    PlatformError,
    TransientError,
)
from worker.platforms.facebook import GRAPH_VERSION
from worker.settings import Settings

#: Client credentials the sandbox accepts (any non-empty value): development only.
DEV_CLIENT_ID = "herald-dev"
DEV_CLIENT_SECRET = "herald-dev-secret"  # noqa: S105 - a sandbox placeholder, not a secret
#: Which app's credentials each platform's token endpoint wants.
_APP_OF = {"facebook": "meta", "instagram": "meta", "youtube": "google"}
_REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """The app's client credentials at one platform; the secret never shows in a repr."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class GrantedToken:
    """What a token endpoint granted. ``refresh_token`` is None when it sent none (keep
    the stored one); ``expires_in`` is None when it did not say."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_in: int | None = None


def app_credentials(settings: Settings, platform: str) -> OAuthApp:
    """The client credentials ``platform``'s token endpoint needs.

    Read from ``HERALD_META_APP_ID`` / ``HERALD_META_APP_SECRET`` (Facebook, Instagram)
    and ``HERALD_GOOGLE_CLIENT_ID`` / ``HERALD_GOOGLE_CLIENT_SECRET`` (YouTube). In
    development, without them, the sandbox's placeholders; elsewhere a
    :class:`PermanentError` naming the settings (retrying cannot help).
    """
    app = _APP_OF[platform]
    id_field, secret_field = (
        ("meta_app_id", "meta_app_secret")
        if app == "meta"
        else ("google_client_id", "google_client_secret")
    )
    client_id: str | None = getattr(settings, id_field)
    secret: SecretStr | None = getattr(settings, secret_field)
    if client_id and secret is not None:
        return OAuthApp(client_id, secret.get_secret_value())
    if settings.env == "development":
        return OAuthApp(DEV_CLIENT_ID, DEV_CLIENT_SECRET)
    names = f"HERALD_{id_field.upper()} and HERALD_{secret_field.upper()}"
    raise PermanentError(platform, f"OAuth client credentials are not configured ({names})")


def google_token_url(settings: Settings) -> str:
    """Google's token endpoint: ``HERALD_GOOGLE_TOKEN_URL``, else ``{YOUTUBE_API_URL}/token``
    (where the sandbox serves it)."""
    configured = settings.google_token_url
    return configured.rstrip("/") if configured else f"{settings.youtube_api_url}/token"


class TokenEndpoint:
    """Renews tokens at one platform; one instance per (platform, URL, timeouts)."""

    def __init__(
        self, platform: str, url: str, connect_timeout: float, read_timeout: float
    ) -> None:
        self.platform = platform
        self.dialect: Dialect = "google" if platform == "youtube" else "graph"
        self.url = url.rstrip("/")
        self.timeout = make_timeout(connect_timeout, read_timeout)

    @classmethod
    def for_platform(cls, platform: str, settings: Settings) -> TokenEndpoint:
        if platform == "youtube":
            url = google_token_url(settings)
        else:
            base = getattr(settings, f"{platform}_api_url")
            url = f"{base}/{GRAPH_VERSION}/oauth/access_token"
        return cls(platform, url, settings.http_connect_timeout, settings.http_read_timeout)

    def renew(self, app: OAuthApp, access_token: str, refresh_token: str | None) -> GrantedToken:
        """A fresh token for the account holding these tokens (see the module docstring)."""
        if self.dialect == "google":
            if not refresh_token:
                raise _no_refresh_token(self.platform)
            form = {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            }
            secrets = (refresh_token, access_token, app.client_secret)
            return self._send("POST", secrets, data=form)
        params = {
            "grant_type": "fb_exchange_token",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "fb_exchange_token": access_token,
        }
        return self._send("GET", (access_token, app.client_secret), params=params)

    def _send(self, method: str, secrets: tuple[str, ...], **request: Any) -> GrantedToken:
        try:
            response = http_client(self.url).request(
                method, self.url, timeout=self.timeout, **request
            )
        except httpx.RequestError as exc:
            # No chaining: the request (its URL holds the Graph token) hangs off the error.
            raise TransientError(
                self.platform, f"token request failed ({type(exc).__name__})"
            ) from None
        if not response.is_success:
            error = error_from_response(
                self.platform, response, dialect=self.dialect, secret=secrets[0]
            )
            raise redact(error, secrets)
        return self._granted(response)

    def _granted(self, response: httpx.Response) -> GrantedToken:
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(token, str) or not token:
            raise TransientError(
                self.platform,
                "token endpoint answered without an access_token",
                status=response.status_code,
            )
        refresh = body.get("refresh_token")
        expires_in = body.get("expires_in")
        return GrantedToken(
            access_token=token,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_in=_seconds(expires_in),
        )


def _no_refresh_token(platform: str) -> PlatformError:
    return AuthExpiredError(platform, "no refresh token is stored: the user must sign in again")


def _seconds(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value > 0:
        return int(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def redact(error: PlatformError, secrets: tuple[str, ...]) -> PlatformError:
    """``error`` with every one of ``secrets`` cut out of its message (in place)."""
    message = error.message
    for secret in secrets:
        if secret:
            message = message.replace(secret, _REDACTED)
    error.message = message
    error.args = (error.platform, message)
    return error
