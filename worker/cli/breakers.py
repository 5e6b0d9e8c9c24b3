"""`herald breakers ...`: each platform's circuit breaker, and an operator's hand on it.

`herald breakers` (or `breakers show`) prints every breaker as JSON: state, consecutive
failures, when it opened, when its half-open probe is due, the probe's lease. `reset
PLATFORM` closes one and forgets its failures; `open PLATFORM [--for SECONDS]` forces
one open (when that runs out, one probe decides as usual). Both write the audit log
(who: `--actor`, else the OS user). An unknown platform is a usage error (exit 2);
Redis or the audit database unreachable exits 69 with `herald: <what> failed: <why>`
(another error of theirs exits 1).
"""

from __future__ import annotations

from typing import Any

import click

from worker.cli.common import emit, settings_or_exit
from worker.cli.failures import server_errors
from worker.constants import PLATFORMS
from worker.resilience.breaker import FORCE_OPEN_S, get_breakers

#: Longest `--for` an operator may force a breaker open (a week).
MAX_FORCE_OPEN_S = 7 * 24 * 3600.0

PLATFORM = click.argument("platform", type=click.Choice(PLATFORMS))
ACTOR = click.option("--actor", help="Who does this, for the audit log (default: the OS user).")


@click.group(invoke_without_command=True)
@click.pass_context
def breakers(ctx: click.Context) -> None:
    """Circuit breakers, one per platform, shared by every worker (JSON)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


@breakers.command("show")
def show() -> None:
    """Every platform's breaker: state, failures, opened_at, half_open_at, probe_until."""
    settings_or_exit()
    with server_errors("reading the breakers"):
        emit([get_breakers()[platform].status() for platform in PLATFORMS])


@breakers.command("reset")
@PLATFORM
@ACTOR
def reset(platform: str, actor: str | None) -> None:
    """Close PLATFORM's breaker and forget its failures (audited)."""
    settings_or_exit()
    breaker = get_breakers()[platform]
    with server_errors(f"resetting the {platform} breaker"):
        before = breaker.status()
        breaker.reset()
        after = breaker.status()
    _audit("breaker.reset", actor, platform, before=before)
    emit({"before": before, "after": after})


@breakers.command("open")
@PLATFORM
@click.option(
    "--for",
    "seconds",
    type=click.FloatRange(min=1, max=MAX_FORCE_OPEN_S),
    default=FORCE_OPEN_S,
    show_default=True,
    help="Seconds to hold it open; then one probe decides, as usual.",
)
@ACTOR
def force_open(platform: str, seconds: float, actor: str | None) -> None:
    """Force PLATFORM's breaker open: its jobs are deferred, not failed (audited)."""
    settings_or_exit()
    breaker = get_breakers()[platform]
    with server_errors(f"opening the {platform} breaker"):
        before = breaker.status()
        breaker.force_open(seconds)
        after = breaker.status()
    _audit("breaker.force_open", actor, platform, before=before, seconds=seconds)
    emit({"before": before, "after": after})


def _audit(action: str, actor: str | None, platform: str, **detail: Any) -> None:
    """Done in Redis already: a failure here says so, so nobody retries blindly."""
    from worker.db import audit

    with server_errors(f"{action} on {platform} is done, but writing the audit log"):
        audit.record(action, actor=actor, target=platform, **detail)
