"""What every `herald` command shares: settings, JSON out, exit statuses.

stdout carries only the JSON a command prints; logs go to stderr. Errors are not
caught here: :mod:`worker.cli.failures` turns them into one line and an exit status.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click

from worker import runtime
from worker.settings import Settings, get_settings

#: Exit status for a configuration problem (same as a usage error: the input is wrong).
EXIT_CONFIG = 2
#: Exit status for a refused request (bad input, unknown id, a state that forbids it).
EXIT_REFUSED = 1
#: Exit status when a server Herald needs does not answer (sysexits' EX_UNAVAILABLE).
EXIT_UNAVAILABLE = 69
#: An option value meaning "read it from stdin" (keeps secrets out of shell history).
STDIN = "-"


def settings_or_exit() -> Settings:
    """Resolved settings; wrong ones raise `SettingsError` (the CLI exits 2, one line
    per problem, never a traceback).

    Also sends logs to stderr, leaving stdout to the command's JSON. A command is an
    entry point: with a URL unset it starts the embedded servers (worker.runtime).
    """
    runtime.use_embedded_servers()
    settings = get_settings()
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
