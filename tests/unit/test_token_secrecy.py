"""Token endpoints and key rotation keep secrets out of messages and reprs."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from worker.platforms.errors import AuthExpiredError, PermanentError, error_from_answer
from worker.platforms.oauth import (
    DEV_CLIENT_ID,
    GrantedToken,
    OAuthApp,
    TokenEndpoint,
    app_credentials,
    redact,
)
from worker.security.cipher import TokenDecryptError
from worker.settings import load_settings
from worker.tokens.rotation import rewrapper

TOKEN = "EAABsecret-token-value"
SECRET = "app-secret-value"


def test_a_platform_error_echoing_the_tokens_is_redacted() -> None:
    body = {"error": {"message": f"bad token {TOKEN} for app {SECRET}", "code": 190}}
    error = error_from_answer("facebook", 400, body, {}, dialect="graph")

    redacted = redact(error, (TOKEN, SECRET))

    assert isinstance(redacted, AuthExpiredError)
    for shown in (str(redacted), repr(redacted), redacted.message, str(redacted.args)):
        assert TOKEN not in shown
        assert SECRET not in shown
    assert "[redacted]" in redacted.message


def test_reprs_hide_tokens_and_client_secrets() -> None:
    granted = GrantedToken(access_token=TOKEN, refresh_token="1//refresh", expires_in=3599)
    app = OAuthApp("client", SECRET)

    assert TOKEN not in repr(granted) and "1//refresh" not in repr(granted)
    assert SECRET not in repr(app)


def test_development_uses_sandbox_credentials_production_names_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev = load_settings(env="development")
    key = Fernet.generate_key().decode()
    prod = load_settings(
        env="production",
        database_url="postgresql://db/herald",
        redis_url="redis://redis:6379/0",
        token_encryption_keys=key,
        flower_basic_auth="admin:pw",
    )

    assert app_credentials(dev, "youtube").client_id == DEV_CLIENT_ID
    with pytest.raises(PermanentError, match="HERALD_META_APP_ID"):
        app_credentials(prod, "facebook")


def test_google_without_a_refresh_token_needs_reauth_without_a_call() -> None:
    endpoint = TokenEndpoint("youtube", "http://127.0.0.1:9/token", 0.1, 0.1)

    with pytest.raises(AuthExpiredError, match="no refresh token"):
        endpoint.renew(OAuthApp("id", SECRET), TOKEN, None)


def test_rewrap_moves_old_ciphertext_to_the_newest_key_and_leaves_current_alone() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    rewrap = rewrapper([new, old])
    under_old = Fernet(old).encrypt(b"tok").decode()
    under_new = Fernet(new).encrypt(b"tok").decode()

    moved = rewrap(under_old)

    assert moved is not None and Fernet(new).decrypt(moved.encode()) == b"tok"
    assert rewrap(under_new) is None


def test_rewrap_refuses_ciphertext_no_key_opens_without_echoing_it() -> None:
    stranger = Fernet(Fernet.generate_key()).encrypt(b"tok").decode()
    rewrap = rewrapper([Fernet.generate_key().decode()])

    with pytest.raises(TokenDecryptError) as raised:
        rewrap(stranger)
    assert stranger not in str(raised.value)
