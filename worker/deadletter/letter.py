"""Dead letters: jobs Herald gave up on, kept with everything needed to replay them.

What lands here (each with a reason a person understands; see `worker.deadletter.receivers`):
retries exhausted and permanent errors (the publish path calls `record_dead_letter`),
input that fails validation, messages for unknown task names, messages that cannot
be decoded, and poison jobs whose worker dies on every delivery.

Recording never needs the database: `record_dead_letter` sends a `deadletter.record`
message to the `dead_letter` queue and the background worker's task writes the row
(`worker.deadletter.store`), retrying while PostgreSQL is down. Only if even that send
fails is the letter lost, and then an error names its ids (never its arguments).

`revive_post` is the post-row half of replaying a `posts.publish` dead letter.
"""

from __future__ import annotations

import base64
import json
import traceback as tb
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Final, Literal, get_args

import structlog
from sqlalchemy.orm import Session

from worker.constants import HEADER_REQUEST_ID, TASK_RECORD_DEAD_LETTER
from worker.db import posts
from worker.db.session import unit_of_work
from worker.errors import RefusedError
from worker.observability import correlation
from worker.settings import get_settings
from worker.taskapp import sending

log = structlog.get_logger(__name__)

#: Seconds a task id's delivery count lives after its latest redelivery.
DELIVERY_COUNT_TTL: Final = 24 * 3600
#: Header a replayed message carries: the id of the dead letter it came from.
HEADER_REPLAY_OF: Final = "x-herald-replay-of"
#: Bytes of an undecodable body kept (base64) in the row; the rest is cut.
MAX_RAW_BODY_BYTES: Final = 256 * 1024
#: Characters of a traceback kept in the row.
MAX_TRACEBACK_CHARS: Final = 20_000

#: Kinds of dead letter. `dead_end`: the task itself gave up (retries exhausted,
#: permanent error); the rest are recorded by the worker's receivers.
Kind = Literal["dead_end", "failed", "invalid_input", "unknown_task", "undecodable", "poison"]
KINDS: Final = get_args(Kind)


class DeadLetterError(RefusedError):
    """A dead-letter request that cannot be carried out (message for the operator)."""


class InvalidLetterError(DeadLetterError):
    """A `deadletter.record` message whose payload is not a dead letter."""


@dataclass(frozen=True)
class Failure:
    """An exception as it is stored: type name, message, formatted traceback."""

    type: str
    message: str
    traceback: str | None = None

    @classmethod
    def of(cls, exc: BaseException, traceback: str | None = None) -> Failure:
        if traceback is None and exc.__traceback__ is not None:
            traceback = "".join(tb.format_exception(exc))
        return cls(type(exc).__name__, str(exc), traceback)


