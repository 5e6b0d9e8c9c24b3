"""Settings: every bad value names its variable; production refuses insecure defaults."""

from __future__ import annotations

import pytest

from worker.settings import SettingsError, env_name, load_settings

#: A fixed key: it appears in test ids, which every xdist worker must collect alike.
KEY = "4iUNrQkB1XgjFr_-5UOCHmvqScEHA6r9IbVUbtw1r98="
SECURE_PRODUCTION = {
    "HERALD_ENV": "production",
    "DATABASE_URL": "postgresql://herald@db:5432/herald",
    "REDIS_URL": "redis://redis:6379/0",
    "TOKEN_ENCRYPTION_KEYS": KEY,
    "FLOWER_BASIC_AUTH": "admin:s3cret",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> pytest.MonkeyPatch:
    import os

    from worker.settings import Settings

    contract = {f.validation_alias for f in Settings.model_fields.values()}
    for name in list(os.environ):
        if name.startswith("HERALD_") or name in contract:
            monkeypatch.delenv(name)
    monkeypatch.chdir(str(tmp_path))  # no stray .env
    return monkeypatch


def problems(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return caught.value.problems


def test_a_secure_production_configuration_loads(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in SECURE_PRODUCTION.items():
        clean_env.setenv(name, value)
    settings = load_settings()
    assert settings.env == "production"
    assert settings.effective_broker_url == "redis://redis:6379/0"
    assert settings.json_logs


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "nonsense", "DATABASE_URL: is not a URL"),
        ("DATABASE_URL", "mysql://x@y/z", "DATABASE_URL: scheme 'mysql' is not PostgreSQL"),
        ("REDIS_URL", "http://redis", "REDIS_URL: has scheme 'http'"),
        ("BROKER_URL", "sqs://queue", "BROKER_URL: has scheme 'sqs'"),
        ("HERALD_ENV", "prod", "HERALD_ENV: Input should be 'development', 'staging'"),
        ("HERALD_DB_POOL_SIZE", "many", "HERALD_DB_POOL_SIZE: Input should be a valid integer"),
        ("HERALD_VISIBILITY_TIMEOUT", "5", "HERALD_VISIBILITY_TIMEOUT: Input should be greater"),
        ("INSTAGRAM_API_URL", "ftp://x", "INSTAGRAM_API_URL: has scheme 'ftp'"),
        ("FLOWER_BASIC_AUTH", "nopassword", "FLOWER_BASIC_AUTH: must be user:password"),
        ("TOKEN_ENCRYPTION_KEYS", f"{KEY},short", "TOKEN_ENCRYPTION_KEYS: key #2 is not a Fernet"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_problem(
    clean_env: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    found = problems(clean_env, **{variable: value})
    assert any(line.startswith(expected) for line in found), found


def test_secrets_and_urls_are_never_echoed(clean_env: pytest.MonkeyPatch) -> None:
    found = problems(
        clean_env,
        TOKEN_ENCRYPTION_KEYS="my-secret-not-a-key",
        DATABASE_URL="mysql://user:hunter2@db/x",
    )
    text = "\n".join(found)
    assert "my-secret-not-a-key" not in text
    assert "hunter2" not in text


def test_production_refuses_each_insecure_default_with_its_own_line(
    clean_env: pytest.MonkeyPatch,
) -> None:
    found = problems(clean_env, HERALD_ENV="production", HERALD_ACCEPT_CONTENT="json,pickle")
    assert [line.split(":")[0] for line in found] == [
        "DATABASE_URL",
        "REDIS_URL",
        "TOKEN_ENCRYPTION_KEYS",
        "FLOWER_BASIC_AUTH",
        "HERALD_ACCEPT_CONTENT",
    ]


def test_development_allows_the_embedded_default(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.database_url is None
    assert settings.redis_url is None
    assert not settings.json_logs


def test_secrets_directory_is_read(clean_env: pytest.MonkeyPatch, tmp_path: object) -> None:
    from pathlib import Path

    secrets = Path(str(tmp_path)) / "secrets"
    secrets.mkdir()
    (secrets / "TOKEN_ENCRYPTION_KEYS").write_text(KEY)
    clean_env.setattr("worker.settings.SECRETS_DIR", secrets)
    settings = load_settings()
    assert settings.token_encryption_keys is not None
    assert settings.token_encryption_keys.get_secret_value() == KEY


def test_env_names_follow_the_contract() -> None:
    assert env_name("database_url") == "DATABASE_URL"
    assert env_name("DATABASE_URL") == "DATABASE_URL"
    assert env_name("env") == "HERALD_ENV"
    assert env_name("db_pool_size") == "HERALD_DB_POOL_SIZE"
