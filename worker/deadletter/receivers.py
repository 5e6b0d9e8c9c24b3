"""The worker's dead-letter receivers: nothing a worker is given is dropped unrecorded.

Imported by `worker.taskapp.signals`; one concern per receiver:

* `task_failure` (pool child): bad input at once, and failures of tasks that have no
  other way back (see `classify_failure`).
* `task_unknown` (main process): a message for a task name no worker has.
* `task_rejected` (main process): a disallowed content type or an invalid task message.
* a consumer step (main process): a body that cannot be decoded at all. Celery sends
  no signal for it, logs the whole body and acks it.
* `task_received` (main process): poison jobs. A redelivered message (the worker died
  with it, `task_reject_on_worker_lost`) is counted per task id in Redis; past
  HERALD_MAX_DELIVERIES it is recorded and revoked on this worker, so it is acked and never
  run again. First deliveries cost nothing: only redeliveries touch Redis.

Celery's own log lines for unknown, invalid and undecodable messages carry the full
body and headers (plaintext arguments); a filter withholds them.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Final

import redis
import structlog
from celery import Task, bootsteps, signals
from celery.worker import state as worker_state
from celery.worker.consumer import consumer as celery_consumer
from celery.worker.consumer.consumer import (  # type: ignore[attr-defined]
    INVALID_TASK_ERROR,
    UNKNOWN_FORMAT,
    UNKNOWN_TASK_ERROR,
)

from worker.constants import (
    KEY_DELIVERIES,
    TASK_DISPATCH_DUE,
    TASK_PUBLISH,
    TASK_RECORD_DEAD_LETTER,
)
from worker.coordination.redis_client import get_redis
from worker.deadletter.letter import (
    DELIVERY_COUNT_TTL,
    Failure,
    record_dead_letter,
)
from worker.deadletter.reasons import (
    classify_failure,
    decoded_call,
    headers_of,
    poison_reason,
    queue_of,
    rejected_reason,
    signature_problem,
    unknown_task_reason,
)
from worker.settings import get_settings
from worker.taskapp.routing import queue_for

log = structlog.get_logger(__name__)
_stdlib_log = logging.getLogger(__name__)  # kombu's ack_log_error formats %-style

#: Tasks whose failures are not dead-lettered (besides bad input): they come back by
#: other means. Periodic tasks from the beat schedule are added at run time.
RECOVERED_ELSEWHERE: Final = frozenset({TASK_PUBLISH, TASK_DISPATCH_DUE, TASK_RECORD_DEAD_LETTER})
WITHHELD = "<withheld: recorded as a dead letter, see `herald dlq list`>"


@signals.task_failure.connect
def _dead_letter_failed_task(
    *,
    sender: Task[Any, Any] | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    if sender is None or exception is None or sender.name == TASK_RECORD_DEAD_LETTER:
        return
    request = sender.request
    retries = int(getattr(request, "retries", 0) or 0)
    verdict = classify_failure(
        sender.name,
        exception,
        retries=retries,
        bad_signature=(
            signature_problem(sender.name, sender.run, args, kwargs)
            if isinstance(exception, TypeError)
            else None
        ),
        recovered_elsewhere=RECOVERED_ELSEWHERE | _periodic_task_names(sender.app),
    )
    if verdict is None:
        return
    kind, reason = verdict
    record_dead_letter(
        task_name=sender.name,
        task_id=task_id,
        reason=reason,
        kind=kind,
        args=list(args or ()),
        kwargs=dict(kwargs or {}),
        headers=headers_of(vars(request)),
        queue=queue_of(request) or queue_for(sender.name),
        exception=Failure.of(exception, getattr(einfo, "traceback", None)),
        attempts=retries + 1,
    )


def _periodic_task_names(app: Any) -> frozenset[str]:
    schedule = app.conf.beat_schedule or {}
    return frozenset(str(entry.get("task")) for entry in schedule.values())


@signals.task_unknown.connect
def _dead_letter_unknown_task(
    *, message: Any = None, exc: BaseException | None = None, name: str = "", id: str = "", **_: Any
) -> None:
    call = decoded_call(message)
    args, kwargs = call if call is not None else ([], {})
    record_dead_letter(
        task_name=name,
        task_id=id,
        reason=unknown_task_reason(name),
        kind="unknown_task",
        args=args,
        kwargs=kwargs,
        headers=headers_of(message.headers or {}),
        queue=queue_of(message),
        exception=Failure("NotRegistered", f"no task named {name!r} is registered"),
        raw_body=None if call is not None else message.body,
    )


@signals.task_rejected.connect
def _dead_letter_rejected_message(
    *, message: Any = None, exc: BaseException | None = None, **_: Any
) -> None:
    _record_undecodable(message, exc)


def _record_undecodable(message: Any, exc: BaseException | None) -> None:
    headers = headers_of(message.headers or {})
    reason = rejected_reason(exc, message.content_type, get_settings().accept_content)
    record_dead_letter(
        task_name=headers.get("task"),
        task_id=headers.get("id"),
        reason=reason,
        kind="undecodable",
        headers=headers,
        queue=queue_of(message),
        exception=Failure.of(exc) if exc is not None else None,
        raw_body=message.body,
    )


def _on_decode_error(consumer: Any, message: Any, exc: BaseException) -> None:
    """Replaces Consumer.on_decode_error: record the message (not log its body), ack it."""
    log.error(
        "deadletter.undecodable_message",
        content_type=message.content_type,
        size=len(message.body or b""),
        queue=queue_of(message),
        error=type(exc).__name__,
    )
    try:
        _record_undecodable(message, exc)
    finally:
        message.ack_log_error(_stdlib_log, consumer.connection_errors)


class RecordUndecodableMessages(bootsteps.Step):
    """Consumer step: route the consumer's decode errors to `_on_decode_error`."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        # Set on the instance before the Tasks step builds the task consumer from it.
        parent.on_decode_error = functools.partial(_on_decode_error, parent)


