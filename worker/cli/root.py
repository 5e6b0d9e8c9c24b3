"""The `herald` command (its errors end as one line: :mod:`worker.cli.failures`)."""

from __future__ import annotations

from pathlib import Path

import click

from worker.cli.accounts import accounts
from worker.cli.archive import archive
from worker.cli.backup import backup
from worker.cli.breakers import breakers
from worker.cli.common import emit, settings_or_exit
from worker.cli.dlq import dlq
from worker.cli.failures import HeraldGroup
from worker.cli.health import health
from worker.cli.limits import limits
from worker.cli.posts import posts
from worker.cli.run import run
from worker.cli.tokens import tokens
from worker.settings import SettingsError, load_settings


@click.group(cls=HeraldGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="herald")
@click.option("--debug", is_flag=True, help="Print the traceback of an error, not one line.")
def main(debug: bool) -> None:
    """Herald: publish scheduled posts on time, exactly once; keep the platform healthy."""


@main.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision and create partitions ahead."""
    settings_or_exit()
    from worker.db.engine import get_engine
    from worker.db.migrate import current, upgrade
    from worker.db.partitions import ensure_partitions

    upgrade()
    with get_engine().begin() as conn:
        created = ensure_partitions(conn)
        revision = current(conn)
    emit({"revision": revision, "partitions_created": created})


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
def sandbox(host: str, port: int) -> None:
    """Serve the sandbox platform (Instagram-, Facebook- and YouTube-shaped APIs)."""
    from worker.platforms.sandbox import serve

    serve(host=host, port=port)


@main.group()
def embedded() -> None:
    """The embedded Redis and PostgreSQL used when no URL is set."""


def _home() -> Path:
    try:
        return load_settings().home
    except SettingsError:
        return Path(".herald")


@embedded.command("start")
def embedded_start() -> None:
    """Start them (or find them running) and print their URLs."""
    from worker.local import embedded as servers

    urls = servers.ensure_running(_home())
    emit({"redis_url": urls.redis_url, "database_url": urls.database_url})


@embedded.command("stop")
def embedded_stop() -> None:
    """Stop them cleanly (data stays under HERALD_HOME)."""
    from worker.local import embedded as servers

    emit({"stopped": servers.stop(_home())})


@embedded.command("status")
def embedded_status() -> None:
    """Which of them answer, and where."""
    from worker.local import embedded as servers

    emit(servers.status(_home()))


for group in (accounts, posts, limits, breakers, dlq, tokens, backup, archive, health, run):
    main.add_command(group)


if __name__ == "__main__":
    main(prog_name="herald")
