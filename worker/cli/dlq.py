"""`herald dlq ...`: look at dead letters, replay them, purge them.

Output is JSON on stdout. A refused request (unknown id, a letter that cannot be
replayed, a purge without confirmation) prints `herald: <message>` on stderr and
exits 1; the letters that could be handled still are. Replays and purges are
written to the audit log (`--actor`, else the OS user).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import click

from worker.cli.common import EXIT_REFUSED, emit, settings_or_exit
from worker.errors import RefusedError

_RELATIVE = re.compile(r"^-?(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`-1h`, `30m`, `2d` (that long ago) or an ISO-8601 time (UTC if it has no zone)."""
    match = _RELATIVE.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO-8601 time nor an age like -1h, 30m, 2d",
            param_hint="--since",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.group()
def dlq() -> None:
    """Dead letters: jobs Herald gave up on, kept so they can be replayed."""


@dlq.command("list")
@click.option("--task", "task_name", help="Only this task name (e.g. posts.publish).")
@click.option("--since", help="Failed at or after: ISO-8601 time, or an age like -1h.")
@click.option(
    "--status",
    type=click.Choice(("open", "replayed", "purged", "all")),
    default="open",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def list_(task_name: str | None, since: str | None, status: str, limit: int) -> None:
    """Dead letters, newest failure first (`show ID` has the arguments and traceback)."""
    when = parse_since(since) if since else None
    settings_or_exit()
    from worker.db.session import unit_of_work
    from worker.deadletter.store import list_letters

    with unit_of_work() as session:
        found = list_letters(session, task_name=task_name, since=when, status=status, limit=limit)
    emit(found)


@dlq.command("show")
@click.argument("letter_id", type=int)
def show(letter_id: int) -> None:
    """One dead letter, whole: args, kwargs, headers, exception, traceback, raw body."""
    settings_or_exit()
    from worker.db.session import unit_of_work
    from worker.deadletter.replay import why_not_replayable
    from worker.deadletter.store import get

    with unit_of_work() as session:
        row = get(session, letter_id)
    if row is None:
        raise RefusedError(f"no dead letter {letter_id}")
    problem = why_not_replayable(row)
    emit(
        {
            **dataclasses.asdict(row),
            "replayable": problem is None,
            "not_replayable_because": problem,
        }
    )


@dlq.command("replay")
@click.argument("letter_ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True, help="Every open letter of --task.")
@click.option("--task", "task_name", help="With --all: the task name whose letters to replay.")
@click.option("--actor", help="Who does this, for the audit log (default: the OS user).")
def replay(
    letter_ids: tuple[int, ...], replay_all: bool, task_name: str | None, actor: str | None
) -> None:
    """Send the original task again (new task id, original queue, args and headers).

    A `posts.publish` letter revives its post first (dead -> queued); a message that
    could not be decoded cannot be replayed.
    """
    if replay_all == bool(letter_ids):
        raise click.UsageError("give dead-letter IDs, or --all --task NAME (not both)")
    if replay_all and not task_name:
        raise click.UsageError("--all needs --task NAME")
    settings_or_exit()
    import worker.app  # noqa: F401  (an entry point: the app replays are sent with)
    from worker.deadletter import replay as deadletter_replay

    ids = list(letter_ids) or deadletter_replay.replayable_ids(task_name or "")
    _each(ids, lambda i: deadletter_replay.replay(i, actor=actor).as_json())


@dlq.command("purge")
@click.argument("letter_ids", nargs=-1, type=int, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--actor", help="Who does this, for the audit log (default: the OS user).")
def purge(letter_ids: tuple[int, ...], yes: bool, actor: str | None) -> None:
    """Mark dead letters purged: they will never be replayed (rows stay, for the record)."""
    if not yes:
        if not sys.stdin.isatty():
            raise RefusedError("purge needs confirmation: run it on a terminal, or pass --yes")
        shown = ", ".join(str(i) for i in letter_ids)
        if not click.confirm(f"Purge dead letter(s) {shown}? They cannot be replayed after."):
            raise RefusedError("nothing purged")
    settings_or_exit()
    from worker.deadletter import replay as deadletter_replay

    _each(list(letter_ids), lambda i: deadletter_replay.purge(i, actor=actor))


def _each(ids: list[int], act: Callable[[int], object]) -> None:
    """Act on every id; print what was done; exit 1 if any was refused."""
    from worker.deadletter.letter import DeadLetterError

    done, refused = [], []
    for letter_id in ids:
        try:
            done.append(act(letter_id))
        except DeadLetterError as exc:
            refused.append({"id": letter_id, "error": str(exc)})
            click.echo(f"herald: {exc}", err=True)
    emit({"done": done, "refused": refused})
    if refused:
        sys.exit(EXIT_REFUSED)
