"""Dead letters, pure parts: the letter format, reasons, message parsing, replay rules."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import pytest
from celery.exceptions import TimeLimitExceeded
from celery.worker.consumer import consumer as celery_consumer
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.message import Message

from worker.cli.dlq import parse_since
from worker.deadletter import letter as deadletter
from worker.deadletter.letter import (
    HEADER_REPLAY_OF,
    MAX_RAW_BODY_BYTES,
    Failure,
    InvalidLetterError,
    Letter,
    encode_body,
    record_dead_letter,
)
from worker.deadletter.reasons import (
    NOT_A_TASK,
    classify_failure,
    decoded_call,
    headers_of,
    rejected_reason,
    signature_problem,
)
from worker.deadletter.receivers import WITHHELD, WithholdMessageBodies
from worker.deadletter.replay import replay_headers, replay_queue, why_not_replayable
from worker.deadletter.store import LetterRow
from worker.publishing.publish import InvalidPublishInputError

POST = uuid.UUID("6f1c1f8e-9f43-4a8e-8a57-2d1c7a0b5e11")


def publish(post_id: str, expected_at: str | None = None) -> None:
    """Stands in for posts.publish's signature."""


def classify(exc: BaseException, **kw: Any) -> tuple[str, str] | None:
    options: dict[str, Any] = {"retries": 0, "bad_signature": None, "recovered_elsewhere": ()}
    return classify_failure("tokens.refresh", exc, **{**options, **kw})


# --- the letter ---------------------------------------------------------------------


def test_a_letter_survives_its_json_trip() -> None:
    letter = Letter(reason="r", kind="poison", task_id="t", args=[1], kwargs={"a": 2}, attempts=6)
    assert Letter.from_json(json.loads(json.dumps(letter.to_json()))) == letter


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        ([], "JSON object"),
        ({"reason": "r", "surprise": 1}, "unknown dead-letter fields"),
        ({}, "not a dead letter"),
        ({"reason": ""}, "invalid reason"),
        ({"reason": "r", "kind": "weird"}, "invalid kind"),
        ({"reason": "r", "args": {}}, "invalid args"),
        ({"reason": "r", "failed_at": "yesterday"}, "not a dead letter"),
    ],
)
def test_a_payload_that_is_not_a_letter_is_refused_saying_why(payload: Any, complaint: str) -> None:
    with pytest.raises(InvalidLetterError, match=complaint):
        Letter.from_json(payload)


def test_record_dead_letter_sends_everything_a_replay_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Letter] = []
    monkeypatch.setattr(deadletter, "send_letter", lambda letter: sent.append(letter) or True)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        error = exc
    at = datetime(2026, 1, 2, tzinfo=UTC)

    assert record_dead_letter(
        task_name="posts.publish", task_id="t1", reason="gave up", args=(POST,),
        kwargs={"expected_at": at}, headers={"x-request-id": "r"}, queue="posts",
        exception=error, attempts=6, failed_at=at,
    )  # fmt: skip

    (letter,) = sent
    assert (letter.task_name, letter.task_id, letter.args, letter.kwargs, letter.queue) == (
        "posts.publish", "t1", [str(POST)], {"expected_at": at.isoformat()}, "posts",
    )  # fmt: skip
    assert (letter.exception_type, letter.exception_message) == ("ValueError", "boom")
    assert letter.traceback and "raise ValueError" in letter.traceback
    assert (letter.attempts, letter.failed_at, letter.kind) == (6, at.isoformat(), "dead_end")


def test_a_letter_that_cannot_be_sent_is_logged_with_its_ids_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from worker.app import app
    from worker.observability.logging import configure_logging
    from worker.settings import load_settings

    def broker_down(*_: Any, **__: Any) -> None:
        raise OSError("connection refused")

    # Herald's logging goes through the standard library, whatever ran before this test
    # (structlog caches loggers on first use, so capture_logs() cannot be relied on).
    configure_logging(load_settings())
    monkeypatch.setattr(app, "send_task", broker_down)
    with caplog.at_level(logging.ERROR, logger="worker.deadletter.letter"):
        sent = record_dead_letter(
            task_name="tokens.refresh", task_id="t9", reason="r", args=["secret-arg"]
        )

    assert sent is False
    (line,) = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    assert line["event"] == "deadletter.send_failed" and line["level"] == "error"
    assert (line["task_id"], line["task_name"], line["error"]) == (
        "t9",
        "tokens.refresh",
        "OSError",
    )
    assert "secret-arg" not in repr(line)


def test_a_raw_body_is_kept_as_base64_and_cut_at_the_limit() -> None:
    assert base64.b64decode(encode_body(b"\x80abc") or "") == b"\x80abc"
    big = encode_body(b"x" * (MAX_RAW_BODY_BYTES + 10)) or ""
    assert len(base64.b64decode(big)) == MAX_RAW_BODY_BYTES
    assert encode_body(None) is None


def test_a_failure_without_a_traceback_stores_none() -> None:
    assert Failure.of(KeyError("k")) == Failure("KeyError", "'k'", None)


# --- what a failure is --------------------------------------------------------------


def test_bad_input_is_dead_lettered_even_for_tasks_that_recover_by_themselves() -> None:
    exc = InvalidPublishInputError("post_id 'x' is not a UUID")
    assert classify(exc, recovered_elsewhere={"tokens.refresh"}) == (
        "invalid_input",
        "invalid input: post_id 'x' is not a UUID",
    )


