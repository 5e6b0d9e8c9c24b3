"""`herald run`: every process of a Herald deployment on one machine, under one supervisor.

Starts the posts workers, the background worker, beat, Flower (behind a login), the
health server (`herald health --serve`) and, in development, the sandbox platform;
prints where to look; stops them all gracefully on Ctrl-C / SIGTERM (a second one
kills them at once).
"""

from __future__ import annotations

import os
import sys

import click

from worker.cli.common import settings_or_exit
from worker.local.flower import FlowerLogin, flower_env_changes, flower_login, flower_url
from worker.local.processes import Extras, metrics_ports, run_plan
from worker.local.supervisor import Child, Supervisor
from worker.settings import Settings

#: Seconds `herald run` waits beyond the workers' soft shutdown before killing children.
STOP_MARGIN = 15.0


@click.command()
@click.option("--workers", type=click.IntRange(1, 32), help="Posts worker processes.")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Pool size per posts worker.")
@click.option("--sandbox/--no-sandbox", default=None, help="Start the sandbox platform.")
@click.option("--sandbox-port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option("--flower/--no-flower", default=None, help="Start Flower [default: HERALD_FLOWER].")
@click.option(
    "--demo", is_flag=True, help="Seed demo accounts and posts due over the next minutes."
)
def run(
    *,
    workers: int | None,
    concurrency: int | None,
    sandbox: bool | None,
    sandbox_port: int,
    flower: bool | None,
    demo: bool,
) -> None:
    """Start workers for every queue, beat, Flower (and the sandbox); Ctrl-C stops them all."""
    settings = settings_or_exit()
    with_sandbox = settings.env == "development" if sandbox is None else sandbox
    with_flower = settings.flower if flower is None else flower
    _migrate()
    env = {
        **os.environ,
        "REDIS_URL": str(settings.redis_url),
        "DATABASE_URL": str(settings.database_url),
    }
    login = flower_login(settings) if with_flower else None
    extras = _extras(settings, env, sandbox_port if with_sandbox else None, login)
    children = run_plan(
        workers or settings.posts_workers,
        concurrency or settings.posts_concurrency,
        extras=extras,
    )
    _print_intro(settings, [c.name for c in children])
    _print_where_to_look(settings, children, extras, login)
    if demo:
        _seed_demo()
    click.echo("herald: `herald health` checks them; Ctrl-C stops everything")
    stop_timeout = settings.soft_shutdown_timeout + STOP_MARGIN
    sys.exit(Supervisor(children, env, stop_timeout=stop_timeout).run())


def _migrate() -> None:
    from worker.db.engine import get_engine
    from worker.db.migrate import current, upgrade
    from worker.db.partitions import ensure_partitions

    upgrade()
    with get_engine().begin() as conn:
        ensure_partitions(conn)
        click.echo(f"herald: database schema at {current(conn)}")


def _extras(
    settings: Settings, env: dict[str, str], sandbox_port: int | None, login: FlowerLogin | None
) -> Extras:
    """The helpers to start; Flower (when `login` is given) gets the login in its env."""
    return Extras(
        sandbox_port=sandbox_port,
        metrics_port=settings.metrics_port or None,
        flower=(settings.flower_host, settings.flower_port) if login else None,
        flower_env=flower_env_changes(env, login) if login else None,
        health_port=settings.health_port,
    )


def _print_intro(settings: Settings, names: list[str]) -> None:
    click.echo(f"herald: starting {', '.join(names)}")
    click.echo(f"herald: database {hide_password(str(settings.database_url))}")
    click.echo(f"herald: redis    {hide_password(str(settings.redis_url))}")


def _print_where_to_look(
    settings: Settings, children: list[Child], extras: Extras, login: FlowerLogin | None
) -> None:
    if extras.flower is not None:
        click.echo(f"herald: Flower   {flower_url(*extras.flower)} (basic auth)")
    if login is not None and login.generated:
        # Printed once, to the terminal only: never logged, never on a command line.
        click.echo(
            f"herald: Flower login (this run only): {login.user} / {login.password} "
            "- set FLOWER_BASIC_AUTH=user:password to choose one"
        )
    for name, port in metrics_ports(children).items():
        click.echo(f"herald: metrics  http://127.0.0.1:{port}/metrics ({name})")
    if extras.health_port is not None:
        base = f"http://{settings.health_host}:{extras.health_port}"
        click.echo(f"herald: health   {base}/healthz {base}/readyz")
        click.echo(f"herald: metrics  {base}/metrics (deployment-wide)")


def _seed_demo() -> None:
    from worker.local.demo import seed_demo

    seeded = seed_demo()
    click.echo(
        f"herald: demo: {seeded['posts_scheduled']} posts on "
        f"{', '.join(seeded['accounts'])} due over the next minutes; "
        "`herald posts list` follows them"
    )


def hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unprintable url>"


if __name__ == "__main__":
    run()