@dataclass(frozen=True)
class Letter:
    """One dead letter as it travels in a `deadletter.record` message (JSON-safe)."""

    reason: str
    kind: str = "dead_end"
    task_name: str | None = None
    task_id: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    exception_type: str | None = None
    exception_message: str | None = None
    traceback: str | None = None
    attempts: int = 1
    #: The body as received (base64) when it could not be decoded; such a letter
    #: cannot be replayed.
    raw_body: str | None = None
    failed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Letter:
        """Validate a payload (another process, maybe another language, sent it)."""
        if not isinstance(data, Mapping):
            raise InvalidLetterError(f"a dead letter is a JSON object, got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidLetterError(f"unknown dead-letter fields: {sorted(unknown)}")
        try:
            letter = cls(**data)
            datetime.fromisoformat(letter.failed_at)
        except (TypeError, ValueError) as exc:
            raise InvalidLetterError(f"not a dead letter: {exc}") from None
        _check_types(letter)
        return letter


def _check_types(letter: Letter) -> None:
    problems = [
        name
        for name, ok in (
            ("reason", isinstance(letter.reason, str) and bool(letter.reason)),
            ("kind", letter.kind in KINDS),
            ("args", isinstance(letter.args, list)),
            ("kwargs", isinstance(letter.kwargs, dict)),
            ("headers", isinstance(letter.headers, dict)),
            ("attempts", isinstance(letter.attempts, int) and letter.attempts >= 0),
        )
        if not ok
    ]
    if problems:
        raise InvalidLetterError(f"dead letter has invalid {', '.join(problems)}")


def jsonable(value: Any) -> Any:
    """`value` as a JSON round trip gives it back (times as ISO-8601, the rest as str)."""
    return json.loads(json.dumps(value, default=_plain_json))


def _plain_json(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime | date | time) else str(value)


def encode_body(body: bytes | str | None) -> str | None:
    """Base64 of (the first MAX_RAW_BODY_BYTES of) a raw message body."""
    if body is None:
        return None
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
    return base64.b64encode(raw[:MAX_RAW_BODY_BYTES]).decode("ascii")


def record_dead_letter(
    *,
    task_name: str | None,
    task_id: str | None,
    reason: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
    queue: str | None = None,
    exception: BaseException | Failure | None = None,
    attempts: int = 1,
    kind: Kind = "dead_end",
    raw_body: bytes | str | None = None,
    failed_at: datetime | None = None,
) -> bool:
    """Send a dead letter to the `dead_letter` queue; True once the broker has it.

    Safe to call with the database down, from a task or from the worker's main
    process. Never raises: a failed send is logged (ids only) and returns False.
    Values JSON cannot carry as they are (a UUID, a datetime) are stored as strings.
    """
    failure = Failure.of(exception) if isinstance(exception, BaseException) else exception
    letter = Letter(
        reason=reason,
        kind=kind,
        task_name=task_name,
        task_id=task_id,
        args=jsonable(list(args)),
        kwargs=jsonable(dict(kwargs or {})),
        headers=jsonable(_with_request_id(headers)),
        queue=queue,
        exception_type=failure.type if failure else None,
        exception_message=failure.message if failure else None,
        traceback=_tail(failure.traceback) if failure else None,
        attempts=attempts,
        raw_body=encode_body(raw_body),
        failed_at=(failed_at or datetime.now(UTC)).isoformat(),
    )
    return send_letter(letter)


def _tail(traceback: str | None) -> str | None:
    return traceback[-MAX_TRACEBACK_CHARS:] if traceback else None


def send_letter(letter: Letter) -> bool:
    """Publish `letter` for the recorder task (see `record_dead_letter`)."""
    ids = {"task_id": letter.task_id, "task_name": letter.task_name, "kind": letter.kind}
    try:
        sending.current().send_task(
            TASK_RECORD_DEAD_LETTER,
            kwargs={"letter": letter.to_json()},
            # What Celery logs and sends in events instead of the letter: no arguments,
            # no bodies (they are stored in the table, never in a log line).
            argsrepr="()",
            kwargsrepr=f"{{'letter': <{letter.kind} dead letter of task {letter.task_id}>}}",
        )
    except Exception as exc:  # the broker is down or the letter does not serialize
        log.error("deadletter.send_failed", error=type(exc).__name__, queue=letter.queue, **ids)
        return False
    log.warning("deadletter.sent", queue=letter.queue, **ids)
    return True


@dataclass(frozen=True)
class RevivedPost:
    post_id: uuid.UUID
    previous_status: str
    attempts: int


def revive_post(post_id: object, *, session: Session | None = None) -> RevivedPost:
    """Make a `dead` post publishable again, for a replay of its `posts.publish` letter.

    Under a row lock: `dead` -> `queued`, attempts and last_error kept, with the
    dispatcher's queued lease. `queued` (not `scheduled`) says "a message for it is
    in flight", which the replay is about to send: the dispatcher does not send a
    second one, and if the replayed message is lost its lease runs out and recovery
    sends another. Any other status is refused (`DeadLetterError`): replaying a post
    that is alive, published or cancelled would at best do nothing.
    """
    try:
        parsed = post_id if isinstance(post_id, uuid.UUID) else uuid.UUID(str(post_id))
    except ValueError:
        raise DeadLetterError(
            f"post_id {post_id!r} is not a UUID: replaying would fail the same way"
        ) from None
    if session is None:
        with unit_of_work() as own:
            return _revive(own, parsed)
    return _revive(session, parsed)


def _revive(session: Session, post_id: uuid.UUID) -> RevivedPost:
    status = posts.lock_status(session, post_id)
    if status is None:
        raise DeadLetterError(f"post {post_id} does not exist")
    if status != "dead":
        raise DeadLetterError(f"post {post_id} is {status}, not dead: nothing to replay")
    attempts = posts.set_revived(session, post_id, get_settings().queued_lease)
    log.info("deadletter.post_revived", post_id=str(post_id), attempts=attempts)
    return RevivedPost(post_id, status, attempts)


def bury_post(session: Session, post_id: object, reason: str) -> bool:
    """Mark an in-flight post `dead` with `reason` (a poison publish: its worker died on
    every delivery). Without this its lease would run out and recovery would send it
    again, forever. False if the post is not queued or publishing (or not a post)."""
    try:
        parsed = uuid.UUID(str(post_id))
    except ValueError:
        return False
    return posts.bury_in_flight(session, parsed, reason)


def _with_request_id(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The message's headers, plus the current job's request id so a replay keeps it."""
    merged = dict(headers or {})
    request_id = correlation.current_request_id()
    if request_id and HEADER_REQUEST_ID not in merged:
        merged[HEADER_REQUEST_ID] = request_id
    return merged