def test_arguments_that_do_not_fit_the_task_are_bad_input() -> None:
    problem = signature_problem("posts.publish", publish, ["a", "b", "c"], {})
    assert problem == (
        "posts.publish(post_id, expected_at=None) cannot take these arguments: "
        "too many positional arguments"
    )
    assert signature_problem("posts.publish", publish, ["a"], {"expected_at": None}) is None
    verdict = classify(TypeError("too many"), bad_signature=problem)
    assert verdict == ("invalid_input", f"invalid input: {problem}")


def test_other_failures_say_how_the_task_ended() -> None:
    assert classify(RuntimeError()) == (
        "failed",
        "failed with RuntimeError (the task does not retry it)",
    )
    assert classify(RuntimeError(), retries=3) == (
        "failed",
        "gave up after 4 attempts; last error RuntimeError",
    )
    assert classify(TimeLimitExceeded(30)) == ("failed", "killed at its hard time limit")
    assert classify(RuntimeError(), recovered_elsewhere={"tokens.refresh"}) is None


def test_refused_messages_are_told_apart() -> None:
    accepted = ["json"]
    refused = rejected_reason(
        ContentDisallowed("no pickle"), "application/x-python-serialize", accepted
    )
    assert (
        refused == "refused content type 'application/x-python-serialize': workers accept only json"
    )
    undecodable = rejected_reason(DecodeError("bad"), "application/json", accepted)
    assert undecodable == "cannot decode the message body as 'application/json' (DecodeError)"
    assert rejected_reason(None, "application/json", accepted) == NOT_A_TASK


# --- reading a message --------------------------------------------------------------


def message(body: Any, content_type: str = "application/json", **headers: Any) -> Message:
    raw = json.dumps(body).encode() if content_type == "application/json" else body
    return Message(
        body=raw, content_type=content_type, content_encoding="utf-8", headers=headers,
        delivery_info={"routing_key": "posts"}, accept=["application/json"],
    )  # fmt: skip


def test_the_call_is_read_from_both_protocols_and_never_from_garbage() -> None:
    assert decoded_call(message([["p"], {"k": 1}, {}], task="posts.x")) == (["p"], {"k": 1})
    assert decoded_call(message({"task": "posts.x", "args": [1], "kwargs": {}})) == ([1], {})
    assert decoded_call(message({"hello": 1})) is None
    assert decoded_call(message(b"\x80", "application/x-python-serialize")) is None


def test_headers_keep_the_senders_own_and_drop_argument_reprs_and_worker_state() -> None:
    found = headers_of(
        {"id": "t", "x-request-id": "r", "argsrepr": "('secret',)", "delivery_info": {},
         "hostname": "w", "_protected": 1, "eta": None}
    )  # fmt: skip
    assert found == {"id": "t", "x-request-id": "r", "eta": None}


def test_celerys_lines_about_discarded_messages_lose_body_and_headers() -> None:
    record = logging.LogRecord(
        "celery.worker.consumer.consumer", logging.ERROR, __file__, 1,
        celery_consumer.UNKNOWN_TASK_ERROR,  # type: ignore[attr-defined]
        (KeyError("posts.x"), "['secret']", {"argsrepr": "secret"}, {"routing_key": "posts"}),
        None,
    )  # fmt: skip
    WithholdMessageBodies().filter(record)
    assert "secret" not in record.getMessage() and WITHHELD in record.getMessage()


# --- replay rules -------------------------------------------------------------------


def test_a_replay_sends_the_senders_headers_not_celerys() -> None:
    sent = replay_headers({"id": "old", "retries": 3, "eta": "x", "x-request-id": "r"}, 7)
    assert sent == {"x-request-id": "r", HEADER_REPLAY_OF: "7"}


def test_a_replay_goes_to_the_original_queue_when_it_is_ours() -> None:
    assert replay_queue("posts", "posts.publish") == "posts"
    assert replay_queue("elsewhere", "tokens.refresh") == "tokens"
    assert replay_queue(None, "posts.nonexistent") == "posts"


def row(**values: Any) -> LetterRow:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    base: dict[str, Any] = {
        "id": 3, "task_id": "t", "task_name": "posts.publish", "args": [], "kwargs": {},
        "headers": {}, "queue": "posts", "raw_body": None, "reason": "r",
        "exception_type": None, "exception_message": None, "traceback": None, "attempts": 1,
        "first_failed_at": at, "last_failed_at": at, "status": "open",
        "replayed_task_id": None, "replayed_at": None,
    }  # fmt: skip
    return LetterRow(**{**base, **values})


def test_only_open_decoded_letters_can_be_replayed() -> None:
    assert why_not_replayable(row()) is None
    assert "already replayed as task n" in str(
        why_not_replayable(row(status="replayed", replayed_task_id="n"))
    )
    assert "could not be decoded" in str(why_not_replayable(row(raw_body="gA==")))
    assert "could not be decoded" in str(why_not_replayable(row(task_name=None)))


# --- the CLI's --since --------------------------------------------------------------


def test_since_takes_an_age_or_an_iso_time() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert parse_since("-1h", now) == now - timedelta(hours=1)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2026-04-30T10:00:00") == datetime(2026, 4, 30, 10, tzinfo=UTC)
    with pytest.raises(click.BadParameter, match="neither an ISO-8601 time"):
        parse_since("last tuesday")