class WithholdMessageBodies(logging.Filter):
    """Drop bodies and headers from Celery's lines about messages it discards."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg is UNKNOWN_TASK_ERROR and len(args) == 4:
            record.args = (args[0], WITHHELD, WITHHELD, args[3])
        elif record.msg is INVALID_TASK_ERROR and len(args) == 2:
            record.args = (args[0], WITHHELD)
        elif record.msg is UNKNOWN_FORMAT:
            record.args = (WITHHELD,)
        return True


_WITHHOLD = WithholdMessageBodies()


@signals.worker_init.connect
def _install_consumer_hooks(*, sender: Any = None, **_: Any) -> None:
    sender.app.steps["consumer"].add(RecordUndecodableMessages)
    logging.getLogger(celery_consumer.__name__).addFilter(_WITHHOLD)  # once, however often


def count_delivery(task_id: str) -> int:
    """This delivery's number for `task_id` (the uncounted first delivery included)."""
    key = get_settings().key(KEY_DELIVERIES, task_id)
    pipe = get_redis().pipeline(transaction=True)
    pipe.set(key, 1, nx=True, ex=DELIVERY_COUNT_TTL)
    pipe.incr(key)
    pipe.expire(key, DELIVERY_COUNT_TTL)
    return int(pipe.execute()[1])


@signals.task_received.connect
def _stop_poison_jobs(*, request: Any = None, **_: Any) -> None:
    if not request.delivery_info.get("redelivered"):
        return
    try:
        deliveries = count_delivery(request.id)
    except redis.RedisError as exc:  # fail open: run it rather than drop it
        log.warning("deadletter.delivery_count_failed", task_id=request.id, error=str(exc))
        return
    limit = get_settings().max_deliveries
    if deliveries <= limit:
        return
    recorded = record_dead_letter(
        task_name=request.name,
        task_id=request.id,
        reason=poison_reason(limit),
        kind="poison",
        args=list(request.args or ()),
        kwargs=dict(request.kwargs or {}),
        headers=headers_of(request.request_dict),
        queue=queue_of(request),
        attempts=deliveries,
    )
    if recorded:  # not run, acked when the worker reaches it; else it runs once more
        worker_state.revoked.add(request.id)
        log.error("deadletter.poison", task_id=request.id, deliveries=deliveries)
