"""How a `herald` command that fails ends: one line on stderr and an exit status.

Every command runs inside :class:`HeraldGroup`, the one place that catches errors:

==========================================  ======  ==================================
raised                                      exit    stderr
==========================================  ======  ==================================
:class:`~worker.errors.RefusedError`        1       ``herald: <message>``
other :class:`~worker.errors.HeraldError`   1       ``herald: <message>``
:class:`~worker.errors.UnavailableError`    69      ``herald: <server> at <url> ...``
:class:`~worker.errors.ConfigurationError`  2       ``herald: configuration error``
                                                    and one indented line per problem
a driver's "cannot connect" (psycopg,       69      as UnavailableError, naming the
redis-py, kombu) that escaped a command             server and its URL, password
                                                    masked
==========================================  ======  ==================================

Anything else is a bug and keeps its traceback. ``herald --debug ...`` prints the
traceback of the handled ones too. stdout is never written here: it carries only a
command's JSON.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from typing import Any

import click

from worker.cli.common import EXIT_CONFIG, EXIT_REFUSED, EXIT_UNAVAILABLE
from worker.errors import ConfigurationError, HeraldError, UnavailableError

#: PostgreSQL error classes that mean "no usable connection" (SQLSTATE class 08, and
#: 57P01-57P03: the server is shutting down or not yet accepting connections).
_PG_CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")


class HeraldGroup(click.Group):
    """A click group whose commands' Herald errors end as one line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            failure = exc if isinstance(exc, HeraldError) else as_unavailable(exc)
            if failure is None:
                raise
            if ctx.params.get("debug"):
                traceback.print_exception(exc)
            ctx.exit(report(failure))


def report(error: HeraldError) -> int:
    """Print `error` for a person on stderr; return the exit status it calls for."""
    if isinstance(error, ConfigurationError):
        click.echo("herald: configuration error", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        return EXIT_CONFIG
    click.echo(f"herald: {error}", err=True)
    return EXIT_UNAVAILABLE if isinstance(error, UnavailableError) else EXIT_REFUSED


def as_unavailable(exc: BaseException) -> UnavailableError | None:
    """`exc` as the :class:`UnavailableError` it means, when it is a driver failing to
    reach PostgreSQL, Redis or the broker; None for anything else (a query error, a bug).
    """
    import kombu.exceptions
    import psycopg
    import redis
    import sqlalchemy.exc

    # SQLAlchemy wraps the driver's error; the driver's says whether it was the connection.
    cause = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    if isinstance(cause, psycopg.OperationalError) and _lost_connection(cause):
        return unavailable("PostgreSQL", "database_url", cause)
    if isinstance(cause, (redis.ConnectionError, redis.TimeoutError)):
        return unavailable("Redis", "redis_url", cause)
    if isinstance(cause, kombu.exceptions.OperationalError):
        return unavailable("the broker", "effective_broker_url", cause)
    return None


@contextlib.contextmanager
def server_errors(doing: str, *, quote_error: bool = True, advice: str = "") -> Iterator[None]:
    """Redis or PostgreSQL failing inside the block ends the command saying what it was
    doing: ``<doing> failed: ...``, as an :class:`UnavailableError` (exit 69) when the
    server does not answer, else a :class:`HeraldError` (exit 1) naming the error's type
    (and its message, with `quote_error`). `advice` is appended after ``; ``."""
    import redis
    from sqlalchemy.exc import SQLAlchemyError

    tail = f"; {advice}" if advice else ""
    try:
        yield
    except (redis.RedisError, SQLAlchemyError) as exc:
        unreachable = as_unavailable(exc)
        if unreachable is not None:
            raise UnavailableError(
                f"{doing} failed: {unreachable}{tail}", server=unreachable.server
            ) from exc
        why = f"{type(exc).__name__}: {exc}" if quote_error else type(exc).__name__
        raise HeraldError(f"{doing} failed: {why}{tail}") from exc


def unavailable(server: str, url_setting: str, cause: BaseException) -> UnavailableError:
    """An :class:`UnavailableError` naming `server`, the URL the settings give for it
    (password masked) and what the driver said (secrets masked too)."""
    from worker.observability.redaction import redact_text

    where = _configured(url_setting)
    at = f" at {redact_text(where)}" if where else ""
    reason = " ".join(str(cause).split()) or type(cause).__name__
    return UnavailableError(f"{server}{at} is unreachable: {redact_text(reason)}", server=server)


def _lost_connection(error: Any) -> bool:
    # A client-side connection failure carries no SQLSTATE.
    state: str | None = error.sqlstate
    return state is None or state.startswith(_PG_CONNECTION_STATES)


def _configured(url_setting: str) -> str | None:
    """The URL the settings hold for a server, or None when they cannot say."""
    from worker.settings import get_settings

    try:  # resolved already: a command that reached a server had its settings
        return str(getattr(get_settings(), url_setting))
    except Exception:  # the message names the server anyway; never fail while reporting
        return None
