"""What every `herald` command shares: settings or exit 2, JSON out, refusals exit 1.

stdout carries only the JSON a command prints; logs go to stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from typing import Any

import click

from worker.settings import Settings, SettingsError, get_settings

#: Exit status for a configuration problem (same as a usage error: the input is wrong).
EXIT_CONFIG = 2
#: Exit status for a refused request (bad input, unknown id, a state that forbids it).
EXIT_REFUSED = 1
#: An option value meaning "read it from stdin" (keeps secrets out of shell history).
STDIN = "-"


def settings_or_exit() -> Settings:
    """Resolved settings, or exit 2 with one line per problem (never a traceback).

    Also sends logs to stderr, leaving stdout to the command's JSON.
    """
    try:
        settings = get_settings()
    except SettingsError as exc:
        click.echo("herald: configuration error", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_CONFIG)
    from worker.observability.logging import configure_logging

    configure_logging(settings)
    return settings


def emit(data: Any) -> None:
    """Print a command's result as JSON: dicts, lists and dataclasses (typed results)."""
    click.echo(json.dumps(data, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


@contextlib.contextmanager
def refused(*errors: type[BaseException]) -> Iterator[None]:
    """Turn the given errors into `herald: <message>` on stderr and exit status 1."""
    try:
        yield
    except errors as exc:
        click.echo(f"herald: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
