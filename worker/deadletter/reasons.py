"""Pure helpers of the worker's dead-letter receivers: what a message or failure is, and
the reason a person reads in `herald dlq list`. No I/O here (unit-tested directly)."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from kombu.exceptions import ContentDisallowed

from worker.deadletter.letter import Kind, jsonable

#: Exceptions that mean "the task's input is wrong": the same input fails the same
#: way, so the job is dead-lettered at once, never retried. Dotted paths, resolved
#: lazily (the modules that define them import the dead-letter module).
BAD_INPUT_ERRORS: Final = ("worker.publishing.publish.InvalidPublishInputError",)

#: Keys the worker or Celery's Context adds to a request: not the message's headers.
NOT_HEADERS: Final = frozenset(
    {
        "args", "kwargs", "argsrepr", "kwargsrepr", "properties", "reply_to",
        "correlation_id", "hostname", "delivery_info", "is_eager", "callbacks", "errbacks",
        "chain", "chord", "called_directly", "headers", "utc", "loglevel", "logfile",
        "taskset", "time_limit", "soft_time_limit",
    }
)  # fmt: skip

NOT_A_TASK = "not a task message: it names no task (sent to the wrong queue?)"


@functools.cache
def _bad_input_types() -> tuple[type[BaseException], ...]:
    found = []
    for path in BAD_INPUT_ERRORS:
        module, _, name = path.rpartition(".")
        found.append(getattr(importlib.import_module(module), name))
    return tuple(found)


def is_bad_input(exc: BaseException) -> bool:
    return isinstance(exc, _bad_input_types())


def signature_problem(name: str, run: Callable[..., Any], args: Any, kwargs: Any) -> str | None:
    """Why these arguments cannot be passed to the task function, or None if they can."""
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*(args or ()), **(kwargs or {}))
    except TypeError as exc:
        return f"{name}({_plain(signature)}) cannot take these arguments: {exc}"
    return None


_STARS: Final[dict[object, str]] = {
    inspect.Parameter.VAR_POSITIONAL: "*",
    inspect.Parameter.VAR_KEYWORD: "**",
}


def _plain(signature: inspect.Signature) -> str:
    """Parameters as a person writes them: names and defaults, no annotations."""
    shown = []
    for param in signature.parameters.values():
        prefix = _STARS.get(param.kind, "")
        default = "" if param.default is param.empty else f"={param.default!r}"
        shown.append(f"{prefix}{param.name}{default}")
    return ", ".join(shown)


def classify_failure(
    task_name: str,
    exc: BaseException,
    *,
    retries: int,
    bad_signature: str | None,
    recovered_elsewhere: Iterable[str],
) -> tuple[Kind, str] | None:
    """(kind, reason) of a task failure to dead-letter, or None to leave it alone.

    Bad input is always recorded. Other failures are, except for tasks that recover
    by other means: `posts.publish` (the row's lease re-sends it; its dead ends are
    recorded by the publish path) and periodic tasks (the next tick redoes the work).
    """
    if is_bad_input(exc):
        return "invalid_input", f"invalid input: {exc}"
    if isinstance(exc, TypeError) and bad_signature:
        return "invalid_input", f"invalid input: {bad_signature}"
    if task_name in set(recovered_elsewhere):
        return None
    kind = type(exc).__name__
    if kind == "TimeLimitExceeded":
        return "failed", "killed at its hard time limit"
    if retries > 0:
        return "failed", f"gave up after {retries + 1} attempts; last error {kind}"
    return "failed", f"failed with {kind} (the task does not retry it)"


def unknown_task_reason(name: str) -> str:
    return (
        f"unknown task {name!r}: the worker has no task of that name "
        "(a typo, or a sender newer than the workers)"
    )


def rejected_reason(
    exc: BaseException | None, content_type: str | None, accepted: list[str]
) -> str:
    """Why Celery refused a message (`task_rejected`, or a decode error)."""
    if exc is None:
        return NOT_A_TASK
    if isinstance(exc, ContentDisallowed):
        return f"refused content type {content_type!r}: workers accept only {', '.join(accepted)}"
    if type(exc).__name__ == "InvalidTaskError":
        return f"invalid task message: {exc}"
    return f"cannot decode the message body as {content_type!r} ({type(exc).__name__})"


def poison_reason(max_deliveries: int) -> str:
    return (
        f"poison: delivered more than {max_deliveries} times without finishing "
        "(the worker running it was lost each time)"
    )


def headers_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A message's headers from a request dict or Context: protocol and sender's own."""
    found: dict[str, Any] = jsonable(
        {k: v for k, v in fields.items() if k not in NOT_HEADERS and not k.startswith("_")}
    )
    return found


def decoded_call(message: Any) -> tuple[list[Any], dict[str, Any]] | None:
    """(args, kwargs) of a task message (protocol 2 or 1), or None if it has none."""
    try:
        body = message.decode()
    except Exception:  # undecodable: the caller keeps the raw body instead
        return None
    if isinstance(body, list | tuple) and len(body) == 3:  # protocol 2
        args, kwargs = body[0], body[1]
    elif isinstance(body, dict) and "task" in body:  # protocol 1
        args, kwargs = body.get("args", []), body.get("kwargs", {})
    else:
        return None
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return None
    return jsonable(list(args)), jsonable(kwargs)


def queue_of(message: Any) -> str | None:
    info = getattr(message, "delivery_info", None) or {}
    routing_key = info.get("routing_key")
    return str(routing_key) if routing_key else None
