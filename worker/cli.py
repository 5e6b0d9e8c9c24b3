"""The `herald` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from worker.cli_accounts import accounts
from worker.cli_archive import archive
from worker.cli_backup import backup
from worker.cli_breakers import breakers
from worker.cli_common import emit, settings_or_exit
from worker.cli_dlq import dlq
from worker.cli_health import health
from worker.cli_limits import limits
from worker.cli_posts import posts
from worker.cli_tokens import tokens
from worker.settings import SettingsError, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="herald")
def main() -> None:
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
@click.option("--workers", type=click.IntRange(1, 32), help="Posts worker processes.")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Pool size per posts worker.")
@click.option("--sandbox/--no-sandbox", default=None, help="Start the sandbox platform.")
@click.option("--sandbox-port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--demo", is_flag=True, help="Seed demo accounts and posts due over the next minutes."
)
def run(
    workers: int | None,
    concurrency: int | None,
    sandbox: bool | None,
    sandbox_port: int,
    demo: bool,
) -> None:
    """Start workers for every queue and beat (and the sandbox); Ctrl-C stops them all."""
    from worker.processes import run_plan
    from worker.supervisor import Supervisor

    settings = settings_or_exit()
    with_sandbox = settings.env == "development" if sandbox is None else sandbox
    click.get_current_context().invoke(migrate)
    children = run_plan(
        workers or settings.posts_workers,
        concurrency or settings.posts_concurrency,
        sandbox_port=sandbox_port if with_sandbox else None,
    )
    env = {
        **os.environ,
        "REDIS_URL": str(settings.redis_url),
        "DATABASE_URL": str(settings.database_url),
    }
    click.echo(f"herald: starting {', '.join(c.name for c in children)}")
    click.echo(f"herald: database {_hide_password(str(settings.database_url))}")
    click.echo(f"herald: redis    {_hide_password(str(settings.redis_url))}")
    if demo:
        from worker.demo import seed_demo

        seeded = seed_demo()
        click.echo(
            f"herald: demo: {seeded['posts_scheduled']} posts on "
            f"{', '.join(seeded['accounts'])} due over the next minutes; "
            "`herald posts list` follows them"
        )
    click.echo("herald: `herald health` checks them; Ctrl-C stops everything")
    status = Supervisor(children, env, stop_timeout=settings.soft_shutdown_timeout + 15).run()
    sys.exit(status)


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
    from worker import embedded as servers

    urls = servers.ensure_running(_home())
    emit({"redis_url": urls.redis_url, "database_url": urls.database_url})


@embedded.command("stop")
def embedded_stop() -> None:
    """Stop them cleanly (data stays under HERALD_HOME)."""
    from worker import embedded as servers

    emit({"stopped": servers.stop(_home())})


@embedded.command("status")
def embedded_status() -> None:
    """Which of them answer, and where."""
    from worker import embedded as servers

    emit(servers.status(_home()))


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unprintable url>"


for group in (accounts, posts, limits, breakers, dlq, tokens, backup, archive, health):
    main.add_command(group)


if __name__ == "__main__":
    main(prog_name="herald")
