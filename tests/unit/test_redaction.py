"""Redaction: secrets are withheld from nested values and free text; ids and prose stay."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import structlog
from hypothesis import assume, given
from hypothesis import strategies as st

from worker.observability.logging import configure_logging
from worker.observability.redaction import MASK, redact, redact_text
from worker.observability.sentry import scrub
from worker.settings import load_settings

#: Secrets as they would appear: none of these may survive.
SECRET = "s3cr3t-VALUE-8d7f"
FERNET = "gAAAAABmQ1x2y3z4_abcdefghijklmnopqrstuvwxyz0123456789-_=="

#: Secret-bearing text -> what must remain of it.
TEXTS = {
    f"redis://:{SECRET}@10.0.0.1:6379/0": "redis://:***@10.0.0.1:6379/0",
    f"postgresql://herald:{SECRET}@db/herald": "postgresql://herald:***@db/herald",
    f"GET https://graph.x/me?fields=id&access_token={SECRET}&v=2": (
        "GET https://graph.x/me?fields=id&access_token=***&v=2"
    ),
    f"Authorization: Bearer {SECRET}": "Authorization: ***",
    f"sent header bearer {SECRET} upstream": "sent header bearer *** upstream",
    f"stored {FERNET} in the row": "stored *** in the row",
    f"{{'access_token': '{SECRET}', 'post_id': 'p-1'}}": (
        "{'access_token': '***', 'post_id': 'p-1'}"
    ),
    f'{{"refresh_token": "{SECRET} with space"}}': '{"refresh_token": "***"}',
    f"Account(platform='instagram', access_token='{SECRET}')": (
        "Account(platform='instagram', access_token='***')"
    ),
    f"password={SECRET}": "password=***",
    f"SENTRY_DSN: https://{SECRET}@o1.ingest.sentry.io/1": "SENTRY_DSN: ***",
}

#: Text that names secrets without holding one: unchanged.
PROSE = [
    "token expires soon",
    "refreshed tokens_refreshed=3 accounts",
    "access_token=None",
    "Basic checks passed",
    "post 7c9e6679-7425-40de-944b-e07fc1f90ae7 published on instagram",
    "https://graph.facebook.com/v19.0/me/feed",
]


@pytest.mark.parametrize(("text", "expected"), TEXTS.items())
def test_secrets_in_free_text_are_withheld(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("text", PROSE)
def test_prose_and_ids_are_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_secret_keys_are_withheld_at_any_depth() -> None:
    value = {
        "task": "posts.publish",
        "kwargs": {"access_token": SECRET, "post_id": "p-1"},
        "frames": [{"vars": {"Authorization": SECRET, "self": "<Task>"}}],
        "headers": ({"X-Api-Key": SECRET}, {"client_secret": SECRET.encode()}),
        "settings": {"sentry_dsn": SECRET, "TOKEN_ENCRYPTION_KEYS": SECRET},
        "token_expires_at": 1_700_000_000,
        "tokens_refreshed": 3,
    }
    redacted = redact(value)
    assert SECRET not in repr(redacted)
    assert redacted["kwargs"] == {"access_token": MASK, "post_id": "p-1"}
    assert redacted["token_expires_at"] == 1_700_000_000  # a number is no secret
    assert redacted["tokens_refreshed"] == 3
    assert value["kwargs"]["access_token"] == SECRET  # the caller's value is not changed


_SECRET_KEYS = st.sampled_from(
    ["access_token", "refresh_token", "password", "client_secret", "api_key", "Authorization"]
)
_secrets = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="'\"\\"),
    min_size=8,
    max_size=40,
)
_nested = st.recursive(
    st.one_of(st.integers(), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.sampled_from(["a", "b", "data", "extra"]), children, max_size=3),
    ),
    max_leaves=10,
)


@given(key=_SECRET_KEYS, secret=_secrets, around=_nested, depth=st.integers(0, 4))
def test_a_secret_under_a_secret_key_never_survives(
    key: str, secret: str, around: Any, depth: int
) -> None:
    assume(secret not in repr(around))
    value: Any = {key: secret}
    for level in range(depth):
        value = [around, value] if level % 2 else {"nested": value, "other": around}
    redacted = redact(value)
    assert secret not in repr(redacted)
    assert secret not in json.dumps(redact({"message": repr(value)}))  # its repr, as text


@given(user=st.from_regex(r"[a-z]{0,8}", fullmatch=True), secret=_secrets)
def test_a_password_in_any_url_never_survives(user: str, secret: str) -> None:
    secret = secret.replace("@", "a").replace("/", "b")
    text = f"connecting to amqp://{user}:{secret}@broker:5672// now"
    assert secret not in redact_text(text)


def test_sentry_events_are_scrubbed_everywhere() -> None:
    event = {
        "extra": {"celery-job": {"task_name": "posts.publish", "kwargs": {"token": SECRET}}},
        "contexts": {"trace": {"data": {"url": f"https://h/?access_token={SECRET}"}}},
        "request": {"headers": {"Authorization": f"Bearer {SECRET}"}},
        "exception": {
            "values": [
                {
                    "value": f"connect failed for redis://:{SECRET}@h",
                    "stacktrace": {"frames": [{"vars": {"kwargs": f"{{'password': '{SECRET}'}}"}}]},
                }
            ]
        },
        "breadcrumbs": {"values": [{"message": f"refresh_token={SECRET}"}]},
    }
    scrubbed = scrub(event, {})
    assert SECRET not in json.dumps(scrubbed)
    assert scrubbed["extra"]["celery-job"]["task_name"] == "posts.publish"


def test_log_lines_from_structlog_and_stdlib_are_redacted(monkeypatch: Any) -> None:
    monkeypatch.setenv("HERALD_LOG_FORMAT", "json")
    stream = io.StringIO()
    configure_logging(load_settings(), stream=stream)
    structlog.get_logger("test").info("calling", access_token=SECRET, url=f"x://u:{SECRET}@h")
    logging.getLogger("celery.app.trace").error(
        "Task %s raised: %r", "posts.publish", {"access_token": SECRET}
    )
    try:
        raise RuntimeError(f"bad Bearer {SECRET}")
    except RuntimeError:
        logging.getLogger("celery").exception("failed")
    out = stream.getvalue()
    assert SECRET not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["access_token"] == MASK
    assert "'access_token': '***'" in lines[1]["event"]
    assert "RuntimeError: bad Bearer ***" in lines[2]["exception"]
